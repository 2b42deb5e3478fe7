"""Standard Webhooks (https://www.standardwebhooks.com, the open spec Svix and others send).

Headers: ``webhook-id`` (the message id, same on every retry), ``webhook-timestamp`` (unix
seconds of this attempt) and ``webhook-signature``: a space-separated list of ``v1,<base64>``
where base64 = HMAC-SHA256(key, "<webhook-id>.<webhook-timestamp>.<raw body>"). During a
rotation the sender signs with several keys and sends several ``v1,`` entries; ``v1a,`` (the
asymmetric ed25519 variant) is ignored. Svix's own ``svix-id`` / ``svix-timestamp`` /
``svix-signature`` headers are read when the ``webhook-*`` ones are absent (same scheme).

Secret: ``whsec_<base64>``; the HMAC key is the base64-decoded part after the prefix (not the
text). Paste it into the integration exactly as the sender shows it.

Body: one JSON object, either the record itself or the spec's envelope
``{"type": ..., "timestamp": "<ISO 8601>", "data": {...}}`` (only those keys), whose ``data`` is
the record, ``type`` the event type and ``timestamp`` the ordering time.

Answers: any 2xx is delivered. Svix retries anything else (5 s, 5 min, 30 min, 2 h, 5 h, 10 h,
10 h) and disables an endpoint whose every attempt failed for 5 days.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from integrations.sources.base import InboundItem, ParsedRequest, SourceError, StatusCodes, bounded_id, iso_datetime
from integrations.sources.registry import register
from integrations.sources.signing import any_matches, b64, b64decode_or_none, check_timestamp, hmac_sha256

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
_ENVELOPE_KEYS = frozenset({"type", "timestamp", "data"})


def secret_key(secret: str) -> bytes | None:
    """The HMAC key behind a ``whsec_`` secret; None when it is not base64."""
    text = secret.strip()
    if text.startswith(SECRET_PREFIX):
        text = text[len(SECRET_PREFIX) :]
    return b64decode_or_none(text) or None


def sign_request(secrets: str | Sequence[str], *, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers a sender puts on ``body``; several secrets give several signatures (rotation)."""
    keys = [secrets] if isinstance(secrets, str) else list(secrets)
    message = f"{msg_id}.{timestamp}.".encode() + body
    signatures = []
    for secret in keys:
        key = secret_key(secret)
        if key is None:
            raise ValueError("a Standard Webhooks secret is whsec_ followed by base64")
        signatures.append("v1," + b64(hmac_sha256(key, message)))
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), "webhook-signature": " ".join(signatures)}


def _header(headers: Mapping[str, str], name: str) -> str | None:
    return headers.get(f"webhook-{name}") or headers.get(f"svix-{name}") or None


class StandardWebhooksSource:
    name = "standard_webhooks"
    label = "Standard Webhooks (Svix)"
    statuses = StatusCodes(
        on_failure="Svix retries after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h, and disables an endpoint "
        "that failed every attempt for 5 days."
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
        msg_id = _header(headers, "id")
        if not msg_id:
            raise SourceError(401, "missing_id", "Missing webhook-id header.")
        ts = check_timestamp(_header(headers, "timestamp"), now=now, tolerance=tolerance, header="webhook-timestamp")
        raw = _header(headers, "signature")
        if not raw:
            raise SourceError(401, "missing_signature", "Missing webhook-signature header.")
        given: list[bytes] = []
        for entry in raw.split():
            version, _, value = entry.partition(",")
            decoded = b64decode_or_none(value) if version == "v1" else None
            if decoded:
                given.append(decoded)
        if not given:
            raise SourceError(401, "bad_signature", "webhook-signature must hold v1,<base64> entries.")
        keys = [key for key in (secret_key(s) for s in secrets if s) if key]
        if not keys:
            raise SourceError(
                401, "bad_secret", "This integration's secret is not a Standard Webhooks secret (whsec_<base64>)."
            )
        message = f"{msg_id}.{ts}.".encode() + body
        if not any_matches([hmac_sha256(key, message) for key in keys], given):
            raise SourceError(401, "bad_signature", "Signature does not match this integration's secret.")

    def parse(self, *, headers: Mapping[str, str], payload: Any) -> ParsedRequest:
        if not isinstance(payload, dict):
            raise SourceError(400, "bad_shape", "Send one JSON object: the record, or {type, timestamp, data}.")
        event_id = bounded_id(_header(headers, "id"))
        if not ("type" in payload and "data" in payload and set(payload) <= _ENVELOPE_KEYS):
            return ParsedRequest(items=[InboundItem(body=payload, event_id=event_id)])
        data, event_type, stamp = payload["data"], payload["type"], payload.get("timestamp")
        if not isinstance(data, dict):
            raise SourceError(400, "bad_envelope", 'Envelope "data" must be a JSON object (the record).')
        if not isinstance(event_type, str):
            raise SourceError(400, "bad_envelope", 'Envelope "type" must be a string.')
        updated_at = iso_datetime(stamp)
        if stamp is not None and updated_at is None:
            raise SourceError(400, "bad_envelope", 'Envelope "timestamp" must be ISO 8601 with an offset.')
        return ParsedRequest(
            items=[InboundItem(body=data, event_id=event_id, event_type=event_type, updated_at=updated_at)]
        )


register(StandardWebhooksSource())
