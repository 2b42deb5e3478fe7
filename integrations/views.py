"""Support UI: dashboard, record search, record page and its actions.

Views are glue: a permission, a form, one service or selector call, a message, a redirect.
Every POST checks its permission again here, whatever the template showed."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from integrations import selectors
from integrations.engine import exactjson
from integrations.forms import EditPayloadForm, NoteForm, RecordSearchForm
from integrations.masking import PayloadMasker
from integrations.models import SyncRecord
from integrations.services.records import ActionRefused, edit_payload_and_resend, resend_records, resolve_record

VIEW = "integrations.view_syncrecord"
RESEND = "integrations.resend_syncrecord"
EDIT = "integrations.edit_payload_syncrecord"
WORK = "integrations.work_reviewitem"


def require(request: HttpRequest, perm: str) -> None:
    """Refuse with 403 unless the user has ``perm`` (the server-side check behind every action)."""
    if not request.user.has_perm(perm):
        raise PermissionDenied(f"You need the permission {perm!r} for this.")


def can(request: HttpRequest) -> dict[str, bool]:
    user = request.user
    return {
        "resend": user.has_perm(RESEND),
        "edit": user.has_perm(EDIT),
        "work": user.has_perm(WORK),
    }


# --------------------------------------------------------------------------------------------
# Displaying JSON exactly (Decimals and big ints keep their digits)
# --------------------------------------------------------------------------------------------


def pretty(value: Any, indent: int = 0) -> str:
    """Indented JSON text for display, written with exactjson so no digit changes."""
    pad, inner = "  " * indent, "  " * (indent + 1)
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f"{inner}{json.dumps(str(k), ensure_ascii=False)}: {pretty(v, indent + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list | tuple):
        if not value:
            return "[]"
        return "[\n" + ",\n".join(f"{inner}{pretty(v, indent + 1)}" for v in value) + f"\n{pad}]"
    try:
        return exactjson.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def pretty_text(text: Any) -> str:
    """A body that may be JSON text: indented if it parses, else as it is."""
    if text is None or text == "":
        return ""
    if not isinstance(text, str):
        return pretty(text)
    try:
        return pretty(exactjson.loads(text))
    except (ValueError, TypeError):
        return text


def short(value: Any) -> str:
    """One-line display of a trace value."""
    if value is None:
        return "—"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    try:
        return exactjson.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def trace_rows(trace: Any) -> list[dict[str, Any]]:
    rows = []
    for entry in trace if isinstance(trace, list) else []:
        if not isinstance(entry, dict):
            continue
        steps = []
        for step in entry.get("steps") or []:
            if not isinstance(step, dict):
                continue
            if "error" in step:
                steps.append(f"{step.get('conversion')} ✗ {step['error']}")
            elif "blank" in step:
                steps.append(f"{step.get('conversion')} → blank ({step['blank']})")
            else:
                steps.append(f"{step.get('conversion')} → {short(step.get('output'))}")
        rows.append(
            {
                "field": entry.get("field", ""),
                "source": entry.get("source") or "",
                "raw": "(missing)" if entry.get("missing") else short(entry.get("raw")),
                "steps": steps,
                "result": entry.get("result", ""),
                "output": short(entry["output"]) if "output" in entry else "",
                "why": entry.get("why", ""),
                "notes": entry.get("notes") or [],
            }
        )
    return rows


def rule_names(rules: Any) -> list[str]:
    names = []
    for rule in rules if isinstance(rules, list) else []:
        if isinstance(rule, dict):
            label = rule.get("text") or rule.get("kind") or rule.get("name") or "rule"
            names.append(f"#{rule['id']} {label}" if rule.get("id") else str(label))
        else:
            names.append(str(rule))
    return names


# --------------------------------------------------------------------------------------------
# Dashboard
# --------------------------------------------------------------------------------------------


def _stamp(when: datetime) -> str:
    return timezone.localtime(when).strftime("%Y-%m-%dT%H:%M")


def records_url(**params: Any) -> str:
    """A link to the record list with these filters (lists become repeated parameters)."""
    query = []
    for key, value in params.items():
        if value in (None, "", []):
            continue
        if isinstance(value, list | tuple):
            query.extend((key, v) for v in value)
        else:
            query.append((key, value))
    return reverse("records") + ("?" + urlencode(query) if query else "")


@permission_required(VIEW, raise_exception=True)
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    customer = request.GET.get("customer") or None
    data = selectors.dashboard(customer_slug=customer)
    since = {"day": _stamp(data["day_ago"]), "week": _stamp(data["week_ago"])}
    for row in data["rows"]:
        slug = row["integration"].slug
        row["links"] = {
            window: {
                group: records_url(integration=slug, status=list(statuses), received_from=since[window])
                for group, statuses in selectors.STATUS_GROUPS.items()
            }
            for window in ("day", "week")
        }
        row["oldest_link"] = records_url(
            integration=slug, status=list(selectors.STATUS_GROUPS["waiting"]), order="oldest"
        )
        row["review_link"] = reverse("review") + "?" + urlencode({"integration": slug})
    total_links = {
        window: {
            group: records_url(customer=customer, status=list(statuses), received_from=since[window])
            for group, statuses in selectors.STATUS_GROUPS.items()
        }
        for window in ("day", "week")
    }
    customers = sorted({(r["customer"].slug, r["customer"].name) for r in data["rows"]}, key=lambda c: c[1])
    return render(
        request,
        "integrations/dashboard.html",
        {
            **data,
            "total_links": total_links,
            "customer": customer,
            "customers": customers,
            "groups": selectors.STATUS_GROUPS,
        },
    )


# --------------------------------------------------------------------------------------------
# Record search
# --------------------------------------------------------------------------------------------


@permission_required(VIEW, raise_exception=True)
@require_GET
def record_list(request: HttpRequest) -> HttpResponse:
    form = RecordSearchForm(request.GET or None)
    rows: list[SyncRecord] = []
    next_url = None
    error = ""
    filters = selectors.RecordFilters()
    if not request.GET or form.is_valid():
        if request.GET:
            filters = form.filters()
        try:
            rows, next_cursor = selectors.search_records(filters, cursor=request.GET.get("after") or None)
        except selectors.BadCursor as exc:
            error = str(exc)
            next_cursor = None
        for row in rows:  # payloads are not loaded here: reasons are cut by pattern (masking.scrub)
            masker = PayloadMasker(user=request.user, fields=row.integration.sensitive_fields)
            row.last_reason = masker.reason(row.last_reason)
        if next_cursor:
            query = request.GET.copy()
            query["after"] = next_cursor
            next_url = "?" + query.urlencode()
    first_url = None
    if request.GET.get("after"):
        query = request.GET.copy()
        query.pop("after", None)
        first_url = "?" + query.urlencode()
    context = {
        "form": form,
        "rows": rows,
        "next_url": next_url,
        "first_url": first_url,
        "page_error": error,
        "filtered": not filters.is_empty(),
        "page_size": selectors.PAGE_SIZE,
    }
    if request.htmx and request.htmx.target == "record-results":
        return render(request, "integrations/_record_rows.html", context)
    return render(request, "integrations/record_list.html", context)


# --------------------------------------------------------------------------------------------
# Record page
# --------------------------------------------------------------------------------------------


def _detail(record_id: int) -> dict[str, Any]:
    try:
        return selectors.record_detail(record_id)
    except SyncRecord.DoesNotExist as exc:
        raise Http404(str(exc)) from exc


def _mask_reasons(masker: PayloadMasker, data: dict[str, Any]) -> None:
    """Reasons may quote payload values: cut the sensitive ones out (display objects only)."""
    if not masker.active:
        return
    record: SyncRecord = data["record"]
    record.last_reason = masker.reason(record.last_reason)
    for attempt in data["attempts"]:
        attempt.reason = masker.reason(attempt.reason)
    for item in data["review_items"]:
        item.reason_text = masker.reason(item.reason_text)


def _masked_problems(masker: PayloadMasker, problems: Any) -> list[Any]:
    if not masker.active:
        return list(problems or [])
    return [{**p, "reason": masker.reason(p.get("reason"))} if isinstance(p, dict) else p for p in problems or []]


def _record_context(request: HttpRequest, data: dict[str, Any], **extra: Any) -> dict[str, Any]:
    record: SyncRecord = data["record"]
    # Payload fields the integration marks sensitive are masked for roles without
    # view_sensitive_payload: payloads, output, trace, request/response bodies and reasons.
    masker = PayloadMasker.for_record(request.user, record)
    _mask_reasons(masker, data)
    for attempt in data["attempts"]:
        attempt.rule_names = rule_names(attempt.rules_applied)  # type: ignore[attr-defined]
    out = data["last_with_output"]
    req = data["last_with_request"]
    request_view = None
    if req is not None:
        r = masker.request(req.request or {}, req.trace)
        request_view = {
            "attempt": req,
            "line": f"{r.get('method', '')} {r.get('url', '')}".strip(),
            "headers": r.get("headers") or {},
            "body": pretty_text(r.get("body")),
            "status": req.response_status,
            "response": pretty_text(masker.text(req.response_body, req.trace)),
        }
    payload_json = pretty(masker.data(record.payload))
    context = {
        **data,
        "perms_can": can(request),
        "payload_json": payload_json,
        "original_json": pretty(masker.data(record.original_payload)) if record.original_payload is not None else "",
        "output_json": pretty(masker.data(out.output, out.trace)) if out is not None and out.output is not None else "",
        "output_attempt": out,
        "trace": trace_rows(masker.trace(out.trace)) if out is not None else [],
        "problems": _masked_problems(masker, out.problems if out is not None else []),
        "request_view": request_view,
        "payload_masked": masker.active,
        "edit_form": extra.pop("edit_form", None) or EditPayloadForm(initial={"payload": payload_json}),
        "note_form": extra.pop("note_form", None) or NoteForm(),
        "waiting": record.status in selectors.STATUS_GROUPS["waiting"],
        "same_source_link": records_url(integration=record.integration.slug, source_id=record.source_id),
    }
    context.update(extra)
    return context


@permission_required(VIEW, raise_exception=True)
@require_GET
def record_detail(request: HttpRequest, record_id: int) -> HttpResponse:
    data = _detail(record_id)
    return render(request, "integrations/record_detail.html", _record_context(request, data))


@permission_required(VIEW, raise_exception=True)
@require_GET
def record_status(request: HttpRequest, record_id: int) -> HttpResponse:
    """Polled by the record page while the record is on its way: when its status changes, the
    page reloads (HX-Refresh) so the new attempt shows up."""
    row = SyncRecord.objects.filter(pk=record_id).values("status").first()
    if row is None:
        raise Http404
    response = render(
        request,
        "integrations/_record_status.html",
        {"status": row["status"], "label": SyncRecord.Status(row["status"]).label, "record_id": record_id},
    )
    if request.GET.get("was") and request.GET["was"] != row["status"]:
        response["HX-Refresh"] = "true"
    return response


def _record(record_id: int) -> SyncRecord:
    record = SyncRecord.objects.select_related("integration").filter(pk=record_id).first()
    if record is None:
        raise Http404
    return record


@require_POST
def record_resend(request: HttpRequest, record_id: int) -> HttpResponse:
    require(request, RESEND)
    record = _record(record_id)
    version = request.POST.get("version", "current")
    try:
        n = resend_records(record_ids=[record.pk], version=version, acting_user=request.user)  # type: ignore[arg-type]
    except ActionRefused as exc:
        messages.error(request, str(exc))
    else:
        if n:
            which = "the version it first used" if version == "original" else "the published mapping"
            messages.success(request, f"Queued for a new attempt with {which}.")
        else:
            messages.error(request, "Not queued: the record is being delivered right now. Try again in a moment.")
    return redirect("record", record_id=record.pk)


@require_POST
def record_edit(request: HttpRequest, record_id: int) -> HttpResponse:
    require(request, EDIT)
    record = _record(record_id)
    form = EditPayloadForm(request.POST)
    if form.is_valid():
        # Someone who sees sensitive fields masked edits the rest: masked values keep the original.
        masker = PayloadMasker(user=request.user, fields=record.integration.sensitive_fields)
        try:
            edit_payload_and_resend(
                record=record,
                payload=masker.restore(form.cleaned_data["payload"], record.payload),
                acting_user=request.user,
                note=form.cleaned_data["note"],
            )
        except ActionRefused as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, "Payload saved (the original is kept) and queued for a new attempt.")
            return redirect("record", record_id=record.pk)
    data = _detail(record.pk)
    context = _record_context(request, data, edit_form=form, open_edit=True)
    return render(request, "integrations/record_detail.html", context, status=400)


@require_POST
def record_resolve(request: HttpRequest, record_id: int) -> HttpResponse:
    require(request, WORK)
    record = _record(record_id)
    form = NoteForm(request.POST)
    if form.is_valid():
        try:
            n = resolve_record(record=record, acting_user=request.user, note=form.cleaned_data["note"])
        except ActionRefused as exc:
            form.add_error("note", str(exc))
        else:
            messages.success(request, f"Marked resolved ({n} open review item{'s' if n != 1 else ''} closed).")
            return redirect("record", record_id=record.pk)
    data = _detail(record.pk)
    return render(
        request, "integrations/record_detail.html", _record_context(request, data, note_form=form), status=400
    )


@permission_required(VIEW, raise_exception=True)
def record_preview(request: HttpRequest, record_id: int) -> HttpResponse:
    """What a resend would send, without sending it. Changes nothing (GET, read-only)."""
    require(request, RESEND)
    record = _record(record_id)
    version = request.GET.get("version", "current")
    if version not in ("current", "original"):
        version = "current"
    preview = selectors.preview_resend(record, version=version)
    masker = PayloadMasker.for_record(request.user, record)
    if masker.active:
        preview = {**preview, "problems": _masked_problems(masker, preview.get("problems"))}
        preview["message"] = masker.reason(preview.get("message"))
    context = {
        "record": record,
        "preview": preview,
        "which": version,
        "output_json": pretty(masker.data(preview["output"], preview.get("trace")))
        if preview.get("output") is not None
        else "",
        "trace": trace_rows(masker.trace(preview.get("trace"))),
        "rules": rule_names(preview.get("rules")),
        "perms_can": can(request),
    }
    template = "integrations/_record_preview.html" if request.htmx else "integrations/record_preview.html"
    return render(request, template, context)
