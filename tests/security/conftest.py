"""A small world with secrets and personal data in it, and one logged-in client per role."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from integrations.models import (
    ActionLog,
    ExceptionRule,
    ImportBatch,
    Integration,
    MappingVersion,
    ReviewItem,
    SyncRecord,
)
from tests.conftest import ROLES
from tests.ui.factories import make_records, make_world

DESTINATION_SECRET = "dest-token-5f0c8e1d2b7a4c9e"
WEBHOOK_SECRET = "sdk_webhook-secret-for-tests-9f2c"
PREVIOUS_SECRET = "sdk_previous-secret-for-tests-77aa"
EMAIL = "jane.doe@example.org"


@dataclass
class World:
    integration: Integration
    published: MappingVersion
    retired: MappingVersion
    record: SyncRecord
    delivered: SyncRecord
    item: ReviewItem
    rule: ExceptionRule
    job: ActionLog
    batch: ImportBatch

    def ids(self) -> dict[str, Any]:
        return {
            "record_id": self.record.pk,
            "item_id": self.item.pk,
            "job_id": self.job.pk,
            "batch_id": self.batch.pk,
            "pk": self.rule.pk,
            "version_id": self.published.pk,
            "slug": self.integration.slug,
            "customer_slug": self.integration.customer.slug,
        }


@pytest.fixture
def world(users) -> World:
    integration, v1, v2 = make_world()
    Integration.objects.filter(pk=integration.pk).update(
        destination_secret=DESTINATION_SECRET,
        webhook_secret=WEBHOOK_SECRET,
        webhook_secret_previous=PREVIOUS_SECRET,
        sensitive_fields=["email", "phone"],
    )
    integration.refresh_from_db()
    (record,) = make_records(integration, v2, 1)
    SyncRecord.objects.filter(pk=record.pk).update(
        payload={"id": "c-0", "email": EMAIL, "phone": "+49 30 1234567", "status": "awaiting-pickup"},
        last_reason=f"email {EMAIL} bounced; unmapped value 'awaiting-pickup' for status",
    )
    record.refresh_from_db()
    (delivered,) = make_records(integration, v2, 1, start=1, status="delivered")
    delivered.attempts.update(
        request={
            "method": "POST",
            "url": "http://partner/contacts",
            "headers": {"Authorization": "***", "Idempotency-Key": "k"},
            "body": f'{{"external_id": "c-1", "email": "{EMAIL}"}}',
        },
        output={"external_id": "c-1", "email": EMAIL},
    )
    rule = ExceptionRule.objects.create(
        customer=integration.customer,
        integration=integration,
        kind="skip_when",
        params={"condition": {"field": "status", "op": "eq", "value": "test"}},
        reason="Test orders are not sent",
        owner=users["account_manager"],
    )
    job = ActionLog.objects.create(
        actor=users["support"],
        action="bulk_job",
        details={"action": "resolve", "ids": [], "total": 0, "done": 0, "state": "done"},
        created_at=timezone.now(),
    )
    return World(
        integration=integration,
        published=v2,
        retired=v1,
        record=record,
        delivered=delivered,
        item=record.review_items.get(),
        rule=rule,
        job=job,
        batch=ImportBatch.objects.create(integration=integration, file_name="people.csv", status="done"),
    )


@pytest.fixture
def clients(users) -> dict[str, Client]:
    out = {}
    for role in ROLES:
        client = Client()
        client.force_login(users[role])
        out[role] = client
    return out
