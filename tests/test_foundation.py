"""Foundation guarantees: database-enforced invariants, audit history, roles and login."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.test import Client
from django.urls import reverse

from customers.services import customer_update
from integrations.models import MappingVersion, SyncRecord
from tests.conftest import ROLES, make_user

pytestmark = pytest.mark.django_db


def test_duplicate_dedupe_key_is_refused_by_the_database(integration):
    SyncRecord.objects.create(integration=integration, source_id="1", dedupe_key="k1", payload={"id": 1})
    with pytest.raises(IntegrityError), transaction.atomic():
        SyncRecord.objects.create(integration=integration, source_id="1", dedupe_key="k1", payload={"id": 1})
    assert SyncRecord.objects.count() == 1


def test_same_dedupe_key_in_another_integration_is_a_different_record(integration):
    other = type(integration).objects.create(
        customer=integration.customer,
        name="Other",
        slug="other",
        destination_config=integration.destination_config,
    )
    SyncRecord.objects.create(integration=integration, source_id="1", dedupe_key="k1", payload={})
    SyncRecord.objects.create(integration=other, source_id="1", dedupe_key="k1", payload={})
    assert SyncRecord.objects.count() == 2


def test_second_published_mapping_version_is_refused(integration):
    MappingVersion.objects.create(integration=integration, number=1, status="published", spec={"fields": {}})
    with pytest.raises(IntegrityError), transaction.atomic():
        MappingVersion.objects.create(integration=integration, number=2, status="published", spec={"fields": {}})


def test_published_mapping_version_cannot_be_edited_through_the_model(integration):
    version = MappingVersion.objects.create(integration=integration, number=1, status="published", spec={"a": 1})
    version.spec = {"a": 2}
    with pytest.raises(ValidationError):
        version.save()
    version.refresh_from_db()
    assert version.spec == {"a": 1}


def test_published_mapping_version_cannot_be_edited_even_by_a_bulk_update(integration):
    version = MappingVersion.objects.create(integration=integration, number=1, status="published", spec={"a": 1})
    with pytest.raises(IntegrityError), transaction.atomic():
        MappingVersion.objects.filter(pk=version.pk).update(spec={"a": 2})
    version.refresh_from_db()
    assert version.spec == {"a": 1}


def test_published_version_can_be_retired_but_not_revived(integration):
    version = MappingVersion.objects.create(integration=integration, number=1, status="published", spec={"a": 1})
    MappingVersion.objects.filter(pk=version.pk).update(status="retired")
    with pytest.raises(IntegrityError), transaction.atomic():
        MappingVersion.objects.filter(pk=version.pk).update(status="published")


def test_draft_mapping_can_be_edited(integration):
    draft = MappingVersion.objects.create(integration=integration, spec={"a": 1})
    draft.spec = {"a": 2}
    draft.save()
    draft.refresh_from_db()
    assert draft.spec == {"a": 2}


def test_big_integers_and_decimals_survive_the_database_exactly(integration):
    payload = {"id": 7008123456789012345678, "total": __import__("decimal").Decimal("49.00")}
    record = SyncRecord.objects.create(integration=integration, source_id="x", dedupe_key="x", payload=payload)
    record.refresh_from_db()
    assert record.payload["id"] == 7008123456789012345678
    assert str(record.payload["total"]) == "49.00"


def test_config_change_writes_history_with_the_acting_user_and_reason(customer, users):
    customer_update(customer=customer, acting_user=users["engineer"], reason="Renamed after merger", name="Shop Two")
    latest = customer.history.first()
    assert latest.history_user == users["engineer"]
    assert latest.history_change_reason == "Renamed after merger"
    assert latest.name == "Shop Two"
    assert customer.history.count() == 2


def test_config_change_without_a_reason_is_refused(customer, users):
    with pytest.raises(ValueError, match="reason"):
        customer_update(customer=customer, acting_user=users["engineer"], reason=" ", name="X")


def test_invalid_time_zone_is_refused(customer, users):
    with pytest.raises(ValidationError):
        customer_update(customer=customer, acting_user=users["admin"], reason="tz", time_zone="Mars/Olympus")


def test_integration_destination_config_is_validated(integration):
    integration.destination_config = {"base_url": "ftp://x", "create_path": "contacts"}
    with pytest.raises(ValidationError) as info:
        integration.full_clean()
    assert "base_url" in str(info.value)
    assert "update_path" in str(info.value)


# The role × permission matrix: what each role may do, and what it may not.
MATRIX = {
    "integrations.view_syncrecord": {"support", "account_manager", "engineer", "admin"},
    "integrations.resend_syncrecord": {"support", "account_manager", "engineer", "admin"},
    "integrations.work_reviewitem": {"support", "account_manager", "engineer", "admin"},
    "integrations.edit_payload_syncrecord": {"support", "account_manager", "engineer", "admin"},
    "integrations.add_exceptionrule": {"account_manager", "admin"},
    "integrations.review_exceptionrule": {"account_manager", "admin"},
    "integrations.change_mappingversion": {"engineer", "admin"},
    "integrations.publish_mappingversion": {"engineer", "admin"},
    "integrations.change_integration": {"engineer", "admin"},
    "integrations.delete_integration": {"admin"},
    "auth.change_user": {"admin"},
    "integrations.change_syncattempt": {"admin"},
}


@pytest.mark.parametrize("permission", sorted(MATRIX))
@pytest.mark.parametrize("role", ROLES)
def test_role_permission_matrix(users, role, permission):
    user = User.objects.get(pk=users[role].pk)  # fresh object: no cached permissions
    assert user.has_perm(permission) == (role in MATRIX[permission])


def test_every_role_exists_as_a_group(db):
    assert set(Group.objects.values_list("name", flat=True)) >= set(ROLES)


@pytest.mark.parametrize("role", ROLES)
def test_each_role_can_log_in_and_see_the_dashboard(db, role):
    make_user(role, username=f"login-{role}")
    client = Client()
    response = client.post(reverse("login"), {"username": f"login-{role}", "password": "correct horse battery 9"})
    assert response.status_code == 302
    page = client.get(reverse("home"))
    assert page.status_code == 200
    assert f"login-{role}" in page.content.decode()


@pytest.mark.parametrize("url", ["/", "/admin/"])
def test_anonymous_request_is_sent_to_login(db, url):
    response = Client().get(url)
    assert response.status_code == 302
    assert "/login/" in response["Location"]


def test_login_page_is_served_to_anonymous_users(db):
    response = Client().get(reverse("login"))
    assert response.status_code == 200
    assert "Log in to Syncdesk" in response.content.decode()
