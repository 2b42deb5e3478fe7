"""Helpers for source-kind tests: a request the way the webhook view hands it to a kind."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from django.utils.datastructures import CaseInsensitiveMapping
from hypothesis import strategies as st

from integrations.engine import exactjson
from integrations.sources.base import ParsedRequest, SourceError, handshake

URL = "https://syncdesk.example.com/hooks/acme-orders/"
NOW = 1_750_000_000  # a fixed clock: 2025-06-15T15:06:40Z


def receive(
    kind: Any,
    *,
    body: bytes,
    headers: Mapping[str, str],
    secrets: list[str],
    now: float = NOW,
    tolerance: int = 300,
    method: str = "POST",
    url: str = URL,
) -> ParsedRequest:
    """What the view does: answer a handshake, else verify, decode exactly, parse."""
    request_headers = CaseInsensitiveMapping(dict(headers))
    early = handshake(kind, method=method, headers=request_headers, body=body)
    if early is not None:
        return early
    kind.verify(
        method=method,
        url=url,
        headers=request_headers,
        body=body,
        secrets=secrets,
        now=now,
        tolerance=tolerance,
    )
    return kind.parse(headers=request_headers, payload=exactjson.loads(body))


def dumps(value: Any) -> bytes:
    """A request body as a platform would send it: compact JSON, numbers written exactly."""
    return exactjson.dumps(value).encode()


def load(path: Path) -> Any:
    return exactjson.loads(path.read_bytes())


def refusal(call: Any) -> SourceError:
    """The SourceError a call raises (the test fails if it raises nothing or something else)."""
    try:
        call()
    except SourceError as exc:
        return exc
    raise AssertionError("expected a SourceError")


# Arbitrary JSON the way exactjson decodes it: big ints, Decimals, deep nesting.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20,
)


def json_objects_with(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects that often use the keys a kind reads, with values of any JSON type."""
    return st.dictionaries(st.sampled_from(keys) | st.text(max_size=8), json_values, max_size=len(keys) + 2)


def headers_with(names: list[str]) -> st.SearchStrategy[dict[str, str]]:
    return st.dictionaries(st.sampled_from(names), st.text(max_size=60), max_size=len(names))


def outcome(call: Any) -> int | None:
    """None when the call succeeds, the status of the SourceError it raises; anything else escapes."""
    try:
        call()
    except SourceError as exc:
        return exc.status
    return None
