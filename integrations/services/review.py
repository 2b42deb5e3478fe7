"""Review-queue actions: assign, note, resolve, dismiss, resend — one item, a selection, or a
whole group. Every action writes ActionLog rows with who and when.

Small selections run in the request. Big ones (more than ``INLINE_LIMIT`` items) run as a job
(``integrations.queue.enqueue_job``) that works in chunks of ``CHUNK`` items, one short
transaction each, and writes its progress into the ActionLog row that stands for the job
(``action="bulk_job"``, progress in ``details``) — a row every web process and worker can read,
so a progress bar needs no cache and no extra table."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from integrations import queue
from integrations.models import ActionLog, ReviewItem
from integrations.services.records import ActionRefused, ResendVersion, resend_records

log = logging.getLogger(__name__)

OPEN = ReviewItem.Status.OPEN
INLINE_LIMIT = 200
CHUNK = 200
ACTIONS = ("resend", "resolve", "dismiss")
# The permission each action needs (checked by the views and the API, never by group name).
PERMISSIONS = {
    "resend": "integrations.resend_syncrecord",
    "resolve": "integrations.work_reviewitem",
    "dismiss": "integrations.work_reviewitem",
    "assign": "integrations.work_reviewitem",
    "note": "integrations.work_reviewitem",
}


def _ids(item_ids: Iterable[int]) -> list[int]:
    return sorted({int(i) for i in item_ids})


@transaction.atomic
def assign_items(
    *, item_ids: Iterable[int], assignee: AbstractBaseUser | None, acting_user: AbstractBaseUser | None
) -> int:
    """Give open items to ``assignee`` (None: unassign). Side effects: one ActionLog per item."""
    items = list(
        ReviewItem.objects.select_for_update().filter(pk__in=_ids(item_ids), status=OPEN).only("id", "record_id")
    )
    ReviewItem.objects.filter(pk__in=[i.pk for i in items]).update(assignee=assignee)
    who = assignee.get_username() if assignee is not None else ""
    ActionLog.objects.bulk_create(
        ActionLog(
            actor=acting_user,
            action="assign",
            record_id=i.record_id,
            review_item_id=i.pk,
            note=f"assigned to {who}" if who else "unassigned",
            details={"assignee": who},
        )
        for i in items
    )
    return len(items)


@transaction.atomic
def add_note(*, item: ReviewItem, note: str, acting_user: AbstractBaseUser | None) -> ReviewItem:
    """Append a dated note to the item. Side effects: one ActionLog row."""
    note = note.strip()
    if not note:
        raise ActionRefused("Write a note first.")
    item = ReviewItem.objects.select_for_update().get(pk=item.pk)
    who = acting_user.get_username() if acting_user is not None else "system"
    line = f"{timezone.now():%Y-%m-%d %H:%M} {who}: {note}"
    item.notes = f"{item.notes}\n{line}".strip()
    item.save(update_fields=["notes"])
    ActionLog.objects.create(
        actor=acting_user, action="review_note", record_id=item.record_id, review_item=item, note=note
    )
    return item


def _close(item_ids: Sequence[int], *, status: str, note: str, acting_user: AbstractBaseUser | None) -> int:
    items = list(ReviewItem.objects.select_for_update().filter(pk__in=item_ids, status=OPEN).only("id", "record_id"))
    ReviewItem.objects.filter(pk__in=[i.pk for i in items], status=OPEN).update(
        status=status, resolved_by=acting_user, resolved_at=timezone.now(), resolution_note=note
    )
    action = "review_resolve" if status == ReviewItem.Status.RESOLVED else "review_dismiss"
    ActionLog.objects.bulk_create(
        ActionLog(actor=acting_user, action=action, record_id=i.record_id, review_item_id=i.pk, note=note)
        for i in items
    )
    return len(items)


@transaction.atomic
def resolve_items(*, item_ids: Iterable[int], note: str, acting_user: AbstractBaseUser | None) -> int:
    """Close open items as resolved (fixed some other way). A note is required."""
    if not note.strip():
        raise ActionRefused("Say how these were resolved.")
    return _close(_ids(item_ids), status=ReviewItem.Status.RESOLVED, note=note.strip(), acting_user=acting_user)


@transaction.atomic
def dismiss_items(*, item_ids: Iterable[int], note: str, acting_user: AbstractBaseUser | None) -> int:
    """Close open items as dismissed (nothing to do). The record keeps its status."""
    return _close(
        _ids(item_ids), status=ReviewItem.Status.DISMISSED, note=note.strip() or "dismissed", acting_user=acting_user
    )


@transaction.atomic
def resend_items(
    *,
    item_ids: Iterable[int],
    version: ResendVersion = "current",
    acting_user: AbstractBaseUser | None,
    note: str = "",
) -> int:
    """Resend the records behind open items. The items stay open until a later attempt delivers
    (the pipeline then resolves them). Side effects: see ``resend_records``."""
    record_ids = list(
        ReviewItem.objects.filter(pk__in=_ids(item_ids), status=OPEN)
        .order_by()
        .values_list("record_id", flat=True)
        .distinct()
    )
    return resend_records(
        record_ids=record_ids, version=version, acting_user=acting_user, note=note or "from the review queue"
    )


def _run(action: str, ids: Sequence[int], *, acting_user: AbstractBaseUser | None, note: str, version: str) -> int:
    if action == "resend":
        return resend_items(item_ids=ids, version=version, acting_user=acting_user, note=note)  # type: ignore[arg-type]
    if action == "resolve":
        return resolve_items(item_ids=ids, note=note, acting_user=acting_user)
    if action == "dismiss":
        return dismiss_items(item_ids=ids, note=note, acting_user=acting_user)
    raise ActionRefused(f"Unknown action {action!r}.")


def start_bulk(
    *,
    action: str,
    item_ids: Iterable[int],
    acting_user: AbstractBaseUser | None,
    note: str = "",
    version: str = "current",
) -> tuple[int, ActionLog | None]:
    """Run ``action`` on the items: in this request when there are few, else as a job.

    Returns (items changed, None) when done at once, or (0, the job's ActionLog row) when queued.
    Checks what it can before queueing, so a job does not fail on a missing note."""
    if action not in ACTIONS:
        raise ActionRefused(f"Unknown action {action!r}.")
    if version not in ("current", "original"):
        raise ActionRefused("version must be 'current' or 'original'")
    if action == "resolve" and not note.strip():
        raise ActionRefused("Say how these were resolved.")
    ids = _ids(item_ids)
    if not ids:
        raise ActionRefused("No open items selected.")
    if len(ids) <= INLINE_LIMIT:
        return _run(action, ids, acting_user=acting_user, note=note, version=version), None
    with transaction.atomic():
        job = ActionLog.objects.create(
            actor=acting_user,
            action="bulk_job",
            note=note,
            details={
                "action": action,
                "version": version,
                "item_ids": ids,
                "total": len(ids),
                "done": 0,
                "changed": 0,
                "state": "queued",
                "message": "",
            },
        )
        queue.enqueue_job("integrations.services.review.run_bulk_job", job.pk)
    job.refresh_from_db()
    return 0, job


def run_bulk_job(job_id: int) -> dict[str, Any]:
    """The job body: chunks of ``CHUNK`` items, each in its own transaction, progress saved after
    each chunk. Idempotent enough to run twice (rq is at-least-once): closed items are skipped."""
    job = ActionLog.objects.select_related("actor").get(pk=job_id, action="bulk_job")
    details = dict(job.details)
    if details.get("state") == "done":
        return details
    ids: list[int] = details.get("item_ids", [])
    details.update(state="running", started_at=timezone.now().isoformat(), done=0, changed=0)
    ActionLog.objects.filter(pk=job_id).update(details=details)
    try:
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            changed = _run(
                details["action"],
                chunk,
                acting_user=job.actor,
                note=job.note,
                version=details.get("version", "current"),
            )
            details["done"] = min(start + len(chunk), len(ids))
            details["changed"] += changed
            ActionLog.objects.filter(pk=job_id).update(details=details)
    except Exception as exc:
        log.exception("bulk job %s failed", job_id)
        details.update(state="failed", message=f"{type(exc).__name__}: {exc}"[:500])
        ActionLog.objects.filter(pk=job_id).update(details=details)
        raise
    details.update(state="done", finished_at=timezone.now().isoformat())
    ActionLog.objects.filter(pk=job_id).update(details=details)
    return details


def job_progress(job: ActionLog) -> dict[str, Any]:
    """What the progress bar shows (the ids themselves stay out of it)."""
    d = job.details or {}
    total = int(d.get("total") or 0)
    done = int(d.get("done") or 0)
    return {
        "id": job.pk,
        "action": d.get("action", ""),
        "state": d.get("state", "queued"),
        "total": total,
        "done": done,
        "changed": int(d.get("changed") or 0),
        "percent": round(100 * done / total) if total else 100,
        "message": d.get("message", ""),
        "actor": job.actor.get_username() if job.actor_id and job.actor else "",
        "created_at": job.created_at,
        "finished": d.get("state") in ("done", "failed"),
    }
