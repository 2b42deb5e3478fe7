"""Differences between two mapping specs, field by field, in plain language.

Used to compare versions ("what did v7 change?") and to review a configuration import. Each
difference is ``{"field", "area", "change", "key", "old", "new", "text"}`` where ``text`` is the
line a person reads: "Field 'status': value map entry 'on-hold' changed from 'open' to 'held'".
"""

from __future__ import annotations

from typing import Any

from integrations.engine import exactjson

_OPTION_WORDS = {
    "default_region": "default phone region",
    "default_country": "default country",
    "blank_values": "blank placeholders",
    "unicode_nfc": "Unicode normalisation",
    "description": "description",
    "format": "spec format",
}
_RECORD_WORDS = {
    "source_id": "source id path",
    "updated_at": "updated-at",
    "event_id": "event id path",
    "parent": "parent link",
    "group": "related-record grouping",
    "duplicates": "duplicate checks",
}
_FIELD_WORDS = {
    "source": "source",
    "owner": "owner",
    "convert": "conversions",
    "required": "required",
    "on_blank": "blank rule",
    "default": "default",
    "on_invalid": "invalid rule",
    "value_map_default": "value map default",
    "precedence": "precedence",
    "description": "description",
}


def _show(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, list) and all((isinstance(v, dict) and "name" in v) or isinstance(v, str) for v in value):
        return " → ".join(_step(v) for v in value) or "none"
    try:
        return exactjson.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _step(step: Any) -> str:
    if isinstance(step, str):
        return step
    args = ", ".join(f"{k}={_show(v)}" for k, v in step.items() if k != "name")
    return f"{step['name']}({args})" if args else str(step["name"])


def _same(a: Any, b: Any) -> bool:
    try:
        return exactjson.dumps(a, sort_keys=True) == exactjson.dumps(b, sort_keys=True)
    except (TypeError, ValueError):
        return bool(a == b)


def _entry(field: str | None, area: str, change: str, key: str | None, old: Any, new: Any, text: str) -> dict[str, Any]:
    return {"field": field, "area": area, "change": change, "key": key, "old": old, "new": new, "text": text}


def _changed(label: str, old: Any, new: Any, missing: object) -> str:
    if old is missing:
        return f"{label} set to {_show(new)}"
    if new is missing:
        return f"{label} removed (was {_show(old)})"
    return f"{label} changed from {_show(old)} to {_show(new)}"


def diff(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    """Every difference between ``old`` and ``new``; [] when they mean the same."""
    old = old if isinstance(old, dict) else {}
    new = new if isinstance(new, dict) else {}
    missing = object()
    out: list[dict[str, Any]] = []

    for key in sorted(set(old) | set(new)):
        if key in ("fields", "record"):
            continue
        a, b = old.get(key, missing), new.get(key, missing)
        if not _same(a, b):
            label = _OPTION_WORDS.get(key, key).capitalize()
            change = "added" if a is missing else "removed" if b is missing else "changed"
            out.append(
                _entry(
                    None,
                    "options",
                    change,
                    key,
                    None if a is missing else a,
                    None if b is missing else b,
                    _changed(label, a, b, missing),
                )
            )

    rec_a: dict[str, Any] = old["record"] if isinstance(old.get("record"), dict) else {}
    rec_b: dict[str, Any] = new["record"] if isinstance(new.get("record"), dict) else {}
    for key in sorted(set(rec_a) | set(rec_b)):
        a, b = rec_a.get(key, missing), rec_b.get(key, missing)
        if not _same(a, b):
            label = "Record " + _RECORD_WORDS.get(key, key)
            change = "added" if a is missing else "removed" if b is missing else "changed"
            out.append(
                _entry(
                    None,
                    "record",
                    change,
                    key,
                    None if a is missing else a,
                    None if b is missing else b,
                    _changed(label, a, b, missing),
                )
            )

    def by_name(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
        fields: list[Any] = spec["fields"] if isinstance(spec.get("fields"), list) else []
        return {f["name"]: f for f in fields if isinstance(f, dict) and isinstance(f.get("name"), str)}

    fields_a, fields_b = by_name(old), by_name(new)
    for name in fields_a.keys() - fields_b.keys():
        source = fields_a[name].get("source")
        text = f"Field {name!r} removed (was from {_show(source)})"
        out.append(_entry(name, "field", "removed", None, fields_a[name], None, text))
    for name in fields_b.keys() - fields_a.keys():
        source = fields_b[name].get("source")
        text = f"Field {name!r} added, from {_show(source)}"
        convert = fields_b[name].get("convert")
        if convert:
            text += f", converted by {_show(convert)}"
        out.append(_entry(name, "field", "added", None, None, fields_b[name], text))
    for name in [n for n in fields_b if n in fields_a]:
        fa, fb = fields_a[name], fields_b[name]
        for key in sorted((set(fa) | set(fb)) - {"name"}):
            a, b = fa.get(key, missing), fb.get(key, missing)
            if _same(a, b):
                continue
            if key == "value_map" and isinstance(a, dict) and isinstance(b, dict):
                for entry_key in sorted(set(a) | set(b), key=str):
                    va, vb = a.get(entry_key, missing), b.get(entry_key, missing)
                    if _same(va, vb):
                        continue
                    if va is missing:
                        text = f"Field {name!r}: value map entry {entry_key!r} → {_show(vb)} added"
                        change = "added"
                    elif vb is missing:
                        text = f"Field {name!r}: value map entry {entry_key!r} (was {_show(va)}) removed"
                        change = "removed"
                    else:
                        text = f"Field {name!r}: value map entry {entry_key!r} changed from {_show(va)} to {_show(vb)}"
                        change = "changed"
                    out.append(
                        _entry(
                            name,
                            "field",
                            change,
                            f"value_map.{entry_key}",
                            None if va is missing else va,
                            None if vb is missing else vb,
                            text,
                        )
                    )
                continue
            label = f"Field {name!r}: " + _FIELD_WORDS.get(key, key.replace("_", " "))
            change = "added" if a is missing else "removed" if b is missing else "changed"
            out.append(
                _entry(
                    name,
                    "field",
                    change,
                    key,
                    None if a is missing else a,
                    None if b is missing else b,
                    _changed(label, a, b, missing),
                )
            )
    order_a = [n for n in fields_a if n in fields_b]
    order_b = [n for n in fields_b if n in fields_a]
    if order_a != order_b:
        out.append(_entry(None, "fields", "changed", "order", order_a, order_b, "Fields reordered"))
    return out
