"""JSON that never loses a digit.

Integers of any size stay ``int`` (64-bit ids never pass through float) and numbers with a
fraction or exponent become ``Decimal`` so money keeps its scale (``49.00`` stays ``49.00``).
``dumps`` writes those back as JSON numbers, byte-for-byte stable for the same value, so it
can also be used to hash payloads and to build request bodies that are identical on retry.
"""

from __future__ import annotations

import json
import math
import re
import secrets
from collections.abc import Callable
from decimal import Decimal
from typing import Any

JSONValue = Any


class NumberOutOfRange(ValueError):
    """A JSON number no Decimal can hold, or (when parsing input to store) one that cannot be
    stored and read back: see ``number_problem``."""


def _decimal(text: str) -> Decimal:
    try:
        return Decimal(text)
    except ArithmeticError:  # an exponent beyond what Decimal can hold at all (1e99999999999999999999)
        raise NumberOutOfRange(f"the number {text[:40]}{'…' if len(text) > 40 else ''} is out of range") from None


def _storable_decimal(text: str) -> Decimal:
    value = _decimal(text)
    # Without an exponent, a number this short fits; checking only the rest keeps parsing fast.
    if len(text) > 100 or "e" in text or "E" in text:
        problem = number_problem(value)
        if problem:
            raise NumberOutOfRange(problem)
    return value


class ExactJSONDecoder(json.JSONDecoder):
    """Reads any JSON exactly: stored rows, partner answers."""

    parse_number = staticmethod(_decimal)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["parse_float"] = type(self).parse_number
        kwargs["parse_constant"] = _refuse_constant
        super().__init__(*args, **kwargs)


class StorableJSONDecoder(ExactJSONDecoder):
    """For input about to be stored (webhooks, imports, edits): also refuses, with
    ``NumberOutOfRange``, a number that could not be stored and read back."""

    parse_number = staticmethod(_storable_decimal)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads(text: str | bytes, *, storable: bool = False) -> JSONValue:
    """Parse JSON exactly. Raises ``json.JSONDecodeError`` (with line/column) on bad input,
    ``NumberOutOfRange`` for a number no Decimal holds (with ``storable``, also for one that
    cannot be stored and read back) and ``ValueError`` for a constant (NaN, Infinity)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    return json.loads(text, cls=StorableJSONDecoder if storable else ExactJSONDecoder)


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
        items = _sorted_items(value) if sort_keys else value.items()
        for i, (key, item) in enumerate(items):
            if i:
                out.append(",")
            out.append(json.dumps(_key_text(key), ensure_ascii=False))
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


def _key_text(key: Any) -> str:
    """An object key as the standard encoder writes it (true/false/null for those keys)."""
    if key is True:
        return "true"
    if key is False:
        return "false"
    if key is None:
        return "null"
    if isinstance(key, float):
        return float.__repr__(key)
    return str(key)


def _sorted_items(value: dict[Any, Any]) -> list[tuple[Any, Any]]:
    """Keys in their own order (as the standard encoder sorts), or by their text when mixed."""
    try:
        return sorted(value.items(), key=lambda kv: kv[0])
    except TypeError:
        return sorted(value.items(), key=lambda kv: _key_text(kv[0]))


def dumps_reference(value: JSONValue, *, sort_keys: bool = False) -> str:
    """``dumps`` written out in Python, one value at a time: the definition ``dumps`` must match."""
    out: list[str] = []
    _encode(value, out, sort_keys)
    return "".join(out)


# A Decimal goes through the C encoder as a marked string, then the quotes come off. The marker
# starts with U+0000, which the encoder writes as "\u0000", so no real string can hold it.
_MARK = "\x00" + secrets.token_hex(8) + ":"
_MARKED = re.compile(re.escape(json.dumps(_MARK)[:-1]) + r'([-+.0-9Ee]+)"')
_MARKED_PREFIX = json.dumps(_MARK)[1:-1]


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} cannot be written as JSON")
        return _MARK + str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _c_encoder(*, sort_keys: bool) -> Callable[[Any], str]:
    """Compact, ensure_ascii=False, non-finite floats refused, Decimals through ``_default``; the
    C encoder built once (``json.dumps`` and ``JSONEncoder.encode`` build it on every call, a
    third of the time for a small record). No circular check: a cycle ends in RecursionError."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator (another Python): the same text, slower
        return json.JSONEncoder(
            ensure_ascii=False, separators=(",", ":"), allow_nan=False, sort_keys=sort_keys, default=_default
        ).encode
    encode = make(None, _default, json.encoder.encode_basestring, None, ":", ",", sort_keys, False, False)
    return lambda value: "".join(encode(value, 0))


_encode_plain = _c_encoder(sort_keys=False)
_encode_sorted = _c_encoder(sort_keys=True)


def dumps(value: JSONValue, *, sort_keys: bool = False) -> str:
    """Compact JSON text; Decimals are written as numbers with their exact digits.

    The standard library's C encoder does the work (it already writes ints of any size
    exactly); keys it cannot sort or write fall back to ``dumps_reference``, which defines the
    output."""
    try:
        text = (_encode_sorted if sort_keys else _encode_plain)(value)
    except TypeError:  # a key the C encoder refuses (a tuple), or keys of mixed types to sort
        return dumps_reference(value, sort_keys=sort_keys)
    except (ValueError, RecursionError):
        return dumps_reference(value, sort_keys=sort_keys)  # raises with the exact reason
    if _MARKED_PREFIX in text:
        text = _MARKED.sub(r"\1", text)
    return text


class ExactJSONEncoder(json.JSONEncoder):
    """For Django's JSONField(encoder=...): ``json.dumps(cls=...)`` calls ``encode``."""

    def encode(self, o: Any) -> str:
        return dumps(o)


MAX_DEPTH = 64
# What a number may have and still be stored and read back. PostgreSQL's numeric (and so a jsonb
# number) holds 16,383 digits after the point and 131,072 before it. jsonb gives a number back
# without its exponent, and one with nothing after the point comes back as an integer (1e5000 as
# 5,001 digits), which Python reads only up to 4,300 digits.
MAX_FRACTION_DIGITS = 16_383
MAX_INTEGER_DIGITS = 131_072
MAX_WHOLE_NUMBER_DIGITS = 4_300


def storage_problem(value: JSONValue, max_depth: int = MAX_DEPTH) -> str | None:
    """Why a parsed payload cannot be stored and shown safely, or None.

    PostgreSQL refuses U+0000 and unpaired surrogates in text and jsonb, and numbers beyond its
    numeric; some whole numbers it stores would not read back (``number_problem``). Payloads
    nested deeper than ``max_depth`` would exhaust the stack of every recursive step after
    parsing (hashing, rendering). Iterative, so it cannot overflow itself."""
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
        elif isinstance(item, Decimal):
            problem = number_problem(item)
            if problem:
                return problem
    return None


def number_problem(value: Decimal) -> str | None:
    """Why ``value`` cannot be stored and read back (see MAX_FRACTION_DIGITS), or None. Counted
    from its digits and exponent, so a huge exponent costs nothing to check."""
    if not value.is_finite():
        return f"the number {value} is not a finite number"
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite
    if -exponent > MAX_FRACTION_DIGITS:
        return f"a number has {-exponent:,} digits after the point; at most {MAX_FRACTION_DIGITS:,} can be stored"
    if value.is_zero():
        return None  # stored as 0 (with its digits after the point)
    before = len(digits) + exponent
    if exponent >= 0 and before > MAX_WHOLE_NUMBER_DIGITS:
        return f"a whole number has {before:,} digits; at most {MAX_WHOLE_NUMBER_DIGITS:,} can be stored and read back"
    if before > MAX_INTEGER_DIGITS:
        return f"a number has {before:,} digits before the point; at most {MAX_INTEGER_DIGITS:,} can be stored"
    return None


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "it contains a NUL character (\\u0000), which cannot be stored"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "it contains an unpaired surrogate (like \\ud800), which is not valid text"
    return None
