"""Building integrations, specs and signed webhook requests for pipeline tests."""

from __future__ import annotations

import json
import time
from typing import Any

from django.test import Client
from django.utils import timezone

from customers.models import Customer
from integrations.engine import exactjson
from integrations.models import Integration, MappingVersion
from integrations.sources.generic import sign

CONTACT_SPEC: dict[str, Any] = {
    "record": {"source_id": "id", "updated_at": "updated_at"},
    "fields": [
        {"name": "external_id", "source": "id", "convert": ["text"], "required": True},
        {"name": "email", "source": "email", "convert": ["email"], "on_invalid": "review"},
        {"name": "first_name", "source": "first_name"},
        {"name": "last_name", "source": "last_name"},
        {"name": "phone", "source": "phone"},
    ],
}

ORDER_SPEC: dict[str, Any] = {
    "record": {
        "source_id": "id",
        "updated_at": "updated_at",
        "parent": {"path": "customer_external_id", "integration": "acme-contacts", "output_field": "contact_id"},
    },
    "fields": [
        {"name": "external_id", "source": "id", "convert": ["text"], "required": True},
        {"name": "financial_status", "source": "financial_status"},
        {"name": "total", "source": "total", "convert": ["decimal"]},
    ],
}


def make_integration(
    *,
    slug: str,
    partner_url: str,
    spec: dict[str, Any] | None = None,
    collection: str = "contacts",
    customer: Customer | None = None,
    **fields: Any,
) -> Integration:
    customer = customer or Customer.objects.get_or_create(slug="acme", defaults={"name": "Acme"})[0]
    integration = Integration.objects.create(
        customer=customer,
        name=slug,
        slug=slug,
        destination_config={
            "base_url": partner_url,
            "create_path": f"/{collection}",
            "update_path": f"/{collection}/{{id}}",
            "lookup_path": f"/{collection}?external_id={{external_id}}",
        },
        **fields,
    )
    if spec is not None:
        MappingVersion.objects.create(
            integration=integration, number=1, status="published", spec=spec, note="test", published_at=timezone.now()
        )
    return integration


def signed_headers(secret: str, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    return {"X-Syncdesk-Timestamp": str(ts), "X-Syncdesk-Signature": sign(secret, ts, body)}


def post_webhook(client: Client, integration: Integration, payload: Any, **extra_headers: str) -> Any:
    body = payload if isinstance(payload, bytes) else exactjson.dumps(payload).encode()
    headers = {**signed_headers(integration.webhook_secret, body), **extra_headers}
    return client.post(
        f"/hooks/{integration.slug}/",
        data=body,
        content_type="application/json",
        headers=headers,
    )


def contact(n: int, **over: Any) -> dict[str, Any]:
    record = {
        "id": f"c-{n}",
        "email": f"person{n}@example.com",
        "first_name": "Inès",
        "last_name": f"Varga{n}",
        "updated_at": "2024-01-25T10:00:00Z",
    }
    record.update(over)
    return record


def as_json(response: Any) -> Any:
    return json.loads(response.content)
