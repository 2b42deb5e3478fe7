"""Mapping editor pages: the list of integrations' mappings, one mapping's field table, the draft
editor (field table form and raw spec text), the draft preview on real records, publish, discard,
the version list, the diff between two versions and rollback.

Glue only: a permission, a form, one service call from ``services.mappings``, a message, a
redirect. Seeing needs ``view_mappingversion``; editing and discarding the draft need
``change_mappingversion``; publishing and rolling back need ``publish_mappingversion``. Every POST
checks its permission here, whatever the page showed.

Two people may edit the same draft: every form carries the fingerprint of the spec it was made
from, and a save or publish on top of a newer change is refused (nothing is overwritten)."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count, F
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from integrations import masking
from integrations.engine import exactjson, mapping, spectext, transforms
from integrations.forms_mappings import (
    DiffForm,
    FieldForm,
    PublishForm,
    RollbackForm,
    SpecTextForm,
    field_formset,
    show_convert,
    show_source,
    show_yaml,
    spec_digest,
)
from integrations.models import Integration, MappingVersion, SyncRecord
from integrations.services import mappings as service

VIEW = "integrations.view_mappingversion"
CHANGE = "integrations.change_mappingversion"
PUBLISH = "integrations.publish_mappingversion"
VIEW_RECORDS = "integrations.view_syncrecord"
PREVIEW_LIMIT = 50
Status = MappingVersion.Status


def _require(request: HttpRequest, *perms: str) -> None:
    if not request.user.has_perms(perms):
        raise PermissionDenied("You may look at mappings but not change them.")


def _can(request: HttpRequest) -> dict[str, bool]:
    return {"change": request.user.has_perm(CHANGE), "publish": request.user.has_perm(PUBLISH)}


def _integration(slug: str) -> Integration:
    integration = Integration.objects.select_related("customer").filter(slug=slug).first()
    if integration is None:
        raise Http404(f"No integration {slug!r}.")
    return integration


def _current(integration: Integration) -> tuple[MappingVersion | None, MappingVersion | None]:
    """(published, draft) in one query."""
    published = draft = None
    for v in MappingVersion.objects.filter(
        integration=integration, status__in=(Status.PUBLISHED, Status.DRAFT)
    ).select_related("author", "published_by"):
        if v.status == Status.PUBLISHED:
            published = v
        else:
            draft = v
    return published, draft


def _label(version: MappingVersion | None) -> str:
    if version is None:
        return "nothing"
    return "draft" if version.status == Status.DRAFT else f"v{version.number}"


# --------------------------------------------------------------------------------------------
# Showing a spec
# --------------------------------------------------------------------------------------------

_RECORD_LABELS = [
    ("source_id", "Record id"),
    ("updated_at", "Updated at"),
    ("event_id", "Event id"),
    ("parent", "Parent link"),
    ("group", "Related records (group)"),
    ("duplicates", "Duplicate checks"),
]
_OPTION_LABELS = [
    ("description", "Description"),
    ("default_region", "Default phone region"),
    ("default_country", "Default country"),
    ("blank_values", "Blank placeholders"),
    ("unicode_nfc", "Unicode NFC"),
]


def field_rows(spec: Any) -> list[dict[str, Any]]:
    """The field table of a spec, as display text."""
    rows = []
    fields = spec.get("fields") if isinstance(spec, dict) else None
    for number, f in enumerate(fields if isinstance(fields, list) else [], start=1):
        if not isinstance(f, dict):
            continue
        value_map = f.get("value_map") if isinstance(f.get("value_map"), dict) else None
        raw_steps = f.get("convert")
        steps: list[Any] = raw_steps if isinstance(raw_steps, list) else []
        rows.append(
            {
                "number": number,
                "name": f.get("name", ""),
                "description": f.get("description", ""),
                "source": show_source(f.get("source")),
                "owner": f.get("owner", "source"),
                "convert": [show_convert([s]) for s in steps],
                "required": bool(f.get("required")),
                "on_blank": f.get("on_blank", "keep"),
                "default": show_yaml(f["default"]) if "default" in f else None,
                "on_invalid": f.get("on_invalid", "review"),
                "value_map": [(k, show_yaml(v)) for k, v in value_map.items()] if value_map is not None else None,
                "value_map_default": show_yaml(f["value_map_default"]) if "value_map_default" in f else None,
                "precedence": f.get("precedence"),
            }
        )
    return rows


def option_rows(spec: Any) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(record options, spec-wide options) as (label, text) pairs, only those set."""
    spec = spec if isinstance(spec, dict) else {}
    record = spec.get("record") if isinstance(spec.get("record"), dict) else {}
    rec = [(label, show_yaml(record[key])) for key, label in _RECORD_LABELS if key in record]
    opts = [(label, show_yaml(spec[key])) for key, label in _OPTION_LABELS if key in spec]
    return rec, opts


def _spec_context(spec: Any) -> dict[str, Any]:
    record_options, options = option_rows(spec)
    return {"fields": field_rows(spec), "record_options": record_options, "options": options}


# --------------------------------------------------------------------------------------------
# List and one mapping
# --------------------------------------------------------------------------------------------


@require_GET
@permission_required(VIEW, raise_exception=True)
def index(request: HttpRequest) -> HttpResponse:
    integrations = list(Integration.objects.select_related("customer").annotate(versions=Count("mapping_versions")))
    current: dict[int, dict[str, MappingVersion]] = {}
    for v in (
        MappingVersion.objects.filter(status__in=(Status.PUBLISHED, Status.DRAFT))
        .select_related("author", "published_by")
        .defer("spec")
    ):
        current.setdefault(v.integration_id, {})[v.status] = v
    rows = [
        {
            "integration": i,
            "published": current.get(i.pk, {}).get(Status.PUBLISHED),
            "draft": current.get(i.pk, {}).get(Status.DRAFT),
        }
        for i in integrations
    ]
    return render(request, "mappings/index.html", {"rows": rows, "can": _can(request)})


@require_GET
@permission_required(VIEW, raise_exception=True)
def detail(request: HttpRequest, slug: str) -> HttpResponse:
    """One mapping's field table: the published version, or ``?version=N`` / ``?version=draft``."""
    integration = _integration(slug)
    published, draft = _current(integration)
    wanted = request.GET.get("version", "")
    shown: MappingVersion | None
    if wanted == "draft":
        shown = draft
    elif wanted.isdigit():
        shown = (
            MappingVersion.objects.filter(integration=integration, number=int(wanted))
            .select_related("author", "published_by")
            .first()
        )
    else:
        shown = published or draft
    if wanted and shown is None:
        raise Http404("No such version.")
    context = {
        "integration": integration,
        "published": published,
        "draft": draft,
        "shown": shown,
        "can": _can(request),
        "tab": "draft" if shown is not None and shown.status == Status.DRAFT else "version",
        **_spec_context(shown.spec if shown is not None else {}),
    }
    if draft is not None and published is not None:
        context["draft_changes"] = service.versions_diff(published, draft)
    return render(request, "mappings/detail.html", context)


# --------------------------------------------------------------------------------------------
# Editing the draft
# --------------------------------------------------------------------------------------------

_FIELD_PROBLEM = re.compile(r"^fields\[(\d+)\]")
# Which column a problem is about: the spec key it names ("field 'x' convert.0: …"), else a word
# of its message ("field 'x': on_blank is default but no default is given").
_KEY_COLUMNS = {
    "name": "name",
    "source": "source",
    "owner": "owner",
    "convert": "convert",
    "required": "on_blank",
    "on_blank": "on_blank",
    "default": "on_blank",
    "on_invalid": "on_invalid",
    "value_map": "value_map",
    "value_map_default": "value_map",
}
_MESSAGE_WORDS = [
    ("unknown conversion", "convert"),
    ("conversion ", "convert"),
    ("value_map", "value_map"),
    ("on_invalid", "on_invalid"),
    ("on_blank", "on_blank"),
    ("default", "on_blank"),
    ("required", "on_blank"),
    ("source", "source"),
    ("mapped twice", "name"),
    ("name", "name"),
]


def _problem_row(problem: str, names: list[str]) -> tuple[int, str] | None:
    """Which field (index into the saved list) a validation problem names, and the rest of it."""
    best: tuple[int, str] | None = None
    for index, name in enumerate(names):
        label = f"field {name!r}"
        if problem.startswith(label) and (best is None or len(label) > len(problem) - len(best[1])):
            best = (index, problem[len(label) :])
    if best is not None:
        return best
    match = _FIELD_PROBLEM.match(problem)
    return (int(match.group(1)), problem[match.end() :]) if match else None


def _problem_column(rest: str) -> str:
    head, _, message = rest.partition(":")
    key = head.strip().split(".")[0]
    if key:
        return _KEY_COLUMNS.get(key, "")
    message = message.strip()
    for word, column in _MESSAGE_WORDS:
        if word in message:
            return column
    return ""


def _attach_problems(rows: list[FieldForm], problems: list[str]) -> list[str]:
    """Put each problem on the row (and column) it names; return those that name no field."""
    names = [r.cleaned_data["name"].strip() for r in rows]
    general = []
    for problem in problems:
        found = _problem_row(problem, names)
        if found is None or found[0] >= len(rows):
            general.append(problem)
            continue
        index, rest = found
        form = rows[index]
        text = rest.strip().removeprefix(":").strip() or problem
        form.spec_problems = [*getattr(form, "spec_problems", []), text]  # type: ignore[attr-defined]
        column = _problem_column(rest)
        form.problem_columns = {*getattr(form, "problem_columns", set()), column}  # type: ignore[attr-defined]
        for key in ("name", column):
            if key in form.fields:
                form.fields[key].widget.attrs["aria-invalid"] = "true"
        for fld in form.fields.values():
            fld.widget.attrs["aria-describedby"] = f"problems-{form.prefix}"
    return general


def _draft_base(integration: Integration) -> tuple[MappingVersion | None, MappingVersion | None, dict[str, Any]]:
    published, draft = _current(integration)
    base = draft.spec if draft is not None else (published.spec if published is not None else {"fields": []})
    return published, draft, base


def _editor_context(
    request: HttpRequest, integration: Integration, published: Any, draft: Any, base_spec: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    record_options, options = option_rows(base_spec)
    context = {
        "integration": integration,
        "published": published,
        "draft": draft,
        "can": _can(request),
        "base": spec_digest(base_spec),
        "record_options": record_options,
        "options": options,
        "conversions": transforms.describe(),
        "publish_form": PublishForm(initial={"base": spec_digest(base_spec)}),
    }
    if draft is not None and published is not None:
        context["draft_changes"] = service.versions_diff(published, draft)
    context.update(extra)
    return context


def _stale(base: str, current_spec: dict[str, Any]) -> bool:
    return bool(base) and base != spec_digest(current_spec)


STALE = (
    "Someone changed this draft after you opened it, so nothing was saved. "
    "Open the draft again to see their change, then redo yours."
)


def _draft_access(request: HttpRequest, slug: str) -> HttpResponse | None:
    """Saving needs edit permission (403 without); a reader without it is sent to the draft's
    read-only view. None: go on."""
    if request.method == "POST":
        _require(request, CHANGE)
    elif not request.user.has_perm(CHANGE):
        return redirect(reverse("mappings:detail", args=[slug]) + "?version=draft")
    return None


@require_http_methods(["GET", "POST"])
@permission_required(VIEW, raise_exception=True)
def draft_edit(request: HttpRequest, slug: str) -> HttpResponse:
    """The field table form. Without edit permission: the draft's table, read-only."""
    integration = _integration(slug)
    if (read_only := _draft_access(request, slug)) is not None:
        return read_only
    published, draft, base_spec = _draft_base(integration)
    general: list[str] = []
    status = 200
    if request.method == "POST":
        op = request.POST.get("op", "save")
        formset = field_formset(base_spec, request.POST, extra=1 if op == "add" else 0)
        if op == "add":
            return render(
                request,
                "mappings/editor.html",
                _editor_context(
                    request,
                    integration,
                    published,
                    draft,
                    base_spec,
                    formset=formset,
                    base=request.POST.get("base", ""),
                ),
            )
        if _stale(request.POST.get("base", ""), base_spec):
            general.append(STALE)
            status = 409
        elif formset.is_valid():
            rows = formset.ordered_rows()
            spec = dict(base_spec)
            spec["fields"] = [r.to_field() for r in rows]
            spec = service.ordered_spec(spec)
            try:
                service.draft_save(integration=integration, spec=spec, acting_user=request.user)  # type: ignore[arg-type]
            except service.MappingRefused as exc:
                unplaced = _attach_problems(rows, exc.problems)
                placed = len(exc.problems) - len(unplaced)
                general = [exc.message + (" (shown next to the fields they name, below)" if placed else ""), *unplaced]
                status = 400
            else:
                messages.success(request, "Draft saved." if draft is not None else "Draft started and saved.")
                if op == "preview":
                    return redirect("mappings:preview", slug=slug)
                return redirect("mappings:draft", slug=slug)
        else:
            general.append("Some cells cannot be read; see the marked rows. Nothing was saved.")
            status = 400
    else:
        formset = field_formset(base_spec)
    context = _editor_context(request, integration, published, draft, base_spec, formset=formset, problems=general)
    if request.method == "POST":
        context["base"] = request.POST.get("base", "")
    return render(request, "mappings/editor.html", context, status=status)


@require_http_methods(["GET", "POST"])
@permission_required(VIEW, raise_exception=True)
def draft_text(request: HttpRequest, slug: str) -> HttpResponse:
    """The whole spec as YAML/JSON text, for power users."""
    integration = _integration(slug)
    if (read_only := _draft_access(request, slug)) is not None:
        return read_only
    published, draft, base_spec = _draft_base(integration)
    problems: list[str] = []
    status = 200
    if request.method == "POST":
        form = SpecTextForm(request.POST)
        if _stale(request.POST.get("base", ""), base_spec):
            problems.append(STALE)
            status = 409
        elif form.is_valid():
            try:
                service.draft_save(
                    integration=integration,
                    spec=form.cleaned_data["text"],
                    acting_user=request.user,  # type: ignore[arg-type]
                )
            except service.MappingRefused as exc:
                problems = [exc.message, *exc.problems]
                status = 400
            else:
                messages.success(request, "Draft saved from the spec text.")
                return redirect("mappings:draft_text", slug=slug)
        else:
            status = 400
    else:
        text = spectext.dump_spec_text(service.ordered_spec(base_spec))
        form = SpecTextForm(initial={"text": text, "base": spec_digest(base_spec)})
    context = _editor_context(request, integration, published, draft, base_spec, text_form=form, problems=problems)
    return render(request, "mappings/editor_text.html", context, status=status)


@require_POST
def draft_publish(request: HttpRequest, slug: str) -> HttpResponse:
    _require(request, VIEW, PUBLISH)
    integration = _integration(slug)
    published, draft, base_spec = _draft_base(integration)
    form = PublishForm(request.POST)
    if draft is None:
        messages.error(request, "There is no draft to publish (it may just have been published or discarded).")
        return redirect("mappings:detail", slug=slug)
    if form.is_valid():
        if _stale(form.cleaned_data["base"], draft.spec):
            form.add_error(None, STALE)
        else:
            try:
                version = service.draft_publish(
                    integration=integration,
                    acting_user=request.user,  # type: ignore[arg-type]
                    note=form.cleaned_data["note"],
                )
            except service.MappingRefused as exc:
                form.add_error(None, [exc.message, *exc.problems])
            else:
                messages.success(request, f"Published v{version.number}. New attempts use it from now on.")
                url = reverse("mappings:diff", args=[slug])
                if published is not None:
                    url += f"?a={published.number}&b={version.number}"
                else:
                    url += f"?b={version.number}"
                return redirect(url)
    formset = field_formset(base_spec)
    context = _editor_context(
        request, integration, published, draft, base_spec, formset=formset, publish_form=form, open_publish=True
    )
    return render(request, "mappings/editor.html", context, status=400)


@require_POST
def draft_discard(request: HttpRequest, slug: str) -> HttpResponse:
    _require(request, VIEW, CHANGE)
    integration = _integration(slug)
    if service.draft_discard(integration=integration, acting_user=request.user):  # type: ignore[arg-type]
        messages.success(request, "Draft discarded (its history is kept).")
    else:
        messages.info(request, "There was no draft to discard.")
    return redirect("mappings:detail", slug=slug)


# --------------------------------------------------------------------------------------------
# Preview on real records
# --------------------------------------------------------------------------------------------


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested output objects as dotted field names (``address.zip``), as the spec names them."""
    out: dict[str, Any] = {}
    if isinstance(value, dict):
        for key, inner in value.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(inner, dict) and inner:
                out.update(_flat(inner, name))
            else:
                out[name] = inner
    return out


def _cell(value: Any) -> str:
    try:
        return exactjson.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _compare(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """Field-by-field comparison of the published output (``old``) with the draft's (``new``)."""
    before = _flat(old["output"]) if old is not None else {}
    after = _flat(new["output"])
    names = list(after) + [n for n in before if n not in after]
    fields = []
    for name in names:
        a = _cell(before[name]) if name in before else None
        b = _cell(after[name]) if name in after else None
        fields.append({"name": name, "old": a, "new": b, "changed": old is not None and a != b})
    return {
        "fields": fields,
        "changed": [f for f in fields if f["changed"]],
        "decision_changed": old is not None and old["decision"] != new["decision"],
    }


def _mask(row: dict[str, Any], masker: masking.PayloadMasker) -> None:
    """Hide sensitive values from viewers without ``view_sensitive_payload``: output fields
    filled from a sensitive source (or named like one), and those values inside reasons. The
    changed/unchanged marks were worked out on the real values before this."""
    if not masker.active:
        return
    names = masking.sensitive_outputs(row["new"]["trace"], masker.fields)
    if row["old"] is not None:
        names |= masking.sensitive_outputs(row["old"]["trace"], masker.fields)
    names = {n.lower() for n in names}
    shown = _cell(masking.MASK)
    for f in row["fields"]:
        if f["name"].rsplit(".", 1)[-1].lower() in names or masking.is_sensitive(f["name"], masker.fields):
            f["old"] = shown if f["old"] is not None else None
            f["new"] = shown if f["new"] is not None else None
    row["problems"] = [{**p, "reason": masker.reason(p.get("reason"))} for p in row["problems"]]


def _compiled(spec: Any) -> tuple[mapping.CompiledSpec | None, list[str]]:
    try:
        return mapping.compile_spec(spec), []
    except mapping.SpecError as exc:
        return None, exc.errors


@require_GET
@permission_required(VIEW, raise_exception=True)
def preview(request: HttpRequest, slug: str) -> HttpResponse:
    """The draft and the published version run on the integration's last 50 records (newest
    first), nothing stored, changed outputs marked field by field. Customer rules are not
    applied here: this compares mappings only."""
    _require(request, VIEW_RECORDS)
    integration = _integration(slug)
    published, draft = _current(integration)
    context: dict[str, Any] = {
        "integration": integration,
        "published": published,
        "draft": draft,
        "can": _can(request),
        "limit": PREVIEW_LIMIT,
    }
    if draft is None:
        return render(request, "mappings/preview.html", context)
    context["publish_form"] = PublishForm(initial={"base": spec_digest(draft.spec)})
    new_spec, spec_problems = _compiled(draft.spec)
    old_spec = _compiled(published.spec)[0] if published is not None else None
    records = list(
        SyncRecord.objects.filter(integration=integration, payload_pruned_at__isnull=True)
        .order_by("-received_at", "-id")
        .only("id", "source_id", "payload", "received_at", "status")[:PREVIEW_LIMIT]
    )
    rows = []
    fields = integration.sensitive_fields
    if new_spec is not None:
        for record in records:
            new = service.preview_one(new_spec, record.payload)
            old = service.preview_one(old_spec, record.payload) if old_spec is not None else None
            row = {"record": record, "new": new, "old": old, "problems": new["problems"], **_compare(old, new)}
            _mask(row, masking.PayloadMasker(user=request.user, fields=fields, payloads=[record.payload]))
            rows.append(row)
    only_changed = request.GET.get("only") == "changed"
    context.update(
        {
            "spec_problems": spec_problems,
            "rows": [r for r in rows if r["changed"] or r["decision_changed"]] if only_changed else rows,
            "total": len(rows),
            "changed_count": sum(1 for r in rows if r["changed"]),
            "decision_changes": sum(1 for r in rows if r["decision_changed"]),
            "decisions": Counter(r["new"]["decision"] for r in rows),
            "only_changed": only_changed,
        }
    )
    return render(request, "mappings/preview.html", context)


# --------------------------------------------------------------------------------------------
# Versions, diff, rollback
# --------------------------------------------------------------------------------------------


@require_GET
@permission_required(VIEW, raise_exception=True)
def versions(request: HttpRequest, slug: str) -> HttpResponse:
    integration = _integration(slug)
    rows = list(
        MappingVersion.objects.filter(integration=integration)
        .select_related("author", "published_by")
        .defer("spec")
        .order_by(F("number").desc(nulls_first=True))
    )
    published = next((v for v in rows if v.status == Status.PUBLISHED), None)
    return render(
        request,
        "mappings/versions.html",
        {
            "integration": integration,
            "versions": rows,
            "published": published,
            "draft": next((v for v in rows if v.status == Status.DRAFT), None),
            "can": _can(request),
            "diff_form": DiffForm(choices=_choices(rows), initial=_default_pair(rows)),
            "rollback_form": RollbackForm(),
        },
    )


def _choices(rows: list[MappingVersion]) -> list[tuple[str, str]]:
    out = []
    for v in rows:
        key = "draft" if v.status == Status.DRAFT else str(v.number)
        out.append((key, f"{_label(v)} ({v.get_status_display().lower()})"))
    return out


def _default_pair(rows: list[MappingVersion]) -> dict[str, str]:
    numbered = sorted((v.number for v in rows if v.number), reverse=True)
    if any(v.status == Status.DRAFT for v in rows) and numbered:
        published = next((v.number for v in rows if v.status == Status.PUBLISHED), numbered[0])
        return {"a": str(published), "b": "draft"}
    if len(numbered) >= 2:
        return {"a": str(numbered[1]), "b": str(numbered[0])}
    return {"a": str(numbered[0]) if numbered else "", "b": str(numbered[0]) if numbered else ""}


def _pick(integration: Integration, key: str) -> MappingVersion | None:
    qs = MappingVersion.objects.filter(integration=integration).select_related("author", "published_by")
    if key == "draft":
        return qs.filter(status=Status.DRAFT).first()
    if key == "published":
        return qs.filter(status=Status.PUBLISHED).first()
    if key.isdigit():
        return qs.filter(number=int(key)).first()
    return None


@require_GET
@permission_required(VIEW, raise_exception=True)
def diff(request: HttpRequest, slug: str) -> HttpResponse:
    """What changed from version ``a`` to version ``b`` (numbers, ``draft`` or ``published``).
    Without ``a``: from the version before ``b``."""
    integration = _integration(slug)
    b_key = request.GET.get("b") or "published"
    b = _pick(integration, b_key)
    if b is None:
        raise Http404(f"No version {b_key!r} of {slug}.")
    a_key = request.GET.get("a") or ""
    if a_key:
        a = _pick(integration, a_key)
        if a is None:
            raise Http404(f"No version {a_key!r} of {slug}.")
    else:
        before = MappingVersion.objects.filter(integration=integration, number__isnull=False)
        if b.number:
            before = before.filter(number__lt=b.number)
        a = before.select_related("author", "published_by").order_by("-number").first()
    lines = service.versions_diff(a, b) if a is not None else []
    by_field: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        key = (
            f"Field {line['field']}" if line["field"] else ("Record options" if line["area"] == "record" else "Options")
        )
        by_field.setdefault(key, []).append(line)
    choices_rows = list(
        MappingVersion.objects.filter(integration=integration)
        .defer("spec")
        .order_by(F("number").desc(nulls_first=True))
    )
    key_of = {"draft" if v.status == Status.DRAFT else str(v.number): v for v in choices_rows}
    published = next((v for v in choices_rows if v.status == Status.PUBLISHED), None)
    draft = next((v for v in choices_rows if v.status == Status.DRAFT), None)
    form = DiffForm(
        choices=_choices(choices_rows),
        initial={
            "a": next((k for k, v in key_of.items() if a is not None and v.pk == a.pk), ""),
            "b": next((k for k, v in key_of.items() if v.pk == b.pk), ""),
        },
    )
    return render(
        request,
        "mappings/diff.html",
        {
            "integration": integration,
            "published": published,
            "draft": draft,
            "a": a,
            "b": b,
            "lines": lines,
            "by_field": by_field,
            "diff_form": form,
            "can": _can(request),
            "a_label": _label(a),
            "b_label": _label(b),
        },
    )


@require_POST
def rollback(request: HttpRequest, slug: str) -> HttpResponse:
    _require(request, VIEW, PUBLISH)
    integration = _integration(slug)
    form = RollbackForm(request.POST)
    if form.is_valid():
        number = form.cleaned_data["number"]
        try:
            version = service.rollback(
                integration=integration,
                number=number,
                acting_user=request.user,  # type: ignore[arg-type]
                note=form.cleaned_data["note"],
            )
        except service.MappingRefused as exc:
            messages.error(request, str(exc.message))
        else:
            messages.success(request, f"v{number}'s mapping is published again as v{version.number}.")
            return redirect(reverse("mappings:diff", args=[slug]) + f"?b={version.number}")
    else:
        errors = "; ".join(str(e) for errs in form.errors.values() for e in errs)
        messages.error(request, f"Not rolled back: {errors}")
    return redirect("mappings:versions", slug=slug)
