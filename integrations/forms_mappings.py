"""Forms of the mapping editor: the field table (one form per field), the raw spec text, publish,
rollback and version comparison.

The field table edits ``spec["fields"]`` only; the record options and spec-wide options are kept
as they are (the text editor changes those). Cells that hold more than a word use small,
readable notations, each parsed here and written back the same way:

* source: a path (``billing.phone``), or a YAML list/object for several paths or named parts
  (``[email, contact_email]``, ``{number: phone, country: country_code}``);
* conversions: steps joined by ``|``, arguments in parentheses as YAML
  (``trim | split_name(part: first) | integer(output: text)``);
* default and value-map values: one YAML value (``0171`` and ``no`` stay text, ``12`` is a number,
  ``null`` is null, ``''`` is empty text).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import yaml
from django import forms

from integrations.engine import exactjson, spectext

# Short labels: the table is dense; the column headers say which one is the default.
OWNER_CHOICES = [("source", "source"), ("destination", "destination")]
ON_BLANK_CHOICES = [
    ("keep", "keep"),
    ("clear", "clear (null)"),
    ("default", "default"),
    ("reject", "reject"),
    ("review", "review"),
]
ON_INVALID_CHOICES = [("review", "review"), ("reject", "reject"), ("drop", "drop")]
DEFAULTS = {"owner": "source", "on_blank": "keep", "on_invalid": "review", "required": False}
# Keys of a field the table edits; anything else on a field (description, precedence) is kept.
EDITED_KEYS = {
    "name",
    "source",
    "owner",
    "convert",
    "required",
    "on_blank",
    "default",
    "on_invalid",
    "value_map",
    "value_map_default",
}
SPARE_VALUE_ROWS = 2
_STEP = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?\s*$", re.DOTALL)


# --------------------------------------------------------------------------------------------
# Cell notations
# --------------------------------------------------------------------------------------------


def spec_digest(spec: Any) -> str:
    """A short fingerprint of a spec's content: the editor sends back the one it started from,
    so a save or publish on top of someone else's newer change is refused instead of losing it."""
    text = exactjson.dumps(spec if spec is not None else {}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def show_yaml(value: Any) -> str:
    """One value as one line of YAML (flow style): what a cell shows."""
    text = yaml.dump(value, Dumper=spectext.SpecDumper, default_flow_style=True, width=10**6, allow_unicode=True)
    text = text.rstrip("\n")
    if text.endswith("\n..."):
        text = text[: -len("\n...")]
    return text


def parse_yaml(text: str) -> Any:
    """One YAML value (YAML 1.2-style scalars: ``0171`` and ``no`` stay text)."""
    try:
        return yaml.load(text, Loader=spectext.SpecLoader)  # noqa: S506 - SpecLoader is a SafeLoader
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "cannot be read"
        raise forms.ValidationError(f"Not a valid value: {first}") from None


def show_source(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str) and not value.startswith(("[", "{", "'", '"')):
        return value
    return show_yaml(value)


def parse_source(text: str) -> Any:
    text = text.strip()
    if not text:
        return None
    if not text.startswith(("[", "{", "'", '"')):
        return text
    value = parse_yaml(text)
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    if isinstance(value, dict) and value and all(isinstance(v, str) for v in value.values()):
        return {str(k): v for k, v in value.items()}
    raise forms.ValidationError(
        "Give a path (billing.phone), a list of paths ([email, contact_email]) "
        "or named parts ({number: phone, country: country_code})."
    )


def show_step(step: Any) -> str:
    if isinstance(step, str):
        return step
    if isinstance(step, dict):
        args = {k: v for k, v in step.items() if k != "name"}
        if not args:
            return str(step.get("name", ""))
        return f"{step.get('name', '')}({show_yaml(args)[1:-1]})"
    return show_yaml(step)


def show_convert(steps: Any) -> str:
    return " | ".join(show_step(s) for s in steps) if isinstance(steps, list) else ""


def _split_steps(text: str) -> list[str]:
    """Split on ``|`` outside quotes, brackets and parentheses."""
    parts: list[str] = []
    current: list[str] = []
    depth, quote = 0, ""
    for ch in text:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "|" and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return parts


def parse_convert(text: str) -> list[Any]:
    text = text.strip()
    if not text:
        return []
    steps: list[Any] = []
    for number, piece in enumerate(_split_steps(text), start=1):
        match = _STEP.match(piece)
        if not match:
            raise forms.ValidationError(
                f"Step {number} ({piece.strip() or 'empty'}) should read name or name(arg: value, …)."
            )
        name, inner = match.group(1), match.group(2)
        if inner is None or not inner.strip():
            steps.append(name)
            continue
        try:
            args = parse_yaml("{" + inner + "}")
        except forms.ValidationError as exc:
            raise forms.ValidationError(f"Step {number} ({name}): the arguments cannot be read.") from exc
        if not isinstance(args, dict):
            raise forms.ValidationError(f"Step {number} ({name}): arguments should read arg: value.")
        steps.append({"name": name, **{str(k): v for k, v in args.items()}})
    return steps


# --------------------------------------------------------------------------------------------
# The field table
# --------------------------------------------------------------------------------------------


class FieldForm(forms.Form):
    """One row of the field table: one destination field."""

    position = forms.IntegerField(label="Order", required=False, min_value=1)
    name = forms.CharField(label="Destination", required=False, max_length=200)
    source = forms.CharField(label="Source", required=False, max_length=1000)
    owner = forms.ChoiceField(label="Owner", choices=OWNER_CHOICES, initial="source")
    convert = forms.CharField(label="Conversions", required=False, max_length=2000)
    required = forms.BooleanField(label="Required", required=False)
    on_blank = forms.ChoiceField(label="Blank rule", choices=ON_BLANK_CHOICES, initial="keep")
    default = forms.CharField(label="Default", required=False, max_length=1000)
    on_invalid = forms.ChoiceField(label="Invalid rule", choices=ON_INVALID_CHOICES, initial="review")
    value_map_default = forms.CharField(label="Value map default", required=False, max_length=1000)
    remove = forms.BooleanField(label="Remove", required=False)
    original = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        row = self.row_number
        self.fields["remove"].widget.attrs["aria-label"] = f"Remove field {row}"
        for key, fld in self.fields.items():
            if key not in ("remove", "original"):
                fld.widget.attrs["aria-label"] = f"{fld.label} of field {row}"
        self.fields["position"].widget.attrs.update({"class": "pos", "inputmode": "numeric"})
        self.fields["name"].widget.attrs["class"] = "mono"
        self.fields["source"].widget.attrs.update({"class": "mono", "placeholder": "path"})
        self.fields["convert"].widget.attrs.update({"class": "mono", "list": "conversion-names"})
        self.fields["default"].widget.attrs.update({"class": "mono", "placeholder": "default"})
        self.fields["value_map_default"].widget.attrs.update({"class": "mono", "placeholder": "(unknown → review)"})

    @property
    def row_number(self) -> int:
        try:
            return int(str(self.prefix).rsplit("-", 1)[-1]) + 1
        except ValueError:
            return 0

    # Value-map rows are plain repeated inputs (key, value) under this form's prefix.
    def _vm_names(self) -> tuple[str, str]:
        return self.add_prefix("vm_key"), self.add_prefix("vm_value")

    def value_rows(self) -> list[tuple[str, str]]:
        """The value-map rows to show: as posted (kept on a refused save), else from the spec."""
        key_name, value_name = self._vm_names()
        if self.is_bound and hasattr(self.data, "getlist"):
            keys, values = self.data.getlist(key_name), self.data.getlist(value_name)
            rows = [(k, v) for k, v in zip(keys, values, strict=False) if k or v]
        else:
            value_map = self._original().get("value_map")
            rows = [(str(k), show_yaml(v)) for k, v in value_map.items()] if isinstance(value_map, dict) else []
        return rows + [("", "")] * SPARE_VALUE_ROWS

    def value_map_summary(self) -> str:
        """ "(3 entries: a → b, c → d, …)" for the collapsed value-map line."""
        rows = [(k, v) for k, v in self.value_rows() if k or v]
        if not rows:
            return "(none)"
        shown = ", ".join(f"{k} → {v}" for k, v in rows[:4]) + (", …" if len(rows) > 4 else "")
        return f"({len(rows)} entr{'y' if len(rows) == 1 else 'ies'}: {shown})"

    def vm_field_names(self) -> dict[str, str]:
        key_name, value_name = self._vm_names()
        return {"key": key_name, "value": value_name}

    def _original(self) -> dict[str, Any]:
        raw = self.data.get(self.add_prefix("original")) if self.is_bound else self.initial.get("original")
        try:
            value = json.loads(raw) if raw else {}
        except (TypeError, ValueError):
            return {}
        return value if isinstance(value, dict) else {}

    def clean_source(self) -> Any:
        return parse_source(self.cleaned_data.get("source") or "")

    def clean_convert(self) -> list[Any]:
        return parse_convert(self.cleaned_data.get("convert") or "")

    def clean_default(self) -> Any:
        text = self.cleaned_data.get("default") or ""
        return parse_yaml(text) if text.strip() else _ABSENT

    def clean_value_map_default(self) -> Any:
        text = self.cleaned_data.get("value_map_default") or ""
        return parse_yaml(text) if text.strip() else _ABSENT

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        value_map: dict[str, Any] = {}
        problems = []
        if self.is_bound and hasattr(self.data, "getlist"):
            key_name, value_name = self._vm_names()
            keys, values = self.data.getlist(key_name), self.data.getlist(value_name)
            for key, text in zip(keys, values, strict=False):
                if not key and not text.strip():
                    continue
                if not key.strip():
                    problems.append(f"A value-map row with value {text!r} has no key.")
                    continue
                if key in value_map:
                    problems.append(f"The value-map key {key!r} is given twice.")
                    continue
                try:
                    value_map[key] = parse_yaml(text) if text.strip() else None
                except forms.ValidationError:
                    problems.append(f"The value for {key!r} cannot be read.")
        data["value_map"] = value_map
        self.value_map_problems = problems
        if problems:
            self.add_error(None, problems)
        if not self.is_empty_row() and not data.get("remove") and not (data.get("name") or "").strip():
            self.add_error("name", "Name the destination field.")
        return data

    def is_empty_row(self) -> bool:
        """A spare row nobody typed into."""
        data = getattr(self, "cleaned_data", {})
        return not (
            (data.get("name") or "").strip()
            or data.get("source")
            or data.get("convert")
            or data.get("value_map")
            or self._original()
        )

    def to_field(self) -> dict[str, Any]:
        """The spec field this row says, keeping what the table does not edit."""
        data, original = self.cleaned_data, self._original()
        out: dict[str, Any] = {"name": data["name"].strip()}
        if data.get("source") is not None:
            out["source"] = data["source"]
        convert = data.get("convert") or []
        if convert or original.get("convert") == []:
            out["convert"] = convert
        for key in ("owner", "required", "on_blank", "on_invalid"):
            value = data.get(key)
            if value != DEFAULTS[key] or original.get(key) == value:
                out[key] = value
        if data.get("default", _ABSENT) is not _ABSENT:
            out["default"] = data["default"]
        value_map = data.get("value_map") or {}
        if value_map or original.get("value_map") == {}:
            out["value_map"] = value_map
        if data.get("value_map_default", _ABSENT) is not _ABSENT:
            out["value_map_default"] = data["value_map_default"]
        for key, value in original.items():
            if key not in EDITED_KEYS:
                out[key] = value
        return out


class _Absent:
    def __repr__(self) -> str:
        return "<absent>"


_ABSENT = _Absent()


def field_initial(field: dict[str, Any]) -> dict[str, Any]:
    """The row values shown for one spec field."""
    return {
        "name": field.get("name", ""),
        "source": show_source(field.get("source")),
        "owner": field.get("owner", "source"),
        "convert": show_convert(field.get("convert", [])),
        "required": bool(field.get("required", False)),
        "on_blank": field.get("on_blank", "keep"),
        "default": show_yaml(field["default"]) if "default" in field else "",
        "on_invalid": field.get("on_invalid", "review"),
        "value_map_default": show_yaml(field["value_map_default"]) if "value_map_default" in field else "",
        "original": exactjson.dumps(field),
    }


class BaseFieldFormSet(forms.BaseFormSet):  # type: ignore[type-arg]  # not subscriptable at run time
    def ordered_rows(self) -> list[FieldForm]:
        """The kept rows in their new order (by the Order column, ties by position on the page)."""
        kept = []
        for index, form in enumerate(self.forms):
            data = form.cleaned_data
            if not data or data.get("remove") or form.is_empty_row():
                continue
            kept.append((data.get("position") or index + 1, index, form))
        kept.sort(key=lambda item: (item[0], item[1]))
        return [form for _, _, form in kept]


FieldFormSet = forms.formset_factory(FieldForm, formset=BaseFieldFormSet, extra=1, max_num=500, absolute_max=600)


def field_formset(spec: dict[str, Any], data: Any = None, extra: int = 0) -> BaseFieldFormSet:
    raw = spec.get("fields")
    fields: list[Any] = raw if isinstance(raw, list) else []
    initial = [{**field_initial(f), "position": n} for n, f in enumerate(fields, start=1) if isinstance(f, dict)]
    if data is not None and extra:
        # "Add a row": the same posted rows plus ``extra`` empty ones.
        data = data.copy()
        data["fields-TOTAL_FORMS"] = str(int(data.get("fields-TOTAL_FORMS") or 0) + extra)
    formset = FieldFormSet(data, initial=initial, prefix="fields")
    assert isinstance(formset, BaseFieldFormSet)
    for number, form in enumerate(formset.forms, start=1):
        if not form.initial:
            form.fields["position"].initial = number
    return formset


class BaseForm(forms.Form):
    """The fingerprint of the spec the page was made from (see ``spec_digest``)."""

    base = forms.CharField(required=False, widget=forms.HiddenInput)


class SpecTextForm(BaseForm):
    text = forms.CharField(
        label="Spec (YAML or JSON)",
        widget=forms.Textarea(attrs={"class": "code spec-text", "rows": 30, "spellcheck": "false"}),
        help_text="The whole spec: options, record options and fields. JSON when it starts with {.",
    )

    def clean_text(self) -> Any:
        try:
            return spectext.load_spec_text(self.cleaned_data["text"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None


class PublishForm(BaseForm):
    note = forms.CharField(
        label="Publish note",
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "What changed and why"}),
        error_messages={"required": "A note is required to publish: say what changed and why."},
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)

    def clean_note(self) -> str:
        note = (self.cleaned_data.get("note") or "").strip()
        if not note:
            raise forms.ValidationError("A note is required to publish: say what changed and why.")
        return note


class RollbackForm(PublishForm):
    number = forms.IntegerField(min_value=1, widget=forms.HiddenInput)


class DiffForm(forms.Form):
    a = forms.ChoiceField(label="From")
    b = forms.ChoiceField(label="To")

    def __init__(self, *args: Any, choices: list[tuple[str, str]], **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        for key in ("a", "b"):
            field = self.fields[key]
            assert isinstance(field, forms.ChoiceField)
            field.choices = choices
