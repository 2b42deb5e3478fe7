"""Shared signature helpers: constant-time comparison and timestamp windows."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping

from integrations.sources.base import SourceError


def hmac_sha256(secret: bytes, message: bytes) -> bytes:
    return hmac.new(secret, message, hashlib.sha256).digest()


def any_matches(expected: list[bytes], given: list[bytes]) -> bool:
    """Constant-time: every pair is compared, no early exit on the first match."""
    found = False
    for exp in expected:
        for giv in given:
            found |= hmac.compare_digest(exp, giv)
    return found


# Unix seconds have 10 digits until the year 2286; anything much longer is not a timestamp (and a
# few hundred digits would overflow the float comparison below).
MAX_TIMESTAMP_DIGITS = 12


def plain_digits(text: str, max_digits: int) -> int | None:
    """``text`` as a number if it is nothing but at most ``max_digits`` ASCII digits (no sign,
    underscore or other script's digits, which ``int()`` would take), else None."""
    if text.isascii() and text.isdigit() and len(text) <= max_digits:
        return int(text)
    return None


def check_timestamp(raw: str | None, *, now: float, tolerance: int, header: str) -> int:
    if raw is None or raw.strip() == "":
        raise SourceError(401, "missing_timestamp", f"Missing {header} header.")
    ts = plain_digits(raw.strip(), MAX_TIMESTAMP_DIGITS)
    if ts is None:
        raise SourceError(401, "bad_timestamp", f"{header} must be unix seconds, got {raw[:40]!r}.")
    if abs(now - ts) > tolerance:
        raise SourceError(
            401,
            "stale_timestamp",
            f"{header} is {int(now - ts)} s away from our clock; at most {tolerance} s is accepted.",
        )
    return ts


def b64decode_or_none(value: str) -> bytes | None:
    """Strict standard base64 (padding optional); None for anything else, never an exception."""
    text = value.strip()
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def check_body_hmac_base64(headers: Mapping[str, str], header: str, body: bytes, secrets: list[str]) -> None:
    """Shopify and WooCommerce sign the same way: base64 HMAC-SHA256 of the raw body in ``header``.
    Raises SourceError(401) naming what is wrong."""
    raw = headers.get(header)
    if not raw:
        raise SourceError(401, "missing_signature", f"Missing {header} header.")
    given = b64decode_or_none(raw)
    if not given:
        raise SourceError(401, "bad_signature", f"{header} must be base64.")
    expected = [hmac_sha256(s.encode(), body) for s in secrets if s]
    if not any_matches(expected, [given]):
        raise SourceError(401, "bad_signature", "Signature does not match this integration's secret.")
