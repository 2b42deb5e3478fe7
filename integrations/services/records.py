"""Support actions on records: resend, edit and resend, resolve. Each is logged with who and when."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from integrations import queue
from integrations.engine import exactjson
from integrations.models import ActionLog, ReviewItem, SyncAttempt, SyncRecord

S = SyncRecord.Status
ResendVersion = Literal["current", "original"]


class ActionRefused(ValueError):
    """The action cannot be done to this record; the message says why."""


def _original_version_id(record: SyncRecord) -> int | None:
    if record.prepared_version_id:
        return record.prepared_version_id
    return (
        SyncAttempt.objects.filter(record_id=record.pk, mapping_version__isnull=False)
        .order_by("number")
        .values_list("mapping_version_id", flat=True)
        .first()
    )


@transaction.atomic
def resend_records(
    *,
    record_ids: Iterable[int],
    version: ResendVersion = "current",
    acting_user: AbstractBaseUser | None,
    note: str = "",
) -> int:
    """Queue records for a new attempt now, with the published ("current") or the version their
    first attempt used ("original"). A delivered record goes as an update, never a second create
    (its RecordLink holds the destination id). Records being processed right now are left alone.

    Side effects: records → pending, retry budget reset, prepared body cleared (the record is
    mapped again); an ActionLog row per record; the integrations are woken after commit."""
    if version not in ("current", "original"):
        raise ActionRefused("version must be 'current' or 'original'")
    now = timezone.now()
    records = list(
        SyncRecord.objects.select_for_update()
        .filter(pk__in=list(record_ids))
        .exclude(status=S.PROCESSING)
        .only("id", "integration_id", "status", "prepared_version_id")
    )
    logs = []
    for record in records:
        pinned = _original_version_id(record) if version == "original" else None
        SyncRecord.objects.filter(pk=record.pk).update(
            status=S.PENDING,
            next_attempt_at=now,
            failure_count=0,
            pinned_version_id=pinned,
            prepared_body="",
            prepared_operation="",
            prepared_version=None,
            prepared_rules=[],
            requested_by=acting_user,
            window_override=True,  # a person asked for it now
            lease_until=None,
            lease_token="",
        )
        logs.append(
            ActionLog(
                actor=acting_user,
                action="resend",
                record_id=record.pk,
                note=note,
                details={"version": version, "pinned_version_id": pinned, "previous_status": record.status},
            )
        )
    ActionLog.objects.bulk_create(logs)
    queue.wake_after_commit(*{r.integration_id for r in records})
    return len(records)


@transaction.atomic
def edit_payload_and_resend(
    *, record: SyncRecord, payload: Any, acting_user: AbstractBaseUser | None, note: str
) -> SyncRecord:
    """Replace the payload (the first one is kept in ``original_payload``) and resend."""
    if not note.strip():
        raise ActionRefused("Say why the payload was edited.")
    if not isinstance(payload, dict):
        raise ActionRefused("The payload must be a JSON object.")
    problem = exactjson.storage_problem(payload)
    if problem:
        raise ActionRefused(f"The payload cannot be stored: {problem}.")
    record = SyncRecord.objects.select_for_update().get(pk=record.pk)
    if record.status == S.PROCESSING:
        raise ActionRefused("The record is being delivered right now; try again in a moment.")
    before = record.payload
    if record.original_payload is None:
        record.original_payload = record.payload
    record.payload = payload
    record.save(update_fields=["payload", "original_payload", "updated_at"])
    ActionLog.objects.create(
        actor=acting_user, action="edit_payload", record=record, note=note, details={"before": before}
    )
    resend_records(record_ids=[record.pk], acting_user=acting_user, note=f"after editing the payload: {note}")
    record.refresh_from_db()
    return record


@transaction.atomic
def resolve_record(*, record: SyncRecord, acting_user: AbstractBaseUser | None, note: str) -> int:
    """Close the record's open review items without sending it (e.g. fixed at the partner by hand)."""
    if not note.strip():
        raise ActionRefused("Say how it was resolved.")
    count = ReviewItem.objects.filter(record=record, status=ReviewItem.Status.OPEN).update(
        status=ReviewItem.Status.RESOLVED, resolved_by=acting_user, resolved_at=timezone.now(), resolution_note=note
    )
    ActionLog.objects.create(actor=acting_user, action="resolve", record=record, note=note)
    return count


@transaction.atomic
def release_scheduled_now(*, integration: Any, acting_user: AbstractBaseUser | None, note: str) -> int:
    """Deliver a scheduled integration's waiting records now instead of at its window (support
    pushing a nightly batch early). Retries after this go back to the window."""
    if not note.strip():
        raise ActionRefused("Say why the batch goes out before its window.")
    now = timezone.now()
    count = SyncRecord.objects.filter(
        integration=integration, status__in=SyncRecord.DUE_STATUSES, next_attempt_at__gt=now
    ).update(next_attempt_at=now, window_override=True)
    ActionLog.objects.create(
        actor=acting_user, action="release_now", note=note, details={"integration": integration.pk, "records": count}
    )
    queue.wake_after_commit(integration.pk)
    return count
