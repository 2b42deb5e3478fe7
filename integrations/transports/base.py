"""What every destination kind takes and gives back: a delivery request in, a result or a
``TransportError`` out. Plain data, so the pipeline stores it without knowing the kind."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal

from integrations.engine.retry_policy import TRANSIENT

Operation = Literal["create", "update"]


@dataclass(frozen=True)
class DeliveryRequest:
    """One try at delivering one record version.

    ``body`` is the exact JSON to send, built once per record version; it is never re-serialised,
    so every retry is byte-identical. ``idempotency_key`` is the caller's and stays the same on
    every retry of the same version. ``attempt`` is this try's number (1 for the first): a
    destination without idempotency support looks a retried create up before creating again.
    When it is not given, any try may be a retry, so such a destination always looks first.
    """

    operation: Operation
    destination_id: str | None
    external_id: str
    body: bytes
    idempotency_key: str
    attempt: int | None = None

    @property
    def may_be_retry(self) -> bool:
        return self.attempt is None or self.attempt > 1


@dataclass
class DeliveryResult:
    destination_id: str
    status: int
    request: dict[str, Any]
    response_body: str
    duration_ms: int
    linked_existing: bool = False
    response_headers: dict[str, str] = field(default_factory=dict)
    # Every HTTP exchange of this delivery (a lookup, then the create, ...), each with its request,
    # status, bounded response and duration; ``request`` above is the last of them.
    exchanges: list[dict[str, Any]] = field(default_factory=list)


class TransportError(Exception):
    """A delivery that did not succeed, in the retry policy's words.

    ``error_class`` is one of the retry_policy constants; ``transient`` says whether trying again
    later may help; ``retry_after`` (seconds) is the partner's own ask, when it made one.
    """

    def __init__(
        self,
        error_class: str,
        reason: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        request: dict[str, Any] | None = None,
        response_body: str = "",
        duration_ms: int = 0,
        response_headers: dict[str, str] | None = None,
        exchanges: list[dict[str, Any]] | None = None,
        transient: bool | None = None,
    ) -> None:
        super().__init__(reason)
        self.error_class = error_class
        self.reason = reason
        self.transient = error_class in TRANSIENT if transient is None else transient
        self.status = status
        self.retry_after = retry_after
        self.request: dict[str, Any] = request or {}
        self.response_body = response_body
        self.duration_ms = duration_ms
        self.response_headers: dict[str, str] = response_headers or {}
        self.exchanges: list[dict[str, Any]] = exchanges or []

    def __repr__(self) -> str:
        return f"TransportError({self.error_class!r}, {self.reason!r}, status={self.status})"


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds or an HTTP-date (RFC 9110).

    A date in the past means "now" (0). Anything unreadable gives ``None`` (use our own backoff).
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if seconds == seconds and seconds != float("inf") else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 850 / asctime forms carry no zone but mean GMT
        when = when.replace(tzinfo=UTC)
    current = time.time() if now is None else now
    return max((when - datetime.fromtimestamp(current, UTC)).total_seconds(), 0.0)
