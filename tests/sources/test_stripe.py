"""Stripe: Stripe-Signature t=…,v1=… over "<t>.<body>", the event envelope around data.object."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
import stripe
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.sources import registry
from integrations.sources.stripe import sign_request

from .support import NOW, dumps, headers_with, json_objects_with, json_values, load, outcome, receive, refusal

KIND = registry.get("stripe")
SECRET = "whsec_test_2f1c9a7b3e8d4c6a0b5e9f1d7c3a8b2e"
OLD_SECRET = "whsec_test_0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a"


@pytest.fixture
def fixtures3(corpus):
    return load(corpus / "stripe_openapi" / "fixtures3.json")["resources"]


@pytest.fixture
def card_event_body(corpus) -> bytes:
    return (corpus / "dj_stripe" / "event_external_account_card_created.json").read_bytes()


def test_dj_stripe_event_yields_object_id_event_id_type_and_created(card_event_body):
    headers = sign_request(SECRET, timestamp=NOW, body=card_event_body)
    [item] = receive(KIND, body=card_event_body, headers=headers, secrets=[SECRET]).items

    assert item.source_id == "card_1IuVlSQveW0ONQsdkXBUUHyE"
    assert item.event_id == "evt_1IuIg0QveW0ONQsdDLp7otQC"
    assert item.event_type == "account.external_account.created"
    assert item.updated_at == datetime(2021, 5, 23, 14, 53, 12, tzinfo=UTC)
    assert item.body["last4"] == "8210"
    assert item.body["object"] == "card"


def test_account_updated_event_from_dj_stripe(corpus):
    body = (corpus / "dj_stripe" / "event_account_updated_standard.json").read_bytes()
    [item] = receive(KIND, body=body, headers=sign_request(SECRET, timestamp=NOW, body=body), secrets=[SECRET]).items
    assert (item.source_id, item.event_type) == ("acct_1Fg9jUA3kq9o1aTc", "account.updated")
    assert item.updated_at == datetime(2021, 5, 22, 11, 35, tzinfo=UTC)


def test_openapi_fixture_event_and_a_customer_wrapped_in_an_envelope(fixtures3):
    body = dumps(fixtures3["event"])
    [item] = receive(KIND, body=body, headers=sign_request(SECRET, timestamp=NOW, body=body), secrets=[SECRET]).items
    assert (item.source_id, item.event_id) == ("price_1PgafmB7WZ01zgkW6dKueIc5", "evt_1Pgc76B7WZ01zgkWwyRHS12y")
    assert item.updated_at == datetime(2009, 2, 13, 23, 31, 30, tzinfo=UTC)

    event = {"id": "evt_cust", "object": "event", "type": "customer.updated", "created": NOW}
    body = dumps(event | {"data": {"object": fixtures3["customer"]}})
    [item] = receive(KIND, body=body, headers=sign_request(SECRET, timestamp=NOW, body=body), secrets=[SECRET]).items
    assert item.source_id == "cus_QXg1o8vcGmoR32"
    assert item.body == fixtures3["customer"]


def test_signature_made_by_the_stripe_library_is_accepted(card_event_body):
    now = time.time()
    header = stripe.WebhookSignature.generate_signature_header(card_event_body.decode(), SECRET, int(now))
    parsed = receive(KIND, body=card_event_body, headers={"Stripe-Signature": header}, secrets=[SECRET], now=now)
    assert parsed.items[0].event_id == "evt_1IuIg0QveW0ONQsdDLp7otQC"


def test_our_signature_is_accepted_by_the_stripe_library(card_event_body):
    headers = sign_request(SECRET, timestamp=int(time.time()), body=card_event_body)
    event = stripe.Webhook.construct_event(card_event_body, headers["Stripe-Signature"], SECRET)
    assert event.id == "evt_1IuIg0QveW0ONQsdDLp7otQC"


def test_stripe_library_and_we_both_refuse_a_wrong_secret(card_event_body):
    headers = sign_request(OLD_SECRET, timestamp=int(time.time()), body=card_event_body)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(card_event_body, headers["Stripe-Signature"], SECRET)
    exc = refusal(lambda: receive(KIND, body=card_event_body, headers=headers, secrets=[SECRET], now=time.time()))
    assert (exc.status, exc.code) == (401, "bad_signature")


def test_tampered_body_is_refused_with_401(card_event_body):
    headers = sign_request(SECRET, timestamp=NOW, body=card_event_body)
    tampered = card_event_body.replace(b'"8210"', b'"8211"')
    assert refusal(lambda: receive(KIND, body=tampered, headers=headers, secrets=[SECRET])).status == 401


def test_signature_cannot_be_moved_to_a_fresh_timestamp(card_event_body):
    old = sign_request(SECRET, timestamp=NOW - 3600, body=card_event_body)["Stripe-Signature"]
    moved = old.replace(f"t={NOW - 3600}", f"t={NOW}")
    exc = refusal(lambda: receive(KIND, body=card_event_body, headers={"Stripe-Signature": moved}, secrets=[SECRET]))
    assert (exc.status, exc.code) == (401, "bad_signature")


@pytest.mark.parametrize("offset", [-301, 301])
def test_timestamp_outside_tolerance_is_refused_with_401(card_event_body, offset):
    headers = sign_request(SECRET, timestamp=NOW + offset, body=card_event_body)
    exc = refusal(lambda: receive(KIND, body=card_event_body, headers=headers, secrets=[SECRET]))
    assert (exc.status, exc.code) == (401, "stale_timestamp")


def test_replay_within_the_window_carries_the_same_event_id_for_dedupe(card_event_body):
    first = receive(
        KIND, body=card_event_body, headers=sign_request(SECRET, timestamp=NOW, body=card_event_body), secrets=[SECRET]
    )
    retry = receive(
        KIND,
        body=card_event_body,
        headers=sign_request(SECRET, timestamp=NOW + 120, body=card_event_body),
        secrets=[SECRET],
        now=NOW + 120,
    )
    assert first.items[0].event_id == retry.items[0].event_id


def test_previous_secret_is_accepted_during_rotation(card_event_body):
    headers = sign_request(OLD_SECRET, timestamp=NOW, body=card_event_body)
    assert receive(KIND, body=card_event_body, headers=headers, secrets=[SECRET, OLD_SECRET]).items


def test_rolled_secret_sends_two_v1_and_either_matches(card_event_body):
    headers = sign_request([SECRET, OLD_SECRET], timestamp=NOW, body=card_event_body)
    assert headers["Stripe-Signature"].count("v1=") == 2
    assert receive(KIND, body=card_event_body, headers=headers, secrets=[OLD_SECRET]).items


def test_v0_test_scheme_alone_is_refused(card_event_body):
    v1 = sign_request(SECRET, timestamp=NOW, body=card_event_body)["Stripe-Signature"]
    v0_only = v1.replace("v1=", "v0=")
    exc = refusal(lambda: receive(KIND, body=card_event_body, headers={"Stripe-Signature": v0_only}, secrets=[SECRET]))
    assert exc.status == 401


@pytest.mark.parametrize("header", [None, "", "v1=abcd", "t=soon,v1=abcd", "t=1750000000"])
def test_missing_or_malformed_signature_header_is_refused_with_401(card_event_body, header):
    headers = {} if header is None else {"Stripe-Signature": header}
    assert refusal(lambda: receive(KIND, body=card_event_body, headers=headers, secrets=[SECRET])).status == 401


def test_big_integer_amounts_stay_exact():
    body = (
        b'{"id":"evt_big","object":"event","type":"charge.succeeded","created":1750000000,'
        b'"data":{"object":{"id":"ch_1","amount":18446744073709551617,"fee":12.50}}}'
    )
    [item] = receive(KIND, body=body, headers=sign_request(SECRET, timestamp=NOW, body=body), secrets=[SECRET]).items
    assert item.body["amount"] == 18446744073709551617
    assert str(item.body["fee"]) == "12.50"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([], "one event object"),
        ({"type": "x", "created": 1, "data": {"object": {}}}, 'no "id"'),
        ({"id": "evt_1", "created": 1, "data": {"object": {}}}, 'no "type"'),
        ({"id": "evt_1", "type": "x", "created": "2021-05-22", "data": {"object": {}}}, "unix seconds"),
        ({"id": "evt_1", "type": "x", "created": 1, "data": {}}, 'no "data.object"'),
        ({"id": "evt_1", "type": "x", "created": 1, "data": {"object": "cus_1"}}, 'no "data.object"'),
        ({"id": "evt_1", "object": "v2.core.event", "type": "x", "created": "2025-06-15T00:00:00Z"}, "snapshot"),
    ],
)
def test_malformed_envelope_is_refused_with_400_and_a_clear_message(payload, message):
    body = dumps(payload)
    exc = refusal(
        lambda: receive(KIND, body=body, headers=sign_request(SECRET, timestamp=NOW, body=body), secrets=[SECRET])
    )
    assert exc.status == 400
    assert message in exc.message


@settings(max_examples=200, deadline=None)
@given(
    header=st.text(max_size=80)
    | st.lists(st.sampled_from(["t=1750000000", "v1=00", "v1=zz", "t=x", ","])).map(",".join),
    body=st.binary(max_size=64),
    secrets=st.lists(st.text(max_size=40)),
)
def test_verify_never_raises_anything_but_source_error(header, body, secrets):
    verify = KIND.verify
    headers = {"Stripe-Signature": header}
    assert outcome(
        lambda: verify(method="POST", url="u", headers=headers, body=body, secrets=secrets, now=NOW, tolerance=300)
    ) in (None, 401)


@settings(max_examples=300, deadline=None)
@given(
    payload=json_values
    | json_objects_with(["id", "type", "created", "object"]).flatmap(
        lambda envelope: json_objects_with(["id"]).map(lambda obj: envelope | {"data": {"object": obj}})
    )
    | json_objects_with(["id", "type", "created", "data", "object"]),
    headers=headers_with(["Stripe-Signature"]),
)
def test_parse_never_raises_anything_but_source_error(payload, headers):
    assert outcome(lambda: KIND.parse(headers=headers, payload=payload)) in (None, 400)
