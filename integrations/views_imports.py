"""Batch import from the browser: upload a file, watch its progress, read each bad row."""

from __future__ import annotations

import uuid
from pathlib import Path

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from integrations import queue
from integrations.models import ImportBatch, Integration
from integrations.services import imports

MAX_UPLOAD_BYTES = 512 * 1024 * 1024


class UploadForm(forms.Form):
    integration = forms.ModelChoiceField(
        queryset=Integration.objects.select_related("customer").order_by("customer__name", "name"),
        help_text="The records become records of this integration.",
    )
    file = forms.FileField(help_text='CSV, JSON (an array or {"records": [...]}) or JSON Lines.')
    file_format = forms.ChoiceField(
        choices=[("", "Detect from the file"), ("csv", "CSV"), ("json", "JSON"), ("jsonl", "JSON Lines")],
        required=False,
        label="Format",
    )

    def clean_file(self):  # type: ignore[no-untyped-def]
        upload = self.cleaned_data["file"]
        if upload.size == 0:
            raise forms.ValidationError("The file is empty.")
        if upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError("The file is larger than 512 MB; use manage.py import_batch.")
        return upload


def _progress(batch: ImportBatch) -> dict[str, object]:
    percent = 100 if batch.status in ("done", "failed") else 0
    if batch.bytes_total and batch.status == "running":
        percent = min(99, int(100 * batch.bytes_read / batch.bytes_total))
    rate = eta = None
    if batch.started_at and batch.total_rows:
        end = batch.finished_at or __import__("django.utils.timezone", fromlist=["now"]).now()
        elapsed = max((end - batch.started_at).total_seconds(), 0.001)
        rate = batch.total_rows / elapsed
        if batch.status == "running" and batch.bytes_read and batch.bytes_total:
            eta = elapsed * (batch.bytes_total - batch.bytes_read) / batch.bytes_read
    return {"percent": percent, "rate": rate, "eta": eta, "finished": batch.status in ("done", "failed")}


@permission_required("integrations.view_importbatch", raise_exception=True)
@require_http_methods(["GET", "POST"])
def import_list(request: HttpRequest) -> HttpResponse:
    can_upload = request.user.has_perm("integrations.add_importbatch")
    form = UploadForm()
    if request.method == "POST":
        if not can_upload:
            return HttpResponse("You may not import files.", status=403)
        form = UploadForm(request.POST, request.FILES)
        if form.is_valid():
            upload = form.cleaned_data["file"]
            folder = Path(settings.MEDIA_ROOT) / "imports"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{uuid.uuid4().hex}{Path(upload.name).suffix[:10]}"
            with path.open("wb") as out:
                for chunk in upload.chunks():
                    out.write(chunk)
            batch = imports.start_batch(
                integration=form.cleaned_data["integration"],
                file_name=upload.name,
                acting_user=request.user,
                bytes_total=upload.size,
            )
            if form.cleaned_data["file_format"]:
                batch.file_format = form.cleaned_data["file_format"]
                batch.save(update_fields=["file_format"])
            # With Redis a worker runs it and this page follows its progress; embedded, it runs
            # now, before the answer.
            queue.enqueue_job("integrations.jobs.run_import", batch.pk, str(path))
            messages.success(request, f"{upload.name}: import started.")
            return redirect("import_detail", batch_id=batch.pk)
    batches = ImportBatch.objects.select_related("integration__customer", "created_by").order_by("-created_at")[:50]
    return render(
        request,
        "imports/list.html",
        {"form": form, "batches": batches, "can_upload": can_upload},
    )


@permission_required("integrations.view_importbatch", raise_exception=True)
@require_GET
def import_detail(request: HttpRequest, batch_id: int) -> HttpResponse:
    batch = get_object_or_404(ImportBatch.objects.select_related("integration__customer", "created_by"), pk=batch_id)
    context = {"batch": batch, "progress": _progress(batch)}
    if request.headers.get("HX-Request"):
        return render(request, "imports/_progress.html", context)
    return render(request, "imports/detail.html", context)


# --------------------------------------------------------------------------------------------
# Backfill: resend everything a record search finds, as a job
# --------------------------------------------------------------------------------------------


@permission_required("integrations.resend_syncrecord", raise_exception=True)
@require_http_methods(["POST"])
def backfill_start(request: HttpRequest) -> HttpResponse:
    from integrations.services import backfill
    from integrations.services.records import ActionRefused

    try:
        job = backfill.start_backfill(
            query={key: request.POST.getlist(key) for key in request.POST},
            version=request.POST.get("version", "current"),
            acting_user=request.user,
            note=request.POST.get("note", ""),
        )
    except ActionRefused as exc:
        messages.error(request, str(exc))
        return redirect("records")
    return redirect("backfill_detail", job_id=job.pk)


@permission_required("integrations.view_syncrecord", raise_exception=True)
@require_GET
def backfill_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    from integrations.models import ActionLog

    job = get_object_or_404(ActionLog.objects.select_related("actor"), pk=job_id, action="backfill_job")
    context = {"job": job, "d": job.details, "finished": job.details.get("state") in ("done", "failed")}
    if request.headers.get("HX-Request"):
        return render(request, "imports/_backfill_progress.html", context)
    return render(request, "imports/backfill.html", context)
