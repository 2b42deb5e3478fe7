"""Operations: health endpoints, retention, alerts, auto-pause and resume, pacing, periodic tasks."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.core import mail
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from integrations.models import Alert, PeriodicRun, ReviewItem, SyncAttempt, SyncRecord
from integrations.partner_sim import PartnerSim
from integrations.services import health, periodic, processing, retention
from integrations.services.digest import review_digest
from integrations.services.ingest import ingest_items
from integrations.sources.base import InboundItem
from tests.pipeline.conftest import FAST_RETRIES
from tests.pipeline.helpers import CONTACT_SPEC, contact, make_integration, post_webhook

pytestmark = pytest.mark.django_db


@pytest.fixture
def partner():
    sim = PartnerSim(seed=3).start()
    yield sim
    sim.stop()


@pytest.fixture
def hook(partner, settings):
    settings.SYNCDESK_ALERT_EMAILS = ["oncall@example.com"]
    return make_integration(slug="ops-contacts", partner_url=partner.url, spec=CONTACT_SPEC, retry_policy=FAST_RETRIES)


def drain(integration):
    return processing.drain_integration(integration.pk, max_seconds=30)


def test_healthz_answers_without_login(db):
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_checks_the_database_and_queue(db):
    response = Client().get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["checks"]["database"] == "ok"
    assert body["status"] == "ready"


def test_retention_prunes_old_payloads_and_bodies_but_keeps_counts(hook, partner):
    ingest_items(hook, [InboundItem(body=contact(n)) for n in range(5)])
    drain(hook)
    old = timezone.now() - dt.timedelta(days=31)
    SyncRecord.objects.filter(source_id__in=["c-0", "c-1", "c-2"]).update(received_at=old)
    SyncAttempt.objects.filter(record__source_id__in=["c-0", "c-1", "c-2"]).update(started_at=old)
    result = retention.prune(batch=2)
    assert result == {"records": 3, "attempts": 3}
    pruned = SyncRecord.objects.get(source_id="c-0")
    assert pruned.payload == {}
    assert pruned.payload_pruned_at is not None
    assert pruned.status == "delivered"
    attempt = pruned.attempts.get()
    assert attempt.response_body == ""
    assert attempt.outcome == "delivered"
    assert SyncRecord.objects.get(source_id="c-4").payload["email"] == "person4@example.com"
    assert retention.prune() == {"records": 0, "attempts": 0}


def test_a_failing_destination_raises_one_alert_by_mail_and_webhook_then_recovery(
    hook, partner, django_capture_on_commit_callbacks, settings
):
    settings.SYNCDESK_ALERT_FAILING_AFTER_SECONDS = 0
    hook.alert_webhook_url = f"{partner.url}/alerts"
    hook.save()
    partner.configure(fail_next=2)
    ingest_items(hook, [InboundItem(body=contact(n)) for n in range(2)])
    with django_capture_on_commit_callbacks(execute=True):
        # Two failures, then the immediate retry succeeds (FAST_RETRIES): failing, then recovered.
        drain(hook)
    failing = Alert.objects.filter(kind="failing")
    assert failing.count() == 1, "a second failure inside 15 minutes must not alert again"
    assert failing.get().sent_at is not None
    assert any("destination failing" in m.subject for m in mail.outbox)
    assert mail.outbox[0].to == ["oncall@example.com"]
    assert [a["kind"] for a in partner.records()["alerts"]] == ["failing", "recovered"]
    hook.refresh_from_db()
    assert hook.failing_since is None
    assert hook.last_success_at is not None
    assert Alert.objects.filter(kind="recovered").count() == 1
    assert SyncRecord.objects.filter(status="delivered").count() == 2


def test_a_data_refusal_does_not_count_as_the_destination_failing(hook, partner):
    partner.configure(reject_fields={"email": "always"})
    ingest_items(hook, [InboundItem(body=contact(1))])
    drain(hook)
    hook.refresh_from_db()
    assert hook.failing_since is None
    assert not Alert.objects.filter(kind="failing").exists()


def test_records_that_exhaust_their_retries_raise_one_throttled_alert(hook, partner):
    hook.retry_policy = {**FAST_RETRIES, "max_attempts": 1}
    hook.save()
    partner.configure(fail_rate=1.0)
    ingest_items(hook, [InboundItem(body=contact(n)) for n in range(3)])
    drain(hook)
    assert SyncRecord.objects.filter(status="review").count() == 3
    exhausted = Alert.objects.get(kind="exhausted")
    assert exhausted.details["repeats"] == 2


def test_auto_pause_holds_records_and_resume_drains_them_oldest_first(hook, partner):
    ingest_items(hook, [InboundItem(body=contact(n)) for n in range(3)])
    hook.failing_since = timezone.now() - dt.timedelta(hours=25)
    hook.save()
    assert health.auto_pause_due() == [hook.pk]
    hook.refresh_from_db()
    assert hook.status == "paused"
    assert "Auto-paused" in hook.paused_reason
    assert SyncRecord.objects.filter(status="held").count() == 3
    assert Alert.objects.filter(kind="paused").exists()
    # Records keep arriving and are held.
    response = post_webhook(Client(), hook, contact(99))
    assert response.status_code == 202
    assert response.json()["status"] == "held"
    assert drain(hook) == 0
    assert partner.stats()["accepted"] == 0
    assert health.resume(integration=hook, acting_user=None) == 4
    drain(hook)
    assert SyncRecord.objects.filter(status="delivered").count() == 4
    order = [e["body"] for e in partner.stats()["log"] if e["method"] == "POST"]
    sent_ids = [json.loads(b)["external_id"] for b in order]
    assert sent_ids == ["c-0", "c-1", "c-2", "c-99"]


def test_a_destination_rate_limit_spaces_deliveries(hook, partner):
    hook.rate_limit_per_second = 20
    hook.save()
    ingest_items(hook, [InboundItem(body=contact(n)) for n in range(10)])
    drain(hook)
    times = [e["at"] for e in partner.stats()["log"] if e["method"] == "POST"]
    assert len(times) == 10
    # A limit, not a speed: 10 deliveries at 20/s cannot span less than 9 intervals of 50 ms
    # (connection set-up jitter moves single arrivals a little, so check the span).
    assert times[-1] - times[0] >= 9 * 0.05 * 0.9


def test_a_periodic_task_runs_once_per_interval_whoever_asks(db):
    assert periodic.claim("retention", 3600) is True
    assert periodic.claim("retention", 3600) is False
    PeriodicRun.objects.filter(name="retention").update(last_run_at=timezone.now() - dt.timedelta(hours=2))
    assert periodic.claim("retention", 3600) is True


def test_the_review_digest_mails_each_owner(hook, partner, users):
    users["account_manager"].email = "am@example.com"
    users["account_manager"].save()
    hook.customer.account_manager = users["account_manager"]
    hook.customer.save()
    partner.configure(reject_fields={"email": "always"})
    ingest_items(hook, [InboundItem(body=contact(n)) for n in range(3)])
    drain(hook)
    assert ReviewItem.objects.filter(status="open").count() == 3
    assert review_digest() == {"owners": 1, "items": 3}
    assert mail.outbox[-1].to == ["am@example.com"]
    assert "3 records wait" in mail.outbox[-1].subject


def test_sync_report_shows_statuses_queue_and_lag(hook, partner, capsys):
    ingest_items(hook, [InboundItem(body=contact(n)) for n in range(2)])
    call_command("sync_report", "--json")
    report = json.loads(capsys.readouterr().out)
    row = next(r for r in report["integrations"] if r["integration"] == "ops-contacts")
    assert row["records"] == {"pending": 2}
    assert row["due_now"] == 2
    assert row["lag_seconds"] >= 0
    assert "backend" in report["queue"]


def test_a_partner_that_fails_now_and_then_is_not_called_failing(hook, partner, settings):
    """No flapping: failures between successes, shorter than the threshold, raise no alerts."""
    settings.SYNCDESK_ALERT_FAILING_AFTER_SECONDS = 120
    partner.configure(fail_rate=0.3)
    ingest_items(hook, [InboundItem(body=contact(n)) for n in range(20)])
    drain(hook)
    assert partner.stats()["injected_failures"] > 0
    assert not Alert.objects.filter(kind__in=["failing", "recovered"]).exists()
