"""Mapping editor fixtures: an integration with two published versions (v1 retired, v2
published), real-looking records, and one logged-in client per role."""

from __future__ import annotations

from typing import Any

import pytest
from django.db.models import F
from django.test import Client

from integrations.models import Integration, MappingVersion, SyncRecord
from integrations.services import mappings
from tests.conftest import ROLES

SPEC_V1: dict[str, Any] = {
    "record": {"source_id": "id", "updated_at": "updated_at"},
    "fields": [
        {"name": "external_id", "source": "id", "convert": [{"name": "integer", "output": "text"}], "required": True},
        {"name": "email", "source": "email", "convert": ["email"]},
        {"name": "status", "source": "status", "value_map": {"completed": "fulfilled", "pending": "open"}},
    ],
}
SPEC_V2: dict[str, Any] = {
    **SPEC_V1,
    "fields": [
        *SPEC_V1["fields"][:2],
        {
            "name": "status",
            "source": "status",
            "value_map": {"completed": "fulfilled", "pending": "open", "awaiting-pickup": "open"},
        },
    ],
}


def payload(n: int, status: str = "completed") -> dict[str, Any]:
    return {"id": 1000 + n, "email": f"Person{n}@Example.com", "status": status, "updated_at": "2025-01-02T03:04:05Z"}


def add_records(integration: Integration, count: int, start: int = 0) -> list[SyncRecord]:
    statuses = ["completed", "pending", "awaiting-pickup", "on-hold"]
    return SyncRecord.objects.bulk_create(
        SyncRecord(
            integration=integration,
            source_id=str(1000 + n),
            dedupe_key=f"k-{n}",
            payload=payload(n, statuses[n % len(statuses)]),
            status="delivered",
        )
        for n in range(start, start + count)
    )


@pytest.fixture
def clients(users) -> dict[str, Client]:
    out = {}
    for role in ROLES:
        client = Client()
        client.force_login(users[role])
        out[role] = client
    return out


@pytest.fixture
def world(integration, users) -> Integration:
    """``test-shop-contacts`` with v1 (retired) and v2 (published), no draft, 8 records."""
    engineer = users["engineer"]
    mappings.publish_spec(integration=integration, spec=SPEC_V1, acting_user=engineer, note="first mapping")
    mappings.publish_spec(integration=integration, spec=SPEC_V2, acting_user=engineer, note="map awaiting-pickup")
    add_records(integration, 8)
    return integration


def versions(integration: Integration) -> list[tuple[int | None, str]]:
    return list(
        MappingVersion.objects.filter(integration=integration)
        .order_by(F("number").asc(nulls_last=True))  # the draft (no number) last on every database
        .values_list("number", "status")
    )
