"""Retention: payloads and attempt bodies older than an integration's ``retention_days`` are
removed in small batches (short transactions, no long locks). Records, attempts, statuses,
error classes and counts stay, so reports and history keep working."""

from __future__ import annotations

import time
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from integrations.models import Integration, SyncAttempt, SyncRecord

BATCH = 500
FINAL = ("delivered", "skipped", "rejected", "review")


def prune(*, max_seconds: float = 30.0, batch: int = BATCH) -> dict[str, int]:
    """Prune every integration, batch by batch, until done or ``max_seconds`` is spent."""
    deadline = time.monotonic() + max_seconds
    now = timezone.now()
    totals = {"records": 0, "attempts": 0}
    for integration in Integration.objects.only("id", "retention_days"):
        cutoff = now - timedelta(days=integration.retention_days)
        while time.monotonic() < deadline:
            ids = list(
                SyncRecord.objects.filter(
                    integration_id=integration.pk,
                    received_at__lt=cutoff,
                    status__in=FINAL,
                    payload_pruned_at__isnull=True,
                ).values_list("id", flat=True)[:batch]
            )
            if not ids:
                break
            with transaction.atomic():
                totals["records"] += SyncRecord.objects.filter(pk__in=ids).update(
                    payload={}, original_payload=None, prepared_body="", payload_pruned_at=now
                )
        while time.monotonic() < deadline:
            attempt_ids = list(
                SyncAttempt.objects.filter(record__integration_id=integration.pk, started_at__lt=cutoff)
                .exclude(request={"pruned": True})
                .values_list("id", flat=True)[:batch]
            )
            if not attempt_ids:
                break
            with transaction.atomic():
                totals["attempts"] += SyncAttempt.objects.filter(pk__in=attempt_ids).update(
                    request={"pruned": True}, response_body="", output=None, trace=[]
                )
    return totals
