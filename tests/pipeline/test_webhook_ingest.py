"""The signed webhook: every bad input gets its status and a clear message; nothing half-stored."""

from __future__ import annotations

import time

import pytest
from django.test import Client

from integrations.models import SyncRecord
from tests.pipeline.helpers import CONTACT_SPEC, as_json, contact, make_integration, post_webhook, signed_headers

pytestmark = pytest.mark.django_db


@pytest.fixture
def hook(db):
    return make_integration(slug="acme-contacts", partner_url="http://127.0.0.1:9", spec=CONTACT_SPEC)


def test_one_signed_record_is_stored_and_answered_202_with_its_id(hook):
    response = post_webhook(Client(), hook, contact(1))
    assert response.status_code == 202
    body = as_json(response)
    record = SyncRecord.objects.get()
    assert body["records"] == [{"id": record.pk, "source_id": "c-1", "duplicate": False, "status": "pending"}]
    assert record.source_updated_at.isoformat() == "2024-01-25T10:00:00+00:00"


def test_the_same_record_again_answers_200_with_the_existing_id_and_stores_nothing(hook):
    client = Client()
    first = as_json(post_webhook(client, hook, contact(1)))
    again = post_webhook(client, hook, contact(1))
    assert again.status_code == 200
    assert as_json(again)["records"][0] == {**first["records"][0], "duplicate": True}
    assert SyncRecord.objects.count() == 1


def test_an_event_id_header_makes_the_dedupe_key(hook):
    client = Client()
    post_webhook(client, hook, contact(1), **{"X-Syncdesk-Event-Id": "evt-1"})
    # Same event id, even with a changed body, is the same delivery.
    response = post_webhook(client, hook, contact(1, email="x@example.com"), **{"X-Syncdesk-Event-Id": "evt-1"})
    assert response.status_code == 200
    assert SyncRecord.objects.get().dedupe_key == "evt:evt-1"


def test_a_changed_record_is_a_new_record(hook):
    client = Client()
    post_webhook(client, hook, contact(1))
    response = post_webhook(client, hook, contact(1, email="new@example.com", updated_at="2024-01-26T10:00:00Z"))
    assert response.status_code == 202
    assert SyncRecord.objects.filter(source_id="c-1").count() == 2


def test_a_batch_of_records_is_stored_in_one_request(hook):
    response = post_webhook(Client(), hook, {"records": [contact(n) for n in range(1000)]})
    assert response.status_code == 202
    assert len(as_json(response)["records"]) == 1000
    assert SyncRecord.objects.count() == 1000


def test_more_than_1000_records_are_refused_and_nothing_is_stored(hook):
    response = post_webhook(Client(), hook, {"records": [{"id": n} for n in range(1001)]})
    assert response.status_code == 413
    assert as_json(response)["error"] == "too_many_records"
    assert SyncRecord.objects.count() == 0


def test_a_body_over_1_mib_is_refused_with_413(hook):
    response = post_webhook(Client(), hook, {"id": "big", "blob": "x" * (1024 * 1024)})
    assert response.status_code == 413
    assert "larger than" in as_json(response)["message"]
    assert SyncRecord.objects.count() == 0


def test_invalid_json_is_refused_with_400_naming_the_position(hook):
    response = post_webhook(Client(), hook, b'{"id": 1,\n "email": }')
    assert response.status_code == 400
    body = as_json(response)
    assert body["error"] == "invalid_json"
    assert "line 2 column 11" in body["message"]


def test_a_body_that_is_not_utf8_is_refused_with_400(hook):
    response = post_webhook(Client(), hook, b'{"id": "\xff"}')
    assert response.status_code == 400
    assert "UTF-8" in as_json(response)["message"]


@pytest.mark.parametrize("payload", [b"[1, 2]", b'"text"', b'{"records": [1]}', b'{"records": {}}'])
def test_a_body_of_the_wrong_shape_is_refused_with_400(hook, payload):
    response = post_webhook(Client(), hook, payload)
    assert response.status_code == 400
    assert as_json(response)["error"] == "bad_shape"


def test_a_missing_signature_is_refused_with_401(hook):
    response = Client().post(f"/hooks/{hook.slug}/", data=b"{}", content_type="application/json")
    assert response.status_code == 401
    assert SyncRecord.objects.count() == 0


def test_a_wrong_signature_is_refused_with_401(hook):
    body = b'{"id": "c-1"}'
    headers = signed_headers("not-the-secret", body)
    response = Client().post(f"/hooks/{hook.slug}/", data=body, content_type="application/json", headers=headers)
    assert response.status_code == 401
    assert as_json(response)["error"] == "bad_signature"


def test_a_signature_older_than_five_minutes_is_refused(hook):
    body = b'{"id": "c-1"}'
    headers = signed_headers(hook.webhook_secret, body, timestamp=int(time.time()) - 301)
    response = Client().post(f"/hooks/{hook.slug}/", data=body, content_type="application/json", headers=headers)
    assert response.status_code == 401
    assert as_json(response)["error"] == "stale_timestamp"


def test_the_previous_secret_still_works_during_a_rotation(hook):
    old = hook.webhook_secret
    hook.webhook_secret_previous, hook.webhook_secret = old, "sdk_new-secret"
    hook.save()
    body = b'{"id": "c-9"}'
    response = Client().post(
        f"/hooks/{hook.slug}/", data=body, content_type="application/json", headers=signed_headers(old, body)
    )
    assert response.status_code == 202


def test_an_unknown_integration_is_404(db):
    response = Client().post("/hooks/nope/", data=b"{}", content_type="application/json")
    assert response.status_code == 404
    assert as_json(response)["error"] == "unknown_integration"


def test_get_is_not_allowed(hook):
    assert Client().get(f"/hooks/{hook.slug}/").status_code == 405


def test_a_paused_integration_stores_and_holds(hook):
    hook.status = "paused"
    hook.save()
    response = post_webhook(Client(), hook, contact(1))
    assert response.status_code == 202
    assert as_json(response)["status"] == "held"
    record = SyncRecord.objects.get()
    assert record.status == "held"
    assert record.next_attempt_at is None


def test_big_integers_stay_exact_from_webhook_to_database(hook):
    post_webhook(Client(), hook, b'{"id": 7008123456789012345678, "total": 49.00}')
    record = SyncRecord.objects.get()
    assert record.source_id == "7008123456789012345678"
    assert record.payload["id"] == 7008123456789012345678
    assert str(record.payload["total"]) == "49.00"


def test_a_scheduled_integration_waits_for_its_window(db):
    import datetime as dt

    from django.utils import timezone

    hook = make_integration(
        slug="nightly",
        partner_url="http://127.0.0.1:9",
        spec=CONTACT_SPEC,
        delivery_mode="scheduled",
        window_start=dt.time(1, 0),
        window_end=dt.time(4, 0),
    )
    post_webhook(Client(), hook, contact(1))
    record = SyncRecord.objects.get()
    local = record.next_attempt_at.astimezone(__import__("zoneinfo").ZoneInfo("UTC"))
    now_local = timezone.now()
    if dt.time(1, 0) <= now_local.time() < dt.time(4, 0):
        assert record.next_attempt_at <= now_local
    else:
        assert local.time() == dt.time(1, 0)
        assert record.next_attempt_at > now_local


def test_a_nul_character_is_refused_with_400_not_a_server_error(hook):
    """Found by fuzzing: PostgreSQL cannot store U+0000; the sender gets a clear 400."""
    response = post_webhook(Client(), hook, b'{"id": "c-1", "note": "a\\u0000b"}')
    assert response.status_code == 400
    assert as_json(response)["error"] == "nul_character"
    assert SyncRecord.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b'{"id": "c-1", "x": ' + b"[" * 980 + b"]" * 980 + b"}", "nested deeper"),
        (b'{"id": "c-1", "name": "\\ud800"}', "unpaired surrogate"),
    ],
)
def test_payloads_that_cannot_be_stored_are_refused_with_400(hook, body, why):
    """Found by a fresh pair of eyes: deep nesting and lone surrogates used to end in a 500."""
    response = post_webhook(Client(), hook, body)
    assert response.status_code == 400
    assert why in as_json(response)["message"]
    assert SyncRecord.objects.count() == 0


def test_other_methods_get_a_json_405(hook):
    response = Client().get(f"/hooks/{hook.slug}/")
    assert response.status_code == 405
    assert as_json(response)["error"] == "method_not_allowed"
