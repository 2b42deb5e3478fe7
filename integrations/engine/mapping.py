"""The mapping engine: a spec and a source record in, the destination record out — or the
problems that stop it, with a per-field trace of how every value was reached.

Pure: no ORM, no network, no settings. The spec is data (``MappingVersion.spec``; also a
YAML/JSON text file, see ``spectext.py``), checked against ``spec_schema.json`` and by
``validate_spec``, compiled once by ``compile_spec`` (paths parsed, conversions bound, value maps
normalised) and then applied to any number of records by ``map_record`` / ``map_group``, which
never raise. See docs/mapping.md for the spec format.

What a blank means is decided per field (``on_blank``), never by accident: by default a blank
source value is *left out* of the output, so an update does not wipe the destination's value
(CASES B06); ``clear`` sends an explicit null; ``default`` sends a fixed value; ``reject`` and
``review`` stop the record. Blank = missing, null, empty, whitespace only, an empty list or
object, or one of the spec's placeholders (``N/A``, ``NULL``, ``-`` by default; any case).
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, Final, Literal

import jsonschema

from integrations.engine import dedupe, exactjson, specdiff, transforms
from integrations.engine.dedupe import DuplicateConfig, DuplicateFinding
from integrations.engine.paths import MISSING, PathError, Step, lookup, parse_path

Decision = Literal["deliver", "reject", "review"]
Action = Literal["drop", "reject", "review"]

DEFAULT_BLANK_VALUES: Final = ("N/A", "NULL", "-")
ON_BLANK: Final = ("keep", "clear", "default", "reject", "review")
ON_INVALID: Final = ("drop", "reject", "review")
RECORD_FIELD = "(record)"

SCHEMA: Final[dict[str, Any]] = json.loads((Path(__file__).with_name("spec_schema.json")).read_text("utf-8"))
_VALIDATOR: Final = jsonschema.Draft202012Validator(SCHEMA)

__all__ = [
    "CompiledSpec",
    "DuplicateFinding",
    "MappingContext",
    "MappingResult",
    "ParentLink",
    "Problem",
    "RecordMeta",
    "SpecError",
    "compile_spec",
    "diff_specs",
    "find_duplicates",
    "map_group",
    "map_record",
    "match_keys",
    "parent_link",
    "record_meta",
    "validate_spec",
]


class SpecError(ValueError):
    """A spec that cannot be used. ``errors`` lists every problem, each naming its field."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors) or "invalid mapping spec")
        self.errors = list(errors)


# --------------------------------------------------------------------------- public data


@dataclass(frozen=True)
class RecordMeta:
    """What the pipeline needs to know about a record before mapping it (cheap, never raises)."""

    source_id: str | None = None
    updated_at: datetime | None = None  # aware, UTC
    event_id: str | None = None
    parent_id: str | None = None
    group_key: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "source_id": self.source_id,
            "updated_at": transforms.format_utc(self.updated_at) if self.updated_at else None,
            "event_id": self.event_id,
            "parent_id": self.parent_id,
            "group_key": self.group_key,
        }


@dataclass
class MappingContext:
    """What the caller knows that the record does not say.

    ``is_update``: the destination already has this record (destination-owned fields are then
    left out). ``parent_destination_id``: the parent's id at the destination, written to the
    parent link's ``output_field``. ``field_notes``: notes from the exception-rules layer, per
    destination field, shown in that field's trace."""

    is_update: bool = False
    parent_destination_id: str | None = None
    field_notes: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class Problem:
    """Why a field (or the record) could not be mapped as is, in words support understands."""

    field: str
    raw: Any
    rule: str
    reason: str
    code: str  # unmapped_value, invalid_value, blank_required, conversion_error, not_an_object, ...
    action: Action

    def to_json(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "raw": _jsonable(self.raw),
            "rule": self.rule,
            "reason": self.reason,
            "code": self.code,
            "action": self.action,
        }


@dataclass
class MappingResult:
    decision: Decision
    output: dict[str, Any]
    problems: list[Problem]
    trace: list[dict[str, Any]]
    meta: RecordMeta
    cleared: list[str] = field(default_factory=list)  # sent as explicit null
    omitted: list[str] = field(default_factory=list)  # left out of the output

    def to_json(self) -> dict[str, Any]:
        """Plain data (Decimals allowed: write it with ``exactjson.dumps``)."""
        return {
            "decision": self.decision,
            "output": _jsonable(self.output),
            "problems": [p.to_json() for p in self.problems],
            "trace": _jsonable(self.trace),
            "meta": self.meta.to_json(),
            "cleared": list(self.cleared),
            "omitted": list(self.omitted),
        }


@dataclass(frozen=True)
class ParentLink:
    """A child record's link to its parent: where the parent's source id is in the child
    (``path``), which integration delivers the parent (slug; None = this one) and which output
    field receives the parent's destination id."""

    path: str
    integration: str | None = None
    output_field: str | None = None


# --------------------------------------------------------------------------- compiled spec


@dataclass(frozen=True)
class CompiledStep:
    name: str
    label: str
    call: Callable[[Any], Any]


@dataclass(frozen=True)
class CompiledField:
    name: str
    out_path: tuple[str, ...]
    nested: bool
    plain: bool  # one path or first-non-blank of several (the inlined fast path)
    source_kind: Literal["none", "one", "first", "named"]
    # (part name or "", path text, parsed path, key, key2): key (and key2) when the path is one
    # key (or two keys) — then the lookup is inlined — else None
    sources: tuple[tuple[str, str, tuple[Step, ...], str | None, str | None], ...]
    source_label: str | None
    destination_owned: bool
    steps: tuple[CompiledStep, ...]
    required: bool
    on_blank: str
    default: Any
    on_invalid: Action
    precedence: tuple[str, ...] | None


@dataclass(frozen=True)
class GroupOptions:
    key: tuple[Step, ...]
    mode: Literal["merge", "separate"]
    role_path: tuple[Step, ...] | None
    order: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class CompiledSpec:
    """A checked, ready-to-run spec. Immutable; ``digest`` identifies its content (compile_spec
    returns the same object for the same content, so compiling per chunk is cheap)."""

    digest: str
    fields: tuple[CompiledField, ...]
    blanks: frozenset[str]
    blank_max: int  # longest placeholder: longer texts are never compared with them
    nfc: bool
    source_id: tuple[Step, ...] | None
    updated_at: tuple[tuple[Step, ...], str, str | None] | None
    event_id: tuple[Step, ...] | None
    parent: ParentLink | None
    parent_path: tuple[Step, ...] | None
    group: GroupOptions | None
    duplicates: DuplicateConfig
    spec_text: str = field(repr=False)  # the canonical JSON text it was compiled from
    # A cache of per-record-shape lookup plans (see _plan); not part of the spec's meaning.
    plans: dict[tuple[str, ...], Any] = field(default_factory=dict, repr=False)

    @property
    def full_plan(self) -> tuple[Any, ...]:
        return tuple(f.sources for f in self.fields)

    @property
    def spec(self) -> dict[str, Any]:
        """A fresh copy of the spec (the compiled object never shares mutable state)."""
        return exactjson.loads(self.spec_text)  # type: ignore[no-any-return]

    @property
    def group_mode(self) -> Literal["merge", "separate"] | None:
        return self.group.mode if self.group else None


# --------------------------------------------------------------------------- validation


def _field_label(spec: Any, index: int) -> str:
    try:
        name = spec["fields"][index]["name"]
    except (KeyError, IndexError, TypeError):
        name = None
    return f"field {name!r}" if isinstance(name, str) else f"fields[{index}]"


def _schema_errors(spec: dict[str, Any]) -> list[str]:
    errors: list[str] = []
    for err in sorted(_VALIDATOR.iter_errors(spec), key=lambda e: [str(p) for p in e.absolute_path]):
        path = list(err.absolute_path)
        if len(path) >= 2 and path[0] == "fields" and isinstance(path[1], int):
            where = _field_label(spec, path[1])
            rest = ".".join(str(p) for p in path[2:])
            where = f"{where} {rest}".strip()
        else:
            where = ".".join(str(p) for p in path) or "spec"
        message = err.message
        if err.validator == "oneOf":
            message = f"{_short(err.instance)} is not a valid {path[-1] if path else 'value'}"
        errors.append(f"{where}: {message}")
    return errors


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 60 else text[:57] + "..."


def _steps_of(raw_field: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    for step in raw_field.get("convert", []):
        if isinstance(step, str):
            out.append((step, {}))
        else:
            out.append((step["name"], {k: v for k, v in step.items() if k != "name"}))
    if "value_map" in raw_field:
        args: dict[str, Any] = {"map": raw_field["value_map"]}
        if "value_map_default" in raw_field:
            args["default"] = raw_field["value_map_default"]
        out.append(("value_map", args))
    return out


def _path_errors(where: str, value: Any) -> list[str]:
    paths = [value] if isinstance(value, str) else list(value.values()) if isinstance(value, dict) else list(value)
    errors = []
    for p in paths:
        try:
            parse_path(p)
        except PathError as exc:
            errors.append(f"{where}: {exc}")
    return errors


def _semantic_errors(spec: dict[str, Any]) -> list[str]:
    errors: list[str] = []
    region = spec.get("default_region")
    if region and region.upper() not in transforms.SUPPORTED_REGIONS:
        errors.append(f"default_region: {region!r} is not a known phone region")
    country = spec.get("default_country")
    if country and transforms.country_code(country) is None:
        errors.append(f"default_country: {country!r} is not a country we recognise")
    record = spec.get("record", {})
    for key in ("source_id", "event_id"):
        if key in record:
            errors += _path_errors(f"record.{key}", record[key])
    if "updated_at" in record:
        option = record["updated_at"]
        option = {"path": option} if isinstance(option, str) else option
        errors += _path_errors("record.updated_at", option["path"])
        errors += [
            f"record.updated_at: {e.split(': ', 1)[-1]}"
            for e in transforms.check_args("datetime", {k: v for k, v in option.items() if k != "path"})
        ]
    if "parent" in record:
        errors += _path_errors("record.parent", record["parent"]["path"])
    if "group" in record:
        errors += _path_errors("record.group.key", record["group"]["key"])
        if "precedence" in record["group"]:
            errors += _path_errors("record.group.precedence", record["group"]["precedence"]["path"])
    dup = record.get("duplicates", {})
    for key in ("key", "email", "phone", "name"):
        if key in dup:
            errors += _path_errors(f"record.duplicates.{key}", dup[key])
    for label, source in dup.get("compare", {}).items():
        errors += _path_errors(f"record.duplicates.compare.{label}", source)
    if dup.get("region") and dup["region"].upper() not in transforms.SUPPORTED_REGIONS:
        errors.append(f"record.duplicates.region: {dup['region']!r} is not a known phone region")

    seen: dict[str, int] = {}
    for index, raw_field in enumerate(spec.get("fields", [])):
        where = _field_label(spec, index)
        name = raw_field["name"]
        if name in seen:
            errors.append(f"{where}: the destination field {name!r} is mapped twice")
        seen[name] = index
        if any(not part for part in name.split(".")):
            errors.append(f"{where}: name {name!r} has an empty part")
        steps = _steps_of(raw_field)
        if "source" in raw_field:
            errors += _path_errors(where, raw_field["source"])
        elif not steps or steps[0][0] != "constant":
            errors.append(f"{where}: has no source; give a source path or start the conversions with constant")
        for step_name, args in steps:
            errors += [f"{where}: {msg}" for msg in transforms.check_args(step_name, args)]
        on_blank = raw_field.get("on_blank")
        if raw_field.get("required") and on_blank in ("keep", "clear"):
            errors.append(f"{where}: a required field cannot {on_blank} on blank; use reject, review or default")
        if on_blank == "default" and "default" not in raw_field:
            errors.append(f"{where}: on_blank is default but no default is given")
        if "default" in raw_field and on_blank not in (None, "default"):
            errors.append(f"{where}: a default is given but on_blank is {on_blank!r} (use on_blank: default)")
        if "value_map_default" in raw_field and "value_map" not in raw_field:
            errors.append(f"{where}: value_map_default without a value_map")
        if "precedence" in raw_field and "group" not in record:
            errors.append(f"{where}: precedence needs record.group")
    parent = record.get("parent")
    if parent and parent.get("output_field") in seen:
        errors.append(f"record.parent.output_field: {parent['output_field']!r} is also a mapped field")
    return errors


def validate_spec(spec: dict[str, Any]) -> list[str]:
    """Every problem with a spec, each naming the field it concerns; [] when the spec is valid."""
    if not isinstance(spec, dict):
        return ["the spec must be an object (a mapping of options), not " + type(spec).__name__]
    try:
        exactjson.dumps(spec)
    except (TypeError, ValueError) as exc:
        return [f"the spec must be plain JSON data: {exc}"]
    try:
        errors = _schema_errors(spec)
        try:
            semantic = _semantic_errors(spec)
        except (KeyError, TypeError, AttributeError, ValueError):
            # The shape is wrong (already reported above); the checks that need it cannot run.
            semantic = []
        return errors + [e for e in semantic if e not in errors]
    except RecursionError:
        return ["the spec is nested too deeply"]


# --------------------------------------------------------------------------- compiling


_COMPILED: dict[str, CompiledSpec] = {}
_COMPILED_MAX = 256


def compile_spec(spec: dict[str, Any]) -> CompiledSpec:
    """Check and prepare a spec. Raises SpecError (never anything else) when it is not valid.
    The same content always gives the same compiled object (a small cache keyed by content)."""
    errors = validate_spec(spec)
    if errors:
        raise SpecError(errors)
    text = exactjson.dumps(spec, sort_keys=True)
    cached = _COMPILED.get(text)
    if cached is not None:
        return cached
    try:
        compiled = _compile(exactjson.loads(text), text)
    except SpecError:
        raise
    except Exception as exc:  # a check missed something: still a SpecError for the caller
        raise SpecError([f"the spec could not be compiled: {exc}"]) from exc
    if len(_COMPILED) >= _COMPILED_MAX:
        _COMPILED.clear()
    _COMPILED[text] = compiled
    return compiled


def _label(name: str, args: dict[str, Any]) -> str:
    if name == "value_map" or not args:
        return name
    shown = ", ".join(f"{k}={v!r}" for k, v in args.items())
    return f"{name}({shown})"


def _source(part: str, path: str) -> tuple[str, str, tuple[Step, ...], str | None, str | None]:
    steps = parse_path(path)
    key = key2 = None
    if len(steps) <= 2 and all(isinstance(s, str) for s in steps):
        key = str(steps[0])
        key2 = str(steps[1]) if len(steps) == 2 else None
    return part, path, steps, key, key2


def _compile_field(raw: dict[str, Any], spec: dict[str, Any]) -> CompiledField:
    source = raw.get("source")
    sources: tuple[tuple[str, str, tuple[Step, ...], str | None, str | None], ...]
    kind: Literal["none", "one", "first", "named"]
    if source is None:
        kind, sources, label = "none", (), None
    elif isinstance(source, str):
        kind, sources, label = "one", (_source("", source),), source
    elif isinstance(source, list):
        kind, label = "first", " | ".join(source)
        sources = tuple(_source("", p) for p in source)
    else:
        kind = "named"
        sources = tuple(_source(k, p) for k, p in source.items())
        label = "{" + ", ".join(f"{k}: {p}" for k, p in source.items()) + "}"
    steps = []
    for name, args in _steps_of(raw):
        bound = dict(args)
        if name == "phone_e164" and "region" not in bound and spec.get("default_region"):
            bound["region"] = spec["default_region"]
        if name == "postal_code" and "country" not in bound and spec.get("default_country"):
            bound["country"] = spec["default_country"]
        steps.append(CompiledStep(name, _label(name, args), transforms.bind(name, bound)))
    required = bool(raw.get("required", False))
    on_blank = raw.get("on_blank") or ("default" if "default" in raw else "reject" if required else "keep")
    return CompiledField(
        name=raw["name"],
        out_path=tuple(raw["name"].split(".")),
        nested="." in raw["name"],
        plain=kind in ("one", "first"),
        source_kind=kind,
        sources=sources,
        source_label=label,
        destination_owned=raw.get("owner") == "destination",
        steps=tuple(steps),
        required=required,
        on_blank=on_blank,
        default=raw.get("default"),
        on_invalid=raw.get("on_invalid", "review"),
        precedence=tuple(raw["precedence"]) if "precedence" in raw else None,
    )


def _paths(source: Any) -> tuple[tuple[Step, ...], ...]:
    if source is None:
        return ()
    if isinstance(source, str):
        return (parse_path(source),)
    items = source.values() if isinstance(source, dict) else source
    return tuple(parse_path(p) for p in items)


def _compile(spec: dict[str, Any], text: str) -> CompiledSpec:
    record = spec.get("record", {})
    updated = record.get("updated_at")
    updated_at = None
    if updated is not None:
        option = {"path": updated} if isinstance(updated, str) else updated
        updated_at = (parse_path(option["path"]), option.get("format", "iso"), option.get("assume_tz"))
    parent = record.get("parent")
    group = record.get("group")
    group_options = None
    if group is not None:
        precedence = group.get("precedence")
        group_options = GroupOptions(
            key=parse_path(group["key"]),
            mode=group.get("mode", "merge"),
            role_path=parse_path(precedence["path"]) if precedence else None,
            order=tuple(transforms.value_key(r) for r in precedence["order"]) if precedence else (),
        )
    dup = record.get("duplicates", {})
    duplicates = DuplicateConfig(
        key=parse_path(dup["key"]) if "key" in dup else None,
        key_label=dup.get("key", "key"),
        email=_paths(dup.get("email")),
        phone=_paths(dup.get("phone")),
        name=_paths(dup.get("name")),
        compare=tuple((label, _paths(src)) for label, src in dup.get("compare", {}).items()),
        region=(dup.get("region") or spec.get("default_region") or None),
    )
    blanks = frozenset(transforms.nfc(b).strip().casefold() for b in spec.get("blank_values", DEFAULT_BLANK_VALUES))
    return CompiledSpec(
        digest=_digest(text),
        fields=tuple(_compile_field(f, spec) for f in spec["fields"]),
        blanks=blanks,
        blank_max=max((len(b) for b in blanks), default=0),
        nfc=bool(spec.get("unicode_nfc", True)),
        source_id=parse_path(record["source_id"]) if "source_id" in record else None,
        updated_at=updated_at,
        event_id=parse_path(record["event_id"]) if "event_id" in record else None,
        parent=ParentLink(parent["path"], parent.get("integration"), parent.get("output_field")) if parent else None,
        parent_path=parse_path(parent["path"]) if parent else None,
        group=group_options,
        duplicates=duplicates,
        spec_text=text,
    )


def _digest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


# --------------------------------------------------------------------------- helpers


def _jsonable(value: Any, depth: int = 0) -> Any:
    """The value made safe for JSON (Decimals kept); never raises."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if value is MISSING:
        return None
    if kind is Decimal:
        return value if value.is_finite() else str(value)
    if kind is float:
        return value if value == value and value not in (float("inf"), float("-inf")) else str(value)
    if depth > 200:
        return "…"
    if isinstance(value, dict):
        return {str(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v, depth + 1) for v in value]
    if isinstance(value, datetime):
        return transforms.format_utc(value) if value.tzinfo else value.isoformat()
    if isinstance(value, bool | int | str):
        return kind.__base__(value) if kind.__base__ in (int, str) else bool(value)
    return repr(value)


def _is_blank(value: Any, blanks: frozenset[str]) -> bool:
    if value is None or value is MISSING:
        return True
    kind = type(value)
    if kind is str:
        stripped = value.strip()
        return not stripped or stripped.casefold() in blanks
    if isinstance(value, str):
        return not value.strip() or value.strip().casefold() in blanks
    if kind is dict or kind is list:
        return not value
    return False


def _norm(value: Any) -> Any:
    if type(value) is str and not value.isascii():
        return unicodedata.normalize("NFC", value)
    return value


def _deep_norm(value: Any) -> Any:
    if isinstance(value, str):
        return _norm(value)
    if isinstance(value, dict):
        return {k: _deep_norm(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_norm(v) for v in value]
    return value


def _id_text(value: Any) -> str | None:
    if value is None or value is MISSING or isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = _norm(value).strip()
        return text or None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal) and value.is_finite():
        return str(int(value)) if value == value.to_integral_value() else str(value)
    return None


def _read(f: CompiledField, record: Any, spec: CompiledSpec) -> tuple[Any, str | None, bool]:
    """(raw value with NFC applied, the path it came from, whether it is blank).

    The hot path of the engine: single-key paths are a dict lookup, the blank test is inline
    and placeholders are only compared for short texts."""
    blanks = spec.blanks
    short = spec.blank_max
    kind = f.source_kind
    if kind == "one" or kind == "first":
        first: Any = MISSING
        for _, text, steps, _key, _key2 in f.sources:
            value = lookup(record, steps)
            if value is None or value is MISSING:
                pass
            elif type(value) is str:
                stripped = value.strip()
                if stripped and (len(stripped) > short or stripped.casefold() not in blanks):
                    if spec.nfc and not value.isascii():
                        value = unicodedata.normalize("NFC", value)
                    return value, text, False
            elif (type(value) is dict or type(value) is list) and not value:
                pass
            else:
                return value, text, False
            if first is MISSING:
                first = value
        return first, f.source_label, True
    if kind == "named":
        parts: dict[str, Any] = {}
        blank = True
        for part, _, steps, _key, _key2 in f.sources:
            value = lookup(record, steps)
            if _is_blank(value, blanks):
                parts[part] = None
            else:
                parts[part] = _norm(value) if spec.nfc else value
                blank = False
        return (MISSING if blank else parts), f.source_label, blank
    return MISSING, None, False


class _Out:
    """Accumulates one result. Slots keep attribute access cheap on the hot path."""

    __slots__ = ("cleared", "notes", "omitted", "output", "problems", "trace")

    def __init__(self, notes: dict[str, list[str]]) -> None:
        self.output: dict[str, Any] = {}
        self.problems: list[Problem] = []
        self.trace: list[dict[str, Any]] = []
        self.cleared: list[str] = []
        self.omitted: list[str] = []
        self.notes = notes

    def put(self, f: CompiledField, value: Any) -> None:
        if len(f.out_path) == 1:
            self.output[f.name] = value
            return
        target = self.output
        for part in f.out_path[:-1]:
            nxt = target.get(part)
            if not isinstance(nxt, dict):
                nxt = target[part] = {}
            target = nxt
        target[f.out_path[-1]] = value


_KEPT_WHY: Final = "blank in the source: left out, so the destination keeps its value"


def _blank_outcome(f: CompiledField, raw: Any, entry: dict[str, Any], out: _Out, after: bool) -> None:
    where = "after conversion" if after else "in the source"
    policy = f.on_blank
    if policy == "keep":
        out.omitted.append(f.name)
        entry["result"] = "blank_kept"
        entry["why"] = f"blank {where}: left out, so the destination keeps its value"
    elif policy == "clear":
        out.put(f, None)
        out.cleared.append(f.name)
        entry["result"] = "cleared"
        entry["output"] = None
        entry["why"] = f"blank {where}: sent as an explicit clear (on_blank: clear)"
    elif policy == "default":
        out.put(f, f.default)
        entry["result"] = "default"
        entry["output"] = _jsonable(f.default)
        entry["why"] = f"blank {where}: sent the mapping's default"
    else:
        action: Action = "review" if policy == "review" else "reject"
        out.omitted.append(f.name)
        reason = f"{f.name} is required but blank {where}" if f.required else f"{f.name} is blank {where}"
        out.problems.append(
            Problem(f.name, _jsonable(raw), "required" if f.required else "on_blank", reason, "blank_required", action)
        )
        entry["result"] = "rejected" if action == "reject" else "review"
        entry["why"] = reason


def _invalid_outcome(
    f: CompiledField, raw: Any, step: CompiledStep, reason: str, code: str, entry: dict[str, Any], out: _Out
) -> None:
    action = f.on_invalid
    if code == "conversion_error" and action == "drop":
        action = "review"  # a crash in a conversion is ours to look at, not silently dropped
    out.omitted.append(f.name)
    out.problems.append(Problem(f.name, _jsonable(raw), step.name, reason, code, action))
    entry["result"] = {"drop": "dropped", "reject": "rejected", "review": "review"}[action]
    entry["why"] = reason + (" — left out (on_invalid: drop)" if action == "drop" else "")


def _apply(
    f: CompiledField, raw: Any, source: str | None, blank: bool, out: _Out, spec: CompiledSpec, origin: str | None
) -> None:
    """Run one field: blank policy, conversion chain, output, trace entry."""
    kind = type(raw)
    shown = raw if (kind is str or kind is int or raw is None) else _jsonable(raw)
    if blank or origin is not None or out.notes or not f.steps:
        _apply_general(f, raw, shown, source, blank, out, spec, origin)
        return
    # The common case, kept lean: a non-blank value through a conversion chain.
    value = raw
    trail: list[dict[str, Any]] = []
    for step in f.steps:
        try:
            value = step.call(value)
        except Exception as exc:
            entry = {"field": f.name, "source": source, "raw": shown, "steps": trail}
            out.trace.append(entry)
            _step_failed(f, raw, step, exc, trail, entry, out)
            return
        kind = type(value)
        trail.append({"conversion": step.label, "output": value if kind is str or kind is int else _jsonable(value)})
    if value is None or (kind is str and not value.strip()):
        entry = {"field": f.name, "source": source, "raw": shown, "steps": trail}
        out.trace.append(entry)
        _blank_outcome(f, raw, entry, out, after=True)
        return
    if kind is str and spec.nfc and not value.isascii():
        value = unicodedata.normalize("NFC", value)
    if f.nested:
        out.put(f, value)
    else:
        out.output[f.name] = value
    out.trace.append(
        {
            "field": f.name,
            "source": source,
            "raw": shown,
            "steps": trail,
            "result": "set",
            "output": value if kind is str or kind is int else _jsonable(value),
        }
    )


def _step_failed(
    f: CompiledField,
    raw: Any,
    step: CompiledStep,
    exc: Exception,
    trail: list[dict[str, Any]],
    entry: dict[str, Any],
    out: _Out,
) -> None:
    if isinstance(exc, transforms.BlankValue):
        trail.append({"conversion": step.label, "blank": exc.reason})
        _blank_outcome(f, raw, entry, out, after=True)
    elif isinstance(exc, transforms.ConversionError):
        trail.append({"conversion": step.label, "error": exc.reason})
        _invalid_outcome(f, raw, step, f"{exc.reason} for field {f.name}", exc.code, entry, out)
    else:
        trail.append({"conversion": step.label, "error": f"failed unexpectedly ({type(exc).__name__})"})
        reason = f"conversion {step.name} failed unexpectedly on {transforms.show(raw)} for field {f.name}"
        _invalid_outcome(f, raw, step, reason, "conversion_error", entry, out)


def _apply_general(
    f: CompiledField,
    raw: Any,
    shown: Any,
    source: str | None,
    blank: bool,
    out: _Out,
    spec: CompiledSpec,
    origin: str | None,
) -> None:
    entry: dict[str, Any] = {"field": f.name, "source": source, "raw": shown}
    out.trace.append(entry)
    if raw is MISSING and f.source_kind != "none":
        entry["missing"] = True
    if origin is not None:
        entry["from"] = origin
    if out.notes:
        notes = out.notes.get(f.name)
        if notes:
            entry["notes"] = list(notes)
    if blank:
        _blank_outcome(f, raw, entry, out, after=False)
        return
    value = raw
    kind = type(value)
    if f.steps:
        trail: list[dict[str, Any]] = []
        entry["steps"] = trail
        for step in f.steps:
            try:
                value = step.call(value)
            except Exception as exc:
                _step_failed(f, raw, step, exc, trail, entry, out)
                return
            kind = type(value)
            trail.append({"conversion": step.label, "output": _jsonable(value)})
        if value is None or (kind is str and not value.strip()):
            _blank_outcome(f, raw, entry, out, after=True)
            return
        if kind is str and spec.nfc:
            value = _norm(value)
    elif kind is float:
        value = Decimal(repr(value)) if value == value and abs(value) != float("inf") else str(value)
    elif spec.nfc and (kind is dict or kind is list):
        value = _deep_norm(value)
    out.put(f, value)
    entry["result"] = "set"
    entry["output"] = _jsonable(value)


def _decide(problems: list[Problem]) -> Decision:
    decision: Decision = "deliver"
    for p in problems:
        if p.action == "reject":
            return "reject"
        if p.action == "review":
            decision = "review"
    return decision


def _parent_entry(spec: CompiledSpec, meta: RecordMeta, ctx: MappingContext, out: _Out) -> None:
    link = spec.parent
    if link is None or not link.output_field:
        return
    entry: dict[str, Any] = {"field": link.output_field, "source": link.path, "raw": meta.parent_id}
    if ctx.parent_destination_id is not None:
        out.output[link.output_field] = ctx.parent_destination_id
        entry.update(result="set", output=ctx.parent_destination_id, why="the parent's id at the destination")
    elif meta.parent_id is None:
        out.omitted.append(link.output_field)
        entry.update(result="blank_kept", why="the record names no parent")
    else:
        out.omitted.append(link.output_field)
        entry.update(result="waiting_parent", why=f"parent {meta.parent_id} has no destination id yet")
    out.trace.append(entry)


def _owned_entry(f: CompiledField, out: _Out) -> None:
    out.omitted.append(f.name)
    out.trace.append(
        {
            "field": f.name,
            "source": f.source_label,
            "result": "destination_owned",
            "why": "owned by the destination: sent when the record is created, never overwritten",
        }
    )


_NO_CONTEXT: Final = MappingContext()


def _failure(spec: Any, record: Any, exc: BaseException) -> MappingResult:
    meta = record_meta(spec, record) if isinstance(spec, CompiledSpec) else RecordMeta()
    reason = f"the mapping engine failed on this record ({type(exc).__name__}); an engineer needs to look at it"
    problem = Problem(RECORD_FIELD, None, "engine", reason, "internal_error", "review")
    return MappingResult("review", {}, [problem], [], meta, [], [])


# --------------------------------------------------------------------------- public functions


def record_meta(spec: CompiledSpec, record: Any) -> RecordMeta:
    """Source id, updated-at (aware UTC), event id, parent id and group key of a record, as the
    spec's record options say. Missing or unreadable values are None. Never raises."""
    try:
        if not isinstance(record, dict):
            return RecordMeta()
        updated = None
        if spec.updated_at is not None:
            steps, fmt, zone = spec.updated_at
            raw = lookup(record, steps)
            if raw is not MISSING and raw is not None:
                try:
                    updated = transforms.parse_datetime(raw, format=fmt, assume_tz=zone)
                except (transforms.ConversionError, ValueError, TypeError, OverflowError):
                    updated = None
        return RecordMeta(
            source_id=_id_text(lookup(record, spec.source_id)) if spec.source_id else None,
            updated_at=updated,
            event_id=_id_text(lookup(record, spec.event_id)) if spec.event_id else None,
            parent_id=_id_text(lookup(record, spec.parent_path)) if spec.parent_path else None,
            group_key=_id_text(lookup(record, spec.group.key)) if spec.group else None,
        )
    except Exception:
        return RecordMeta()


def map_record(spec: CompiledSpec, record: Any, context: MappingContext | None = None) -> MappingResult:
    """Map one source record. Never raises: anything unexpected becomes a review problem."""
    try:
        return _map_record(spec, record, context or _NO_CONTEXT)
    except Exception as exc:
        return _failure(spec, record, exc)


Plan = tuple[tuple[tuple[str, str, tuple[Step, ...], str | None, str | None], ...], ...]
_PLAN_SHAPES = 512


def _plan(spec: CompiledSpec, record: dict[str, Any]) -> Plan:
    """Per field, the source paths that can be present in a record of this shape.

    Records of one source share their top-level keys, so a field with several alternative
    paths ("email" | "properties.email" | "Email") need not try the ones whose first key the
    record does not have. Keyed by the record's key tuple; bounded."""
    shape = tuple(record)
    plans = spec.plans
    plan = plans.get(shape)
    if plan is None:
        if len(plans) >= _PLAN_SHAPES:
            return spec.full_plan
        present = set(shape)
        plan = tuple(
            tuple(src for src in f.sources if not isinstance(src[2][0], str) or src[2][0] in present)
            if f.plain
            else f.sources
            for f in spec.fields
        )
        plans[shape] = plan
    return plan


def _map_record(spec: CompiledSpec, record: Any, ctx: MappingContext) -> MappingResult:
    meta = record_meta(spec, record)
    out = _Out(ctx.field_notes)
    if not isinstance(record, dict):
        reason = f"the record is {transforms._kind(record)}, not an object with named fields"
        out.problems.append(Problem(RECORD_FIELD, _jsonable(record), "record", reason, "not_an_object", "reject"))
        return MappingResult("reject", {}, out.problems, out.trace, meta, [], [])
    is_update = ctx.is_update
    blanks, short, nfc = spec.blanks, spec.blank_max, spec.nfc
    quiet = not ctx.field_notes
    trace_append, omitted_append = out.trace.append, out.omitted.append
    # The hot loop: _read inlined for plain paths, and the most common outcome (a blank left
    # out) handled without building anything but its trace entry. Same rules as _read/_apply.
    for f, sources in zip(spec.fields, _plan(spec, record), strict=True):
        if is_update and f.destination_owned:
            _owned_entry(f, out)
            continue
        if not f.plain:
            raw, source, blank = _read(f, record, spec)
            _apply(f, raw, source, blank, out, spec, None)
            continue
        first: Any = MISSING
        for _, text, steps, key, key2 in sources:
            if key is None:
                value = lookup(record, steps)
            elif key2 is None:
                value = record.get(key, MISSING)
            else:
                value = record.get(key, MISSING)
                value = value.get(key2, MISSING) if type(value) is dict else MISSING
            if value is None or value is MISSING:
                pass
            elif type(value) is str:
                stripped = value.strip()
                if stripped and (len(stripped) > short or stripped.casefold() not in blanks):
                    if nfc and not value.isascii():
                        value = unicodedata.normalize("NFC", value)
                    _apply(f, value, text, False, out, spec, None)
                    break
            elif (type(value) is dict or type(value) is list) and not value:
                pass
            else:
                _apply(f, value, text, False, out, spec, None)
                break
            if first is MISSING:
                first = value
        else:
            if f.on_blank == "keep" and quiet:
                omitted_append(f.name)
                kind = type(first)
                if first is MISSING:
                    trace_append(
                        {
                            "field": f.name,
                            "source": f.source_label,
                            "raw": None,
                            "missing": True,
                            "result": "blank_kept",
                            "why": _KEPT_WHY,
                        }
                    )
                else:
                    shown = first if (kind is str or first is None) else _jsonable(first)
                    trace_append(
                        {
                            "field": f.name,
                            "source": f.source_label,
                            "raw": shown,
                            "result": "blank_kept",
                            "why": _KEPT_WHY,
                        }
                    )
            else:
                _apply(f, first, f.source_label, True, out, spec, None)
    _parent_entry(spec, meta, ctx, out)
    return MappingResult(_decide(out.problems), out.output, out.problems, out.trace, meta, out.cleared, out.omitted)


def _role(spec: CompiledSpec, record: Any) -> str | None:
    if spec.group is None or spec.group.role_path is None:
        return None
    value = lookup(record, spec.group.role_path)
    if isinstance(value, str | int) and not isinstance(value, bool):
        return transforms.value_key(value)
    return None


def _ordered(records: list[Any], roles: list[str | None], order: tuple[str, ...]) -> list[int]:
    rank = {role: i for i, role in enumerate(order)}
    return sorted(range(len(records)), key=lambda i: (rank.get(roles[i] or "", len(order)), i))


def map_group(spec: CompiledSpec, records: list[Any], context: MappingContext | None = None) -> MappingResult:
    """Merge related records of one entity (a company's primary, billing and shipping contacts)
    into one destination record. Records are ranked by ``record.group.precedence`` (unknown
    roles last, then in the order given); each field takes the first non-blank value in its own
    ``precedence`` order, or the group's. The trace names the record each value came from.
    Always merges: with ``mode: separate`` the pipeline maps each record with map_record."""
    try:
        return _map_group(spec, list(records), context or _NO_CONTEXT)
    except Exception as exc:
        return _failure(spec, records[0] if isinstance(records, list) and records else None, exc)


def _map_group(spec: CompiledSpec, records: list[Any], ctx: MappingContext) -> MappingResult:
    if not records:
        problem = Problem(RECORD_FIELD, None, "group", "the group has no records", "empty_group", "reject")
        return MappingResult("reject", {}, [problem], [], RecordMeta(), [], [])
    out = _Out(ctx.field_notes)
    usable = [r for r in records if isinstance(r, dict)]
    for r in records:
        if not isinstance(r, dict):
            reason = f"a record of the group is {transforms._kind(r)}, not an object; it was ignored"
            out.problems.append(Problem(RECORD_FIELD, _jsonable(r), "record", reason, "not_an_object", "review"))
    if not usable:
        return MappingResult("reject", {}, out.problems, [], RecordMeta(), [], [])
    roles = [_role(spec, r) for r in usable]
    group_order = spec.group.order if spec.group else ()
    default_order = _ordered(usable, roles, group_order)
    metas = [record_meta(spec, usable[i]) for i in default_order]
    newest = max((m.updated_at for m in metas if m.updated_at), default=None)
    first = metas[0]
    meta = RecordMeta(first.source_id, newest, first.event_id, first.parent_id, first.group_key)
    for f in spec.fields:
        if ctx.is_update and f.destination_owned:
            _owned_entry(f, out)
            continue
        if f.precedence is not None:
            order = _ordered(usable, roles, tuple(transforms.value_key(p) for p in f.precedence))
        else:
            order = default_order
        chosen: tuple[Any, str | None, bool, int] | None = None
        for i in order:
            raw, source, blank = _read(f, usable[i], spec)
            if chosen is None or not blank:
                chosen = (raw, source, blank, i)
            if not blank:
                break
        assert chosen is not None
        raw, source, blank, index = chosen
        ident = metas[default_order.index(index)].source_id
        origin = f"record {index + 1} of {len(usable)}" + (f" ({ident})" if ident else "")
        if roles[index]:
            origin += f", role {roles[index]}"
        _apply(f, raw, source, blank, out, spec, origin)
    _parent_entry(spec, meta, ctx, out)
    return MappingResult(_decide(out.problems), out.output, out.problems, out.trace, meta, out.cleared, out.omitted)


def parent_link(spec: CompiledSpec) -> ParentLink | None:
    """The spec's parent link (an order's customer), or None."""
    return spec.parent


def match_keys(spec: CompiledSpec, record: Any) -> dict[str, str]:
    """Keys for duplicate checks, from ``record.duplicates``: ``key`` (declared key), ``email``
    (normalised), ``phone`` (E.164), ``name`` (case-folded), plus each ``compare`` entry.
    Keys that are blank or invalid are absent. Never raises."""
    try:
        return dedupe.keys_for(spec.duplicates, record, spec.blanks)
    except Exception:
        return {}


def find_duplicates(
    spec: CompiledSpec, record_keys: dict[str, str], candidates: list[tuple[str, dict[str, str]]]
) -> list[DuplicateFinding]:
    """Which candidates (id, match keys) are the same entity ("match") or probably the same
    ("likely": review with both records shown, never merged). See dedupe.py for the rules."""
    return dedupe.find(spec.duplicates, record_keys, candidates)


def duplicate_problem(finding: DuplicateFinding) -> Problem:
    """A review problem for a likely duplicate (the pipeline adds it to the record's result)."""
    reason = f"possible duplicate of {finding.candidate}: " + ", ".join(finding.reasons)
    return Problem(RECORD_FIELD, finding.candidate, "duplicates", reason, "possible_duplicate", "review")


def diff_specs(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    """Field-level differences between two specs, each with a plain-language ``text`` line."""
    return specdiff.diff(old, new)


@lru_cache(maxsize=1)
def conversions() -> list[dict[str, Any]]:
    """The conversion registry as data (for documentation and the mapping editor)."""
    return transforms.describe()
