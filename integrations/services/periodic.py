"""Periodic tasks, run by whichever worker's sweeper gets there first.

Each task is claimed with a guarded UPDATE on its PeriodicRun row: exactly one worker runs it per
interval, however many workers there are, and no separate scheduler process is needed."""

from __future__ import annotations

import importlib
import logging
from datetime import timedelta
from typing import Any

from django.db.models import Q
from django.utils import timezone

from integrations.models import PeriodicRun

log = logging.getLogger(__name__)

# name, interval in seconds, "module:function"
TASKS: list[tuple[str, int, str]] = [
    ("dashboard_refresh", 60, "integrations.selectors:refresh_dashboard_snapshot"),
    ("auto_pause", 60, "integrations.services.health:auto_pause_due"),
    ("send_alerts", 60, "integrations.services.alerts:send_pending"),
    ("retention", 3600, "integrations.services.retention:prune"),
    ("review_digest", 86400, "integrations.services.digest:review_digest"),
    ("rules_due_reminder", 86400, "integrations.services.rules:send_due_reminders"),
]


def claim(name: str, interval: int) -> bool:
    now = timezone.now()
    PeriodicRun.objects.get_or_create(name=name)
    return bool(
        PeriodicRun.objects.filter(name=name)
        .filter(Q(last_run_at__isnull=True) | Q(last_run_at__lte=now - timedelta(seconds=interval)))
        .update(last_run_at=now)
    )


def run_due() -> dict[str, Any]:
    ran: dict[str, Any] = {}
    for name, interval, target in TASKS:
        module, _, func = target.partition(":")
        function = getattr(importlib.import_module(module), func, None)
        if function is None or not claim(name, interval):
            continue
        try:
            result = function()
        except Exception as exc:
            log.exception("periodic task %s failed", name)
            result = {"error": str(exc)[:500]}
        PeriodicRun.objects.filter(name=name).update(last_result=_jsonable(result))
        ran[name] = result
    return ran


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict | list | str | int | float | bool) or value is None:
        return value
    return str(value)
