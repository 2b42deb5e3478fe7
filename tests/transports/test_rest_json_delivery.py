"""REST JSON delivery against the real partner simulator over HTTP on 127.0.0.1. No mocks."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from integrations.engine.retry_policy import (
    AUTH,
    CLIENT_ERROR,
    CONFIG,
    CONFLICT,
    CONNECTION,
    IDEMPOTENCY_MISMATCH,
    LOST_RESPONSE,
    RATE_LIMITED,
    SERVER_ERROR,
    TIMEOUT,
)
from integrations.partner_sim import PartnerSim
from integrations.transports import registry
from integrations.transports.rest_json import DeliveryRequest, RestJsonTransport, TransportError, deliver

from .conftest import SECRET, wait_for

# B01's contact, written once as the exact bytes every attempt must send (note the spacing and the
# non-ASCII name: nothing may re-serialise it).
INES = '{"external_id": "shp-cus-7001", "email": "ines.varga@example.com", "first_name": "Inès", "last_name": "Varga"}'
INES_BYTES = INES.encode()


def create(body: bytes = INES_BYTES, key: str = "idem-ines-v1", external_id: str = "shp-cus-7001", attempt: int = 1):
    return DeliveryRequest(
        operation="create",
        destination_id=None,
        external_id=external_id,
        body=body,
        idempotency_key=key,
        attempt=attempt,
    )


def posts(partner: PartnerSim) -> list[dict[str, Any]]:
    return [e for e in partner.stats()["log"] if e["method"] == "POST"]


def test_create_returns_the_partner_id_and_sends_the_body_bytes_unchanged(partner, config):
    result = deliver(config, SECRET, create())

    assert result.destination_id.startswith("con_")
    assert result.status == 201
    assert result.linked_existing is False
    [received] = posts(partner)
    assert received["body_sha256"] == hashlib.sha256(INES_BYTES).hexdigest()
    assert received["headers"]["Content-Type"] == "application/json"
    assert received["headers"]["Idempotency-Key"] == "idem-ines-v1"
    assert received["headers"]["Authorization"] == "Bearer ***"
    assert partner.records("contacts")["contacts"][0]["first_name"] == "Inès"


def test_the_transport_is_found_through_the_registry(partner, config):
    kind = registry.get("rest_json")

    result = kind.deliver(config, SECRET, create())

    assert isinstance(kind, RestJsonTransport)
    assert partner.stats()["records_per_external_id"] == {"shp-cus-7001": 1}
    assert result.destination_id


def test_update_patches_the_linked_record(partner, config):
    created = deliver(config, SECRET, create())
    body = b'{"external_id": "shp-cus-7001", "last_name": "Varga-Nagy"}'

    result = deliver(
        config,
        SECRET,
        DeliveryRequest("update", created.destination_id, "shp-cus-7001", body, "idem-ines-v2"),
    )

    assert result.destination_id == created.destination_id
    assert result.request["method"] == "PATCH"
    assert result.request["url"].endswith(f"/contacts/{created.destination_id}")
    [record] = partner.records("contacts")["contacts"]
    assert record["last_name"] == "Varga-Nagy"
    assert record["email"] == "ines.varga@example.com"  # PATCH merged
    stats = partner.stats()
    assert (stats["accepted"], stats["updates"]) == (1, 1)


def test_update_method_put_replaces_the_record(partner, config):
    created = deliver(config, SECRET, create())
    body = b'{"external_id": "shp-cus-7001", "email": "ines@example.com"}'

    deliver(
        {**config, "update_method": "PUT"},
        SECRET,
        DeliveryRequest("update", created.destination_id, "shp-cus-7001", body, "idem-ines-v2"),
    )

    [record] = partner.records("contacts")["contacts"]
    assert record == {"id": created.destination_id, "external_id": "shp-cus-7001", "email": "ines@example.com"}


def test_update_without_a_destination_id_is_a_config_error_and_sends_nothing(partner, config):
    with pytest.raises(TransportError) as info:
        deliver(config, SECRET, DeliveryRequest("update", None, "shp-cus-7001", INES_BYTES, "k"))

    assert info.value.error_class == CONFIG
    assert info.value.transient is False
    assert partner.stats()["requests"] == 0


def test_update_of_a_record_the_partner_no_longer_has_is_a_permanent_client_error(partner, config):
    with pytest.raises(TransportError) as info:
        deliver(config, SECRET, DeliveryRequest("update", "con_999999", "shp-cus-7001", INES_BYTES, "k"))

    assert info.value.error_class == CLIENT_ERROR
    assert info.value.status == 404
    assert "no contacts record con_999999" in info.value.reason


# --- B01: a create that timed out is retried without a second record -------------------------


def test_timed_out_create_is_retried_with_the_same_key_and_the_partner_keeps_one_record(partner, config):
    # The partner stores the contact, then answers after our read timeout (B01: 201 after 31 s
    # against a 30 s timeout; here 0.2 s against an answer that would take 5 s).
    partner.configure(timeout_next=1, timeout_seconds=5)
    with pytest.raises(TransportError) as info:
        deliver(config, SECRET, create(), timeouts=(2.0, 0.2))
    assert info.value.error_class == TIMEOUT
    assert info.value.transient is True
    assert info.value.status is None

    retried = deliver(config, SECRET, create(attempt=2))

    stats = partner.stats()
    assert stats["records_per_external_id"] == {"shp-cus-7001": 1}
    assert (stats["accepted"], stats["idempotent_replays"]) == (1, 1)
    first, second = posts(partner)
    assert first["fault"] == "timeout"
    assert first["idempotency_key"] == second["idempotency_key"] == "idem-ines-v1"
    assert first["body_sha256"] == second["body_sha256"] == hashlib.sha256(INES_BYTES).hexdigest()
    assert retried.destination_id == partner.records("contacts")["contacts"][0]["id"]
    assert retried.status == 201  # the original answer, replayed


def test_without_idempotency_support_a_retried_create_looks_the_record_up_first(partner, config):
    # A partner that ignores Idempotency-Key and happily stores a second copy of an external id.
    partner.configure(idempotency=False, conflict_on_duplicate=False, timeout_next=1, timeout_seconds=5)
    config = {**config, "idempotency": False}
    with pytest.raises(TransportError) as info:
        deliver(config, SECRET, create(), timeouts=(2.0, 0.2))
    assert info.value.error_class == TIMEOUT
    wait_for(lambda: partner.stats(log=False)["accepted"] == 1)

    retried = deliver(config, SECRET, create(attempt=2))

    assert retried.linked_existing is True
    assert retried.destination_id == partner.records("contacts")["contacts"][0]["id"]
    assert [x["request"]["method"] for x in retried.exchanges] == ["GET"]
    assert partner.stats()["records_per_external_id"] == {"shp-cus-7001": 1}


def test_without_idempotency_support_a_first_attempt_creates_without_looking(partner, config):
    partner.configure(idempotency=False)

    result = deliver({**config, "idempotency": False}, SECRET, create())

    assert [x["request"]["method"] for x in result.exchanges] == ["POST"]
    assert result.linked_existing is False


def test_without_idempotency_support_an_attempt_of_unknown_number_looks_first(partner, config):
    partner.configure(idempotency=False)
    request = DeliveryRequest("create", None, "shp-cus-7001", INES_BYTES, "idem-ines-v1")  # no attempt

    result = deliver({**config, "idempotency": False}, SECRET, request)

    assert [x["request"]["method"] for x in result.exchanges] == ["GET", "POST"]
    assert result.linked_existing is False


def test_the_idempotency_flag_needs_a_lookup_path(config):
    transport = RestJsonTransport()
    without_lookup = {k: v for k, v in config.items() if k != "lookup_path"}

    assert transport.validate_config(config) == []
    assert transport.validate_config({**config, "idempotency": False}) == []
    assert "needs lookup_path" in transport.validate_config({**without_lookup, "idempotency": False})[0]
    assert transport.validate_config({**config, "idempotency": "no"}) == ["idempotency must be true or false"]


def test_a_lost_answer_is_transient_and_the_retry_leaves_one_record(partner, config):
    partner.configure(lost_next=1)
    with pytest.raises(TransportError) as info:
        deliver(config, SECRET, create())
    assert info.value.error_class == LOST_RESPONSE
    assert info.value.transient is True

    retried = deliver(config, SECRET, create(attempt=2))

    stats = partner.stats()
    assert stats["records_per_external_id"] == {"shp-cus-7001": 1}
    assert (stats["lost_responses"], stats["idempotent_replays"]) == (1, 1)
    assert retried.destination_id == partner.records("contacts")["contacts"][0]["id"]


def test_a_5xx_is_transient_and_the_retry_sends_the_identical_bytes(partner, config):
    partner.configure(fail_next=1)
    with pytest.raises(TransportError) as info:
        deliver(config, SECRET, create())
    assert info.value.error_class == SERVER_ERROR
    assert info.value.transient is True
    assert info.value.status == 503
    assert info.value.reason == "Partner answered 503: injected failure"

    deliver(config, SECRET, create(attempt=2))

    first, second = posts(partner)
    assert first["body"] == second["body"] == INES
    assert first["body_sha256"] == second["body_sha256"]
    assert partner.stats()["records_per_external_id"] == {"shp-cus-7001": 1}


def test_connection_refused_is_a_transient_connection_error():
    with PartnerSim() as gone:
        url = gone.url
    config = {"base_url": url, "create_path": "/contacts", "update_path": "/contacts/{id}"}

    with pytest.raises(TransportError) as info:
        deliver(config, SECRET, create(), timeouts=(1.0, 1.0))

    assert info.value.error_class == CONNECTION
    assert info.value.transient is True


# --- 409: already there ---------------------------------------------------------------------


def test_a_409_duplicate_is_looked_up_by_external_id_and_linked(partner, config):
    first = deliver(config, SECRET, create(key="key-from-an-older-version"))

    again = deliver(config, SECRET, create(key="idem-ines-v1"))

    assert again.linked_existing is True
    assert again.destination_id == first.destination_id
    stats = partner.stats()
    assert (stats["duplicates_refused"], stats["lookups"]) == (1, 1)
    assert stats["records_per_external_id"] == {"shp-cus-7001": 1}
    assert [x["status"] for x in again.exchanges] == [409, 200]


def test_a_409_without_lookup_path_is_a_permanent_conflict(partner, config):
    config = {k: v for k, v in config.items() if k != "lookup_path"}
    deliver(config, SECRET, create(key="older"))

    with pytest.raises(TransportError) as info:
        deliver(config, SECRET, create(key="newer"))

    assert info.value.error_class == CONFLICT
    assert info.value.transient is False
    assert info.value.status == 409
    assert "already exists" in info.value.reason


def test_a_lookup_finding_several_records_needs_a_person(partner, config):
    partner.configure(conflict_on_duplicate=False, idempotency=False)
    config = {**config, "idempotency": False}
    deliver(config, SECRET, create(key="a"))
    deliver(config, SECRET, create(key="b"))

    with pytest.raises(TransportError) as info:
        deliver(config, SECRET, create(key="c", attempt=2))

    assert info.value.error_class == CONFLICT
    assert "2 records with external id 'shp-cus-7001'" in info.value.reason


# --- B15: 429 and Retry-After ---------------------------------------------------------------


def test_429_retry_after_in_seconds_and_as_an_http_date_are_both_understood(partner, config):
    contact = b'{"external_id": "crm-3001", "email": "crm-3001@example.com"}'

    def attempt(n: int) -> DeliveryRequest:
        return create(body=contact, external_id="crm-3001", key="idem-crm-3001", attempt=n)

    partner.configure(rate_limit_burst=1, retry_after=10, retry_after_form="seconds")
    with pytest.raises(TransportError) as first:
        deliver(config, SECRET, attempt(1))
    assert first.value.error_class == RATE_LIMITED
    assert first.value.transient is True
    assert first.value.status == 429
    assert first.value.retry_after == 10.0

    partner.configure(rate_limit_burst=1, retry_after=45, retry_after_form="date")
    with pytest.raises(TransportError) as second:
        deliver(config, SECRET, attempt(2))
    assert second.value.error_class == RATE_LIMITED
    # An HTTP-date has whole seconds: 45 s ahead reads as a little under 45 s from now.
    assert second.value.retry_after is not None
    assert 40.0 <= second.value.retry_after <= 45.0

    third = deliver(config, SECRET, attempt(3))

    assert third.status == 201
    assert [e["status"] for e in posts(partner)] == [429, 429, 201]
    assert {e["idempotency_key"] for e in posts(partner)} == {"idem-crm-3001"}
    assert partner.stats()["records_per_external_id"] == {"crm-3001": 1}


def test_a_503_with_retry_after_carries_the_wait(partner, config):
    partner.configure(
        responses=[{"status": 503, "body": {"message": "maintenance"}, "headers": {"Retry-After": "120"}}]
    )

    with pytest.raises(TransportError) as info:
        deliver(config, SECRET, create())

    assert info.value.error_class == SERVER_ERROR
    assert info.value.retry_after == 120.0
    assert info.value.reason == "Partner answered 503: maintenance"


# --- permanent refusals ---------------------------------------------------------------------


def test_a_rejected_field_is_a_permanent_client_error_with_the_partner_message(partner, config):
    partner.configure(reject_field="email")
    body = b'{"external_id": "c-9", "email": "not-an-email"}'

    with pytest.raises(TransportError) as info:
        deliver(config, SECRET, create(body=body, external_id="c-9"))

    assert info.value.error_class == CLIENT_ERROR
    assert info.value.transient is False
    assert info.value.status == 400
    assert info.value.reason == "Partner answered 400: email is invalid"
    assert '"field":"email"' in info.value.response_body.replace(" ", "")
    assert partner.stats()["records"] == 0


def test_a_422_with_a_list_of_errors_names_them_all(partner, config):
    partner.configure(
        responses=[
            {
                "status": 422,
                "body": {"errors": [{"field": "email", "message": "email is invalid"}, "phone is too short"]},
            }
        ]
    )

    with pytest.raises(TransportError) as info:
        deliver(config, SECRET, create())

    assert info.value.error_class == CLIENT_ERROR
    assert info.value.reason == "Partner answered 422: email is invalid; phone is too short"


def test_wrong_credentials_are_a_permanent_auth_error(partner, config):
    partner.configure(auth="bearer", token="the-right-token")

    with pytest.raises(TransportError) as info:
        deliver(config, "the-wrong-token", create())

    assert info.value.error_class == AUTH
    assert info.value.transient is False
    assert info.value.status == 401
    assert partner.stats()["records"] == 0


def test_basic_auth_sends_the_user_name_and_the_secret_as_password(partner, config):
    partner.configure(auth="basic", username="syncdesk", token=SECRET)

    result = deliver({**config, "auth": "basic", "username": "syncdesk"}, SECRET, create())

    assert result.status == 201
    assert result.request["headers"]["Authorization"] == "***"


def test_a_403_is_a_permanent_auth_error(partner, config):
    partner.configure(
        responses=[{"status": 403, "body": {"error": "forbidden", "message": "scope contacts.write missing"}}]
    )

    with pytest.raises(TransportError) as info:
        deliver(config, SECRET, create())

    assert info.value.error_class == AUTH
    assert "scope contacts.write missing" in info.value.reason


def test_the_same_key_with_a_different_body_is_an_idempotency_mismatch(partner, config):
    deliver(config, SECRET, create())
    changed = INES_BYTES.replace(b"Varga", b"Varga-Nagy")

    with pytest.raises(TransportError) as info:
        deliver(config, SECRET, create(body=changed, attempt=2))

    assert info.value.error_class == IDEMPOTENCY_MISMATCH
    assert info.value.transient is False
    assert info.value.status == 422
    assert partner.stats()["idempotency_mismatches"] == 1
    assert partner.stats()["records_per_external_id"] == {"shp-cus-7001": 1}


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (409, {"error": "idempotency_key_reused", "message": "Idempotency key reused with different parameters"}),
        (400, {"error": {"type": "idempotency_error", "message": "Keys can only be used with the same parameters"}}),
    ],
)
def test_other_partners_idempotency_mismatch_answers_are_recognised(partner, config, status, body):
    partner.configure(responses=[{"status": status, "body": body}])

    with pytest.raises(TransportError) as info:
        deliver(config, SECRET, create())

    assert info.value.error_class == IDEMPOTENCY_MISMATCH
    assert info.value.transient is False


def test_a_409_saying_the_same_key_is_still_in_progress_is_waited_for_not_reviewed(partner, config):
    partner.configure(
        responses=[{"status": 409, "body": {"message": "A request with this idempotency key is in progress"}}]
    )

    with pytest.raises(TransportError) as info:
        deliver(config, SECRET, create())

    assert info.value.error_class == RATE_LIMITED
    assert info.value.transient is True


def test_a_2xx_without_an_id_is_an_error(partner, config):
    partner.configure(responses=[{"status": 201, "body": {"ok": True}}])

    with pytest.raises(TransportError) as info:
        deliver(config, SECRET, create())

    assert info.value.error_class == CONFIG
    assert info.value.transient is False
    assert "no 'id'" in info.value.reason


def test_id_field_can_reach_into_the_answer(partner, config):
    partner.configure(responses=[{"status": 201, "body": {"data": {"id": 9007199254740993}}}])

    result = deliver({**config, "id_field": "data.id"}, SECRET, create())

    assert result.destination_id == "9007199254740993"  # a 64-bit id, not rounded through a float


def test_a_redirect_is_not_followed(partner, config):
    partner.configure(responses=[{"status": 301, "headers": {"Location": "http://127.0.0.1:9/elsewhere"}}])

    with pytest.raises(TransportError) as info:
        deliver(config, SECRET, create())

    assert info.value.error_class == CONFIG
    assert "redirect to http://127.0.0.1:9/elsewhere" in info.value.reason
    assert partner.stats()["requests"] == 1


# --- what gets stored -----------------------------------------------------------------------


def test_the_captured_request_never_holds_the_secret(partner, config):
    body = json.dumps({"external_id": "c-1", "api_key": "body-key-123", "nested": {"password": "hunter22"}}).encode()
    partner.configure(auth="bearer", token=SECRET)
    ok = deliver(config, SECRET, create(body=body, external_id="c-1"))
    partner.configure(responses=[{"status": 400, "body": {"message": f"token {SECRET} is not allowed here"}}])
    with pytest.raises(TransportError) as info:
        deliver(config, SECRET, create(body=body, external_id="c-1", key="other"))

    for captured in (ok.request, ok.exchanges, info.value.request, info.value.exchanges):
        text = json.dumps(captured)
        assert SECRET not in text
        assert "body-key-123" not in text
        assert "hunter22" not in text
    assert ok.request["headers"]["Authorization"] == "***"
    assert json.loads(ok.request["body"]) == {"external_id": "c-1", "api_key": "***", "nested": {"password": "***"}}
    assert SECRET not in info.value.reason
    assert SECRET not in info.value.response_body
    assert "body-key-123" not in ok.response_body  # the partner echoed it back; masked there too
    # The partner itself got the real values.
    assert partner.records("contacts")["contacts"][0]["api_key"] == "body-key-123"


def test_the_stored_response_body_is_bounded_with_a_note_of_its_size(partner, config):
    big = {"id": "con_big", "notes": "x" * 10_000}
    partner.configure(responses=[{"status": 201, "body": big}])

    result = deliver(config, SECRET, create())

    assert result.destination_id == "con_big"
    assert len(result.response_body.encode()) < 4096 + 100
    assert result.response_body.endswith(f"[truncated: first 4096 of {len(json.dumps(big))} bytes]")


def test_duration_is_recorded(partner, config):
    result = deliver(config, SECRET, create())

    assert isinstance(result.duration_ms, int)
    assert result.duration_ms >= 0
