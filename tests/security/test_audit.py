"""Audit: every change to mappings, rules, integrations, customers and user roles is in history
with the user and a reason; every review-queue action and resend is in the action log with who
and when — whether made through the pages, the API or the admin."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from customers.models import Customer
from integrations.models import ActionLog, Integration, ReviewItem, RoleChange
from integrations.services import mappings as mapping_service
from integrations.services import rules as rules_service
from integrations.services.users import user_set_roles
from tests.conftest import make_user
from tests.ui.factories import SPEC_V2

pytestmark = pytest.mark.django_db


def _latest(obj):  # type: ignore[no-untyped-def]
    return obj.history.order_by("-history_date", "-history_id").first()


def test_mapping_changes_carry_the_user_and_a_reason(world, users):
    draft = mapping_service.draft_save(integration=world.integration, spec=SPEC_V2, acting_user=users["engineer"])
    row = _latest(draft)
    assert row.history_user == users["engineer"]
    assert row.history_change_reason
    published = mapping_service.draft_publish(
        integration=world.integration, acting_user=users["engineer"], note="Map more statuses"
    )
    row = _latest(published)
    assert row.history_user == users["engineer"]
    assert row.history_change_reason


def test_rule_changes_carry_the_user_and_a_reason(world, users):
    rules_service.rule_retire(rule=world.rule, acting_user=users["account_manager"], reason="Customer fixed it")
    row = _latest(world.rule)
    assert row.history_user == users["account_manager"]
    assert "Customer fixed it" in row.history_change_reason


def test_customer_changes_in_the_admin_need_a_reason_and_record_it(world, clients, users):
    customer = world.integration.customer
    url = f"/admin/customers/customer/{customer.pk}/change/"
    data = {"name": "Shop Renamed", "slug": customer.slug, "status": "active", "time_zone": "UTC", "notes": ""}
    refused = clients["admin"].post(url, data)
    assert refused.status_code == 200  # the form asks for a reason
    assert Customer.objects.get(pk=customer.pk).name != "Shop Renamed"
    done = clients["admin"].post(url, {**data, "change_reason": "Renamed after the merger"})
    assert done.status_code == 302
    row = _latest(Customer.objects.get(pk=customer.pk))
    assert row.history_user == users["admin"]
    assert row.history_change_reason == "Renamed after the merger"


def test_integration_changes_in_the_admin_record_user_and_reason_and_rotate_secrets(world, clients, users):
    url = f"/admin/integrations/integration/{world.integration.pk}/change/"
    form = clients["admin"].get(url).context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        if value is None or name.startswith(("new_", "clear_")):
            continue
        if isinstance(value, (dict, list)):
            value = field.prepare_value(value)
        data[name] = value
    data.update(
        {
            "name": "Contacts to CRM (v2)",
            "change_reason": "New CRM instance",
            "new_webhook_secret": "sdk_rotated-secret-1234567890",
        }
    )
    data["customer"] = world.integration.customer_id
    response = clients["admin"].post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    integration = Integration.objects.get(pk=world.integration.pk)
    assert integration.name == "Contacts to CRM (v2)"
    assert integration.webhook_secret == "sdk_rotated-secret-1234567890"
    assert integration.webhook_secret_previous == world.integration.webhook_secret
    row = _latest(integration)
    assert row.history_user == users["admin"]
    assert row.history_change_reason == "New CRM instance"


def test_a_leaked_webhook_secret_is_refused_at_once_when_replaced_with_clear_previous_ticked(world, clients):
    """Rotating after a leak: a new secret and "stop accepting the previous one" in one save must
    leave only the new secret — not the leaked one kept as the previous."""
    url = f"/admin/integrations/integration/{world.integration.pk}/change/"
    form = clients["admin"].get(url).context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        if value is None or name.startswith(("new_", "clear_")):
            continue
        data[name] = field.prepare_value(value) if isinstance(value, (dict, list)) else value
    leaked = world.integration.webhook_secret
    data.update(
        {
            "customer": world.integration.customer_id,
            "change_reason": "The webhook secret leaked",
            "new_webhook_secret": "sdk_after-the-leak-1234567890",
            "clear_previous_webhook_secret": "on",
        }
    )
    response = clients["admin"].post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    integration = Integration.objects.get(pk=world.integration.pk)
    assert integration.webhook_secret == "sdk_after-the-leak-1234567890"
    assert integration.webhook_secret_previous == ""
    assert leaked not in (integration.webhook_secret, integration.webhook_secret_previous)


def test_role_changes_go_through_a_service_that_records_who_why_and_what(users):
    user = make_user("support", username="promoted")
    change = user_set_roles(
        user=user, roles=["engineer"], acting_user=users["admin"], reason="Joined the integrations team"
    )
    assert list(user.groups.values_list("name", flat=True)) == ["engineer"]
    assert change.acting_user == users["admin"]
    assert change.reason == "Joined the integrations team"
    assert change.changes == {"roles": [["support"], ["engineer"]]}
    assert user_set_roles(user=user, roles=["engineer"], acting_user=users["admin"], reason="") is None
    with pytest.raises(ValueError, match="reason"):
        user_set_roles(user=user, roles=["admin"], acting_user=users["admin"], reason=" ")
    with pytest.raises(ValueError, match="unknown roles"):
        user_set_roles(user=user, roles=["wizard"], acting_user=users["admin"], reason="x")


def test_role_changes_in_the_admin_need_a_reason_and_are_recorded(users, clients):
    user = make_user("support", username="moving")
    url = f"/admin/auth/user/{user.pk}/change/"
    form = clients["admin"].get(url).context["adminform"].form
    data = {
        k: v for k, v in form.initial.items() if v is not None and k not in ("password", "groups", "user_permissions")
    }
    data.update(
        {
            "groups": [Group.objects.get(name="account_manager").pk],
            "is_active": "on",
            "is_staff": "",
            "is_superuser": "",
            "last_login_0": "",
            "last_login_1": "",
            "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
            "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
        }
    )
    refused = clients["admin"].post(url, data)
    assert refused.status_code == 200
    assert list(user.groups.values_list("name", flat=True)) == ["support"]
    done = clients["admin"].post(url, {**data, "change_reason": "Now owns rules for two customers"})
    assert done.status_code == 302
    change = RoleChange.objects.get(user=user)
    assert change.acting_user == users["admin"]
    assert change.changes["roles"] == [["support"], ["account_manager"]]
    assert change.reason == "Now owns rules for two customers"


def test_resends_and_review_actions_are_in_the_action_log_with_who_and_when(world, clients, users):
    before = timezone.now()
    clients["support"].post(f"/records/{world.delivered.pk}/resend/")
    clients["support"].post(f"/review/items/{world.item.pk}/note/", {"note": "asked the customer"})
    clients["support"].post("/review/bulk/", {"action": "assign_me", "item": [world.item.pk]})
    clients["account_manager"].post(f"/records/{world.record.pk}/resolve/", {"note": "fixed at the source"})
    api = clients["engineer"].post(f"/api/records/{world.record.pk}/resend/", {"note": "again"})
    assert api.status_code == 200
    logs = list(ActionLog.objects.filter(created_at__gte=before).exclude(action="bulk_job").select_related("actor"))
    by_actor = {(log.actor.get_username(), log.action) for log in logs}
    assert ("support-user", "resend") in {(a, act.split("_")[0]) for a, act in by_actor}
    actors = {a for a, _ in by_actor}
    assert {"support-user", "account_manager-user", "engineer-user"} <= actors
    assert all(log.created_at >= before for log in logs)
    assert len(logs) >= 5
    assert ReviewItem.objects.get(pk=world.item.pk).status == "resolved"
