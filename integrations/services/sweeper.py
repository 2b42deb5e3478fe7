"""The sweeper: makes the database, not Redis, the source of truth.

Runs every minute (``syncworker`` starts it; also ``manage.py sweep``). It
  1. hands back records whose worker died while holding them (lease expired), and
  2. wakes every integration that has due records (new, retry time reached, window opened).
If Redis lost every job, the next sweep re-creates the work from the database."""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from integrations import queue
from integrations.models import Integration, RecordLink, SyncRecord

log = logging.getLogger(__name__)


def release_expired_leases() -> int:
    now = timezone.now()
    with transaction.atomic():
        expired = SyncRecord.objects.filter(status=SyncRecord.Status.PROCESSING, lease_until__lt=now)
        count = expired.update(
            status=SyncRecord.Status.RETRYING,
            next_attempt_at=now,
            lease_until=None,
            lease_token="",
            last_reason="Handed back by the sweeper: the worker holding it stopped before finishing",
        )
        RecordLink.objects.filter(lease_until__lt=now).update(lease_until=None, lease_token="")
    if count:
        log.warning("sweeper released %s records from stopped workers", count)
    return count


def due_integrations() -> list[int]:
    now = timezone.now()
    return list(
        SyncRecord.objects.filter(status__in=SyncRecord.DUE_STATUSES, next_attempt_at__lte=now)
        .filter(~Q(integration__status=Integration.Status.PAUSED))
        .order_by()  # DISTINCT over integration ids, not (id, received_at, …) of every due record
        .values_list("integration_id", flat=True)
        .distinct()
    )


def sweep(*, periodic: bool = True) -> dict[str, object]:
    from integrations.services import periodic as periodic_tasks

    released = release_expired_leases()
    ran = periodic_tasks.run_due() if periodic else {}
    due = due_integrations()
    woken = sum(1 for integration_id in due if queue.wake(integration_id))
    return {"released": released, "due_integrations": len(due), "woken": woken, "periodic": sorted(ran)}
