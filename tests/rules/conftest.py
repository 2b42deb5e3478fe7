"""Fixtures for exception-rule tests: customers with order integrations delivering to a real
partner simulator over HTTP, and in-process claiming and processing (the worker's own code)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from customers.services import customer_create
from integrations.models import SyncRecord
from integrations.services import rules as rules_service
from integrations.services.processing import claim_due, process_record
from tests.conftest import make_user
from tests.pipeline.helpers import make_integration, post_webhook

FAST = {"max_attempts": 6, "schedule": [0, 1, 1, 1, 1], "jitter": 0, "cap_seconds": 5, "hard_limit": 40}

ORDER_SPEC: dict[str, Any] = {
    "record": {"source_id": "id", "updated_at": "updated_at"},
    "fields": [
        {"name": "external_id", "source": "id", "convert": ["text"], "required": True},
        {
            "name": "status",
            "source": "status",
            "value_map": {"paid": "PAID", "refunded": "REFUNDED", "cancelled": "CANCELLED"},
        },
        {"name": "total", "source": "total", "convert": ["decimal"]},
        {"name": "country", "source": "country"},
        {"name": "phone", "source": "phone"},
    ],
}


def order(n: int, **over: Any) -> dict[str, Any]:
    record = {
        "id": f"o-{n}",
        "status": "paid",
        "total": "25.00",
        "country": "DE",
        "phone": "+4930123456",
        "updated_at": "2024-03-01T10:00:00Z",
    }
    record.update(over)
    return record


@pytest.fixture(autouse=True)
def _fresh_rule_cache() -> Iterator[None]:
    # Rule writes clear the cache on commit, which never comes inside a test transaction.
    rules_service.clear_cache()
    yield
    rules_service.clear_cache()


@pytest.fixture
def partner() -> Iterator[Any]:
    from integrations.partner_sim import PartnerSim

    sim = PartnerSim(seed=11).start()
    yield sim
    sim.stop()


@pytest.fixture
def owner(db):
    user = make_user("account_manager", "rule-owner")
    user.email = "owner@example.com"
    user.save()
    return user


def new_customer(slug: str, name: str, tz: str = "UTC"):
    return customer_create(acting_user=None, name=name, slug=slug, time_zone=tz)


def order_integration(customer, slug: str, partner_url: str, spec: dict[str, Any] | None = None, **fields: Any):
    return make_integration(
        slug=slug,
        partner_url=partner_url,
        spec=spec or ORDER_SPEC,
        collection="orders",
        customer=customer,
        record_type="order",
        retry_policy=fields.pop("retry_policy", FAST),
        **fields,
    )


@pytest.fixture
def shop(db, partner):
    customer = new_customer("rules-shop-one", "Rules Shop One")
    return order_integration(customer, "rules-shop-one-orders", partner.url)


def send(integration, *records: dict[str, Any]) -> None:
    response = post_webhook(Client(), integration, {"records": list(records)} if len(records) > 1 else records[0])
    assert response.status_code in (200, 202), response.content


def deliver_due(integration, *, at=None) -> list[int]:
    """Claim and process everything due, the way a worker's drain does (in-process)."""
    token = secrets.token_hex(8)
    done: list[int] = []
    for _ in range(20):
        ids = claim_due(integration.pk, limit=100, token=token, now=at or timezone.now() + timedelta(seconds=2))
        if not ids:
            break
        for pk in ids:
            process_record(pk, token=token)
        done += ids
    return done


def record(integration, source_id: str) -> SyncRecord:
    return SyncRecord.objects.filter(integration=integration, source_id=source_id).order_by("-id").first()


def at_partner(partner, external_id: str) -> dict[str, Any] | None:
    for row in partner.records("orders").get("orders", []):
        if row.get("external_id") == external_id:
            return row
    return None
