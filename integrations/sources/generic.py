"""Syncdesk's own signed webhook.

Headers: ``X-Syncdesk-Timestamp`` (unix seconds) and ``X-Syncdesk-Signature: v1=<hex>`` where
hex = HMAC-SHA256(secret, "<timestamp>.<raw body>"). Several ``v1=`` values may be sent,
comma-separated, during a rotation. Optional ``X-Syncdesk-Event-Id`` for a single record.
Body: one JSON record, or ``{"records": [...]}`` with up to 1,000 records.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from integrations.sources.base import MAX_RECORDS_PER_REQUEST, InboundItem, ParsedRequest, SourceError
from integrations.sources.registry import register
from integrations.sources.signing import any_matches, check_timestamp, hmac_sha256


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The header value a sender puts in X-Syncdesk-Signature."""
    return "v1=" + hmac_sha256(secret.encode(), str(timestamp).encode() + b"." + body).hex()


class GenericSource:
    name = "generic"
    label = "Syncdesk signed webhook"

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
        ts = check_timestamp(
            headers.get("X-Syncdesk-Timestamp"), now=now, tolerance=tolerance, header="X-Syncdesk-Timestamp"
        )
        raw = headers.get("X-Syncdesk-Signature")
        if not raw:
            raise SourceError(401, "missing_signature", "Missing X-Syncdesk-Signature header.")
        given: list[bytes] = []
        for part in raw.split(","):
            scheme, _, value = part.strip().partition("=")
            if scheme == "v1":
                try:
                    given.append(bytes.fromhex(value))
                except ValueError:
                    continue
        if not given:
            raise SourceError(401, "bad_signature", "X-Syncdesk-Signature must look like v1=<hex>.")
        message = str(ts).encode() + b"." + body
        expected = [hmac_sha256(s.encode(), message) for s in secrets if s]
        if not any_matches(expected, given):
            raise SourceError(401, "bad_signature", "Signature does not match this integration's secret.")

    def parse(self, *, headers: Mapping[str, str], payload: Any) -> ParsedRequest:
        if isinstance(payload, dict) and set(payload) == {"records"}:
            records = payload["records"]
            if not isinstance(records, list):
                raise SourceError(400, "bad_shape", '"records" must be a list of JSON objects.')
            if len(records) > MAX_RECORDS_PER_REQUEST:
                raise SourceError(
                    413, "too_many_records", f"{len(records)} records sent; at most {MAX_RECORDS_PER_REQUEST}."
                )
            for i, item in enumerate(records):
                if not isinstance(item, dict):
                    raise SourceError(400, "bad_shape", f"records[{i}] is not a JSON object.")
            return ParsedRequest(items=[InboundItem(body=r) for r in records])
        if not isinstance(payload, dict):
            raise SourceError(400, "bad_shape", 'Send one JSON object, or {"records": [...]}.')
        event_id = headers.get("X-Syncdesk-Event-Id") or None
        return ParsedRequest(items=[InboundItem(body=payload, event_id=event_id)])


register(GenericSource())
