"""Customer exception rules: a registry of rule kinds and the one function that applies them.

A rule is data — ``RuleData(id, kind, params, reason)`` — and its *kind* is a registered,
generic capability named by what it does (``skip_when``, ``special_code`` …). Each kind declares
its parameters (checked by ``validate_params``, with messages naming the bad part), how it is
described in plain language (``describe_rule``) and how it applies. Customer variance never lives
in code: a customer opts into a kind through a rule row.

Pure: no ORM, no network, no settings.

Order of application (``apply_rules``), relative to the mapping
--------------------------------------------------------------
1. **On the raw record, before mapping** (stage ``record``): ``skip_when`` rules, then
   ``hold_for_review`` rules. The first that matches decides — the record is skipped (a skip wins
   over a hold: a record we never send needs no review) or held for a person — and nothing
   later applies.
2. **Patches to the mapping spec, before mapping** (stage ``spec``), by kind in this order:
   ``merge_policy``, ``destination_owned``, ``default_for_blank``, ``value_map_override``,
   ``special_code``. Within a kind, in the order the rules are given (the service gives
   customer-wide rules first, then the integration's own, each oldest first), so the later, more
   specific rule wins on the same field. ``special_code`` replaces the field for matching records
   only, so it wins over a value-map override of the same value.
3. **The mapping** runs with the patched spec; each rule's effect is written into the per-field
   trace as a note on the destination field it changed.
4. **After mapping, at delivery** (stage ``delivery``): ``delivery_window`` decides when the
   record may go (at ingest and when a retry is scheduled) and ``retry_policy`` decides what
   follows a failed attempt. Of several, the last given wins (the integration's own, newest).

A rule that *fires* is one that changed what happened to this record: a skip or hold whose
condition matched, a patch whose field the record carries a relevant value for (judged on the
value as received: trimmed, any case). Fired rules are listed with their plain-language effect
and stored on the attempt; their fire counts show which rules are still used.

A stored rule whose parameters are no longer valid is never silently ignored: the record is held
for review naming the rule, so nothing goes out that the customer's rules would have stopped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import time
from decimal import Decimal
from functools import lru_cache
from typing import Any, Final, Literal

from integrations.engine import conditions, exactjson, transforms
from integrations.engine import retry_policy as rp
from integrations.engine.paths import MISSING, PathError, lookup, parse_path

Stage = Literal["record", "spec", "delivery"]
ParamType = Literal["condition", "field", "path", "text", "value", "values", "any", "time", "roles", "field_roles"]

DEFAULT_BLANKS: Final = ("n/a", "null", "-")


class RuleParamError(ValueError):
    """Parameters that do not fit the rule kind; ``errors`` names each bad part."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors) or "invalid rule parameters")
        self.errors = list(errors)


@dataclass(frozen=True)
class RuleData:
    """One rule as the engine sees it (the service builds these from ExceptionRule rows)."""

    id: int | None
    kind: str
    params: dict[str, Any]
    reason: str = ""


@dataclass(frozen=True)
class ParamSpec:
    name: str
    type: ParamType
    description: str
    required: bool = True


@dataclass(frozen=True)
class RuleKind:
    name: str
    label: str
    stage: Stage
    summary: str
    params: tuple[ParamSpec, ...]
    example: dict[str, Any]
    describe: Callable[[dict[str, Any]], str]
    check: Callable[[dict[str, Any]], list[str]] | None = None

    def schema(self) -> list[dict[str, Any]]:
        """The parameter schema as data (forms, docs)."""
        return [
            {"name": p.name, "type": p.type, "required": p.required, "description": p.description} for p in self.params
        ]


@dataclass
class RuleOutcome:
    """What the rules did to one record. ``spec`` is the patched spec (the input object itself
    when nothing patched it); ``patched_by`` names the spec rules applied, in order, so a caller
    can cache the compiled result by (base spec, rules, patched_by)."""

    skip: str = ""
    hold: str = ""
    hold_rule_id: int | None = None
    spec: dict[str, Any] = field(default_factory=dict)
    patched_by: tuple[int | None, ...] = ()
    fired: list[dict[str, Any]] = field(default_factory=list)
    field_notes: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- helpers


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    try:
        return exactjson.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | Decimal | bool) or value is None


def _key(value: Any) -> str:
    return transforms.value_key(value)


def _values(raw: Any) -> list[Any]:
    return list(raw) if isinstance(raw, list) else [raw]


@lru_cache(maxsize=512)
def _condition(text: str) -> conditions.Condition:
    return conditions.compile_condition(json.loads(text))


def _condition_of(params: dict[str, Any]) -> conditions.Condition:
    return _condition(json.dumps(params["condition"], sort_keys=True, default=str))


def parse_time(value: Any) -> time:
    """ "HH:MM" (or "HH:MM:SS") → time; raises ValueError with a plain message."""
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a time like '22:00'")
    try:
        parsed = time.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{value!r} is not a time like '22:00'") from None
    if parsed.tzinfo is not None:
        raise ValueError(f"{value!r}: give the customer's local time without a zone")
    return parsed


def _check_type(param: ParamSpec, value: Any) -> str | None:
    where = param.name
    kind = param.type
    if kind == "condition":
        try:
            conditions.compile_condition(value, where)
        except conditions.ConditionError as exc:
            return str(exc)
        return None
    if kind in ("field", "text"):
        if not isinstance(value, str) or not value.strip():
            return f"{where} must be non-empty text"
        if kind == "field" and any(not part for part in value.split(".")):
            return f"{where}: field name {value!r} has an empty part"
        return None
    if kind == "path":
        try:
            parse_path(value)
        except PathError as exc:
            return f"{where}: {exc}"
        return None
    if kind == "value":
        return None if _scalar(value) else f"{where} must be a single value (text, number, true/false or null)"
    if kind == "values":
        items = _values(value)
        if not items or not all(_scalar(v) and v is not None for v in items):
            return f"{where} must be a value or a non-empty list of values"
        return None
    if kind == "time":
        try:
            parse_time(value)
        except ValueError as exc:
            return f"{where}: {exc}"
        return None
    if kind == "roles":
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            return f"{where} must be a non-empty list of role names"
        return None
    if kind == "field_roles":
        if not isinstance(value, dict) or not value:
            return f"{where} must be an object: destination field → list of role names"
        for name, roles in value.items():
            if not isinstance(roles, list) or not roles or not all(isinstance(r, str) and r for r in roles):
                return f"{where}.{name} must be a non-empty list of role names"
        return None
    return None  # "any"


# --------------------------------------------------------------------------- descriptions


def _describe_skip(p: dict[str, Any]) -> str:
    return f"Skip records where {conditions.describe(_condition_of(p))}"


def _describe_hold(p: dict[str, Any]) -> str:
    text = f"Hold for manual review when {conditions.describe(_condition_of(p))}"
    return text + (f" ({p['message']})" if p.get("message") else "")


def _describe_default(p: dict[str, Any]) -> str:
    return f"When {p['field']} is blank, send {_show(p['value'])}"


def _describe_override(p: dict[str, Any]) -> str:
    return f"In {p['field']}, send {_show(p['from'])} as {_show(p['to'])} instead of the mapping's value"


def _describe_code(p: dict[str, Any]) -> str:
    whens = ", ".join(_show(v) for v in _values(p["when"]))
    source = f" (read from {p['source']})" if p.get("source") else ""
    return f"When {p['field']}{source} is {whens}, send the code {_show(p['code'])}"


def _describe_window(p: dict[str, Any]) -> str:
    return f"Deliver only between {p['start']} and {p['end']}, customer's local time"


def _describe_retry(p: dict[str, Any]) -> str:
    try:
        policy = rp.policy_from_dict(p)
    except ValueError:
        return "A different retry policy (invalid)"
    return "Retry with a different policy: " + describe_policy(policy)


def _describe_owned(p: dict[str, Any]) -> str:
    return f"{p['field']} is owned by the destination: sent when a record is created, never overwritten"


def _describe_merge(p: dict[str, Any]) -> str:
    parts = []
    if p.get("order"):
        parts.append("related records ranked " + " > ".join(p["order"]))
    for name, roles in (p.get("fields") or {}).items():
        parts.append(f"{name} taken from " + " > ".join(roles))
    return "Merge related records with a different precedence: " + "; ".join(parts)


def describe_policy(policy: rp.RetryPolicy) -> str:
    """A retry policy in words: "up to 7 failed tries, waiting 5 s, 5 min, …"."""
    waits = ", ".join(_duration(s) for s in policy.schedule)
    return (
        f"up to {policy.max_attempts} failed tries, waiting {waits} between them "
        f"(±{round(policy.jitter * 100)}%, never more than {_duration(policy.cap_seconds)}); "
        f"at most {policy.hard_limit} tries in all including rate limits"
    )


def _duration(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min" + (f" {seconds % 60} s" if seconds % 60 else "")
    hours, rest = divmod(seconds, 3600)
    return f"{hours} h" + (f" {rest // 60} min" if rest // 60 else "")


# --------------------------------------------------------------------------- kind-specific checks


def _check_window(p: dict[str, Any]) -> list[str]:
    try:
        if parse_time(p["start"]) == parse_time(p["end"]):
            return ["start and end are the same time; leave the rule out to deliver at any time"]
    except ValueError:
        return []  # already reported by the type check
    return []


def _check_retry(p: dict[str, Any]) -> list[str]:
    if not p:
        return ["give at least one of max_attempts, schedule, jitter, cap_seconds, hard_limit"]
    try:
        rp.policy_from_dict(p)
    except ValueError as exc:
        return [str(exc)]
    return []


def _check_merge(p: dict[str, Any]) -> list[str]:
    if "mode" in p:
        return [
            "mode cannot be changed by a rule: records are grouped when they arrive, by the mapping's "
            "record.group.mode; change the mapping instead"
        ]
    if not p.get("order") and not p.get("fields"):
        return ["give order (a role ranking) or fields (per-field role rankings)"]
    return []


def _check_override(p: dict[str, Any]) -> list[str]:
    return ["from must not be blank"] if isinstance(p.get("from"), str) and not p["from"].strip() else []


_FIELD: Final = ParamSpec("field", "field", "the destination field, as named in the mapping")
_CONDITION: Final = ParamSpec("condition", "condition", "a condition over the source record (see docs/rules.md)")

KINDS: Final[dict[str, RuleKind]] = {
    k.name: k
    for k in (
        RuleKind(
            "skip_when",
            "Skip records matching a condition",
            "record",
            "Records matching the condition are not sent; the attempt says which rule skipped them.",
            (_CONDITION,),
            {"condition": {"field": "status", "op": "eq", "value": "cancelled"}},
            _describe_skip,
        ),
        RuleKind(
            "hold_for_review",
            "Hold for manual review",
            "record",
            "Records matching the condition go to the review queue instead of the partner.",
            (_CONDITION, ParamSpec("message", "text", "what support should check (optional)", required=False)),
            {"condition": {"field": "total", "op": "gt", "value": 10000}, "message": "confirm large orders"},
            _describe_hold,
        ),
        RuleKind(
            "default_for_blank",
            "Default for a blank field",
            "spec",
            "When the field's source value is blank, send this value instead of leaving the field out.",
            (_FIELD, ParamSpec("value", "any", "the value to send")),
            {"field": "country", "value": "DE"},
            _describe_default,
        ),
        RuleKind(
            "value_map_override",
            "Override a value-map entry",
            "spec",
            "Changes one entry of the field's value map for this customer.",
            (
                _FIELD,
                ParamSpec("from", "value", "the source value (compared trimmed, any case)"),
                ParamSpec("to", "any", "what to send instead"),
            ),
            {"field": "status", "from": "on-hold", "to": "pending"},
            _describe_override,
            _check_override,
        ),
        RuleKind(
            "special_code",
            "Send a special code for a value",
            "spec",
            "When the field's source value is one of the given values, send a fixed code instead.",
            (
                _FIELD,
                ParamSpec("when", "values", "the source value(s) that get the code"),
                ParamSpec("code", "value", "the code to send"),
                ParamSpec(
                    "source",
                    "path",
                    "where to read the value (default: the field's source in the mapping)",
                    required=False,
                ),
            ),
            {"field": "status", "when": "cancelled", "code": "X"},
            _describe_code,
        ),
        RuleKind(
            "retry_policy",
            "A different retry policy",
            "delivery",
            "Failed deliveries retry on this schedule instead of the integration's own.",
            tuple(
                ParamSpec(name, "any", text, required=False)
                for name, text in (
                    ("max_attempts", "failed tries before giving up (1–50)"),
                    ("schedule", "seconds to wait after each failure, e.g. [60, 600, 3600]"),
                    ("jitter", "random spread as a fraction (0–1)"),
                    ("cap_seconds", "longest wait"),
                    ("hard_limit", "most tries in all, rate limits included"),
                )
            ),
            {"max_attempts": 3, "schedule": [60, 600, 3600]},
            _describe_retry,
            _check_retry,
        ),
        RuleKind(
            "delivery_window",
            "A different delivery window",
            "delivery",
            "Records are delivered only between start and end, in the customer's time zone.",
            (
                ParamSpec("start", "time", "window start, e.g. '22:00'"),
                ParamSpec("end", "time", "window end, e.g. '05:00' (may wrap midnight)"),
            ),
            {"start": "22:00", "end": "05:00"},
            _describe_window,
            _check_window,
        ),
        RuleKind(
            "destination_owned",
            "Treat a field as destination-owned",
            "spec",
            "The field is sent when a record is created and never overwritten by updates.",
            (_FIELD,),
            {"field": "phone"},
            _describe_owned,
        ),
        RuleKind(
            "merge_policy",
            "Merge policy for related records",
            "spec",
            "Changes which related record's value wins when records of one entity are merged.",
            (
                ParamSpec("order", "roles", "role ranking for the whole record, best first", required=False),
                ParamSpec("fields", "field_roles", "per destination field, a role ranking", required=False),
                ParamSpec("role_path", "path", "where a record's role is (default: the mapping's)", required=False),
            ),
            {"order": ["billing", "primary"], "fields": {"email": ["primary"]}},
            _describe_merge,
            _check_merge,
        ),
    )
}

# Spec patches apply by kind in this order (see the module docstring).
SPEC_ORDER: Final = ("merge_policy", "destination_owned", "default_for_blank", "value_map_override", "special_code")


def get(kind: str) -> RuleKind:
    try:
        return KINDS[kind]
    except KeyError:
        raise KeyError(f"unknown rule kind {kind!r} (known: {', '.join(KINDS)})") from None


def validate_params(kind: str, params: Any) -> list[str]:
    """Every problem with ``params`` for ``kind``, each naming its parameter; [] when valid."""
    if kind not in KINDS:
        return [f"unknown rule kind {kind!r} (known: {', '.join(KINDS)})"]
    if not isinstance(params, dict):
        return ["parameters must be an object"]
    try:
        text = exactjson.dumps(params, sort_keys=True)
    except (TypeError, ValueError) as exc:
        return [f"parameters must be plain JSON data: {exc}"]
    return list(_validation(kind, text))


@lru_cache(maxsize=1024)
def _validation(kind: str, text: str) -> tuple[str, ...]:
    params = exactjson.loads(text)
    rule_kind = KINDS[kind]
    errors: list[str] = []
    known = {p.name for p in rule_kind.params}
    if kind == "merge_policy":
        known.add("mode")  # reported with a better message by the kind's check
    unknown = set(params) - known
    if unknown:
        errors.append(f"unknown parameters: {', '.join(sorted(unknown))} (use {', '.join(sorted(known))})")
    for param in rule_kind.params:
        if param.name not in params:
            if param.required:
                errors.append(f"{param.name} is required: {param.description}")
            continue
        problem = _check_type(param, params[param.name])
        if problem:
            errors.append(problem)
    if not errors and rule_kind.check is not None:
        errors += rule_kind.check(params)
    return tuple(errors)


def check_params(kind: str, params: Any) -> None:
    """Raise RuleParamError when ``params`` do not fit ``kind``."""
    errors = validate_params(kind, params)
    if errors:
        raise RuleParamError(errors)


def describe_rule(kind: str, params: dict[str, Any]) -> str:
    """The rule in plain language; never raises (an invalid rule says so)."""
    if validate_params(kind, params):
        return f"{kind} (its parameters are not valid: {'; '.join(validate_params(kind, params))})"
    return KINDS[kind].describe(params)


def check_against_spec(kind: str, params: dict[str, Any], spec: dict[str, Any]) -> list[str]:
    """Problems applying a (valid) rule to a mapping spec: a field it names that the mapping
    lacks, a value-map override on a field without a value map, a merge policy without groups."""
    if validate_params(kind, params) or KINDS[kind].stage != "spec":
        return []
    fields = {f.get("name"): f for f in spec.get("fields", []) if isinstance(f, dict)}
    if kind == "merge_policy":
        group = (spec.get("record") or {}).get("group")
        if not isinstance(group, dict):
            return ["the mapping does not merge related records (no record.group)"]
        problems = [f"the mapping has no field {n!r}" for n in (params.get("fields") or {}) if n not in fields]
        if params.get("order") and not params.get("role_path") and not (group.get("precedence") or {}).get("path"):
            problems.append("the mapping names no role path (record.group.precedence.path); give role_path")
        return problems
    name = params["field"]
    if name not in fields:
        if kind == "special_code" and params.get("source"):
            return []  # the rule adds the field
        return [f"the mapping has no field {name!r}"]
    if kind == "value_map_override" and not isinstance(fields[name].get("value_map"), dict):
        return [f"field {name!r} has no value map to override"]
    if kind == "special_code" and not params.get("source") and "source" not in fields[name]:
        return [f"field {name!r} has no source to compare; give source"]
    return []


# --------------------------------------------------------------------------- applying


class _NotApplicable(Exception):
    pass


@dataclass
class _Work:
    """A copy-on-write view of the spec: only what a patch touches is copied."""

    base: dict[str, Any]
    spec: dict[str, Any] | None = None
    copied: set[int] = field(default_factory=set)
    copied_keys: set[str] = field(default_factory=set)

    def current(self) -> dict[str, Any]:
        return self.spec if self.spec is not None else self.base

    def _own(self) -> dict[str, Any]:
        if self.spec is None:
            self.spec = dict(self.base)
            self.spec["fields"] = list(self.base.get("fields", []))
        return self.spec

    def field_index(self, name: str) -> int | None:
        for i, f in enumerate(self.current().get("fields", [])):
            if isinstance(f, dict) and f.get("name") == name:
                return i
        return None

    def base_source(self, name: str) -> Any:
        for f in self.base.get("fields", []):
            if isinstance(f, dict) and f.get("name") == name:
                return f.get("source")
        return None

    def field_for_edit(self, index: int) -> dict[str, Any]:
        spec = self._own()
        if index not in self.copied:
            spec["fields"][index] = exactjson.loads(exactjson.dumps(spec["fields"][index]))
            self.copied.add(index)
        return spec["fields"][index]  # type: ignore[no-any-return]

    def add_field(self, value: dict[str, Any]) -> None:
        spec = self._own()
        spec["fields"].append(value)
        self.copied.add(len(spec["fields"]) - 1)

    def record_for_edit(self) -> dict[str, Any]:
        spec = self._own()
        if "record" not in self.copied_keys:
            spec["record"] = exactjson.loads(exactjson.dumps(spec.get("record", {})))
            self.copied_keys.add("record")
        return spec["record"]  # type: ignore[no-any-return]


def _blanks(spec: dict[str, Any]) -> frozenset[str]:
    raw = spec.get("blank_values")
    values = raw if isinstance(raw, list) else DEFAULT_BLANKS
    return frozenset(str(v).strip().casefold() for v in values)


def _is_blank(value: Any, blanks: frozenset[str]) -> bool:
    if value is None or value is MISSING:
        return True
    if isinstance(value, str):
        return not value.strip() or value.strip().casefold() in blanks
    return isinstance(value, dict | list) and not value


def _source_value(source: Any, record: Any, blanks: frozenset[str]) -> Any:
    """The value a field reads, as received: one path, the first non-blank of several, or the
    named parts; MISSING when the field has no source or the record lacks it."""
    try:
        if isinstance(source, str):
            return lookup(record, parse_path(source))
        if isinstance(source, list):
            first: Any = MISSING
            for path in source:
                value = lookup(record, parse_path(path))
                if not _is_blank(value, blanks):
                    return value
                if first is MISSING:
                    first = value
            return first
        if isinstance(source, dict):
            return {k: lookup(record, parse_path(p)) for k, p in source.items()}
    except PathError:
        return MISSING
    return MISSING


def _note(rule: RuleData, label: str, effect: str) -> str:
    who = f"rule #{rule.id}" if rule.id is not None else "a rule"
    why = f" Why: {rule.reason.strip()}" if rule.reason.strip() else ""
    return f"{who} ({label}): {effect}.{why}"


def _fired(rule: RuleData, effect: str, field_name: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": rule.id,
        "kind": rule.kind,
        "summary": describe_rule(rule.kind, rule.params),
        "effect": effect,
    }
    if field_name:
        entry["field"] = field_name
    return entry


def _patch(rule: RuleData, work: _Work, record: Any, blanks: frozenset[str]) -> tuple[str, str | None] | None:
    """Apply one spec rule. Returns (effect, destination field) when it fires for this record,
    None when it is in place but this record gives it nothing to do; raises _NotApplicable."""
    p = rule.params
    kind = rule.kind
    if kind == "merge_policy":
        group = (work.current().get("record") or {}).get("group")
        if not isinstance(group, dict):
            raise _NotApplicable("the mapping does not merge related records")
        record_options = work.record_for_edit()
        group = record_options["group"]
        if p.get("order"):
            path = p.get("role_path") or (group.get("precedence") or {}).get("path")
            if not path:
                raise _NotApplicable("the mapping names no role path; give role_path")
            group["precedence"] = {"path": path, "order": list(p["order"])}
        for name, roles in (p.get("fields") or {}).items():
            index = work.field_index(name)
            if index is None:
                raise _NotApplicable(f"the mapping has no field {name!r}")
            work.field_for_edit(index)["precedence"] = list(roles)
        key = lookup(record, parse_path(group["key"])) if isinstance(group.get("key"), str) else MISSING
        if _is_blank(key, blanks):
            return None
        return f"related records of group {_show(key)} merged with this precedence", None

    name = p["field"]
    index = work.field_index(name)
    if kind == "special_code":
        # Compare with the mapping's own source (an earlier special code may have replaced the field).
        source = p.get("source") or work.base_source(name)
        if source is None:
            raise _NotApplicable(f"the mapping has no field {name!r} with a source to compare")
        value = _source_value(source, record, blanks)
        if (
            value is MISSING
            or isinstance(value, dict | list)
            or _key(value) not in {_key(w) for w in _values(p["when"])}
        ):
            return None
        replacement: dict[str, Any] = {"name": name, "convert": [{"name": "constant", "value": p["code"]}]}
        if index is None:
            work.add_field(replacement)
        else:
            current = work.field_for_edit(index)
            for key in ("owner", "description"):
                if key in current:
                    replacement[key] = current[key]
            current.clear()
            current.update(replacement)
        return f"the value {_show(value)} is sent as the code {_show(p['code'])}", name
    if index is None:
        raise _NotApplicable(f"the mapping has no field {name!r}")
    target = work.field_for_edit(index)
    value = _source_value(target.get("source"), record, blanks)
    if kind == "destination_owned":
        target["owner"] = "destination"
        if _is_blank(value, blanks):
            return None
        return "owned by the destination: sent on create, not overwritten on update", name
    if kind == "default_for_blank":
        target["on_blank"] = "default"
        target["default"] = p["value"]
        if "source" in target and _is_blank(value, blanks):
            return f"the source value was blank, so {_show(p['value'])} is sent", name
        return None
    if kind == "value_map_override":
        table = target.get("value_map")
        if not isinstance(table, dict):
            raise _NotApplicable(f"field {name!r} has no value map to override")
        wanted = _key(p["from"])
        old: Any = MISSING
        for existing in list(table):
            if _key(existing) == wanted:
                old = table.pop(existing)
        table[str(p["from"])] = p["to"]
        if value is MISSING or isinstance(value, dict | list) or _key(value) != wanted:
            return None
        was = f"the mapping says {_show(old)}" if old is not MISSING else "the mapping has no entry for it"
        return f"{_show(value)} is sent as {_show(p['to'])} ({was})", name
    raise _NotApplicable(f"{kind} is not a spec rule")  # pragma: no cover


def apply_rules(rules: list[RuleData], record: Any, spec_dict: dict[str, Any]) -> RuleOutcome:
    """Apply the rules to one source record and its mapping spec, in the documented order.

    Never raises and never changes ``spec_dict``. Delivery-stage rules (retry policy, delivery
    window) are not applied here: see ``retry_policy_from_rules`` and ``window_from_rules``."""
    outcome = RuleOutcome(spec=spec_dict)
    invalid: list[tuple[RuleData, list[str]]] = []
    staged: dict[str, list[RuleData]] = {}
    for rule in rules:
        errors = validate_params(rule.kind, rule.params)
        if errors:
            invalid.append((rule, errors))
            continue
        staged.setdefault(rule.kind, []).append(rule)

    if invalid:
        rule, errors = invalid[0]
        who = f"rule #{rule.id}" if rule.id is not None else "a rule"
        outcome.hold = (
            f"Held: customer {who} ({rule.kind}) is not valid ({'; '.join(errors)}); fix or retire it, then resend"
        )
        outcome.hold_rule_id = rule.id
        outcome.fired.append(_fired(rule, "held the record because the rule is not valid"))
        return outcome

    # 1. On the raw record: skip, then hold. The first match decides.
    for kind in ("skip_when", "hold_for_review"):
        for rule in staged.get(kind, []):
            if not conditions.matches(_condition_of(rule.params), record):
                continue
            what = conditions.describe(_condition_of(rule.params))
            why = f" — {rule.reason.strip()}" if rule.reason.strip() else ""
            if kind == "skip_when":
                outcome.skip = f"Skipped by customer rule #{rule.id}: {what}{why}"
                outcome.fired.append(_fired(rule, f"skipped the record because {what}"))
            else:
                message = rule.params.get("message") or rule.reason.strip()
                outcome.hold = f"Held for review by customer rule #{rule.id}: {what}" + (
                    f" — {message}" if message else ""
                )
                outcome.hold_rule_id = rule.id
                outcome.fired.append(_fired(rule, f"held the record for review because {what}"))
            return outcome

    # 2. Patches to the spec, before mapping.
    work = _Work(base=spec_dict)
    blanks = _blanks(spec_dict)
    patched: list[int | None] = []
    for kind in SPEC_ORDER:
        for rule in staged.get(kind, []):
            label = KINDS[kind].label.lower()
            try:
                result = _patch(rule, work, record, blanks)
            except _NotApplicable as exc:
                outcome.warnings.append(f"rule #{rule.id} ({kind}) does not apply to this mapping: {exc}")
                continue
            except (PathError, KeyError, TypeError, ValueError) as exc:
                outcome.warnings.append(f"rule #{rule.id} ({kind}) could not be applied: {exc}")
                continue
            if result is None:
                if kind != "special_code":  # a special code changes the spec only when it fires
                    patched.append(rule.id)
                continue
            patched.append(rule.id)
            effect, field_name = result
            outcome.fired.append(_fired(rule, effect, field_name))
            if field_name:
                outcome.field_notes.setdefault(field_name, []).append(_note(rule, label, effect))
    outcome.spec = work.current()
    outcome.patched_by = tuple(patched) if work.spec is not None else ()
    return outcome


def _last(rules: list[RuleData], kind: str) -> RuleData | None:
    chosen = None
    for rule in rules:
        if rule.kind == kind and not validate_params(kind, rule.params):
            chosen = rule
    return chosen


def retry_policy_from_rules(rules: list[RuleData]) -> tuple[rp.RetryPolicy, RuleData] | None:
    """The policy of the last valid ``retry_policy`` rule (the most specific, newest), if any."""
    rule = _last(rules, "retry_policy")
    return (rp.policy_from_dict(rule.params), rule) if rule else None


def window_from_rules(rules: list[RuleData]) -> tuple[time, time, RuleData] | None:
    """The window of the last valid ``delivery_window`` rule, if any."""
    rule = _last(rules, "delivery_window")
    return (parse_time(rule.params["start"]), parse_time(rule.params["end"]), rule) if rule else None


def special_fields(rules: list[RuleData]) -> dict[str, list[RuleData]]:
    """Destination field → the spec rules that change it (for the complexity check)."""
    out: dict[str, list[RuleData]] = {}
    for rule in rules:
        if rule.kind in SPEC_ORDER and rule.kind != "merge_policy" and not validate_params(rule.kind, rule.params):
            out.setdefault(rule.params["field"], []).append(rule)
    return out


__all__ = [
    "KINDS",
    "SPEC_ORDER",
    "ParamSpec",
    "RuleData",
    "RuleKind",
    "RuleOutcome",
    "RuleParamError",
    "apply_rules",
    "check_against_spec",
    "check_params",
    "describe_policy",
    "describe_rule",
    "get",
    "parse_time",
    "retry_policy_from_rules",
    "validate_params",
    "window_from_rules",
]
