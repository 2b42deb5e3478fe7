"""HubSpot: v3 signature over method + URI + body + timestamp (ms), batched event arrays."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.sources import registry
from integrations.sources.hubspot import sign_request

from .support import NOW, URL, dumps, headers_with, json_objects_with, json_values, outcome, receive, refusal

KIND = registry.get("hubspot")
SECRET = "8b5f3c1e-2d4a-4f6b-9c8e-7a1d0e3f5b2c"  # HubSpot client secrets look like UUIDs
OLD_SECRET = "00000000-1111-2222-3333-444444444444"
NOW_MS = NOW * 1000


def published_v3(secret: str, method: str, uri: str, body: str, timestamp: str) -> str:
    """HubSpot's published v3 recipe, written out independently of the product code."""
    source = f"{method}{uri}{body}{timestamp}"
    return base64.b64encode(hmac.new(secret.encode(), source.encode(), hashlib.sha256).digest()).decode()


@pytest.fixture
def contacts(corpus) -> list[dict]:
    lines = (corpus / "airbyte_hubspot_testportal" / "contacts.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def events_for(contacts: list[dict], attempt: int = 0) -> list[dict]:
    """A v3 batch as HubSpot sends it: one contact.propertyChange per contact (email changed)."""
    return [
        {
            "eventId": 1_000_001 + i,
            "subscriptionId": 2_281_091,
            "portalId": 8_727_216,
            "appId": 1_160_452,
            "occurredAt": round(datetime.fromisoformat(c["updatedAt"]).timestamp() * 1000),
            "subscriptionType": "contact.propertyChange",
            "attemptNumber": attempt,
            "objectId": int(c["id"]),
            "propertyName": "email",
            "propertyValue": c["properties"]["email"],
            "changeSource": "CRM",
            "sourceId": "userId:12282590",
        }
        for i, c in enumerate(contacts)
    ]


def test_signed_batch_yields_one_item_per_event(contacts):
    body = dumps(events_for(contacts))
    headers = sign_request(SECRET, url=URL, body=body, timestamp_ms=NOW_MS)
    items = receive(KIND, body=body, headers=headers, secrets=[SECRET]).items

    assert [i.source_id for i in items] == ["151", "201", "251"]
    assert [i.event_type for i in items] == ["contact.propertyChange"] * 3
    assert items[0].updated_at == datetime(2023, 3, 21, 19, 28, 17, 125000, tzinfo=UTC)
    assert items[1].updated_at == datetime(2023, 4, 3, 20, 30, 56, 518000, tzinfo=UTC)
    assert items[0].body["occurredAt"] == 1679426897125
    assert items[0].body["propertyValue"] == "shef@dne.io"
    assert items[0].event_id == "8727216:2281091:1000001:151"
    assert len({i.event_id for i in items}) == 3


def test_signature_follows_the_published_recipe(contacts):
    body = dumps(events_for(contacts))
    headers = sign_request(SECRET, url=URL, body=body, timestamp_ms=NOW_MS)
    assert headers["X-HubSpot-Signature-v3"] == published_v3(SECRET, "POST", URL, body.decode(), str(NOW_MS))


def test_uri_is_signed_with_hubspots_listed_characters_decoded_and_no_others(contacts):
    body = dumps(events_for(contacts))
    called = "https://syncdesk.example.com/hooks/acme%3Aorders/?next=%2Fa%2Cb&q=two%20words"
    as_signed = "https://syncdesk.example.com/hooks/acme:orders/?next=/a,b&q=two%20words"
    headers = {
        "X-HubSpot-Signature-v3": published_v3(SECRET, "POST", as_signed, body.decode(), str(NOW_MS)),
        "X-HubSpot-Request-Timestamp": str(NOW_MS),
    }
    assert receive(KIND, body=body, headers=headers, secrets=[SECRET], url=called).items


def test_retry_of_the_batch_has_the_same_event_ids(contacts):
    first, retry = dumps(events_for(contacts)), dumps(events_for(contacts, attempt=1))
    a = receive(
        KIND, body=first, headers=sign_request(SECRET, url=URL, body=first, timestamp_ms=NOW_MS), secrets=[SECRET]
    ).items
    b = receive(
        KIND, body=retry, headers=sign_request(SECRET, url=URL, body=retry, timestamp_ms=NOW_MS), secrets=[SECRET]
    ).items
    assert [i.event_id for i in a] == [i.event_id for i in b]


def test_same_event_id_from_another_portal_is_a_different_event(contacts):
    [event] = events_for(contacts[:1])
    other_portal = event | {"portalId": 99}
    body = dumps([event, other_portal])
    a, b = receive(
        KIND, body=body, headers=sign_request(SECRET, url=URL, body=body, timestamp_ms=NOW_MS), secrets=[SECRET]
    ).items
    assert a.event_id != b.event_id


def test_wrong_secret_is_refused_with_401(contacts):
    body = dumps(events_for(contacts))
    headers = sign_request(OLD_SECRET, url=URL, body=body, timestamp_ms=NOW_MS)
    exc = refusal(lambda: receive(KIND, body=body, headers=headers, secrets=[SECRET]))
    assert (exc.status, exc.code) == (401, "bad_signature")


@pytest.mark.parametrize(
    ("method", "url"), [("PUT", URL), ("POST", URL + "?x=1"), ("POST", URL.replace("https", "http"))]
)
def test_another_method_or_url_is_refused_with_401(contacts, method, url):
    body = dumps(events_for(contacts))
    headers = sign_request(SECRET, url=URL, body=body, timestamp_ms=NOW_MS)
    exc = refusal(lambda: receive(KIND, body=body, headers=headers, secrets=[SECRET], method=method, url=url))
    assert exc.status == 401


@pytest.mark.parametrize("seconds", [-301, 301])
def test_timestamp_more_than_five_minutes_away_is_refused_with_401(contacts, seconds):
    body = dumps(events_for(contacts))
    headers = sign_request(SECRET, url=URL, body=body, timestamp_ms=NOW_MS + seconds * 1000)
    exc = refusal(lambda: receive(KIND, body=body, headers=headers, secrets=[SECRET]))
    assert (exc.status, exc.code) == (401, "stale_timestamp")


def test_timestamp_in_seconds_instead_of_milliseconds_is_stale(contacts):
    body = dumps(events_for(contacts))
    headers = sign_request(SECRET, url=URL, body=body, timestamp_ms=NOW)
    assert refusal(lambda: receive(KIND, body=body, headers=headers, secrets=[SECRET])).code == "stale_timestamp"


def test_previous_secret_is_accepted_during_rotation(contacts):
    body = dumps(events_for(contacts))
    headers = sign_request(OLD_SECRET, url=URL, body=body, timestamp_ms=NOW_MS)
    assert len(receive(KIND, body=body, headers=headers, secrets=[SECRET, OLD_SECRET]).items) == 3


def test_big_integer_object_ids_stay_exact():
    body = b'[{"eventId": 1, "portalId": 2, "subscriptionId": 3, "objectId": 18446744073709551617, "occurredAt": 1}]'
    [item] = receive(
        KIND, body=body, headers=sign_request(SECRET, url=URL, body=body, timestamp_ms=NOW_MS), secrets=[SECRET]
    ).items
    assert item.source_id == "18446744073709551617"


@pytest.mark.parametrize(
    ("payload", "status", "message"),
    [
        ({"eventId": 1}, 400, "JSON array of events"),
        ([{"eventId": 1}, "contact"], 400, "Event [1]"),
        ([{"eventId": i} for i in range(1001)], 413, "at most 1000"),
    ],
)
def test_malformed_batch_is_refused_with_a_clear_message(payload, status, message):
    body = dumps(payload)
    headers = sign_request(SECRET, url=URL, body=body, timestamp_ms=NOW_MS)
    exc = refusal(lambda: receive(KIND, body=body, headers=headers, secrets=[SECRET]))
    assert exc.status == status
    assert message in exc.message


HEADER_NAMES = ["X-HubSpot-Signature-v3", "X-HubSpot-Request-Timestamp"]


@settings(max_examples=200, deadline=None)
@given(
    headers=headers_with(HEADER_NAMES)
    | st.integers(min_value=-(2**70), max_value=2**70).map(lambda n: {"X-HubSpot-Request-Timestamp": str(n)}),
    body=st.binary(max_size=64),
    url=st.text(max_size=60),
    secrets=st.lists(st.text(max_size=40)),
)
def test_verify_never_raises_anything_but_source_error(headers, body, url, secrets):
    verify = KIND.verify
    assert outcome(
        lambda: verify(method="POST", url=url, headers=headers, body=body, secrets=secrets, now=NOW, tolerance=300)
    ) in (None, 401)


event_keys = ["eventId", "portalId", "subscriptionId", "objectId", "occurredAt", "subscriptionType"]


@settings(max_examples=300, deadline=None)
@given(payload=json_values | st.lists(json_objects_with(event_keys), max_size=4), headers=headers_with(HEADER_NAMES))
def test_parse_never_raises_anything_but_source_error(payload, headers):
    assert outcome(lambda: KIND.parse(headers=headers, payload=payload)) in (None, 400, 413)
