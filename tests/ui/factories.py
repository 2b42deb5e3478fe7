"""Records, attempts and review items written straight to the database, for page tests."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from customers.models import Customer
from integrations.models import Integration, MappingVersion, ReviewItem, SyncAttempt, SyncRecord

SPEC_V1: dict[str, Any] = {
    "record": {"source_id": "id", "updated_at": "updated_at"},
    "fields": [
        {"name": "external_id", "source": "id", "convert": ["text"], "required": True},
        {"name": "email", "source": "email", "convert": ["email"], "on_invalid": "review"},
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


def make_world(
    slug: str = "shop-contacts", customer_slug: str = "shop"
) -> tuple[Integration, MappingVersion, MappingVersion]:
    customer, _ = Customer.objects.get_or_create(slug=customer_slug, defaults={"name": customer_slug.title()})
    integration = Integration.objects.create(
        customer=customer,
        name="Contacts to CRM",
        slug=slug,
        destination_config={
            "base_url": "http://127.0.0.1:9",
            "create_path": "/contacts",
            "update_path": "/contacts/{id}",
        },
    )
    v1 = MappingVersion.objects.create(
        integration=integration, number=1, status="retired", spec=SPEC_V1, note="first", published_at=timezone.now()
    )
    v2 = MappingVersion.objects.create(
        integration=integration,
        number=2,
        status="published",
        spec=SPEC_V2,
        note="map awaiting-pickup",
        published_at=timezone.now(),
    )
    return integration, v1, v2


def make_records(
    integration: Integration,
    version: MappingVersion,
    n: int,
    *,
    start: int = 0,
    status: str = "review",
    age: timedelta = timedelta(hours=1),
) -> list[SyncRecord]:
    """``n`` records that each had one attempt; review ones get an open review item."""
    now = timezone.now()
    records = SyncRecord.objects.bulk_create(
        SyncRecord(
            integration=integration,
            source_id=f"c-{i}",
            dedupe_key=f"k-{i}",
            payload={"id": f"c-{i}", "email": f"p{i}@example.com", "status": "awaiting-pickup"},
            received_at=now - age - timedelta(seconds=i),
            status=status,
            attempt_count=1,
            last_error_class="mapping_review" if status == "review" else "",
            last_reason="unmapped value 'awaiting-pickup' for status"
            if status == "review"
            else "Delivered (create, 201)",
            destination_id="" if status == "review" else f"d-{i}",
        )
        for i in range(start, start + n)
    )
    SyncAttempt.objects.bulk_create(
        SyncAttempt(
            record=r,
            number=1,
            mapping_version=version,
            started_at=r.received_at + timedelta(seconds=1),
            duration_ms=12,
            outcome="review" if status == "review" else "delivered",
            error_class=r.last_error_class,
            reason=r.last_reason,
            output={"external_id": r.source_id, "email": r.payload["email"]},
            trace=[
                {
                    "field": "external_id",
                    "source": "id",
                    "raw": r.source_id,
                    "steps": [{"conversion": "text", "output": r.source_id}],
                    "result": "set",
                    "output": r.source_id,
                },
                {
                    "field": "status",
                    "source": "status",
                    "raw": "awaiting-pickup",
                    "steps": [{"conversion": "value_map", "error": "unmapped value 'awaiting-pickup'"}],
                    "result": "review",
                    "why": "unmapped value 'awaiting-pickup' for field status",
                },
            ],
            problems=[
                {
                    "field": "status",
                    "raw": "awaiting-pickup",
                    "rule": "value_map",
                    "reason": "unmapped value 'awaiting-pickup' for field status",
                    "code": "unmapped_value",
                    "action": "review",
                }
            ],
            request={}
            if status == "review"
            else {
                "method": "POST",
                "url": "http://partner/contacts",
                "headers": {"Idempotency-Key": "k"},
                "body": '{"a":1}',
            },
            response_status=None if status == "review" else 201,
            response_body="" if status == "review" else '{"id":"d-1"}',
        )
        for r in records
    )
    if status == "review":
        ReviewItem.objects.bulk_create(
            ReviewItem(
                record=r,
                integration_id=r.integration_id,  # bulk_create skips ReviewItem.save()
                reason_code="unmapped_value",
                reason_text="unmapped value 'awaiting-pickup' for status",
                group_key=f"unmapped_value:{version.pk}:status:awaiting-pickup",
                mapping_version=version,
                details={},
            )
            for r in records
        )
    return records
