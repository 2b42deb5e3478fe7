"""Shopify: base64 HMAC of the raw body, topic and event id in headers, the bare resource as body."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.sources import registry
from integrations.sources.shopify import sign_request

from .support import NOW, dumps, headers_with, json_objects_with, json_values, load, outcome, receive, refusal

KIND = registry.get("shopify")
SECRET = "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"
OLD_SECRET = "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"
EDT = timezone(timedelta(hours=-4))


@pytest.fixture
def order_body(corpus) -> bytes:
    # A webhook body is the object inside the REST wrapper {"order": {...}}.
    return dumps(load(corpus / "shopify_python_api" / "order.json")["order"])


@pytest.fixture
def customer_body(corpus) -> bytes:
    return dumps(load(corpus / "shopify_python_api" / "customer.json")["customer"])


def test_signed_order_yields_id_time_topic_and_event_id(order_body):
    headers = sign_request(SECRET, order_body, topic="orders/updated", event_id="98880550-7158-44d4-b7cd-2c97c8a091b5")
    [item] = receive(KIND, body=order_body, headers=headers, secrets=[SECRET]).items

    assert item.source_id == "450789469"
    assert item.updated_at == datetime(2008, 1, 10, 16, 0, tzinfo=UTC)
    assert item.event_type == "orders/updated"
    assert item.event_id == "98880550-7158-44d4-b7cd-2c97c8a091b5"
    assert item.body["name"] == "#1001"
    assert item.body["total_price"] == "409.94"


def test_signed_customer_keeps_its_offset_time(customer_body):
    headers = sign_request(SECRET, customer_body, topic="customers/update", event_id="e-1")
    [item] = receive(KIND, body=customer_body, headers=headers, secrets=[SECRET]).items

    assert item.source_id == "207119551"
    assert item.updated_at == datetime(2015, 5, 27, 18, 11, 24, tzinfo=EDT)


def test_thirteen_digit_ids_from_a_real_store_stay_exact(corpus):
    line = (corpus / "airbyte_shopify_teststore" / "customers.jsonl").read_text().splitlines()[0]
    body = line.encode()
    [item] = receive(KIND, body=body, headers=sign_request(SECRET, body, event_id="e"), secrets=[SECRET]).items
    assert item.source_id == "6569096478909"


def test_ids_beyond_64_bits_stay_exact():
    body = b'{"id": 18446744073709551617, "updated_at": "2025-06-15T10:00:00-05:00"}'
    [item] = receive(KIND, body=body, headers=sign_request(SECRET, body, event_id="e"), secrets=[SECRET]).items
    assert item.source_id == "18446744073709551617"


def test_redelivery_of_the_same_event_has_the_same_event_id(order_body):
    first = sign_request(SECRET, order_body, event_id="ev-1", webhook_id="wh-1")
    again = sign_request(SECRET, order_body, event_id="ev-1", webhook_id="wh-1")
    [a] = receive(KIND, body=order_body, headers=first, secrets=[SECRET]).items
    [b] = receive(KIND, body=order_body, headers=again, secrets=[SECRET]).items
    assert a.event_id == b.event_id == "ev-1"


def test_webhook_id_is_the_event_id_when_no_event_id_is_sent(order_body):
    headers = sign_request(SECRET, order_body, webhook_id="b54557e4-bdd9-4b37-8a5f-bf7d70bcd043")
    [item] = receive(KIND, body=order_body, headers=headers, secrets=[SECRET]).items
    assert item.event_id == "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"


def test_delete_topic_without_updated_at_is_ordered_by_triggered_at_in_nanoseconds():
    body = b'{"id": 450789469}'
    headers = sign_request(
        SECRET, body, topic="orders/delete", event_id="e", triggered_at="2025-06-15T15:01:02.123456789Z"
    )
    [item] = receive(KIND, body=body, headers=headers, secrets=[SECRET]).items
    assert item.event_type == "orders/delete"
    assert item.updated_at == datetime(2025, 6, 15, 15, 1, 2, 123456, tzinfo=UTC)


def test_delete_topic_with_a_plain_triggered_at_uses_it():
    body = b'{"id": 450789469}'
    headers = sign_request(SECRET, body, topic="orders/delete", event_id="e", triggered_at="2025-06-15T15:01:02Z")
    [item] = receive(KIND, body=body, headers=headers, secrets=[SECRET]).items
    assert item.updated_at == datetime(2025, 6, 15, 15, 1, 2, tzinfo=UTC)


def test_wrong_secret_is_refused_with_401(order_body):
    headers = sign_request(OLD_SECRET, order_body, event_id="e")
    exc = refusal(lambda: receive(KIND, body=order_body, headers=headers, secrets=[SECRET]))
    assert (exc.status, exc.code) == (401, "bad_signature")


def test_one_changed_byte_is_refused_with_401(order_body):
    headers = sign_request(SECRET, order_body, event_id="e")
    tampered = order_body.replace(b"409.94", b"009.94")
    assert refusal(lambda: receive(KIND, body=tampered, headers=headers, secrets=[SECRET])).status == 401


def test_missing_or_garbled_signature_is_refused_with_401(order_body):
    headers = sign_request(SECRET, order_body, event_id="e")
    del headers["X-Shopify-Hmac-Sha256"]
    assert (
        refusal(lambda: receive(KIND, body=order_body, headers=headers, secrets=[SECRET])).code == "missing_signature"
    )
    headers["X-Shopify-Hmac-Sha256"] = "not base64 ✗"
    assert refusal(lambda: receive(KIND, body=order_body, headers=headers, secrets=[SECRET])).code == "bad_signature"


def test_previous_secret_is_accepted_during_rotation(order_body):
    headers = sign_request(OLD_SECRET, order_body, event_id="e")
    assert receive(KIND, body=order_body, headers=headers, secrets=[SECRET, OLD_SECRET]).items


def test_there_is_no_timestamp_window_so_a_retry_hours_later_is_accepted(order_body):
    # Shopify retries for 4 hours with the original headers; replays are stopped by event-id dedupe.
    headers = sign_request(SECRET, order_body, event_id="e", triggered_at="2025-06-15T11:00:00Z")
    assert receive(KIND, body=order_body, headers=headers, secrets=[SECRET], now=NOW + 4 * 3600).items


@pytest.mark.parametrize("payload", [[{"id": 1}], "order", 450789469, None])
def test_body_that_is_not_an_object_is_refused_with_400(payload):
    body = json.dumps(payload).encode()
    exc = refusal(lambda: receive(KIND, body=body, headers=sign_request(SECRET, body), secrets=[SECRET]))
    assert exc.status == 400
    assert "one JSON object" in exc.message


def test_resource_without_usable_id_or_time_is_still_accepted_for_the_mapping_to_judge():
    body = b'{"id": 4.5e3, "updated_at": "last tuesday"}'
    [item] = receive(KIND, body=body, headers=sign_request(SECRET, body, event_id="e"), secrets=[SECRET]).items
    assert item.source_id is None
    assert item.updated_at is None


HEADER_NAMES = ["X-Shopify-Hmac-Sha256", "X-Shopify-Topic", "X-Shopify-Event-Id", "X-Shopify-Triggered-At"]


@settings(max_examples=200, deadline=None)
@given(headers=headers_with(HEADER_NAMES), body=st.binary(max_size=64), secrets=st.lists(st.text(max_size=40)))
def test_verify_never_raises_anything_but_source_error(headers, body, secrets):
    verify = KIND.verify
    assert outcome(
        lambda: verify(method="POST", url="u", headers=headers, body=body, secrets=secrets, now=NOW, tolerance=300)
    ) in (None, 401)


@settings(max_examples=300, deadline=None)
@given(payload=json_values | json_objects_with(["id", "updated_at"]), headers=headers_with(HEADER_NAMES))
def test_parse_never_raises_anything_but_source_error(payload, headers):
    assert outcome(lambda: KIND.parse(headers=headers, payload=payload)) in (None, 400)
