"""Backfill: resend everything a search finds, as a job, with who asked logged per record."""

from __future__ import annotations

import pytest
from django.test import Client

from integrations.models import ActionLog, SyncRecord
from tests.imports.test_upload import run_queued_jobs
from tests.pipeline.helpers import CONTACT_SPEC, make_integration

pytestmark = pytest.mark.django_db


@pytest.fixture
def records(db):
    hook = make_integration(slug="backfill", partner_url="http://127.0.0.1:9", spec=CONTACT_SPEC)
    other = make_integration(slug="other-flow", partner_url="http://127.0.0.1:9", spec=CONTACT_SPEC)
    for n in range(7):
        SyncRecord.objects.create(
            integration=hook, source_id=f"c-{n}", dedupe_key=f"k{n}", payload={"id": f"c-{n}"}, status="delivered"
        )
    SyncRecord.objects.create(integration=other, source_id="x", dedupe_key="x", payload={"id": "x"}, status="delivered")
    return hook


@pytest.mark.usefixtures("redis_conn_if_set")
def test_a_backfill_resends_what_the_search_finds_and_nothing_else(records, users, django_capture_on_commit_callbacks):
    client = Client()
    client.force_login(users["support"])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/records/backfill/",
            {"integration": records.slug, "status": ["delivered", "review"], "note": "partner lost a day"},
        )
    assert response.status_code == 302
    run_queued_jobs()
    job = ActionLog.objects.get(action="backfill_job")
    assert job.details["state"] == "done"
    assert (job.details["done"], job.details["changed"]) == (7, 7)
    assert set(SyncRecord.objects.filter(integration=records).values_list("status", flat=True)) == {"pending"}
    assert SyncRecord.objects.get(source_id="x").status == "delivered"
    resends = ActionLog.objects.filter(action="resend")
    assert resends.count() == 7
    assert all(r.actor == users["support"] and "partner lost a day" in r.note for r in resends)
    page = client.get(f"/records/backfill/{job.pk}/").content.decode()
    assert 'data-state="done"' in page


def test_a_backfill_without_a_filter_or_a_note_is_refused(records, users):
    client = Client()
    client.force_login(users["support"])
    client.post("/records/backfill/", {"note": "everything"})
    client.post("/records/backfill/", {"integration": records.slug, "note": " "})
    assert not ActionLog.objects.filter(action="backfill_job").exists()
    assert set(SyncRecord.objects.values_list("status", flat=True)) == {"delivered"}


def test_a_role_without_resend_cannot_backfill(records, db):
    from django.contrib.auth.models import Permission, User

    viewer = User.objects.create_user("viewer", password="x")
    viewer.user_permissions.add(Permission.objects.get(codename="view_syncrecord"))
    client = Client()
    client.force_login(viewer)
    assert client.post("/records/backfill/", {"integration": records.slug, "note": "x"}).status_code == 403
    assert "Resend every record" not in client.get(f"/records/?integration={records.slug}").content.decode()


def test_a_bad_search_filter_is_named(records, users):
    client = Client()
    client.force_login(users["support"])
    page = client.get("/records/?status=bogus&integration=nope").content.decode()
    assert "Status:" in page
    assert "Integration:" in page
    assert "bogus" in page
