"""Destination health: failing streaks, recovery, give-ups, auto-pause and resume.

The pipeline reports each delivery outcome here. A destination "fails" on errors that say the
partner is unwell (timeouts, lost answers, 5xx, refused credentials) — not on one record's bad
data, and not on rate limits."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from customers.services import audited_save
from integrations import queue
from integrations.engine import retry_policy as rp
from integrations.models import ActionLog, Alert, Integration, SyncRecord
from integrations.services.alerts import raise_alert

DESTINATION_FAILURES = frozenset({rp.TIMEOUT, rp.CONNECTION, rp.LOST_RESPONSE, rp.SERVER_ERROR, rp.AUTH, rp.CONFIG})


def _alerted_since(integration: Integration, since: datetime) -> bool:
    return Alert.objects.filter(integration=integration, kind=Alert.Kind.FAILING, created_at__gte=since).exists()


def note_delivered(integration: Integration, now: datetime) -> None:
    """Called inside the finishing transaction of a delivered record. A success ends a failing
    streak; "recovered" is only said when "failing" was said for that streak (no flapping)."""
    if integration.failing_since is not None:
        since = integration.failing_since
        ended = Integration.objects.filter(pk=integration.pk, failing_since__isnull=False).update(
            failing_since=None, last_success_at=now, auth_failing_since=None
        )
        if ended and _alerted_since(integration, since):
            raise_alert(
                integration=integration,
                kind=Alert.Kind.RECOVERED,
                subject=f"{integration}: delivering again",
                message=(
                    f"The destination of {integration} accepts records again after {_words(now - since)} of failures."
                ),
            )
        integration.failing_since = None
    if integration.last_success_at is None or now - integration.last_success_at > timedelta(seconds=30):
        # Written at most every 30 s per worker: the dashboard needs minutes, not each record.
        Integration.objects.filter(pk=integration.pk).update(last_success_at=now)
        integration.last_success_at = now


def note_failure(integration: Integration, error_class: str, reason: str, now: datetime) -> None:
    """A destination failure starts (or continues) a failing streak. The "failing" alert goes out
    once the streak has lasted SYNCDESK_ALERT_FAILING_AFTER_SECONDS without a success, so a
    partner that fails one call in ten is not "failing" and nobody gets paged for it."""
    if error_class not in DESTINATION_FAILURES:
        return
    if integration.failing_since is None:
        Integration.objects.filter(pk=integration.pk, failing_since__isnull=True).update(failing_since=now)
        integration.failing_since = (
            Integration.objects.filter(pk=integration.pk).values_list("failing_since", flat=True).first() or now
        )
    threshold = timedelta(seconds=settings.SYNCDESK_ALERT_FAILING_AFTER_SECONDS)
    since = integration.failing_since
    if now - since >= threshold and not getattr(integration, "_failing_alerted", False):
        if not _alerted_since(integration, since):
            raise_alert(
                integration=integration,
                kind=Alert.Kind.FAILING,
                subject=f"{integration}: destination failing",
                message=(
                    f"Deliveries of {integration} have failed since {since:%Y-%m-%d %H:%M:%S} UTC without a "
                    f"success: {reason}\nRecords are kept and retried; nothing is lost."
                ),
                details={"error_class": error_class},
            )
        integration._failing_alerted = True  # type: ignore[attr-defined]
    if error_class == rp.AUTH and integration.auth_failing_since is None:
        Integration.objects.filter(pk=integration.pk, auth_failing_since__isnull=True).update(auth_failing_since=now)
        integration.auth_failing_since = now


def note_gave_up(integration: Integration, record_id: int, reason: str) -> None:
    raise_alert(
        integration=integration,
        kind=Alert.Kind.EXHAUSTED,
        subject=f"{integration}: records went to the review queue",
        message=f"Record #{record_id} gave up after its retries: {reason}\nMore may follow; see the review queue.",
        details={"first_record_id": record_id},
    )


def _words(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 90:
        return f"{minutes} minutes"
    return f"{minutes // 60} hours"


def auto_pause_due(now: datetime | None = None) -> list[int]:
    """Pause integrations whose destination has failed continuously for their configured time."""
    now = now or timezone.now()
    paused = []
    for integration in Integration.objects.select_related("customer").filter(
        status=Integration.Status.ACTIVE, failing_since__isnull=False, auto_pause_after_hours__gt=0
    ):
        if integration.failing_since > now - timedelta(hours=integration.auto_pause_after_hours):
            continue
        with transaction.atomic():
            changed = Integration.objects.filter(pk=integration.pk, status=Integration.Status.ACTIVE).update(
                status=Integration.Status.PAUSED,
                paused_reason=(
                    f"Auto-paused: the destination failed for {_words(now - integration.failing_since)} "
                    "without a success."
                ),
            )
            if not changed:
                continue
            held = SyncRecord.objects.filter(integration=integration, status__in=SyncRecord.DUE_STATUSES).update(
                status=SyncRecord.Status.HELD, next_attempt_at=None
            )
            raise_alert(
                integration=integration,
                kind=Alert.Kind.PAUSED,
                subject=f"{integration}: paused automatically",
                message=(
                    f"{integration} was paused: its destination has failed since "
                    f"{integration.failing_since:%Y-%m-%d %H:%M} UTC. {held} waiting records are held; new "
                    "records keep arriving and are held too. Resume it when the partner is back."
                ),
                details={"held": held},
            )
            paused.append(integration.pk)
    return paused


@transaction.atomic
def pause(*, integration: Integration, acting_user: AbstractBaseUser | None, reason: str) -> int:
    """Pause by hand: waiting records are held; new ones are stored and held."""
    if not reason.strip():
        raise ValueError("Say why the integration is paused.")
    integration.status = Integration.Status.PAUSED
    integration.paused_reason = reason
    audited_save(integration, acting_user=acting_user, reason=f"Paused: {reason}")
    return SyncRecord.objects.filter(integration=integration, status__in=SyncRecord.DUE_STATUSES).update(
        status=SyncRecord.Status.HELD, next_attempt_at=None
    )


@transaction.atomic
def resume(*, integration: Integration, acting_user: AbstractBaseUser | None, reason: str = "Resumed") -> int:
    """Resume: held records become due, oldest first (claims go by next_attempt_at, then id), and
    the drain respects the destination's rate limit (``rate_limit_per_second``)."""
    integration.status = Integration.Status.ACTIVE
    integration.paused_reason = ""
    audited_save(integration, acting_user=acting_user, reason=reason)
    Integration.objects.filter(pk=integration.pk).update(failing_since=None)
    from integrations.services.processing import next_delivery_time

    due = next_delivery_time(integration, timezone.now())
    count = SyncRecord.objects.filter(integration=integration, status=SyncRecord.Status.HELD).update(
        status=SyncRecord.Status.PENDING, next_attempt_at=due, failure_count=0
    )
    ActionLog.objects.create(actor=acting_user, action="resume", note=reason, details={"integration": integration.pk})
    queue.wake_after_commit(integration.pk)
    return count
