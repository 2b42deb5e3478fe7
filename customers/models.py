from __future__ import annotations

import zoneinfo
from functools import cache

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from simple_history.models import HistoricalRecords


@cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def validate_time_zone(value: str) -> None:
    if value not in _zones():
        raise ValidationError(f"{value!r} is not a known time zone (use a name like Europe/Berlin).")


class Customer(models.Model):
    class Status(models.TextChoices):
        ONBOARDING = "onboarding", "Onboarding"
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"
        OFFBOARDED = "offboarded", "Offboarded"

    name = models.CharField(max_length=200, help_text="The customer's name as support knows it.")
    slug = models.SlugField(max_length=80, unique=True, help_text="Short stable id used in URLs and config.")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    account_manager = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="managed_customers",
        help_text="Who owns the relationship and reviews this customer's exception rules.",
    )
    time_zone = models.CharField(
        max_length=64,
        default="UTC",
        validators=[validate_time_zone],
        help_text="Batch delivery windows are read in this time zone.",
    )
    notes = models.TextField(blank=True, help_text="Anything support should know before touching this customer.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
