"""Standard Webhooks (Svix): signed "<id>.<timestamp>.<body>", whsec_ secrets, optional envelope."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import pytest
import standardwebhooks
import svix.webhooks
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.engine import exactjson
from integrations.sources import registry
from integrations.sources.standard_webhooks import sign_request

from .support import NOW, dumps, headers_with, json_objects_with, json_values, load, outcome, receive, refusal

KIND = registry.get("standard_webhooks")
SECRET = "whsec_" + base64.b64encode(b"syncdesk standard webhooks 1").decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"syncdesk standard webhooks 0").decode()
MSG_ID = "msg_2bYeTQm1sGyhjsXiBVdM2l3vyh8"


@pytest.fixture
def customer(corpus):
    return load(corpus / "shopify_python_api" / "customer.json")["customer"]


def test_signed_envelope_yields_the_record_with_type_time_and_message_id(customer):
    body = dumps({"type": "customer.updated", "timestamp": "2015-05-27T22:11:24Z", "data": customer})
    parsed = receive(
        KIND, body=body, headers=sign_request(SECRET, msg_id=MSG_ID, timestamp=NOW, body=body), secrets=[SECRET]
    )

    [item] = parsed.items
    assert item.body["id"] == 207119551
    assert item.body["email"] == "bob.norman@hostmail.com"
    assert item.event_id == MSG_ID
    assert item.event_type == "customer.updated"
    assert item.updated_at == datetime(2015, 5, 27, 22, 11, 24, tzinfo=UTC)
    assert item.source_id is None  # left to the mapping's id path: the spec names no id field


def test_bare_record_is_the_body_and_the_message_id_is_the_event_id(customer):
    body = dumps(customer)
    parsed = receive(
        KIND, body=body, headers=sign_request(SECRET, msg_id=MSG_ID, timestamp=NOW, body=body), secrets=[SECRET]
    )

    [item] = parsed.items
    assert item.body == exactjson.loads(body)
    assert item.event_id == MSG_ID
    assert item.event_type is None


def test_record_with_its_own_type_and_data_fields_is_not_mistaken_for_an_envelope():
    body = dumps({"id": 5, "type": "company", "data": {"x": 1}})
    [item] = receive(
        KIND, body=body, headers=sign_request(SECRET, msg_id=MSG_ID, timestamp=NOW, body=body), secrets=[SECRET]
    ).items
    assert item.body == {"id": 5, "type": "company", "data": {"x": 1}}


def test_svix_library_signature_is_accepted(customer):
    body = dumps({"type": "customer.created", "timestamp": "2015-05-27T22:11:24Z", "data": customer})
    now = time.time()
    stamp = datetime.fromtimestamp(int(now), tz=UTC)
    signature = svix.webhooks.Webhook(SECRET).sign(MSG_ID, stamp, body.decode())
    headers = {"svix-id": MSG_ID, "svix-timestamp": str(int(now)), "svix-signature": signature}

    [item] = receive(KIND, body=body, headers=headers, secrets=[SECRET], now=now).items
    assert item.event_id == MSG_ID


def test_our_signature_is_accepted_by_svix_and_standardwebhooks_libraries(customer):
    body = dumps(customer)
    headers = sign_request(SECRET, msg_id=MSG_ID, timestamp=int(time.time()), body=body)

    svix.webhooks.Webhook(SECRET).verify(body, headers)
    assert standardwebhooks.Webhook(SECRET).verify(body, headers)["id"] == 207119551


def test_wrong_secret_is_refused_with_401(customer):
    body = dumps(customer)
    headers = sign_request(OLD_SECRET, msg_id=MSG_ID, timestamp=NOW, body=body)
    exc = refusal(lambda: receive(KIND, body=body, headers=headers, secrets=[SECRET]))
    assert (exc.status, exc.code) == (401, "bad_signature")


def test_tampered_body_is_refused_with_401(customer):
    body = dumps(customer)
    headers = sign_request(SECRET, msg_id=MSG_ID, timestamp=NOW, body=body)
    exc = refusal(lambda: receive(KIND, body=body.replace(b"Bob", b"Rob"), headers=headers, secrets=[SECRET]))
    assert exc.status == 401


def test_signature_cannot_be_moved_to_another_message_id(customer):
    body = dumps(customer)
    headers = sign_request(SECRET, msg_id=MSG_ID, timestamp=NOW, body=body) | {"webhook-id": "msg_other"}
    assert refusal(lambda: receive(KIND, body=body, headers=headers, secrets=[SECRET])).status == 401


@pytest.mark.parametrize("offset", [-301, 301])
def test_timestamp_outside_tolerance_is_refused_with_401(customer, offset):
    body = dumps(customer)
    headers = sign_request(SECRET, msg_id=MSG_ID, timestamp=NOW + offset, body=body)
    exc = refusal(lambda: receive(KIND, body=body, headers=headers, secrets=[SECRET]))
    assert (exc.status, exc.code) == (401, "stale_timestamp")


def test_previous_secret_is_accepted_during_rotation(customer):
    body = dumps(customer)
    headers = sign_request(OLD_SECRET, msg_id=MSG_ID, timestamp=NOW, body=body)
    assert receive(KIND, body=body, headers=headers, secrets=[SECRET, OLD_SECRET]).items


def test_sender_signing_with_two_secrets_matches_either(customer):
    body = dumps(customer)
    headers = sign_request([OLD_SECRET, SECRET], msg_id=MSG_ID, timestamp=NOW, body=body)
    assert len(headers["webhook-signature"].split()) == 2
    assert receive(KIND, body=body, headers=headers, secrets=[SECRET]).items


def test_secret_that_is_not_whsec_base64_is_refused_with_a_clear_message(customer):
    body = dumps(customer)
    headers = sign_request(SECRET, msg_id=MSG_ID, timestamp=NOW, body=body)
    exc = refusal(lambda: receive(KIND, body=body, headers=headers, secrets=["sdk_not-base64!"]))
    assert (exc.status, exc.code) == (401, "bad_secret")
    assert "whsec_" in exc.message


def test_missing_headers_are_refused_with_401(customer):
    body = dumps(customer)
    headers = sign_request(SECRET, msg_id=MSG_ID, timestamp=NOW, body=body)
    for name in headers:
        partial = {k: v for k, v in headers.items() if k != name}
        assert refusal(lambda h=partial: receive(KIND, body=body, headers=h, secrets=[SECRET])).status == 401


def test_big_integer_ids_stay_exact():
    body = b'{"type":"order.paid","timestamp":"2025-06-15T15:00:00Z","data":{"id":18446744073709551617}}'
    headers = sign_request(SECRET, msg_id=MSG_ID, timestamp=NOW, body=body)
    [item] = receive(KIND, body=body, headers=headers, secrets=[SECRET]).items
    assert item.body["id"] == 18446744073709551617


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([{"id": 1}], "one JSON object"),
        ({"type": "x", "data": [1, 2]}, '"data" must be a JSON object'),
        ({"type": 7, "data": {}}, '"type" must be a string'),
        ({"type": "x", "timestamp": "yesterday", "data": {}}, "ISO 8601"),
        ({"type": "x", "timestamp": "2025-06-15T15:00:00", "data": {}}, "ISO 8601"),
    ],
)
def test_malformed_body_is_refused_with_400_and_a_clear_message(payload, message):
    body = dumps(payload)
    headers = sign_request(SECRET, msg_id=MSG_ID, timestamp=NOW, body=body)
    exc = refusal(lambda: receive(KIND, body=body, headers=headers, secrets=[SECRET]))
    assert exc.status == 400
    assert message in exc.message


HEADER_NAMES = ["webhook-id", "webhook-timestamp", "webhook-signature", "svix-id", "svix-timestamp", "svix-signature"]


@settings(max_examples=200, deadline=None)
@given(headers=headers_with(HEADER_NAMES), body=st.binary(max_size=64), secrets=st.lists(st.text(max_size=40)))
def test_verify_never_raises_anything_but_source_error(headers, body, secrets):
    verify = KIND.verify
    assert outcome(
        lambda: verify(method="POST", url="u", headers=headers, body=body, secrets=secrets, now=NOW, tolerance=300)
    ) in (None, 401)


@settings(max_examples=300, deadline=None)
@given(payload=json_values | json_objects_with(["type", "timestamp", "data"]), headers=headers_with(HEADER_NAMES))
def test_parse_never_raises_anything_but_source_error(payload, headers):
    assert outcome(lambda: KIND.parse(headers=headers, payload=payload)) in (None, 400)
