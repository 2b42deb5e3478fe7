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


def has_nul(value: JSONValue) -> bool:
    """True if any key or text holds U+0000, which PostgreSQL cannot store in text or jsonb."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any("\x00" in str(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_nul(v) for v in value)
    return False
