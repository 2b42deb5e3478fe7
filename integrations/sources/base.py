"""The contract every inbound source kind follows. See README "Adding a source kind"."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

MAX_RECORDS_PER_REQUEST = 1000
MAX_ID_LENGTH = 200  # ids are stored in 255-character columns; longer ones are hashed
_SUBMICROSECONDS = re.compile(r"(\.\d{6})\d+")  # Shopify sends nanoseconds; datetime holds microseconds
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class SourceError(Exception):
    """A request the kind refuses. ``status`` is what the platform should see."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class InboundItem:
    """One record carried by a request, with whatever the envelope says about it.

    Fields left ``None`` are filled from the mapping's record options (id / updated_at paths)."""

    body: Any
    source_id: str | None = None
    event_id: str | None = None
    event_type: str | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class ParsedRequest:
    items: list[InboundItem] = field(default_factory=list)
    # Set when the request carries no records but must be answered (a platform's ping):
    # (status, JSON body). Nothing is stored.
    reply: tuple[int, dict[str, Any]] | None = None


class Headers(Protocol):
    def get(self, key: str, default: str | None = None) -> str | None: ...


class SourceKind(Protocol):
    name: str
    label: str

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
        """Raise SourceError(401, ...) unless one of ``secrets`` signed this request within tolerance.
        ``headers`` is case-insensitive (Django's request.headers)."""

    def parse(self, *, headers: Mapping[str, str], payload: Any) -> ParsedRequest:
        """Turn the verified, decoded JSON into items. Raise SourceError(400/422, ...) on a bad shape."""


@dataclass(frozen=True)
class StatusCodes:
    """What the webhook view answers for a kind, and what its platform does with the answer.

    Every platform counts a 2xx as delivered; anything else is retried and, on most platforms,
    eventually disables the endpoint. So a record we stored is always 2xx, even when it will
    fail later in the pipeline: the review queue is where a data problem surfaces, never the
    sender's failure log. Only signature problems (401) and bodies that can never be parsed (400)
    are refused. See docs/sources.md."""

    stored: int = 202  # records committed (also when the integration is paused and they are held)
    duplicate: int = 200  # the platform redelivered something we already hold
    bad_signature: int = 401
    unparseable: int = 400
    on_failure: str = ""  # what the platform does after a non-2xx answer, in words


def handshake(kind: Any, *, method: str, headers: Mapping[str, str], body: bytes) -> ParsedRequest | None:
    """A platform's unsigned, non-JSON handshake that must be answered before ``verify`` and
    before the body is decoded (WooCommerce pings a new webhook with ``webhook_id=N``, form-encoded,
    without a signature, and wants exactly 200). Returns ``ParsedRequest(reply=...)`` for such a
    request, None for every normal one. Kinds without a handshake need nothing."""
    hook = getattr(kind, "handshake", None)
    if hook is None:
        return None
    result: ParsedRequest | None = hook(method=method, headers=headers, body=body)
    return result


def bounded_id(value: str | None) -> str | None:
    """An id fit for a 255-character column: stripped, None when blank, and hashed when longer than
    MAX_ID_LENGTH (a hash keeps "same id, same key" for dedupe, which truncation would not)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if len(text) > MAX_ID_LENGTH:
        return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return text


def text_id(value: Any) -> str | None:
    """An id as exact text: integers of any size (never through float) or non-empty strings."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        try:
            return bounded_id(str(value))
        except ValueError:  # more digits than Python will print (sys.int_info.str_digits_check_threshold)
            return None
    if isinstance(value, str):
        return bounded_id(value)
    return None


def iso_datetime(value: Any, *, naive_is_utc: bool = False) -> datetime | None:
    """ISO 8601 text with an offset (or ``Z``) as an aware datetime; None if absent or unreadable.
    Text without an offset is only trusted when the platform documents it as UTC."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(_SUBMICROSECONDS.sub(r"\1", value.strip(), count=1))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC) if naive_is_utc else None
    return parsed


def epoch_datetime(value: Any, *, unit: str = "s") -> datetime | None:
    """Integer epoch seconds (``unit="s"``) or milliseconds (``"ms"``) as an aware UTC datetime,
    computed without float so milliseconds stay exact. None if not an integer or out of range."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    try:
        return EPOCH + (timedelta(milliseconds=value) if unit == "ms" else timedelta(seconds=value))
    except OverflowError:
        return None
