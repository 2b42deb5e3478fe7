"""Building editor POSTs the way the browser would: from the page the server rendered."""

from __future__ import annotations

from typing import Any


def editor_post(response: Any) -> dict[str, Any]:
    """The field-table form exactly as rendered (every row, its value-map rows, the fingerprint)."""
    context = response.context
    formset = context["formset"]
    data: dict[str, Any] = {"base": context["base"], "op": "save"}
    management = formset.management_form
    for name in management.fields:
        data[management.add_prefix(name)] = management[name].value()
    for form in formset.forms:
        for name in form.fields:
            value = form[name].value()
            if name in ("required", "remove"):
                if value:
                    data[form.add_prefix(name)] = "on"
                continue
            data[form.add_prefix(name)] = "" if value is None else value
        names = form.vm_field_names()
        rows = form.value_rows()
        data[names["key"]] = [k for k, _ in rows]
        data[names["value"]] = [v for _, v in rows]
    return data


def row_of(data: dict[str, Any], name: str) -> str:
    """The prefix (``fields-2``) of the row whose destination is ``name``."""
    for key, value in data.items():
        if key.endswith("-name") and value == name:
            return key[: -len("-name")]
    raise KeyError(name)
