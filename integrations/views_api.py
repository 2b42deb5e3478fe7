"""Operations API: the support UI's reads and actions as JSON, for scripts.

Same selectors, services and permissions as the pages. Auth: ``Authorization: Bearer <token>``
(``manage.py api_token``) or the browser session (CSRF-checked). Lists use keyset cursors:
pass ``cursor`` from ``next_cursor`` to get the next page; there is no total count on purpose.
The OpenAPI document (/api/openapi.json) is built from ``ROUTES`` below."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, QueryDict
from django.views.decorators.http import require_GET

from integrations import selectors
from integrations.api_auth import api_view, error, json_response, request_data
from integrations.forms import RecordSearchForm, ReviewFilterForm
from integrations.masking import PayloadMasker
from integrations.models import ActionLog, Integration, MappingVersion, ReviewItem, SyncAttempt, SyncRecord
from integrations.services import review as review_service
from integrations.services.records import ActionRefused, resend_records

VIEW_RECORD = "integrations.view_syncrecord"
VIEW_REVIEW = "integrations.view_reviewitem"
VIEW_MAPPING = "integrations.view_mappingversion"
RESEND = "integrations.resend_syncrecord"
WORK = "integrations.work_reviewitem"
MAX_LIMIT = 200


def _iso(value: Any) -> str | None:
    return value.isoformat() if value else None


def _limit(request: HttpRequest, default: int = selectors.PAGE_SIZE) -> int:
    try:
        return max(1, min(int(request.GET.get("limit", default)), MAX_LIMIT))
    except ValueError as exc:
        raise ValueError("limit must be a number") from exc


def record_json(r: SyncRecord) -> dict[str, Any]:
    return {
        "id": r.pk,
        "customer": r.integration.customer.slug,
        "integration": r.integration.slug,
        "source_id": r.source_id,
        "destination_id": r.destination_id,
        "status": r.status,
        "received_at": _iso(r.received_at),
        "attempt_count": r.attempt_count,
        "last_error_class": r.last_error_class,
        "last_reason": r.last_reason,
        "next_attempt_at": _iso(r.next_attempt_at),
        "delivered_at": _iso(r.delivered_at),
    }


def attempt_json(a: SyncAttempt, masker: PayloadMasker | None = None) -> dict[str, Any]:
    data = {
        "number": a.number,
        "started_at": _iso(a.started_at),
        "duration_ms": a.duration_ms,
        "outcome": a.outcome,
        "mapping_version": a.mapping_version.number if a.mapping_version else None,
        "rules_applied": a.rules_applied,
        "error_class": a.error_class,
        "reason": a.reason,
        "operation": a.operation,
        "request": a.request,
        "response_status": a.response_status,
        "response_body": a.response_body,
        "idempotency_key": a.idempotency_key,
        "output": a.output,
        "trace": a.trace,
        "problems": a.problems,
        "acting_user": a.acting_user.get_username() if a.acting_user else None,
    }
    if masker is not None and masker.active:
        data.update(
            reason=masker.reason(a.reason),
            request=masker.request(a.request, a.trace),
            response_body=masker.text(a.response_body, a.trace),
            output=masker.data(a.output, a.trace),
            trace=masker.trace(a.trace),
            problems=[
                {**p, "reason": masker.reason(p.get("reason"))} if isinstance(p, dict) else p for p in a.problems or []
            ],
        )
    return data


def item_json(i: ReviewItem) -> dict[str, Any]:
    return {
        "id": i.pk,
        "record_id": i.record_id,
        "source_id": i.record.source_id,
        "integration": i.record.integration.slug,
        "customer": i.record.integration.customer.slug,
        "reason_code": i.reason_code,
        "reason_text": i.reason_text,
        "group_key": i.group_key,
        "mapping_version": i.mapping_version.number if i.mapping_version else None,
        "rule_id": i.rule_id,
        "opened_at": _iso(i.opened_at),
        "assignee": i.assignee.get_username() if i.assignee else None,
        "notes": i.notes,
        "status": i.status,
    }


def version_json(v: MappingVersion, *, spec: bool = False) -> dict[str, Any]:
    data = {
        "id": v.pk,
        "integration": v.integration.slug,
        "number": v.number,
        "status": v.status,
        "note": v.note,
        "created_at": _iso(v.created_at),
        "published_at": _iso(v.published_at),
    }
    if spec:
        data["spec"] = v.spec
    return data


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


@api_view("GET", perm=VIEW_RECORD)
def records(request: HttpRequest) -> HttpResponse:
    form = RecordSearchForm(request.GET)
    if not form.is_valid():
        return error(400, "Invalid filters.", fields=form.errors.get_json_data())
    try:
        rows, next_cursor = selectors.search_records(
            form.filters(), cursor=request.GET.get("cursor") or None, limit=_limit(request)
        )
    except selectors.BadCursor as exc:
        return error(400, str(exc))
    results = []
    for r in rows:
        data = record_json(r)
        data["last_reason"] = PayloadMasker(user=request.user, fields=r.integration.sensitive_fields).reason(
            r.last_reason
        )
        results.append(data)
    return json_response({"results": results, "next_cursor": next_cursor})


@api_view("GET", perm=VIEW_RECORD)
def record(request: HttpRequest, record_id: int) -> HttpResponse:
    r = SyncRecord.objects.select_related("integration__customer").filter(pk=record_id).first()
    if r is None:
        return error(404, f"No record {record_id}.")
    masker = PayloadMasker.for_record(request.user, r)
    data = record_json(r)
    data["last_reason"] = masker.reason(r.last_reason)
    data["payload"] = masker.data(r.payload)
    data["original_payload"] = masker.data(r.original_payload)
    data["attempts"] = [
        attempt_json(a, masker) for a in r.attempts.select_related("mapping_version", "acting_user").order_by("number")
    ]
    data["review_items"] = [
        {"id": i.pk, "status": i.status, "reason_text": masker.reason(i.reason_text), "opened_at": _iso(i.opened_at)}
        for i in r.review_items.order_by("-opened_at")
    ]
    return json_response(data)


def _version(data: dict[str, Any]) -> str:
    version = str(data.get("version") or "current")
    if version not in ("current", "original"):
        raise ValueError("version must be 'current' or 'original'")
    return version


@api_view("POST", perm=RESEND)
def record_resend(request: HttpRequest, record_id: int) -> HttpResponse:
    data = request_data(request)
    if not SyncRecord.objects.filter(pk=record_id).exists():
        return error(404, f"No record {record_id}.")
    n = resend_records(
        record_ids=[record_id],
        version=_version(data),
        acting_user=request.user,
        note=str(data.get("note", "")),  # type: ignore[arg-type]
    )
    if not n:
        return error(409, "The record is being delivered right now; try again in a moment.")
    return json_response({"queued": n})


@api_view("POST", perm=RESEND)
def records_resend(request: HttpRequest) -> HttpResponse:
    data = request_data(request)
    ids = data.get("ids")
    if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids) or not ids:
        return error(400, "Send {'ids': [record ids], 'version': 'current'|'original'}.")
    if len(ids) > 1000:
        return error(400, "At most 1000 records per call.")
    n = resend_records(record_ids=ids, version=_version(data), acting_user=request.user, note=str(data.get("note", "")))  # type: ignore[arg-type]
    return json_response({"queued": n})


# --------------------------------------------------------------------------------------------
# Review items
# --------------------------------------------------------------------------------------------


@api_view("GET", perm=VIEW_REVIEW)
def review_items(request: HttpRequest) -> HttpResponse:
    params = QueryDict(mutable=True)
    params.update(
        {
            k: request.GET[k]
            for k in ("customer", "integration", "reason_code", "assignee", "group_by")
            if k in request.GET
        }
    )
    form = ReviewFilterForm(params)
    if params and not form.is_valid():
        return error(400, "Invalid filters.", fields=form.errors.get_json_data())
    filters = form.filters(request.user)
    group = request.GET.get("group")
    try:
        items, next_cursor = selectors.review_items_page(
            filters,
            group_by=form.grouping() if group is not None else None,
            key=group,
            limit=_limit(request),
            cursor=request.GET.get("cursor") or None,
        )
    except selectors.BadCursor as exc:
        return error(400, str(exc))
    results = []
    for i in items:
        data = item_json(i)
        masker = PayloadMasker(user=request.user, fields=i.record.integration.sensitive_fields)
        data["reason_text"] = masker.reason(i.reason_text)
        results.append(data)
    return json_response({"results": results, "next_cursor": next_cursor})


@api_view("GET", perm=VIEW_REVIEW)
def review_groups(request: HttpRequest) -> HttpResponse:
    form = ReviewFilterForm(request.GET)
    groups = selectors.review_groups(form.filters(request.user), group_by=form.grouping())
    return json_response(
        {
            "group_by": form.grouping(),
            "results": [
                {
                    "key": g["key"],
                    "label": PayloadMasker(
                        user=request.user,
                        fields=g["integration"].sensitive_fields if g.get("integration") is not None else ["*"],
                    ).reason(g["label"]),
                    "count": g["count"],
                    "reason_code": g["reason_code"],
                    "first_opened_at": _iso(g["first"]),
                }
                for g in groups
            ],
        }
    )


def _close(request: HttpRequest, item_id: int, action: str) -> HttpResponse:
    data = request_data(request)
    if not ReviewItem.objects.filter(pk=item_id).exists():
        return error(404, f"No review item {item_id}.")
    note = str(data.get("note", ""))
    try:
        if action == "resolve":
            n = review_service.resolve_items(item_ids=[item_id], note=note, acting_user=request.user)
        else:
            n = review_service.dismiss_items(item_ids=[item_id], note=note, acting_user=request.user)
    except ActionRefused as exc:
        return error(400, str(exc))
    if not n:
        return error(409, "The item is not open any more.")
    return json_response({"closed": n, "status": ReviewItem.objects.get(pk=item_id).status})


@api_view("POST", perm=WORK)
def review_item_resolve(request: HttpRequest, item_id: int) -> HttpResponse:
    return _close(request, item_id, "resolve")


@api_view("POST", perm=WORK)
def review_item_dismiss(request: HttpRequest, item_id: int) -> HttpResponse:
    return _close(request, item_id, "dismiss")


@api_view("POST", perm=VIEW_REVIEW)
def review_bulk(request: HttpRequest) -> HttpResponse:
    """resend / resolve / dismiss many items; big selections run as a job (poll /api/jobs/<id>/)."""
    data = request_data(request)
    action = str(data.get("action", ""))
    if action not in review_service.ACTIONS:
        return error(400, f"action must be one of {', '.join(review_service.ACTIONS)}")
    perm = review_service.PERMISSIONS[action]
    if not request.user.has_perm(perm):
        return error(403, f"You need the permission {perm!r} for this.")
    ids = data.get("ids")
    if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
        return error(400, "Send {'action': ..., 'ids': [review item ids], 'note': ...}.")
    try:
        changed, job = review_service.start_bulk(
            action=action,
            item_ids=ids,
            acting_user=request.user,
            note=str(data.get("note", "")),
            version=str(data.get("version", "current")),
        )
    except ActionRefused as exc:
        return error(400, str(exc))
    if job is not None:
        return json_response(
            {"job": review_service.job_progress(job) | {"created_at": _iso(job.created_at)}}, status=202
        )
    return json_response({"changed": changed})


@api_view("GET", perm=VIEW_REVIEW)
def job(request: HttpRequest, job_id: int) -> HttpResponse:
    row = ActionLog.objects.select_related("actor").filter(pk=job_id, action="bulk_job").first()
    if row is None:
        return error(404, f"No job {job_id}.")
    return json_response(review_service.job_progress(row) | {"created_at": _iso(row.created_at)})


# --------------------------------------------------------------------------------------------
# Mappings
# --------------------------------------------------------------------------------------------


@api_view("GET", perm=VIEW_MAPPING)
def mapping_versions(request: HttpRequest, slug: str) -> HttpResponse:
    integration = Integration.objects.filter(slug=slug).first()
    if integration is None:
        return error(404, f"No integration {slug!r}.")
    versions = MappingVersion.objects.filter(integration=integration).select_related("integration")
    return json_response({"results": [version_json(v) for v in versions.order_by("-number", "-id")]})


@api_view("GET", perm=VIEW_MAPPING)
def mapping_version(request: HttpRequest, version_id: int) -> HttpResponse:
    v = MappingVersion.objects.select_related("integration").filter(pk=version_id).first()
    if v is None:
        return error(404, f"No mapping version {version_id}.")
    return json_response(version_json(v, spec=True))


@api_view("GET")
def me(request: HttpRequest) -> HttpResponse:
    user = request.user
    return json_response({"username": user.get_username(), "permissions": sorted(user.get_all_permissions())})


# --------------------------------------------------------------------------------------------
# OpenAPI 3 document, from a small route table
# --------------------------------------------------------------------------------------------

RECORD_FILTERS = [
    ("customer", "Customer slug"),
    ("integration", "Integration slug"),
    ("source_id", "Exact source id"),
    ("destination_id", "Exact destination id"),
    ("status", "Record status; repeat for several"),
    ("error_class", "Last error class"),
    ("reason", "Text in the last reason"),
    ("received_from", "Received at or after (ISO 8601)"),
    ("received_to", "Received before (ISO 8601)"),
    ("order", "newest (default) or oldest"),
    ("cursor", "next_cursor of the previous page"),
    ("limit", f"Page size, at most {MAX_LIMIT}"),
]
REVIEW_FILTERS = [
    ("customer", "Customer slug"),
    ("integration", "Integration slug"),
    ("reason_code", "e.g. unmapped_value, client_error"),
    ("assignee", "username, 'me' or 'none'"),
    ("group_by", "cause (default), version or rule"),
    ("group", "Only items of this group key (from /api/review-groups/)"),
    ("cursor", "next_cursor of the previous page"),
    ("limit", f"Page size, at most {MAX_LIMIT}"),
]

# (method, path, summary, permission, query parameters, request body properties)
ROUTES: list[tuple[str, str, str, str | None, list[tuple[str, str]], dict[str, Any] | None]] = [
    ("get", "/api/me/", "Who the token acts as, and their permissions", None, [], None),
    ("get", "/api/records/", "Search records (keyset-paginated, newest first)", VIEW_RECORD, RECORD_FILTERS, None),
    ("get", "/api/records/{id}/", "One record with its payload, attempts and review items", VIEW_RECORD, [], None),
    (
        "post",
        "/api/records/{id}/resend/",
        "Queue a record for a new attempt",
        RESEND,
        [],
        {"version": {"type": "string", "enum": ["current", "original"]}, "note": {"type": "string"}},
    ),
    (
        "post",
        "/api/records/resend/",
        "Queue up to 1000 records for a new attempt",
        RESEND,
        [],
        {
            "ids": {"type": "array", "items": {"type": "integer"}},
            "version": {"type": "string", "enum": ["current", "original"]},
            "note": {"type": "string"},
        },
    ),
    ("get", "/api/review-items/", "Open review items, newest first", VIEW_REVIEW, REVIEW_FILTERS, None),
    (
        "get",
        "/api/review-groups/",
        "Open review items grouped by cause, version or rule",
        VIEW_REVIEW,
        REVIEW_FILTERS[:5],
        None,
    ),
    (
        "post",
        "/api/review-items/{id}/resolve/",
        "Resolve an item (note required)",
        WORK,
        [],
        {"note": {"type": "string"}},
    ),
    ("post", "/api/review-items/{id}/dismiss/", "Dismiss an item", WORK, [], {"note": {"type": "string"}}),
    (
        "post",
        "/api/review-items/bulk/",
        "Resend, resolve or dismiss many items; more than 200 run as a job (202 + job)",
        "resend: " + RESEND + "; resolve/dismiss: " + WORK,
        [],
        {
            "action": {"type": "string", "enum": list(review_service.ACTIONS)},
            "ids": {"type": "array", "items": {"type": "integer"}},
            "note": {"type": "string"},
            "version": {"type": "string", "enum": ["current", "original"]},
        },
    ),
    ("get", "/api/jobs/{id}/", "Progress of a bulk job", VIEW_REVIEW, [], None),
    ("get", "/api/integrations/{slug}/mappings/", "Mapping versions of an integration", VIEW_MAPPING, [], None),
    ("get", "/api/mappings/{id}/", "One mapping version with its spec", VIEW_MAPPING, [], None),
]


def openapi_document() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for method, path, summary, perm, params, body in ROUTES:
        operation: dict[str, Any] = {
            "summary": summary,
            "description": f"Permission: {perm}." if perm else "Any authenticated user.",
            "parameters": [
                {
                    "name": name,
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string" if name == "slug" else "integer"},
                }
                for name in ("id", "slug")
                if "{" + name + "}" in path
            ]
            + [
                {"name": name, "in": "query", "required": False, "description": text, "schema": {"type": "string"}}
                for name, text in params
            ],
            "responses": {
                "200": {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}},
                "400": {
                    "description": "Invalid input",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                },
                "401": {"description": "No or invalid token"},
                "403": {"description": "Missing permission"},
                "404": {"description": "Not found"},
            },
        }
        if body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": {"type": "object", "properties": body}}},
            }
        paths.setdefault(path, {})[method] = operation
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Syncdesk operations API",
            "version": "1",
            "description": "Records, attempts, resends, the review queue and mapping versions. "
            "Create a token with `manage.py api_token <username>`; it acts with that user's permissions.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": {"type": "object", "properties": {"error": {"type": "string"}}}},
        },
        "paths": paths,
    }


@login_not_required
@require_GET
def openapi(request: HttpRequest) -> HttpResponse:
    return json_response(openapi_document())
