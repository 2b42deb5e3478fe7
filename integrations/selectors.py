"""Reads for views, commands and the API, with their joins set."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Min, Q
from django.utils import timezone

from integrations.models import Integration, ReviewItem, SyncAttempt, SyncRecord


def sync_report(*, customer_slug: str | None = None, since: datetime | None = None) -> dict[str, Any]:
    """Records per status per integration, oldest pending, review queue, attempts by error class."""
    now = timezone.now()
    since = since or now - timedelta(days=7)
    integrations = Integration.objects.select_related("customer").order_by("customer__name", "name")
    if customer_slug:
        integrations = integrations.filter(customer__slug=customer_slug)
    ids = [i.pk for i in integrations]
    per_status: dict[int, dict[str, int]] = {i: {} for i in ids}
    for row in (
        SyncRecord.objects.filter(integration_id__in=ids).values("integration_id", "status").annotate(n=Count("id"))
    ):
        per_status[row["integration_id"]][row["status"]] = row["n"]
    oldest = dict(
        SyncRecord.objects.filter(integration_id__in=ids, status__in=[*SyncRecord.DUE_STATUSES, "processing", "held"])
        .values("integration_id")
        .annotate(oldest=Min("received_at"))
        .values_list("integration_id", "oldest")
    )
    due_now = dict(
        SyncRecord.objects.filter(integration_id__in=ids, status__in=SyncRecord.DUE_STATUSES, next_attempt_at__lte=now)
        .values("integration_id")
        .annotate(n=Count("id"), first_due=Min("next_attempt_at"))
        .values_list("integration_id", "n")
    )
    first_due = dict(
        SyncRecord.objects.filter(integration_id__in=ids, status__in=SyncRecord.DUE_STATUSES, next_attempt_at__lte=now)
        .values("integration_id")
        .annotate(first=Min("next_attempt_at"))
        .values_list("integration_id", "first")
    )
    review = dict(
        ReviewItem.objects.filter(record__integration_id__in=ids, status=ReviewItem.Status.OPEN)
        .values("record__integration_id")
        .annotate(n=Count("id"))
        .values_list("record__integration_id", "n")
    )
    errors: dict[int, dict[str, int]] = {i: {} for i in ids}
    for row in (
        SyncAttempt.objects.filter(record__integration_id__in=ids, started_at__gte=since)
        .filter(~Q(error_class=""))
        .values("record__integration_id", "error_class")
        .annotate(n=Count("id"))
    ):
        errors[row["record__integration_id"]][row["error_class"]] = row["n"]
    rows = []
    for integration in integrations:
        pid = integration.pk
        lag = (now - first_due[pid]).total_seconds() if pid in first_due else 0.0
        rows.append(
            {
                "customer": integration.customer.slug,
                "integration": integration.slug,
                "status": integration.status,
                "records": per_status[pid],
                "total": sum(per_status[pid].values()),
                "oldest_pending": oldest[pid].isoformat() if pid in oldest else None,
                "due_now": due_now.get(pid, 0),
                "lag_seconds": round(lag, 1),
                "review_open": review.get(pid, 0),
                "attempt_errors_since": since.isoformat(),
                "attempt_errors": errors[pid],
            }
        )
    return {"generated_at": now.isoformat(), "integrations": rows, "queue": queue_depth()}


def queue_depth() -> dict[str, Any]:
    from integrations import queue

    if not queue.uses_rq():
        return {"backend": "embedded"}
    try:
        q = queue._queue()
        return {"backend": "rq", "queued_jobs": q.count, "scheduled_jobs": q.scheduled_job_registry.count}
    except Exception as exc:  # Redis down: the report still works from the database
        return {"backend": "rq", "error": str(exc)}
