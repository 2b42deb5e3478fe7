"""Masking: secrets shown only as a hint, sensitive payload fields hidden from roles without
``integrations.view_sensitive_payload``, and secrets kept out of logs and error reports.

Sensitive fields (``Integration.sensitive_fields``) are payload field names or dotted paths:
``"email"`` masks a key ``email`` at any depth, ``"billing.phone"`` masks only that path (list
items are walked through, so ``"addresses.phone"`` masks the phone of every address). What the
mapping made of a sensitive field is masked as well: the output fields whose trace names a
sensitive source, in the output, the trace and the request body sent to the partner.

Log redaction lives in integrations/logsetup.py (settings import it before apps are ready)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from django.views.debug import SafeExceptionReporterFilter

from integrations.engine import exactjson
from integrations.logsetup import SECRET_NAMES, SECRET_TEXT, redact_text

MASK = "[sensitive]"
PERMISSION = "integrations.view_sensitive_payload"

# --------------------------------------------------------------------------------------------
# Secrets
# --------------------------------------------------------------------------------------------


def mask_secret(value: str | None) -> str:
    """``sdk_…9f2c``: the prefix (up to the first ``_``) and the last four characters, enough to
    tell two secrets apart and never enough to use one. Short secrets show nothing."""
    if not value:
        return ""
    prefix = value.split("_", 1)[0] + "_" if "_" in value[:7] else ""
    if len(value) < 16:
        return prefix + "…" if prefix else "••••"
    return f"{prefix}…{value[-4:]}"


# --------------------------------------------------------------------------------------------
# Sensitive payload fields
# --------------------------------------------------------------------------------------------


def can_see_sensitive(user: Any) -> bool:
    return bool(user is not None and user.has_perm(PERMISSION))


def _normalise(fields: Iterable[Any] | None) -> tuple[frozenset[str], frozenset[str]]:
    names: set[str] = set()
    paths: set[str] = set()
    for field in fields or ():
        if not isinstance(field, str) or not field.strip():
            continue
        text = field.strip().lower()
        (paths if "." in text else names).add(text)
    return frozenset(names), frozenset(paths)


def is_sensitive(path: str, fields: Iterable[Any] | None) -> bool:
    """Is the source path (``customer.email``, ``email``, ``$.email``) one of ``fields``?"""
    names, paths = _normalise(fields)
    text = re.sub(r"\[\d*\]", "", path.strip().lstrip("$").lstrip(".")).lower()
    return bool(text) and (text in paths or text.rsplit(".", 1)[-1] in names)


def mask_data(data: Any, fields: Iterable[Any] | None, *, extra_names: Iterable[str] = ()) -> Any:
    """A copy of ``data`` with sensitive values replaced by MASK (blank values stay blank)."""
    names, paths = _normalise(fields)
    names = names | {n.lower() for n in extra_names}
    if not names and not paths:
        return data

    def walk(value: Any, path: tuple[str, ...]) -> Any:
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                here = (*path, str(key).lower())
                hit = here[-1] in names or ".".join(here) in paths
                out[key] = _masked_value(item) if hit else walk(item, here)
            return out
        if isinstance(value, list):
            return [walk(item, path) for item in value]
        return value

    return walk(data, ())


def _masked_value(value: Any) -> Any:
    if value is None or value == "" or value == [] or value == {}:
        return value
    return MASK


def sensitive_outputs(trace: Any, fields: Iterable[Any] | None) -> set[str]:
    """Output field names the mapping filled from a sensitive source (read from a trace)."""
    out: set[str] = set()
    if not fields:
        return out
    for entry in trace if isinstance(trace, list) else []:
        if (
            isinstance(entry, dict)
            and isinstance(entry.get("source"), str)
            and entry.get("field")
            and is_sensitive(entry["source"], fields)
        ):
            out.add(str(entry["field"]).rsplit(".", 1)[-1])
    return out


def mask_trace(trace: Any, fields: Iterable[Any] | None) -> Any:
    """The trace with the raw value, step outputs and output of sensitive sources masked."""
    if not fields or not isinstance(trace, list):
        return trace
    masked = []
    for entry in trace:
        if isinstance(entry, dict) and isinstance(entry.get("source"), str) and is_sensitive(entry["source"], fields):
            entry = dict(entry)
            for key in ("raw", "output"):
                if key in entry:
                    entry[key] = _masked_value(entry[key])
            entry["steps"] = [
                {**step, "output": _masked_value(step.get("output"))} if isinstance(step, dict) else step
                for step in entry.get("steps") or []
            ]
        masked.append(entry)
    return masked


def mask_text(text: Any, fields: Iterable[Any] | None, *, extra_names: Iterable[str] = ()) -> Any:
    """A body that may be JSON text: masked and re-serialised if it parses; otherwise as it is
    (a non-JSON answer cannot be masked field by field)."""
    if not fields or not isinstance(text, str) or not text:
        return text
    try:
        parsed = exactjson.loads(text)
    except (ValueError, TypeError, RecursionError):
        return text
    return exactjson.dumps(mask_data(parsed, fields, extra_names=extra_names))


def mask_request(request: Any, fields: Iterable[Any] | None, *, extra_names: Iterable[str] = ()) -> Any:
    """An attempt's stored request (method, url, headers, body) with the body masked."""
    if not fields or not isinstance(request, dict):
        return request
    out = dict(request)
    body = out.get("body")
    out["body"] = (
        mask_text(body, fields, extra_names=extra_names)
        if isinstance(body, str)
        else mask_data(body, fields, extra_names=extra_names)
    )
    return out


def restore_masked(edited: Any, original: Any) -> Any:
    """An edited payload where every value still equal to MASK gets the original's value back,
    so someone who cannot see a sensitive field can still edit the rest of the payload."""
    if edited == MASK:
        return original
    if isinstance(edited, dict):
        base = original if isinstance(original, dict) else {}
        return {k: restore_masked(v, base.get(k)) for k, v in edited.items()}
    if isinstance(edited, list):
        base_list = original if isinstance(original, list) else []
        return [restore_masked(v, base_list[i] if i < len(base_list) else None) for i, v in enumerate(edited)]
    return edited


def sensitive_values(data: Any, fields: Iterable[Any] | None) -> set[str]:
    """The text of every sensitive value in ``data`` (to cut out of free-text reasons)."""
    found: set[str] = set()
    names, paths = _normalise(fields)
    if not names and not paths:
        return found

    def collect(value: Any) -> None:
        if isinstance(value, dict):
            for item in value.values():
                collect(item)
        elif isinstance(value, list):
            for item in value:
                collect(item)
        elif value is not None and not isinstance(value, bool):
            text = str(value)
            if len(text) >= 3:
                found.add(text)

    def walk(value: Any, path: tuple[str, ...]) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                here = (*path, str(key).lower())
                if here[-1] in names or ".".join(here) in paths:
                    collect(item)
                else:
                    walk(item, here)
        elif isinstance(value, list):
            for item in value:
                walk(item, path)

    walk(data, ())
    return found


# Where the values are not at hand (lists of records do not load payloads), reasons are cut with
# these: e-mail addresses and runs of 7+ digits (phone numbers, account numbers).
_PII_TEXT = re.compile(r"[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+|\+?\d[\d \-()]{5,}\d")


def scrub(text: Any, values: Iterable[str] = ()) -> Any:
    """Free text (a reason) with the given sensitive values and PII-looking text replaced."""
    if not isinstance(text, str) or not text:
        return text
    for value in sorted(values, key=len, reverse=True):
        text = text.replace(value, MASK)
    return _PII_TEXT.sub(MASK, text)


class PayloadMasker:
    """What one viewer may see of one integration's payloads (a no-op for those allowed)."""

    def __init__(self, *, user: Any, fields: Iterable[Any] | None, payloads: Iterable[Any] = ()) -> None:
        self.fields = [] if can_see_sensitive(user) else list(fields or [])
        self.active = bool(self.fields)
        self.values: set[str] = set()
        for payload in payloads if self.active else ():
            self.values |= sensitive_values(payload, self.fields)

    @classmethod
    def for_record(cls, user: Any, record: Any) -> PayloadMasker:
        """For one record's page: knows its sensitive values, to cut them out of reasons too."""
        return cls(
            user=user,
            fields=record.integration.sensitive_fields,
            payloads=[record.payload, record.original_payload],
        )

    def reason(self, text: Any) -> Any:
        return scrub(text, self.values) if self.active else text

    def restore(self, edited: Any, original: Any) -> Any:
        return restore_masked(edited, original) if self.active else edited

    def data(self, value: Any, trace: Any = None) -> Any:
        if not self.active:
            return value
        return mask_data(value, self.fields, extra_names=sensitive_outputs(trace, self.fields))

    def trace(self, trace: Any) -> Any:
        return mask_trace(trace, self.fields) if self.active else trace

    def text(self, text: Any, trace: Any = None) -> Any:
        return mask_text(text, self.fields, extra_names=sensitive_outputs(trace, self.fields)) if self.active else text

    def request(self, request: Any, trace: Any = None) -> Any:
        if not self.active:
            return request
        return mask_request(request, self.fields, extra_names=sensitive_outputs(trace, self.fields))


# --------------------------------------------------------------------------------------------
# Logs and error reports
# --------------------------------------------------------------------------------------------


class SecretsExceptionReporterFilter(SafeExceptionReporterFilter):
    """Django's filter (hides settings named like secrets, cookies, sensitive_variables) plus:
    frame variables named like secrets, and secret-looking text in any frame variable."""

    hidden_settings = SECRET_NAMES

    def get_traceback_frame_variables(self, request: Any, tb_frame: Any) -> Any:
        cleansed = []
        for name, value in super().get_traceback_frame_variables(request, tb_frame):
            if SECRET_NAMES.search(str(name)):
                value = self.cleansed_substitute
            elif isinstance(value, str) and SECRET_TEXT.search(value):
                value = redact_text(value)
            elif isinstance(value, list | tuple) and any(isinstance(v, str) and SECRET_TEXT.search(v) for v in value):
                value = self.cleansed_substitute
            cleansed.append((name, value))
        return cleansed
