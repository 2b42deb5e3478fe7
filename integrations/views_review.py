"""The review queue: open items grouped by cause, mapping version or rule; one action per group,
bulk actions on a selection, assignment and notes; long actions as jobs with a progress bar."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import permission_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from integrations import selectors
from integrations.forms import NoteForm, ReviewFilterForm
from integrations.masking import PayloadMasker
from integrations.models import ActionLog, ReviewItem
from integrations.services import review as review_service
from integrations.services.records import ActionRefused
from integrations.views import can, require

VIEW = "integrations.view_reviewitem"
FILTER_KEYS = ("customer", "integration", "reason_code", "assignee", "group_by")


def _back(request: HttpRequest) -> HttpResponse:
    target = request.POST.get("next") or reverse("review")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = reverse("review")
    return redirect(target)


def _filters_from(data: Any, user: Any) -> tuple[ReviewFilterForm, selectors.ReviewFilters, str]:
    form = ReviewFilterForm({k: data.get(k, "") for k in FILTER_KEYS})
    return form, form.filters(user), form.grouping()


@permission_required(VIEW, raise_exception=True)
@require_GET
def review_queue(request: HttpRequest) -> HttpResponse:
    form, filters, group_by = _filters_from(request.GET, request.user)
    group_key = request.GET.get("group")
    groups, counts = selectors.review_overview(filters, group_by=group_by, user_id=request.user.pk)
    try:
        items, next_cursor = selectors.review_items_page(
            filters,
            group_by=group_by if group_key is not None else None,
            key=group_key,
            cursor=request.GET.get("after"),
        )
    except (selectors.BadCursor, ValueError):
        items, next_cursor = [], None
    base = {k: request.GET[k] for k in FILTER_KEYS if request.GET.get(k)}
    for g in groups:
        g["items_url"] = "?" + urlencode({**base, "group": g["key"]}) + "#items"
    next_url = (
        "?" + urlencode({**base, **({"group": group_key} if group_key else {}), "after": next_cursor})
        if next_cursor
        else None
    )
    # Reasons may quote payload values: cut sensitive-looking text for roles that may not see it.
    for g in groups:
        integration = g.get("integration")
        fields = integration.sensitive_fields if integration is not None else ["*"]
        masker = PayloadMasker(user=request.user, fields=fields)
        g["label"], g["sample"] = masker.reason(g["label"]), masker.reason(g["sample"])
    for item in items:
        item.reason_text = PayloadMasker(user=request.user, fields=item.record.integration.sensitive_fields).reason(
            item.reason_text
        )
    perms_can = can(request)
    current_group = next((g for g in groups if g["key"] == group_key), None) if group_key is not None else None
    return render(
        request,
        "integrations/review_queue.html",
        {
            "form": form,
            "groups": groups,
            "group_by": group_by,
            "group_key": group_key,
            "current_group": current_group,
            "items": items,
            "next_url": next_url,
            "counts": counts,
            "here": request.get_full_path(),
            "base_query": base,
            "perms_can": perms_can,
            "can_act": perms_can["resend"] or perms_can["work"],
            "assignees": form.fields["assignee"].choices[3:],
        },
    )


def _start(request: HttpRequest, action: str, ids: list[int]) -> HttpResponse:
    note = request.POST.get("note", "").strip()
    version = request.POST.get("version", "current")
    try:
        changed, job = review_service.start_bulk(
            action=action, item_ids=ids, acting_user=request.user, note=note, version=version
        )
    except ActionRefused as exc:
        messages.error(request, str(exc))
        return _back(request)
    if job is not None:
        return redirect("review_job", job_id=job.pk)
    done = {"resend": "queued for a new attempt", "resolve": "resolved", "dismiss": "dismissed"}[action]
    what = "record" if action == "resend" else "item"
    messages.success(request, f"{changed} {what}{'s' if changed != 1 else ''} {done}.")
    return _back(request)


@require_POST
def review_group_action(request: HttpRequest) -> HttpResponse:
    """One action on every open item of one group (as filtered on the page)."""
    action = request.POST.get("action", "")
    if action not in review_service.ACTIONS:
        messages.error(request, "Choose an action.")
        return _back(request)
    require(request, review_service.PERMISSIONS[action])
    form, filters, group_by = _filters_from(request.POST, request.user)
    if form.errors:
        messages.error(request, "The page's filters are no longer valid; reload the queue and try again.")
        return _back(request)
    key = request.POST.get("group", "")
    try:
        ids = list(selectors.group_items(filters, group_by=group_by, key=key).values_list("id", flat=True))
    except ValueError:
        raise Http404("No such group") from None
    return _start(request, action, ids)


@require_POST
def review_bulk(request: HttpRequest) -> HttpResponse:
    """An action on the ticked items: resend, resolve, dismiss, assign."""
    action = request.POST.get("action", "")
    ids = [int(i) for i in request.POST.getlist("item") if i.isdigit()]
    if action in ("assign_me", "assign", "unassign"):
        require(request, review_service.PERMISSIONS["assign"])
        assignee = None
        if action == "assign_me":
            assignee = request.user
        elif action == "assign":
            username = request.POST.get("assignee", "")
            assignee = get_user_model().objects.filter(username=username, is_active=True).first()
            if assignee is None:
                messages.error(request, "Choose whom to assign to.")
                return _back(request)
        if not ids:
            messages.error(request, "Tick the items first.")
            return _back(request)
        n = review_service.assign_items(item_ids=ids, assignee=assignee, acting_user=request.user)  # type: ignore[arg-type]
        who = assignee.get_username() if assignee is not None else "nobody"
        messages.success(request, f"{n} item{'s' if n != 1 else ''} assigned to {who}.")
        return _back(request)
    if action not in review_service.ACTIONS:
        messages.error(request, "Choose an action.")
        return _back(request)
    require(request, review_service.PERMISSIONS[action])
    return _start(request, action, ids)


@require_POST
def review_note(request: HttpRequest, item_id: int) -> HttpResponse:
    require(request, review_service.PERMISSIONS["note"])
    item = ReviewItem.objects.filter(pk=item_id).first()
    if item is None:
        raise Http404
    form = NoteForm(request.POST)
    if form.is_valid():
        review_service.add_note(item=item, note=form.cleaned_data["note"], acting_user=request.user)
        messages.success(request, "Note added.")
    else:
        messages.error(request, "A note is required.")
    return _back(request)


@permission_required(VIEW, raise_exception=True)
@require_GET
def review_job(request: HttpRequest, job_id: int) -> HttpResponse:
    """A bulk job's progress. The page polls itself (htmx, every second) until the job ends."""
    job = ActionLog.objects.select_related("actor").filter(pk=job_id, action="bulk_job").first()
    if job is None:
        raise Http404
    progress = review_service.job_progress(job)
    template = "integrations/_job_progress.html" if request.htmx else "integrations/review_job.html"
    response = render(request, template, {"job": progress})
    if request.htmx and progress["finished"]:
        response["HX-Trigger"] = "job-finished"
    return response
