"""WooCommerce webhooks (WooCommerce → Settings → Advanced → Webhooks, API version WP REST API v3).

Signature: ``X-WC-Webhook-Signature`` = base64 HMAC-SHA256(secret, raw body), the secret being
the one typed into the webhook's "Secret" field. Other headers: ``X-WC-Webhook-Topic``
(``order.updated``), ``X-WC-Webhook-Resource``, ``X-WC-Webhook-Event``, ``X-WC-Webhook-ID`` and
``X-WC-Webhook-Delivery-ID``. Nothing carries a timestamp, so there is no freshness window.

Dedupe: WooCommerce makes the delivery id as hash(webhook id + current second), so two different
orders sent by one webhook within the same second share it. Deduping on it alone would drop real
records; the event id is therefore ``<delivery id>:<hash of the body>`` — a redelivered request is
still recognised, two different bodies never collide.

Ping: when a webhook is saved as active, WooCommerce POSTs ``webhook_id=<N>`` (form-encoded, no
signature) and wants exactly 200, or it shows the merchant an error. ``handshake`` answers it
before verify and before JSON decoding (see base.handshake), and nothing is stored. Should a view
call ``verify`` on it anyway, verify raises SourceError(200, "ping") so the answer is still 200.

Body: the resource exactly as the REST API returns it. Source id = ``id``; ordering time =
``date_modified_gmt`` (UTC, written without an offset), else ``date_modified`` when it carries an
offset. Site-local ``date_modified`` without an offset is not guessed at: leave the mapping's
updated-at path to decide.

Answers: 2xx (and 301/302) are delivered. WooCommerce does not redeliver a failed delivery; it
counts consecutive failures and disables the webhook after 5 (filter
``woocommerce_max_webhook_delivery_failures``). A wrong secret therefore loses those events and
disables the webhook quickly; fix the secret, set the webhook active again, and re-import.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from integrations.engine import exactjson
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

_PING = re.compile(rb"\s*webhook_id=(\d{1,20})\s*")


def sign(secret: str, body: bytes) -> str:
    """The value WooCommerce puts in X-WC-Webhook-Signature."""
    return b64(hmac_sha256(secret.encode(), body))


def sign_request(
    secret: str,
    body: bytes,
    *,
    topic: str = "order.updated",
    delivery_id: str = "0f3c4e5d6a7b8c9d0e1f2a3b4c5d6e7f",
    webhook_id: str = "7",
    source: str = "https://shop.example.com/",
) -> dict[str, str]:
    """The headers WooCommerce sends with ``body``."""
    resource, _, event = topic.partition(".")
    return {
        "X-WC-Webhook-Source": source,
        "X-WC-Webhook-Topic": topic,
        "X-WC-Webhook-Resource": resource,
        "X-WC-Webhook-Event": event,
        "X-WC-Webhook-Signature": sign(secret, body),
        "X-WC-Webhook-ID": webhook_id,
        "X-WC-Webhook-Delivery-ID": delivery_id,
    }


def ping_request(webhook_id: int) -> tuple[dict[str, str], bytes]:
    """The headers and body of the ping WooCommerce sends when a webhook is activated."""
    return {"Content-Type": "application/x-www-form-urlencoded"}, f"webhook_id={webhook_id}".encode()


def _ping_webhook_id(headers: Mapping[str, str], body: bytes) -> str | None:
    if headers.get("X-WC-Webhook-Signature"):
        return None
    match = _PING.fullmatch(body)
    return match.group(1).decode() if match else None


def _body_digest(payload: Any) -> str:
    try:
        text = exactjson.dumps(payload, sort_keys=True)
    except (TypeError, ValueError):
        text = repr(payload)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


class WooCommerceSource:
    name = "woocommerce"
    label = "WooCommerce"
    statuses = StatusCodes(
        on_failure="WooCommerce does not redeliver; it disables the webhook after 5 consecutive failures."
    )

    def handshake(self, *, method: str, headers: Mapping[str, str], body: bytes) -> ParsedRequest | None:
        webhook_id = _ping_webhook_id(headers, body)
        if method.upper() != "POST" or webhook_id is None:
            return None
        return ParsedRequest(reply=(200, {"status": "ok", "ping": "woocommerce", "webhook_id": webhook_id}))

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
        if _ping_webhook_id(headers, body) is not None:
            # Only reached when the view skipped handshake(): still answer the ping with 200.
            raise SourceError(200, "ping", "WooCommerce ping acknowledged; nothing stored.")
        check_body_hmac_base64(headers, "X-WC-Webhook-Signature", body, secrets)

    def parse(self, *, headers: Mapping[str, str], payload: Any) -> ParsedRequest:
        if not isinstance(payload, dict):
            raise SourceError(400, "bad_shape", "A WooCommerce webhook body is one JSON object (the resource).")
        delivery_id = bounded_id(headers.get("X-WC-Webhook-Delivery-ID"))
        updated_at = iso_datetime(payload.get("date_modified_gmt"), naive_is_utc=True) or iso_datetime(
            payload.get("date_modified")
        )
        item = InboundItem(
            body=payload,
            source_id=text_id(payload.get("id")),
            event_id=f"{delivery_id}:{_body_digest(payload)}" if delivery_id else None,
            event_type=headers.get("X-WC-Webhook-Topic") or None,
            updated_at=updated_at,
        )
        return ParsedRequest(items=[item])


register(WooCommerceSource())
