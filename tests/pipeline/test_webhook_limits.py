"""Found by attacking the webhook under gunicorn: inputs that used to answer 500 (or be stored in
a form that could not be read back) and now get a clear 4xx with nothing stored — an absurdly
long timestamp (no secret needed), a number that cannot be stored and read back, a chunked body
Django would read as empty."""

from __future__ import annotations

import socket
from decimal import Decimal

import pytest
from django.test import Client

from integrations.engine import exactjson
from integrations.forms import parse_payload
from integrations.models import SyncRecord
from integrations.sources import registry
from integrations.sources.base import SourceError
from integrations.sources.signing import check_timestamp
from integrations.sources.standard_webhooks import sign_request as standard_sign
from integrations.sources.stripe import sign_request as stripe_sign
from tests.pipeline.helpers import CONTACT_SPEC, as_json, make_integration, post_webhook, signed_headers
from tests.sources.support import NOW, receive, refusal

LONG = "9" * 400  # float(…) of this overflows; so did the old window check


@pytest.fixture
def hook(db):
    return make_integration(slug="limits-contacts", partner_url="http://127.0.0.1:9", spec=CONTACT_SPEC)


@pytest.mark.parametrize("raw", [LONG, "9" * 13, "١٧٥٠٠٠٠٠٠٠", "+1750000000", "1_750_000_000", "-5"])
def test_a_timestamp_that_is_not_plain_unix_seconds_is_a_bad_timestamp(raw):
    with pytest.raises(SourceError) as info:
        check_timestamp(raw, now=NOW, tolerance=300, header="X-Syncdesk-Timestamp")
    assert (info.value.status, info.value.code) == (401, "bad_timestamp")
    assert len(info.value.message) < 120  # the header is not echoed whole


BODY = b'{"id": "cus_1", "object": "customer"}'
STANDARD_SECRET = "whsec_" + "A" * 32


def _stripe_long() -> dict[str, str]:
    headers = stripe_sign("whsec_x", timestamp=NOW, body=BODY)
    return {"Stripe-Signature": headers["Stripe-Signature"].replace(f"t={NOW}", f"t={LONG}")}


def _standard_long() -> dict[str, str]:
    return standard_sign(STANDARD_SECRET, msg_id="msg_1", timestamp=NOW, body=BODY) | {"webhook-timestamp": LONG}


@pytest.mark.parametrize(
    ("kind", "headers", "secret"),
    [("stripe", _stripe_long, "whsec_x"), ("standard_webhooks", _standard_long, STANDARD_SECRET)],
)
def test_a_long_timestamp_is_401_for_the_kinds_that_sign_one(kind, headers, secret):
    exc = refusal(lambda: receive(registry.get(kind), body=BODY, headers=headers(), secrets=[secret]))
    assert (exc.status, exc.code) == (401, "bad_timestamp")


def test_a_long_timestamp_on_the_webhook_is_401_in_json_and_nothing_is_stored(hook):
    body = b'{"id": "c-1"}'
    headers = {**signed_headers(hook.webhook_secret, body), "X-Syncdesk-Timestamp": LONG}
    response = Client().post(f"/hooks/{hook.slug}/", data=body, content_type="application/json", headers=headers)
    assert response.status_code == 401
    assert as_json(response)["error"] == "bad_timestamp"
    assert SyncRecord.objects.count() == 0


@pytest.mark.parametrize("number", ["1e999999", "1e-16384", "0." + "1" * 20000, "1e99999999999999999999"])
def test_a_signed_number_postgresql_cannot_store_is_400_unstorable_and_nothing_is_stored(hook, number):
    response = post_webhook(Client(), hook, b'{"id": "c-1", "v": %s}' % number.encode())
    assert response.status_code == 400
    reply = as_json(response)
    assert reply["error"] == "unstorable_json"
    assert reply["message"].startswith("The JSON cannot be stored: ")
    assert SyncRecord.objects.count() == 0


@pytest.mark.parametrize("number", ["1e4300", "1" * 131073 + ".5"])
def test_a_number_too_long_to_store_or_read_back_is_refused_before_it_is_stored(hook, number):
    # 1e4300: PostgreSQL stores it but gives it back as a 4,301-digit integer Python will not read.
    response = post_webhook(Client(), hook, b'{"id": "c-1", "v": %s}' % number.encode())
    assert (response.status_code, as_json(response)["error"]) == (400, "unstorable_json")
    assert SyncRecord.objects.count() == 0


def test_numbers_at_the_limits_are_stored_and_read_back_with_the_same_value(hook):
    numbers = {"big": "1E+4299", "small": "1E-16383", "long": "1" * 5000 + ".5", "zero": "0e999999"}
    body = ('{"id": "c-1", ' + ", ".join(f'"{k}": {v}' for k, v in numbers.items()) + "}").encode()
    response = post_webhook(Client(), hook, body)
    assert response.status_code == 202
    payload = SyncRecord.objects.get().payload  # read back from the database
    assert {k: payload[k] for k in numbers} == {k: Decimal(v) for k, v in numbers.items()}


def test_editing_a_payload_to_a_number_beyond_decimal_is_a_form_error_not_a_crash():
    from django import forms

    with pytest.raises(forms.ValidationError, match="out of range"):
        parse_payload('{"v": 1e99999999999999999999}')


@pytest.mark.django_db(transaction=True)
def test_a_chunked_body_over_real_http_is_411_not_a_bad_signature(live_server):
    hook = make_integration(slug="limits-chunked", partner_url="http://127.0.0.1:9", spec=CONTACT_SPEC)
    body = b'{"id": "c-1", "email": "one@example.com"}'
    headers = "".join(f"{k}: {v}\r\n" for k, v in signed_headers(hook.webhook_secret, body).items())
    host, port = live_server.url.removeprefix("http://").split(":")
    request = (
        f"POST /hooks/{hook.slug}/ HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Transfer-Encoding: chunked\r\nConnection: close\r\n{headers}\r\n"
    ).encode() + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, text = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 411"), head
    assert exactjson.loads(text)["error"] == "length_required"
    assert SyncRecord.objects.count() == 0
