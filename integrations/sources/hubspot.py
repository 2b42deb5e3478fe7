"""HubSpot webhooks (app settings → Webhooks → Target URL and event subscriptions).

Signature v3: ``X-HubSpot-Signature-v3`` = base64 HMAC-SHA256(app client secret,
method + URI + raw body + ``X-HubSpot-Request-Timestamp``). The timestamp is unix *milliseconds*
and HubSpot's rule is to reject anything older than 5 minutes (our tolerance, both directions).
The URI is the full URL HubSpot called, after decoding the URL-encoded characters HubSpot lists
(``%3A : %2F / %3F ? %40 @ %21 ! %24 $ %27 ' %28 ( %29 ) %2A * %2C , %3B ;``); nothing else is
decoded. The view passes ``request.build_absolute_uri()``, so behind a TLS-terminating proxy
Django must know the request was https (``SECURE_PROXY_SSL_HEADER``) or every signature fails.
The older v1/v2 signatures HubSpot also sends are not accepted.

Body: a JSON array of up to 100 events, ``[{"eventId", "subscriptionId", "portalId",
"occurredAt", "subscriptionType", "objectId", "propertyName", "propertyValue", ...}]``, one item
each: body = the event, source id = ``objectId``, event type = ``subscriptionType``, ordering
time = ``occurredAt`` (ms). HubSpot documents ``eventId`` as not guaranteed unique, and one app's
Target URL receives the events of every portal that installed it, so the event id is
``<portalId>:<subscriptionId>:<eventId>:<objectId>`` — identical on HubSpot's retries (only
``attemptNumber`` changes), distinct across portals and subscriptions. Events carry the changed
property, not the whole record.

Answers: any 2xx is delivered. HubSpot retries anything else (4xx, 5xx, connection errors, a
response slower than 5 s) up to 10 times spread over 24 hours; a batch is stored whole or refused
whole.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from integrations.sources.base import (
    MAX_RECORDS_PER_REQUEST,
    InboundItem,
    ParsedRequest,
    SourceError,
    StatusCodes,
    bounded_id,
    epoch_datetime,
    text_id,
)
from integrations.sources.registry import register
from integrations.sources.signing import any_matches, b64, b64decode_or_none, hmac_sha256, plain_digits

MAX_TIMESTAMP_DIGITS = 16
_DECODED = {
    "3A": ":",
    "2F": "/",
    "3F": "?",
    "40": "@",
    "21": "!",
    "24": "$",
    "27": "'",
    "28": "(",
    "29": ")",
    "2A": "*",
    "2C": ",",
    "3B": ";",
}
_ENCODED = re.compile("%(" + "|".join(_DECODED) + ")", re.IGNORECASE)


def signed_uri(url: str) -> str:
    """The URI as HubSpot signs it: the listed URL-encoded characters decoded, nothing else."""
    return _ENCODED.sub(lambda m: _DECODED[m.group(1).upper()], url)


def signature(secret: str, *, method: str, url: str, body: bytes, timestamp: str) -> bytes:
    message = method.upper().encode() + signed_uri(url).encode() + body + timestamp.encode()
    return hmac_sha256(secret.encode(), message)


def sign_request(secret: str, *, method: str = "POST", url: str, body: bytes, timestamp_ms: int) -> dict[str, str]:
    """The headers HubSpot sends when it POSTs ``body`` to ``url`` at ``timestamp_ms``."""
    stamp = str(timestamp_ms)
    return {
        "Content-Type": "application/json",
        "X-HubSpot-Signature-v3": b64(signature(secret, method=method, url=url, body=body, timestamp=stamp)),
        "X-HubSpot-Request-Timestamp": stamp,
    }


def _event_id(event: dict[str, Any]) -> str | None:
    event_id = text_id(event.get("eventId"))
    if event_id is None:
        return None
    parts = [text_id(event.get(key)) or "" for key in ("portalId", "subscriptionId")]
    return bounded_id(":".join([*parts, event_id, text_id(event.get("objectId")) or ""]))


class HubSpotSource:
    name = "hubspot"
    label = "HubSpot"
    statuses = StatusCodes(
        on_failure="HubSpot retries any non-2xx, connection error or timeout up to 10 times over 24 hours."
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
        raw_ts = (headers.get("X-HubSpot-Request-Timestamp") or "").strip()
        if not raw_ts:
            raise SourceError(401, "missing_timestamp", "Missing X-HubSpot-Request-Timestamp header.")
        stamp_ms = plain_digits(raw_ts, MAX_TIMESTAMP_DIGITS)
        if stamp_ms is None:
            raise SourceError(
                401, "bad_timestamp", f"X-HubSpot-Request-Timestamp must be unix milliseconds, got {raw_ts[:40]!r}."
            )
        skew_ms = now * 1000 - stamp_ms
        if abs(skew_ms) > tolerance * 1000:
            raise SourceError(
                401,
                "stale_timestamp",
                f"X-HubSpot-Request-Timestamp is {int(skew_ms // 1000)} s away from our clock; "
                f"at most {tolerance} s is accepted.",
            )
        raw_sig = headers.get("X-HubSpot-Signature-v3")
        if not raw_sig:
            raise SourceError(401, "missing_signature", "Missing X-HubSpot-Signature-v3 header.")
        given = b64decode_or_none(raw_sig)
        if not given:
            raise SourceError(401, "bad_signature", "X-HubSpot-Signature-v3 must be base64.")
        expected = [signature(s, method=method, url=url, body=body, timestamp=raw_ts) for s in secrets if s]
        if not any_matches(expected, [given]):
            raise SourceError(
                401,
                "bad_signature",
                "Signature does not match this app's client secret (or the URL differs from HubSpot's Target URL).",
            )

    def parse(self, *, headers: Mapping[str, str], payload: Any) -> ParsedRequest:
        if not isinstance(payload, list):
            raise SourceError(400, "bad_shape", "A HubSpot webhook body is a JSON array of events.")
        if len(payload) > MAX_RECORDS_PER_REQUEST:
            raise SourceError(
                413, "too_many_records", f"{len(payload)} events sent; at most {MAX_RECORDS_PER_REQUEST}."
            )
        items = []
        for i, event in enumerate(payload):
            if not isinstance(event, dict):
                raise SourceError(400, "bad_shape", f"Event [{i}] is not a JSON object.")
            event_type = event.get("subscriptionType")
            items.append(
                InboundItem(
                    body=event,
                    source_id=text_id(event.get("objectId")),
                    event_id=_event_id(event),
                    event_type=event_type if isinstance(event_type, str) and event_type else None,
                    updated_at=epoch_datetime(event.get("occurredAt"), unit="ms"),
                )
            )
        return ParsedRequest(items=items)


register(HubSpotSource())
