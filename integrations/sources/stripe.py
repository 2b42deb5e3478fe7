"""Stripe webhooks (Dashboard → Developers → Webhooks → Add endpoint, snapshot payloads).

Signature: ``Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>…]`` where hex =
HMAC-SHA256(signing secret, "<t>.<raw body>"). The key is the endpoint's signing secret
``whsec_…`` used as text, prefix included (unlike Standard Webhooks, it is not base64-decoded).
When a secret is rolled Stripe signs with both for a while and sends several ``v1``; other
schemes (``v0``, test-mode only) are ignored. ``t`` must be within the tolerance of our clock, so
a captured request cannot be replayed later; within the window the event id dedupes it.

Body: the event envelope ``{"id": "evt_…", "type": "customer.updated", "created": <unix s>,
"data": {"object": {...}}}``. The record is ``data.object``; source id = its ``id``; event id =
the event's ``id`` (Stripe's retries reuse it); event type = ``type``; ordering time =
``created``. Stripe does not deliver events in order, which is why ``created`` is passed on.
"Thin" events (``object: "v2.core.event"``) carry no object and are refused with 400: choose the
snapshot payload for the endpoint.

Answers: any 2xx is delivered. Stripe retries anything else for up to 3 days with exponential
back-off (live mode), e-mails the account, and may disable an endpoint that keeps failing.
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
    epoch_datetime,
    text_id,
)
from integrations.sources.registry import register
from integrations.sources.signing import any_matches, check_timestamp, hmac_sha256


def sign_request(secrets: str | Sequence[str], *, timestamp: int, body: bytes) -> dict[str, str]:
    """The Stripe-Signature header for ``body``; several secrets give several v1 (a rolled secret)."""
    keys = [secrets] if isinstance(secrets, str) else list(secrets)
    message = f"{timestamp}.".encode() + body
    parts = [f"t={timestamp}"] + ["v1=" + hmac_sha256(s.encode(), message).hex() for s in keys]
    return {"Stripe-Signature": ",".join(parts)}


class StripeSource:
    name = "stripe"
    label = "Stripe"
    statuses = StatusCodes(
        on_failure="Stripe retries for up to 3 days with exponential back-off, e-mails the account owner "
        "and may disable an endpoint that keeps failing."
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
        raw = headers.get("Stripe-Signature")
        if not raw:
            raise SourceError(401, "missing_signature", "Missing Stripe-Signature header.")
        timestamp: str | None = None
        given: list[bytes] = []
        for part in raw.split(","):
            key, _, value = part.strip().partition("=")
            if key == "t" and timestamp is None:
                timestamp = value
            elif key == "v1":
                try:
                    given.append(bytes.fromhex(value))
                except ValueError:
                    continue
        ts = check_timestamp(timestamp, now=now, tolerance=tolerance, header="Stripe-Signature timestamp (t=)")
        if not given:
            raise SourceError(401, "bad_signature", "Stripe-Signature holds no v1=<hex> signature.")
        message = f"{ts}.".encode() + body
        expected = [hmac_sha256(s.encode(), message) for s in secrets if s]
        if not any_matches(expected, given):
            raise SourceError(401, "bad_signature", "Signature does not match this endpoint's signing secret.")

    def parse(self, *, headers: Mapping[str, str], payload: Any) -> ParsedRequest:
        if not isinstance(payload, dict):
            raise SourceError(400, "bad_envelope", "A Stripe webhook body is one event object.")
        if payload.get("object") == "v2.core.event":
            raise SourceError(
                400, "thin_event", "Thin events carry no object; set the endpoint's payload style to snapshot."
            )
        event_id, event_type, created, data = (payload.get(k) for k in ("id", "type", "created", "data"))
        if not isinstance(event_id, str) or not event_id:
            raise SourceError(400, "bad_envelope", 'Stripe event has no "id".')
        if not isinstance(event_type, str) or not event_type:
            raise SourceError(400, "bad_envelope", f'Stripe event {event_id} has no "type".')
        updated_at = epoch_datetime(created)
        if updated_at is None:
            raise SourceError(400, "bad_envelope", f'Stripe event {event_id}: "created" must be unix seconds.')
        record = data.get("object") if isinstance(data, dict) else None
        if not isinstance(record, dict):
            raise SourceError(400, "bad_envelope", f'Stripe event {event_id} has no "data.object".')
        item = InboundItem(
            body=record,
            source_id=text_id(record.get("id")),
            event_id=bounded_id(event_id),
            event_type=event_type,
            updated_at=updated_at,
        )
        return ParsedRequest(items=[item])


register(StripeSource())
