"""Every page renders for every role; actions are shown only to roles that may do them."""

from __future__ import annotations

import pytest
from django.test import Client

from integrations.models import ReviewItem
from tests.ui.factories import make_records, make_world

ALL = ("support", "account_manager", "engineer", "admin", "viewer")


@pytest.fixture
def world(db):
    integration, v1, v2 = make_world()
    review = make_records(integration, v1, 3, status="review")
    delivered = make_records(integration, v2, 2, start=100, status="delivered")
    return {"integration": integration, "v1": v1, "v2": v2, "review": review, "delivered": delivered}


def test_anonymous_users_are_sent_to_log_in(world):
    response = Client().get("/records/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


@pytest.mark.parametrize("role", ALL)
def test_every_page_renders_for_every_role(clients, world, role):
    client = clients[role]
    record = world["review"][0]
    for url in ("/", "/records/", f"/records/{record.pk}/", "/review/", "/review/?group_by=version"):
        response = client.get(url)
        assert response.status_code == 200, url
    assert "c-0" in client.get("/records/?source_id=c-0").content.decode()


def test_the_dashboard_counts_link_to_the_filtered_list(clients, world):
    page = clients["support"].get("/").content.decode()
    assert "Contacts to CRM" in page
    assert "/records/?integration=shop-contacts&amp;status=review" in page
    assert "/review/?integration=shop-contacts" in page


def test_the_record_page_says_why_and_shows_attempts_trace_and_diff(clients, world):
    record = world["review"][0]
    page = clients["support"].get(f"/records/{record.pk}/").content.decode()
    assert "Why it is in review" in page
    assert "unmapped value &#x27;awaiting-pickup&#x27; for status" in page
    assert "Per-field trace" in page
    assert "value_map" in page
    # v1 was used, v2 is published: the diff names the changed value map.
    assert "Field &#x27;status&#x27;: value map entry &#x27;awaiting-pickup&#x27; → &#x27;open&#x27; added" in page
    assert "Resend with published v2" in page
    assert "Edit the payload and resend" in page


def test_a_viewer_sees_no_actions(clients, world):
    record = world["review"][0]
    page = clients["viewer"].get(f"/records/{record.pk}/").content.decode()
    assert "Resend with" not in page
    assert "Edit the payload" not in page
    assert "Mark resolved" not in page
    queue = clients["viewer"].get("/review/").content.decode()
    assert "Resend all" not in queue
    assert "Resolve all" not in queue


def test_the_review_queue_groups_a_bad_publish_into_one_group(clients, world):
    page = clients["support"].get("/review/").content.decode()
    assert "unmapped value &#x27;awaiting-pickup&#x27; for status × 3" in page
    by_version = clients["support"].get("/review/?group_by=version").content.decode()
    assert "mapping shop-contacts v1 × 3" in by_version


def test_the_preview_shows_what_a_resend_would_send_and_changes_nothing(clients, world):
    record = world["review"][0]
    response = clients["support"].get(f"/records/{record.pk}/preview/?version=current", headers={"HX-Request": "true"})
    assert response.status_code == 200
    page = response.content.decode()
    assert "nothing was sent or saved" in page
    assert "deliver" in page
    assert "&quot;open&quot;" in page or '"open"' in page  # awaiting-pickup maps to open in v2
    record.refresh_from_db()
    assert record.status == "review"
    assert record.attempts.count() == 1
    original = clients["support"].get(f"/records/{record.pk}/preview/?version=original").content.decode()
    assert "unmapped value" in original
    assert ReviewItem.objects.filter(record=record, status="open").count() == 1
