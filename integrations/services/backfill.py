"""Backfill: resend every record a search finds (a time window, a status, an error class …)
as a job, page by page, with progress a page can follow. Each record's resend is logged with
who asked (ActionLog ``resend``), like a single resend."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from integrations import queue, selectors
from integrations.models import ActionLog
from integrations.services.records import ActionRefused, resend_records

JOB = "backfill_job"


def _filters(query: dict[str, list[str]]) -> selectors.RecordFilters:
    # The record search form is the one parser of these filters (same as the page they came from).
    from django.http import QueryDict

    from integrations.forms import RecordSearchForm

    data = QueryDict(mutable=True)
    for key, values in query.items():
        data.setlist(key, values)
    form = RecordSearchForm(data)
    if not form.is_valid():
        raise ActionRefused(f"The search cannot be read: {form.errors.as_text()}")
    return form.filters()


def start_backfill(
    *, query: dict[str, list[str]], version: str, acting_user: AbstractBaseUser | None, note: str
) -> ActionLog:
    """Queue a resend of everything the search ``query`` finds. Refused without a filter (a
    backfill of every record is never an accident) or without a note."""
    if not note.strip():
        raise ActionRefused("Say why these records are sent again.")
    if version not in ("current", "original"):
        raise ActionRefused("version must be 'current' or 'original'")
    skip = ("after", "csrfmiddlewaretoken", "note", "version")
    query = {k: [v for v in vs if v] for k, vs in query.items() if k not in skip and any(vs)}
    if _filters(query).is_empty():
        raise ActionRefused(
            "Filter the records first (a time window, a status …): a backfill never resends everything."
        )
    with transaction.atomic():
        job = ActionLog.objects.create(
            actor=acting_user,
            action=JOB,
            note=note,
            details={"query": query, "version": version, "done": 0, "changed": 0, "state": "queued", "message": ""},
        )
        queue.enqueue_job("integrations.services.backfill.run_backfill", job.pk)
    return job


def run_backfill(job_id: int) -> int:
    job = ActionLog.objects.select_related("actor").get(pk=job_id, action=JOB)
    details = dict(job.details)
    details["state"] = "running"
    ActionLog.objects.filter(pk=job.pk).update(details=details)
    try:
        filters = _filters(details["query"])
        cursor = None
        while True:
            rows, cursor = selectors.search_records(filters, cursor=cursor)
            if rows:
                details["changed"] += resend_records(
                    record_ids=[r.pk for r in rows],
                    version=details["version"],
                    acting_user=job.actor,
                    note=f"backfill #{job.pk}: {job.note}",
                )
                details["done"] += len(rows)
                ActionLog.objects.filter(pk=job.pk).update(details=details)
            if not cursor:
                break
        details["state"] = "done"
    except Exception as exc:
        details["state"] = "failed"
        details["message"] = str(exc)[:500]
        raise
    finally:
        ActionLog.objects.filter(pk=job.pk).update(details=details)
    return int(details["changed"])
