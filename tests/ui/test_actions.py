"""Actions from the record page and the review queue: they work, they are logged with who did
them, and roles without the permission are refused on the server (403), whatever the page shows."""

from __future__ import annotations

import json

import pytest

from integrations.models import ActionLog, ReviewItem, SyncRecord
from integrations.services import review as review_service
from tests.ui.factories import make_records, make_world


@pytest.fixture
def world(db):
    integration, v1, v2 = make_world()
    return {"integration": integration, "v1": v1, "v2": v2, "review": make_records(integration, v1, 3)}


def _group(world):
    return f"unmapped_value:{world['v1'].pk}:status:awaiting-pickup"


@pytest.mark.parametrize(
    ("url", "data"),
    [
        ("/records/{id}/resend/", {"version": "current"}),
        ("/records/{id}/edit/", {"payload": '{"id": "c-0"}', "note": "fix"}),
        ("/records/{id}/resolve/", {"note": "done by hand"}),
        ("/review/bulk/", {"action": "resolve", "item": ["{item}"], "note": "x"}),
        ("/review/bulk/", {"action": "assign_me", "item": ["{item}"]}),
        ("/review/bulk/", {"action": "resend", "item": ["{item}"]}),
        ("/review/group/", {"action": "dismiss", "group": "{group}"}),
        ("/review/items/{item}/note/", {"note": "hello"}),
    ],
)
def test_actions_are_refused_to_a_user_without_the_permission(clients, world, url, data):
    record = world["review"][0]
    item = ReviewItem.objects.get(record=record)

    def fill(v):
        return v.replace("{id}", str(record.pk)).replace("{item}", str(item.pk)).replace("{group}", _group(world))

    data = {k: [fill(x) for x in v] if isinstance(v, list) else fill(v) for k, v in data.items()}
    response = clients["viewer"].post(fill(url), data)
    assert response.status_code == 403
    record.refresh_from_db()
    item.refresh_from_db()
    assert record.status == "review"
    assert item.status == "open"
    assert item.assignee is None
    assert not ActionLog.objects.exists()


def test_preview_is_refused_to_a_user_who_may_not_resend(clients, world):
    assert clients["viewer"].get(f"/records/{world['review'][0].pk}/preview/").status_code == 403


def test_support_resends_a_record_and_it_is_logged(clients, users, world):
    record = world["review"][0]
    response = clients["support"].post(f"/records/{record.pk}/resend/", {"version": "original"})
    assert response.status_code == 302
    record.refresh_from_db()
    assert record.status == "pending"
    assert record.pinned_version_id == world["v1"].pk
    log = ActionLog.objects.get(record=record)
    assert (log.action, log.actor.username, log.details["version"]) == ("resend", "support-user", "original")
    page = clients["support"].get(f"/records/{record.pk}/").content.decode()
    assert "Queued for a new attempt" in page
    assert "support-user" in page


def test_editing_the_payload_keeps_the_original_and_needs_a_note(clients, world):
    record = world["review"][0]
    url = f"/records/{record.pk}/edit/"
    bad = clients["support"].post(url, {"payload": "{not json", "note": "x"})
    assert bad.status_code == 400
    assert "Not valid JSON" in bad.content.decode()
    no_note = clients["support"].post(url, {"payload": '{"id": "c-0"}', "note": "  "})
    assert no_note.status_code == 400
    not_object = clients["support"].post(url, {"payload": "[1, 2]", "note": "x"})
    assert "must be a JSON object" in not_object.content.decode()
    payload = {"id": "c-0", "email": "p0@example.com", "status": "pending", "big": 12345678901234567890123, "amount": 1}
    text = json.dumps(payload).replace('"amount": 1', '"amount": 49.00')
    ok = clients["support"].post(url, {"payload": text, "note": "status typo fixed with the customer"})
    assert ok.status_code == 302
    record.refresh_from_db()
    assert record.status == "pending"
    assert record.original_payload["status"] == "awaiting-pickup"
    assert record.payload["big"] == 12345678901234567890123
    assert str(record.payload["amount"]) == "49.00"
    assert ActionLog.objects.filter(
        record=record, action="edit_payload", note="status typo fixed with the customer"
    ).exists()


def test_marking_resolved_closes_the_review_item_with_the_note(clients, world):
    record = world["review"][0]
    assert clients["support"].post(f"/records/{record.pk}/resolve/", {"note": ""}).status_code == 400
    assert (
        clients["support"].post(f"/records/{record.pk}/resolve/", {"note": "fixed at the partner"}).status_code == 302
    )
    item = ReviewItem.objects.get(record=record)
    assert (item.status, item.resolution_note, item.resolved_by.username) == (
        "resolved",
        "fixed at the partner",
        "support-user",
    )


def test_one_action_resends_a_whole_group(clients, world):
    response = clients["support"].post(
        "/review/group/", {"action": "resend", "group": _group(world), "group_by": "cause", "next": "/review/"}
    )
    assert response.status_code == 302
    assert set(SyncRecord.objects.values_list("status", flat=True)) == {"pending"}
    assert ActionLog.objects.filter(action="resend").count() == 3


def test_resolving_a_group_needs_a_note_and_then_closes_every_item(clients, world):
    url = "/review/group/"
    clients["support"].post(url, {"action": "resolve", "group": _group(world), "note": ""})
    assert ReviewItem.objects.filter(status="open").count() == 3
    clients["support"].post(url, {"action": "resolve", "group": _group(world), "note": "customer fixed their data"})
    assert not ReviewItem.objects.filter(status="open").exists()
    assert ActionLog.objects.filter(action="review_resolve", note="customer fixed their data").count() == 3


def test_group_actions_respect_the_page_filters(clients, world):
    other, v1, _ = make_world(slug="other-contacts", customer_slug="other")
    make_records(other, v1, 2, start=50)
    clients["support"].post(
        "/review/group/",
        {
            "action": "dismiss",
            "group": f"unmapped_value:{v1.pk}:status:awaiting-pickup",
            "integration": "shop-contacts",
        },
    )
    # The group key names the other integration's version: nothing of shop-contacts matches it.
    assert ReviewItem.objects.filter(status="open").count() == 5
    clients["support"].post(
        "/review/group/", {"action": "dismiss", "group": _group(world), "integration": "shop-contacts"}
    )
    assert ReviewItem.objects.filter(status="open", record__integration=other).count() == 2
    assert ReviewItem.objects.filter(status="dismissed").count() == 3


def test_a_group_action_under_a_filter_that_no_longer_exists_acts_on_nothing(clients, world):
    """A stale page (its customer renamed since) must not turn into an action on every customer."""
    other, v1, _ = make_world(slug="other-contacts", customer_slug="other")
    make_records(other, v1, 2, start=50)
    response = clients["support"].post(
        "/review/group/",
        {"action": "dismiss", "group": _group(world), "customer": "renamed-since", "next": "/review/"},
        follow=True,
    )
    assert "no longer valid" in response.content.decode()
    assert not ReviewItem.objects.filter(status="dismissed").exists()


def test_an_unknown_filter_value_shows_nothing_and_says_why(clients, world):
    other, v1, _ = make_world(slug="other-contacts", customer_slug="other")
    make_records(other, v1, 2, start=50)
    page = clients["support"].get("/review/?customer=nosuch").content.decode()
    assert "These filters cannot be used" in page
    assert "<strong>0</strong> open" in page
    # A bad grouping does not drop the filters that are fine.
    page = clients["support"].get("/review/?customer=other&group_by=integration").content.decode()
    assert "These filters cannot be used" in page
    assert "<strong>2</strong> open" in page


def test_assign_to_me_to_someone_and_notes(clients, users, world):
    items = list(ReviewItem.objects.order_by("id"))
    clients["support"].post("/review/bulk/", {"action": "assign_me", "item": [items[0].pk, items[1].pk]})
    clients["support"].post("/review/bulk/", {"action": "assign", "assignee": "engineer-user", "item": [items[2].pk]})
    assert [i.assignee.username for i in ReviewItem.objects.order_by("id")] == [
        "support-user",
        "support-user",
        "engineer-user",
    ]
    mine = clients["support"].get("/review/?assignee=me").content.decode()
    assert "2 assigned to me" in mine
    clients["support"].post(f"/review/items/{items[0].pk}/note/", {"note": "asked the customer"})
    assert "support-user: asked the customer" in ReviewItem.objects.get(pk=items[0].pk).notes
    assert ActionLog.objects.filter(action="assign").count() == 3
    assert ActionLog.objects.filter(action="review_note", actor__username="support-user").count() == 1


def test_a_big_bulk_action_runs_as_a_job_with_progress(clients, world, monkeypatch):
    monkeypatch.setattr(review_service, "INLINE_LIMIT", 2)
    monkeypatch.setattr(review_service, "CHUNK", 2)
    response = clients["support"].post("/review/group/", {"action": "dismiss", "group": _group(world), "note": "noise"})
    assert response.status_code == 302
    job = ActionLog.objects.get(action="bulk_job")
    assert response["Location"] == f"/review/jobs/{job.pk}/"
    page = clients["support"].get(response["Location"]).content.decode()
    assert "waiting for a worker" in page
    assert 'hx-trigger="every 1s"' in page
    # What the worker runs (the test transaction never commits, so nothing was sent to it).
    review_service.run_bulk_job(job.pk)
    partial = clients["support"].get(response["Location"], headers={"HX-Request": "true"})
    assert "done — 3 changed" in partial.content.decode()
    assert partial["HX-Trigger"] == "job-finished"
    assert not ReviewItem.objects.filter(status="open").exists()
    assert ActionLog.objects.filter(action="review_dismiss", actor__username="support-user").count() == 3
