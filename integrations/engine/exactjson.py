"""JSON that never loses a digit.

Integers of any size stay ``int`` (64-bit ids never pass through float) and numbers with a
fraction or exponent become ``Decimal`` so money keeps its scale (``49.00`` stays ``49.00``).
``dumps`` writes those back as JSON numbers, byte-for-byte stable for the same value, so it
can also be used to hash payloads and to build request bodies that are identical on retry.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

JSONValue = Any


class ExactJSONDecoder(json.JSONDecoder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["parse_float"] = Decimal
        kwargs["parse_constant"] = _refuse_constant
        super().__init__(*args, **kwargs)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads(text: str | bytes) -> JSONValue:
    """Parse JSON exactly. Raises ``json.JSONDecodeError`` (with line/column) on bad input."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    return json.loads(text, cls=ExactJSONDecoder)


def _encode(value: JSONValue, out: list[str], sort_keys: bool) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} cannot be written as JSON")
        out.append(str(value))
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} cannot be written as JSON")
        out.append(float.__repr__(value))
    elif isinstance(value, dict):
        out.append("{")
        items = sorted(value.items(), key=lambda kv: str(kv[0])) if sort_keys else value.items()
        for i, (key, item) in enumerate(items):
            if i:
                out.append(",")
            out.append(json.dumps(str(key), ensure_ascii=False))
            out.append(":")
            _encode(item, out, sort_keys)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out, sort_keys)
        out.append("]")
    else:
        raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(value: JSONValue, *, sort_keys: bool = False) -> str:
    """Compact JSON text; Decimals are written as numbers with their exact digits."""
    out: list[str] = []
    _encode(value, out, sort_keys)
    return "".join(out)


class ExactJSONEncoder(json.JSONEncoder):
    """For Django's JSONField(encoder=...): ``json.dumps(cls=...)`` calls ``encode``."""

    def encode(self, o: Any) -> str:
        return dumps(o)


MAX_DEPTH = 64


def storage_problem(value: JSONValue, max_depth: int = MAX_DEPTH) -> str | None:
    """Why a parsed payload cannot be stored and shown safely, or None.

    PostgreSQL refuses U+0000 and unpaired surrogates in text and jsonb, and payloads nested
    deeper than ``max_depth`` would exhaust the stack of every recursive step after parsing
    (hashing, rendering). Iterative, so it cannot overflow itself."""
    stack: list[tuple[JSONValue, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            return f"it is nested deeper than {max_depth} levels"
        if isinstance(item, dict):
            for key, child in item.items():
                problem = _text_problem(str(key))
                if problem:
                    return problem
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            problem = _text_problem(item)
            if problem:
                return problem
    return None


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "it contains a NUL character (\\u0000), which cannot be stored"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "it contains an unpaired surrogate (like \\ud800), which is not valid text"
    return None
