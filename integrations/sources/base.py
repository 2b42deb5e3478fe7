"""The contract every inbound source kind follows. See README "Adding a source kind"."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

MAX_RECORDS_PER_REQUEST = 1000


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
