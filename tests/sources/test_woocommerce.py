"""WooCommerce: base64 HMAC of the raw body, topic and delivery id headers, the ping on creation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.utils.datastructures import CaseInsensitiveMapping
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.sources import registry
from integrations.sources.base import handshake
from integrations.sources.woocommerce import ping_request, sign_request

from .support import NOW, dumps, headers_with, json_objects_with, json_values, outcome, receive, refusal

KIND = registry.get("woocommerce")
SECRET = "wc-secret-Zq8vN3kLp0xR"
OLD_SECRET = "wc-secret-old-000000"
DELIVERY = "6f5a1c0e4b9d2a7f3e8c1b6d0a9f4e2c"


@pytest.fixture
def order_created(corpus) -> bytes:
    return (corpus / "woocommerce_rest_api_docs" / "order.created.json").read_bytes()


@pytest.fixture
def customer_updated(corpus) -> bytes:
    return (corpus / "woocommerce_rest_api_docs" / "customer.updated.json").read_bytes()


def test_signed_order_created_yields_id_gmt_time_topic_and_delivery(order_created):
    headers = sign_request(SECRET, order_created, topic="order.created", delivery_id=DELIVERY)
    [item] = receive(KIND, body=order_created, headers=headers, secrets=[SECRET]).items

    assert item.source_id == "727"
    assert item.updated_at == datetime(2017, 3, 22, 19, 28, 8, tzinfo=UTC)  # date_modified_gmt, not site-local
    assert item.event_type == "order.created"
    assert item.event_id.startswith(DELIVERY + ":")
    assert item.body["billing"]["phone"] == "(555) 555-5555"
    assert str(item.body["total"]) == "29.35"


def test_signed_customer_updated(customer_updated):
    headers = sign_request(SECRET, customer_updated, topic="customer.updated", delivery_id=DELIVERY)
    [item] = receive(KIND, body=customer_updated, headers=headers, secrets=[SECRET]).items
    assert (item.source_id, item.event_type) == ("25", "customer.updated")
    assert item.updated_at == datetime(2017, 3, 21, 19, 12, 28, tzinfo=UTC)


def test_the_same_delivery_twice_has_the_same_event_id(order_created):
    headers = sign_request(SECRET, order_created, delivery_id=DELIVERY)
    [first] = receive(KIND, body=order_created, headers=headers, secrets=[SECRET]).items
    [again] = receive(KIND, body=order_created, headers=headers, secrets=[SECRET]).items
    assert first.event_id == again.event_id


def test_two_orders_sent_in_the_same_second_share_a_delivery_id_but_not_an_event_id(corpus, order_created):
    # WooCommerce's delivery id is hash(webhook id + current second); deduping on it alone loses orders.
    other = (corpus / "woocommerce_rest_api_docs" / "order.updated.json").read_bytes()
    [a] = receive(
        KIND, body=order_created, headers=sign_request(SECRET, order_created, delivery_id=DELIVERY), secrets=[SECRET]
    ).items
    [b] = receive(KIND, body=other, headers=sign_request(SECRET, other, delivery_id=DELIVERY), secrets=[SECRET]).items
    assert a.event_id != b.event_id


def test_ping_on_creation_is_answered_200_and_stores_nothing():
    headers, body = ping_request(14)
    parsed = receive(KIND, body=body, headers=headers, secrets=[SECRET])
    assert parsed.items == []
    assert parsed.reply == (200, {"status": "ok", "ping": "woocommerce", "webhook_id": "14"})


def test_ping_reaching_verify_is_still_answered_200():
    headers, body = ping_request(14)
    exc = refusal(
        lambda: KIND.verify(
            method="POST",
            url="u",
            headers=CaseInsensitiveMapping(headers),
            body=body,
            secrets=[SECRET],
            now=NOW,
            tolerance=300,
        )
    )
    assert (exc.status, exc.code) == (200, "ping")


def test_a_signed_request_is_never_taken_for_a_ping():
    body = b"webhook_id=14"
    headers = sign_request(SECRET, body)
    assert handshake(KIND, method="POST", headers=CaseInsensitiveMapping(headers), body=body) is None


def test_other_kinds_have_no_handshake():
    _, body = ping_request(14)
    assert handshake(registry.get("shopify"), method="POST", headers={}, body=body) is None


def test_wrong_secret_is_refused_with_401(order_created):
    headers = sign_request(OLD_SECRET, order_created, delivery_id=DELIVERY)
    exc = refusal(lambda: receive(KIND, body=order_created, headers=headers, secrets=[SECRET]))
    assert (exc.status, exc.code) == (401, "bad_signature")


def test_unsigned_json_is_refused_with_401(order_created):
    headers = sign_request(SECRET, order_created)
    del headers["X-WC-Webhook-Signature"]
    exc = refusal(lambda: receive(KIND, body=order_created, headers=headers, secrets=[SECRET]))
    assert (exc.status, exc.code) == (401, "missing_signature")


def test_previous_secret_is_accepted_during_rotation(order_created):
    headers = sign_request(OLD_SECRET, order_created)
    assert receive(KIND, body=order_created, headers=headers, secrets=[SECRET, OLD_SECRET]).items


def test_big_integer_ids_stay_exact():
    body = b'{"id": 18446744073709551617, "date_modified_gmt": "2025-06-15T15:00:00"}'
    [item] = receive(KIND, body=body, headers=sign_request(SECRET, body), secrets=[SECRET]).items
    assert item.source_id == "18446744073709551617"


def test_site_local_time_without_offset_is_not_guessed():
    body = b'{"id": 9, "date_modified": "2025-06-15T17:00:00"}'
    [item] = receive(KIND, body=body, headers=sign_request(SECRET, body), secrets=[SECRET]).items
    assert item.updated_at is None


def test_date_modified_with_an_offset_is_used_when_gmt_is_missing():
    body = b'{"id": 9, "date_modified": "2025-06-15T17:00:00+02:00"}'
    [item] = receive(KIND, body=body, headers=sign_request(SECRET, body), secrets=[SECRET]).items
    assert item.updated_at == datetime(2025, 6, 15, 15, 0, tzinfo=UTC)


@pytest.mark.parametrize("payload", [[{"id": 727}], "order", 727, None])
def test_body_that_is_not_an_object_is_refused_with_400(payload):
    body = dumps(payload)
    exc = refusal(lambda: receive(KIND, body=body, headers=sign_request(SECRET, body), secrets=[SECRET]))
    assert exc.status == 400
    assert "one JSON object" in exc.message


HEADER_NAMES = ["X-WC-Webhook-Signature", "X-WC-Webhook-Topic", "X-WC-Webhook-Delivery-ID", "X-WC-Webhook-ID"]


@settings(max_examples=200, deadline=None)
@given(
    headers=headers_with(HEADER_NAMES),
    body=st.binary(max_size=64) | st.integers(min_value=0).map(lambda n: f"webhook_id={n}".encode()),
    secrets=st.lists(st.text(max_size=40)),
)
def test_verify_and_handshake_never_raise_anything_but_source_error(headers, body, secrets):
    verify = KIND.verify
    assert outcome(
        lambda: verify(method="POST", url="u", headers=headers, body=body, secrets=secrets, now=NOW, tolerance=300)
    ) in (None, 200, 401)
    assert outcome(lambda: handshake(KIND, method="POST", headers=headers, body=body)) is None


@settings(max_examples=300, deadline=None)
@given(
    payload=json_values | json_objects_with(["id", "date_modified_gmt", "date_modified"]),
    headers=headers_with(HEADER_NAMES),
)
def test_parse_never_raises_anything_but_source_error(payload, headers):
    assert outcome(lambda: KIND.parse(headers=headers, payload=payload)) in (None, 400)
