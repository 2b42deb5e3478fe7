"""Importing a file from the browser: upload, progress, each bad row by line; who may."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from integrations.models import ImportBatch, SyncRecord
from tests.pipeline.helpers import CONTACT_SPEC, make_integration

pytestmark = pytest.mark.django_db


@pytest.fixture
def hook(db):
    return make_integration(slug="uploads", partner_url="http://127.0.0.1:9", spec=CONTACT_SPEC)


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def run_queued_jobs() -> None:
    """With Redis the upload is a job: run it here, in this process (it sees the test's data)."""
    from integrations import queue

    if queue.uses_rq():
        from rq import SimpleWorker

        q = queue._queue()
        SimpleWorker([q], connection=q.connection).work(burst=True)


@pytest.mark.usefixtures("redis_conn_if_set")
def test_support_uploads_a_csv_and_sees_the_result_with_bad_rows(hook, users, django_capture_on_commit_callbacks):
    client = client_for(users["support"])
    upload = SimpleUploadedFile("people.csv", b"id,email\nc-1,a@example.com\nc-2\nc-3,c@example.com\n")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/imports/", {"integration": hook.pk, "file": upload})
    run_queued_jobs()
    batch = ImportBatch.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/imports/{batch.pk}/"
    assert (batch.status, batch.accepted_rows, batch.bad_rows) == ("done", 2, 1)
    assert batch.created_by == users["support"]
    page = client.get(f"/imports/{batch.pk}/").content.decode()
    assert "row has 1 cell, header has 2" in page
    assert 'data-state="done"' in page
    assert SyncRecord.objects.count() == 2


def test_the_progress_fragment_polls_until_the_import_is_finished(hook, users):
    batch = ImportBatch.objects.create(
        integration=hook, file_name="big.csv", status="running", bytes_total=1000, bytes_read=250, total_rows=10
    )
    fragment = client_for(users["support"]).get(f"/imports/{batch.pk}/", headers={"HX-Request": "true"})
    html = fragment.content.decode()
    assert 'hx-trigger="every 1s"' in html
    assert 'aria-valuenow="25"' in html


def test_an_empty_file_is_refused_with_a_message(hook, users):
    response = client_for(users["support"]).post(
        "/imports/", {"integration": hook.pk, "file": SimpleUploadedFile("e.csv", b"")}
    )
    assert response.status_code == 200
    assert "empty" in response.content.decode()
    assert not ImportBatch.objects.exists()


def test_a_role_without_the_import_permission_cannot_upload(hook, db):
    from django.contrib.auth.models import Permission, User

    viewer = User.objects.create_user("viewer", password="x")
    viewer.user_permissions.add(Permission.objects.get(codename="view_importbatch"))
    client = client_for(viewer)
    assert client.get("/imports/").status_code == 200
    assert "Import a file" not in client.get("/imports/").content.decode()
    response = client.post("/imports/", {"integration": hook.pk, "file": SimpleUploadedFile("a.csv", b"id\n1\n")})
    assert response.status_code == 403
    assert not ImportBatch.objects.exists()
