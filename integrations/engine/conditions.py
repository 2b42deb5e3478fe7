"""Rule conditions: a small, safe language over a record's fields. No ``eval``.

A condition is one of
  {"field": "status", "op": "eq", "value": "cancelled"}
  {"all": [cond, ...]}   {"any": [cond, ...]}   {"not": cond}
Operators: eq, ne, in, not_in (value is a list), blank, not_blank (no value), contains,
starts_with, ends_with (text), gt, gte, lt, lte (numbers or ISO dates compared as numbers/text).
Text comparisons ignore case and surrounding whitespace, like value maps do.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from integrations.engine.paths import MISSING, PathError, lookup, parse_path

OPERATORS = {
    "eq": "equals",
    "ne": "does not equal",
    "in": "is one of",
    "not_in": "is none of",
    "blank": "is blank",
    "not_blank": "is not blank",
    "contains": "contains",
    "starts_with": "starts with",
    "ends_with": "ends with",
    "gt": "is greater than",
    "gte": "is at least",
    "lt": "is less than",
    "lte": "is at most",
}
_NO_VALUE = {"blank", "not_blank"}
_LIST_VALUE = {"in", "not_in"}
BLANK_PLACEHOLDERS = frozenset({"", "n/a", "null", "-", "none"})


class ConditionError(ValueError):
    pass


@dataclass(frozen=True)
class Condition:
    kind: str  # "field" | "all" | "any" | "not"
    steps: tuple[str | int, ...] = ()
    field: str = ""
    op: str = ""
    value: Any = None
    children: tuple[Condition, ...] = ()


def compile_condition(raw: Any, where: str = "condition") -> Condition:
    """Check and compile; raises ConditionError naming the bad part."""
    if not isinstance(raw, dict):
        raise ConditionError(f"{where} must be an object")
    keys = set(raw)
    for group in ("all", "any"):
        if group in keys:
            if keys != {group} or not isinstance(raw[group], list) or not raw[group]:
                raise ConditionError(f"{where}.{group} must be the only key and a non-empty list")
            kids = tuple(compile_condition(c, f"{where}.{group}[{i}]") for i, c in enumerate(raw[group]))
            return Condition(kind=group, children=kids)
    if "not" in keys:
        if keys != {"not"}:
            raise ConditionError(f"{where}.not must be the only key")
        return Condition(kind="not", children=(compile_condition(raw["not"], f"{where}.not"),))
    field = raw.get("field")
    op = raw.get("op", "eq")
    if not isinstance(field, str) or not field:
        raise ConditionError(f"{where} needs a field")
    if op not in OPERATORS:
        raise ConditionError(f"{where}: unknown operator {op!r} (use one of {', '.join(OPERATORS)})")
    unknown = keys - {"field", "op", "value"}
    if unknown:
        raise ConditionError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
    if op in _NO_VALUE:
        if "value" in raw:
            raise ConditionError(f"{where}: {op} takes no value")
    elif "value" not in raw:
        raise ConditionError(f"{where}: {op} needs a value")
    if op in _LIST_VALUE and not isinstance(raw.get("value"), list):
        raise ConditionError(f"{where}: {op} needs a list value")
    try:
        steps = parse_path(field)
    except PathError as exc:
        raise ConditionError(f"{where}: {exc}") from None
    return Condition(kind="field", steps=steps, field=field, op=op, value=raw.get("value"))


def _norm(value: Any) -> str:
    return " ".join(str(value).split()).casefold()


def _is_blank(value: Any) -> bool:
    if value is None or value is MISSING:
        return True
    if isinstance(value, str):
        return _norm(value) in BLANK_PLACEHOLDERS
    return isinstance(value, list | dict) and not value


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    try:
        return Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None


def _compare(left: Any, right: Any) -> int | None:
    a, b = _number(left), _number(right)
    if a is not None and b is not None:
        return (a > b) - (a < b)
    if isinstance(left, str | int) and isinstance(right, str | int):
        x, y = _norm(left), _norm(right)
        return (x > y) - (x < y)
    return None


def matches(condition: Condition, record: Any) -> bool:
    """Never raises: a field that is missing or of the wrong type simply does not match."""
    if condition.kind == "all":
        return all(matches(c, record) for c in condition.children)
    if condition.kind == "any":
        return any(matches(c, record) for c in condition.children)
    if condition.kind == "not":
        return not matches(condition.children[0], record)
    value = lookup(record, condition.steps)
    op = condition.op
    if op == "blank":
        return _is_blank(value)
    if op == "not_blank":
        return not _is_blank(value)
    if value is MISSING or value is None:
        return op in {"ne", "not_in"}
    if op in {"eq", "ne"}:
        equal = _norm(value) == _norm(condition.value)
        return equal if op == "eq" else not equal
    if op in {"in", "not_in"}:
        found = _norm(value) in {_norm(v) for v in condition.value}
        return found if op == "in" else not found
    if op in {"contains", "starts_with", "ends_with"}:
        text, part = _norm(value), _norm(condition.value)
        return {"contains": part in text, "starts_with": text.startswith(part), "ends_with": text.endswith(part)}[op]
    order = _compare(value, condition.value)
    if order is None:
        return False
    return {"gt": order > 0, "gte": order >= 0, "lt": order < 0, "lte": order <= 0}[op]


def describe(condition: Condition) -> str:
    """Plain words: "status equals 'cancelled' and total is greater than 100"."""
    if condition.kind in {"all", "any"}:
        joiner = " and " if condition.kind == "all" else " or "
        parts = [describe(c) for c in condition.children]
        return joiner.join(f"({p})" if (" and " in p or " or " in p) else p for p in parts)
    if condition.kind == "not":
        return f"not ({describe(condition.children[0])})"
    words = OPERATORS[condition.op]
    if condition.op in _NO_VALUE:
        return f"{condition.field} {words}"
    if condition.op in _LIST_VALUE:
        return f"{condition.field} {words} " + ", ".join(repr(v) for v in condition.value)
    return f"{condition.field} {words} {condition.value!r}"
