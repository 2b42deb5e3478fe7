"""The customer exception-rule layer, as the pipeline sees it.

One place decides, per record, which of the customer's active rules apply and what they do:
skip, hold for review, a patched mapping spec (value-map overrides, defaults, destination-owned
fields, special codes), and a different retry policy or delivery window. See the README for the
order rules apply in relative to the mapping."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import F, Q
from django.utils import timezone

from integrations.engine import retry_policy as rp
from integrations.models import ExceptionRule, Integration


@dataclass
class Ruling:
    skip: str = ""
    hold: str = ""
    hold_rule_id: int | None = None
    fired: list[dict[str, Any]] = field(default_factory=list)
    spec: Any = None  # a compiled spec patched by rules, or None for the version's own
    field_notes: dict[str, list[str]] = field(default_factory=dict)


def active_rules(integration: Integration, now: datetime | None = None) -> list[ExceptionRule]:
    now = now or timezone.now()
    return list(
        ExceptionRule.objects.filter(customer_id=integration.customer_id, status=ExceptionRule.Status.ACTIVE)
        .filter(Q(integration__isnull=True) | Q(integration_id=integration.pk))
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .order_by("id")
    )


def evaluate(integration: Integration, payload: Any, spec: Any) -> Ruling:
    """Apply the customer's rules to one record (placeholder until the rule engine lands)."""
    return Ruling()


def retry_policy_for(integration: Integration) -> rp.RetryPolicy:
    return integration.policy


def count_fired(fired: list[dict[str, Any]], now: datetime) -> None:
    ids = [f["id"] for f in fired if f.get("id")]
    if ids:
        ExceptionRule.objects.filter(pk__in=ids).update(fire_count=F("fire_count") + 1, last_fired_at=now)
