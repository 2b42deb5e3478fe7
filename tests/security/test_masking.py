"""Payload fields an integration marks sensitive are masked for roles without
``integrations.view_sensitive_payload`` (support and account managers by default; engineers and
admins see them): record page, search results, review queue, API, attempt request bodies."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from integrations.masking import MASK, mask_data, restore_masked, scrub
from tests.conftest import ROLES
from tests.security.conftest import EMAIL

pytestmark = pytest.mark.django_db
PHONE = "+49 30 1234567"
SEES = {"support": False, "account_manager": False, "engineer": True, "admin": True}


def test_the_permission_is_given_to_engineers_and_admins_only(users):
    for role in ROLES:
        user = User.objects.get(pk=users[role].pk)
        assert user.has_perm("integrations.view_sensitive_payload") == SEES[role], role


@pytest.mark.parametrize("role", ROLES)
def test_the_record_page_masks_sensitive_fields_for_roles_without_the_permission(world, clients, role):
    html = clients[role].get(f"/records/{world.record.pk}/").content.decode()
    assert (EMAIL in html) == SEES[role]
    assert (PHONE in html) == SEES[role]
    assert (MASK in html) != SEES[role]
    assert "awaiting-pickup" in html  # the rest of the payload is shown


@pytest.mark.parametrize("role", ROLES)
def test_attempt_request_bodies_and_outputs_are_masked_too(world, clients, role):
    html = clients[role].get(f"/records/{world.delivered.pk}/").content.decode()
    assert (EMAIL in html) == SEES[role]
    assert "p1@example.com" not in html or SEES[role]


@pytest.mark.parametrize("role", ROLES)
def test_search_results_mask_sensitive_text_in_reasons(world, clients, role):
    html = clients[role].get("/records/?status=review").content.decode()
    assert world.record.source_id in html
    assert (EMAIL in html) == SEES[role]


@pytest.mark.parametrize("role", ROLES)
def test_the_api_masks_payloads_attempts_and_reasons(world, clients, role):
    one = clients[role].get(f"/api/records/{world.record.pk}/").json()
    assert (one["payload"]["email"] == EMAIL) == SEES[role]
    assert (EMAIL in one["last_reason"]) == SEES[role]
    delivered = clients[role].get(f"/api/records/{world.delivered.pk}/").json()
    attempt = delivered["attempts"][0]
    assert (EMAIL in attempt["request"]["body"]) == SEES[role]
    assert (attempt["output"]["email"] == EMAIL) == SEES[role]
    listing = json.dumps(clients[role].get("/api/records/").json())
    assert (EMAIL in listing) == SEES[role]


def test_a_support_user_granted_the_permission_sees_the_values(world, users):
    support = users["support"]
    support.user_permissions.add(Permission.objects.get(codename="view_sensitive_payload"))
    client = Client()
    client.force_login(support)
    assert EMAIL in client.get(f"/records/{world.record.pk}/").content.decode()


def test_editing_a_masked_payload_keeps_the_hidden_values(world, clients):
    payload = {"id": "c-0", "email": MASK, "phone": MASK, "status": "pending"}
    response = clients["support"].post(
        f"/records/{world.record.pk}/edit/", {"payload": json.dumps(payload), "note": "fixed the status"}
    )
    assert response.status_code == 302
    world.record.refresh_from_db()
    assert world.record.payload == {"id": "c-0", "email": EMAIL, "phone": PHONE, "status": "pending"}


def test_mask_data_matches_names_at_any_depth_and_dotted_paths_exactly():
    data = {"email": "a@b.c", "billing": {"phone": "1", "email": "x@y.z"}, "lines": [{"phone": "2"}], "n": None}
    masked = mask_data(data, ["email", "lines.phone"])
    assert masked == {"email": MASK, "billing": {"phone": "1", "email": MASK}, "lines": [{"phone": MASK}], "n": None}
    assert mask_data(data, []) is data


def test_restore_masked_takes_back_only_the_values_left_masked():
    original = {"email": "a@b.c", "name": "Ann", "lines": [{"phone": "1"}]}
    edited = {"email": MASK, "name": "Anne", "lines": [{"phone": MASK}, {"phone": "2"}]}
    assert restore_masked(edited, original) == {
        "email": "a@b.c",
        "name": "Anne",
        "lines": [{"phone": "1"}, {"phone": "2"}],
    }


def test_scrub_removes_known_values_emails_and_phone_numbers_from_free_text():
    text = "Customer Jane (jane@x.org, +1 555 123 4567) has code ABC123"
    assert scrub(text, {"ABC123"}) == f"Customer Jane ({MASK}, {MASK}) has code {MASK}"
