"""Shopify webhooks (Admin → Settings → Notifications → Webhooks, or an app's subscriptions).

Signature: ``X-Shopify-Hmac-Sha256`` = base64 HMAC-SHA256(secret, raw body). The secret is the
one shown under the store's webhooks list ("Your webhooks will be signed with …") or the app's
client secret. During a rotation both the current and the previous secret are tried.

No timestamp is signed, so there is no freshness window. Shopify itself redelivers the same
event for up to 4 hours, with the same ``X-Shopify-Event-Id``: duplicates and replays are caught
by dedupe on that id (falling back to ``X-Shopify-Webhook-Id``). The headers are not signed, so a
replayed body under a new event id is stored again — but it carries the same ``updated_at``, so
it can never overwrite newer data. (Processing currently sends such a copy as an update with the
first copy's Idempotency-Key, which an idempotent partner refuses: see docs/sources.md.)

Body: the bare resource (an order, customer, product …), not wrapped. Source id = its ``id`` as
exact text (Shopify ids exceed 2^53); ordering time = its ``updated_at`` (ISO 8601 with offset),
else ``X-Shopify-Triggered-At`` (delete topics carry only ``{"id": …}``); event type =
``X-Shopify-Topic`` (``orders/updated``).

Answers: Shopify wants a 2xx within 5 seconds; otherwise it retries 8 times over 4 hours and may
remove the subscription after repeated failures. So a stored record is always answered 2xx even
if it will fail later; only a bad signature (401) or a body that is not a JSON object (400) is not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from integrations.sources.base import (
    InboundItem,
    ParsedRequest,
    SourceError,
    StatusCodes,
    bounded_id,
    iso_datetime,
    text_id,
)
from integrations.sources.registry import register
from integrations.sources.signing import b64, check_body_hmac_base64, hmac_sha256


def sign(secret: str, body: bytes) -> str:
    """The value Shopify puts in X-Shopify-Hmac-Sha256."""
    return b64(hmac_sha256(secret.encode(), body))


def sign_request(
    secret: str,
    body: bytes,
    *,
    topic: str = "orders/updated",
    shop_domain: str = "example.myshopify.com",
    event_id: str | None = None,
    webhook_id: str | None = None,
    triggered_at: str | None = None,
    api_version: str = "2025-07",
) -> dict[str, str]:
    """The headers Shopify sends with ``body``."""
    headers = {
        "X-Shopify-Hmac-Sha256": sign(secret, body),
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": shop_domain,
        "X-Shopify-API-Version": api_version,
    }
    optional: Sequence[tuple[str, str | None]] = (
        ("X-Shopify-Event-Id", event_id),
        ("X-Shopify-Webhook-Id", webhook_id),
        ("X-Shopify-Triggered-At", triggered_at),
    )
    headers.update({name: value for name, value in optional if value})
    return headers


class ShopifySource:
    name = "shopify"
    label = "Shopify"
    statuses = StatusCodes(
        on_failure="Shopify retries 8 times over 4 hours and may remove the webhook subscription after "
        "repeated failures."
    )

    def verify(
        self,
        *,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        secrets: list[str],
        now: float,
        tolerance: int,
    ) -> None:
        check_body_hmac_base64(headers, "X-Shopify-Hmac-Sha256", body, secrets)

    def parse(self, *, headers: Mapping[str, str], payload: Any) -> ParsedRequest:
        if not isinstance(payload, dict):
            raise SourceError(400, "bad_shape", "A Shopify webhook body is one JSON object (the resource).")
        event_id = bounded_id(headers.get("X-Shopify-Event-Id") or headers.get("X-Shopify-Webhook-Id"))
        updated_at = iso_datetime(payload.get("updated_at")) or iso_datetime(headers.get("X-Shopify-Triggered-At"))
        item = InboundItem(
            body=payload,
            source_id=text_id(payload.get("id")),
            event_id=event_id,
            event_type=headers.get("X-Shopify-Topic") or None,
            updated_at=updated_at,
        )
        return ParsedRequest(items=[item])


register(ShopifySource())
