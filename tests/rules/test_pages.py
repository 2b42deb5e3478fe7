"""The rule pages through Django's test client: who sees what, and who may act."""

from __future__ import annotations

import copy
import datetime as dt

import pytest
from django.test import Client
from django.utils import timezone

from integrations.models import ExceptionRule
from integrations.services import rules as rules_service
from tests.conftest import make_user
from tests.rules.conftest import ORDER_SPEC, new_customer, order_integration

pytestmark = pytest.mark.django_db

SKIP = {"condition": {"field": "status", "op": "eq", "value": "cancelled"}}


def login(role: str) -> Client:
    client = Client()
    client.force_login(make_user(role, f"page-{role}"))
    return client


@pytest.fixture
def setup(owner):
    customer = new_customer("rules-page-co", "Rules Page Co", tz="Europe/Berlin")
    flow = order_integration(customer, "rules-page-co-orders", "http://127.0.0.1:9")
    rule = rules_service.rule_create(
        acting_user=owner,
        customer=customer,
        integration=flow,
        kind="skip_when",
        params=SKIP,
        reason="they cancel and re-order",
        owner=owner,
    )
    return customer, flow, rule


def test_pages_need_a_login(setup):
    customer, _, rule = setup
    for url in ("/rules/", f"/rules/{rule.pk}/", f"/rules/customers/{customer.slug}/special/", "/rules/complexity/"):
        response = Client().get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/login/")


def test_support_sees_the_register_with_overdue_rules_highlighted_but_no_actions(setup):
    _, _, rule = setup
    ExceptionRule.objects.filter(pk=rule.pk).update(next_review_due=timezone.localdate() - dt.timedelta(days=4))
    response = login("support").get("/rules/", {"overdue": "on"})
    assert response.status_code == 200
    page = response.content.decode()
    assert "Skip records where status equals &#x27;cancelled&#x27;" in page
    assert f'<tr id="rule-{rule.pk}" class="overdue">' in page
    assert '<strong class="error">Overdue</strong>' in page
    assert "Mark reviewed" not in page


def test_the_register_filters_by_kind_and_unused(setup):
    client = login("support")
    assert "rule-" not in client.get("/rules/", {"kind": "special_code"}).content.decode().split("<tbody>")[1]
    assert "No rules match." in client.get("/rules/", {"unused": "30"}).content.decode()


def test_support_cannot_mark_reviewed_or_retire(setup):
    _, _, rule = setup
    client = login("support")
    assert client.post(f"/rules/{rule.pk}/review/", {"note": "fine"}).status_code == 403
    assert client.post(f"/rules/{rule.pk}/retire/", {"reason": "gone"}).status_code == 403
    assert client.get("/rules/new/").status_code == 403
    rule.refresh_from_db()
    assert rule.status == "active"
    assert rule.last_reviewed_at is None


def test_an_account_manager_marks_reviewed_and_retires_with_history(setup):
    _, _, rule = setup
    client = login("account_manager")
    page = client.get("/rules/").content.decode()
    assert "Mark reviewed" in page
    assert 'name="csrfmiddlewaretoken"' in page
    response = client.post(f"/rules/{rule.pk}/review/", {"note": "checked with their ops"})
    assert response.status_code == 302
    response = client.post(f"/rules/{rule.pk}/retire/", {"reason": "they fixed it", "next": "/rules/"})
    assert response["Location"] == "/rules/"
    rule.refresh_from_db()
    assert rule.status == "retired"
    assert rule.last_reviewed_by.username == "page-account_manager"
    detail = client.get(f"/rules/{rule.pk}/").content.decode()
    assert "Reviewed: checked with their ops" in detail
    assert "Retired: they fixed it" in detail


def test_a_review_without_a_note_is_refused(setup):
    _, _, rule = setup
    response = login("account_manager").post(f"/rules/{rule.pk}/review/", {"note": " "}, follow=True)
    assert "A review needs a note" in response.content.decode()
    rule.refresh_from_db()
    assert rule.last_reviewed_at is None


def test_an_account_manager_creates_a_rule_and_bad_parameters_are_explained(setup, owner):
    customer, flow, _ = setup
    client = login("account_manager")
    form = {
        "customer": customer.slug,
        "integration": flow.slug,
        "kind": "special_code",
        "params": '{"field": "status", "when": "cancelled"}',
        "reason": "their ERP wants X",
        "owner": owner.username,
        "review_interval_days": "30",
    }
    response = client.post("/rules/new/", form)
    assert response.status_code == 200
    assert "code is required: the code to send" in response.content.decode()
    response = client.post("/rules/new/", {**form, "params": '{"field": "status", "when": "cancelled", "code": "X"}'})
    assert response.status_code == 302
    rule = ExceptionRule.objects.get(kind="special_code")
    assert rule.history.get().history_user.username == "page-account_manager"
    assert rule.review_interval_days == 30


def test_whats_special_lists_rules_mapping_differences_schedule_and_retries(setup, owner):
    customer, flow, rule = setup
    standard_spec = {**copy.deepcopy(ORDER_SPEC), "description": "[standard] orders as most customers send them"}
    template = new_customer("rules-template-co", "Rules Template Co")
    order_integration(template, "rules-standard-orders", "http://127.0.0.1:9", spec=standard_spec)
    special_spec = copy.deepcopy(ORDER_SPEC)
    special_spec["fields"][1]["value_map"]["refunded"] = "RF"
    special_spec["fields"].append({"name": "channel", "source": "channel"})
    mine = order_integration(customer, "rules-page-co-returns", "http://127.0.0.1:9", spec=special_spec)
    rules_service.rule_create(
        acting_user=owner,
        customer=customer,
        kind="delivery_window",
        params={"start": "22:00", "end": "05:00"},
        reason="their ERP imports at night",
        owner=owner,
    )

    response = login("support").get(f"/rules/customers/{customer.slug}/special/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "Skip records where status equals &#x27;cancelled&#x27;" in page
    assert "because they cancel and re-order" in page
    assert "Deliver only between 22:00 and 05:00, customer&#x27;s local time" in page
    assert f"Delivered only between 22:00 and 05:00 (Europe/Berlin), per customer rule #{rule.pk + 1}" in page
    assert (
        "Field &#x27;status&#x27;: value map entry &#x27;refunded&#x27; changed from "
        "&#x27;REFUNDED&#x27; to &#x27;RF&#x27;" in page
    )
    assert "Field &#x27;channel&#x27; added, from &#x27;channel&#x27;" in page
    assert "The integration&#x27;s own policy: up to 6 failed tries" in page
    assert f'id="integration-{mine.slug}"' in page
    assert f'id="integration-{flow.slug}"' in page


def test_the_complexity_page_shows_counts(setup):
    customer, _, _ = setup
    response = login("support").get("/rules/complexity/", {"customer": customer.slug})
    assert response.status_code == 200
    page = response.content.decode()
    assert "rules-page-co-orders" in page
    assert "<td>5</td><td>2</td><td>3</td><td>1</td><td>1</td><td>0</td>" in page


def test_an_account_manager_changes_a_rule_with_a_reason_kept_in_history(setup, owner):
    _, flow, rule = setup
    client = login("account_manager")
    page = client.get(f"/rules/{rule.pk}/edit/")
    assert page.status_code == 200
    assert "Change rule" in page.content.decode()
    form = {
        "integration": flow.slug,
        "kind": "skip_when",
        "params": '{"condition": {"field": "status", "op": "in", "value": ["cancelled", "voided"]}}',
        "reason": "they cancel and re-order; voided too since March",
        "owner": owner.username,
        "review_interval_days": "60",
    }
    refused = client.post(f"/rules/{rule.pk}/edit/", form)  # no reason for the change
    assert refused.status_code == 200
    assert ExceptionRule.objects.get(pk=rule.pk).review_interval_days == 90
    response = client.post(f"/rules/{rule.pk}/edit/", {**form, "change_reason": "voided orders too (ticket 88)"})
    assert response.status_code == 302
    rule.refresh_from_db()
    assert rule.params["condition"]["value"] == ["cancelled", "voided"]
    assert rule.review_interval_days == 60
    latest = rule.history.first()
    assert latest.history_change_reason == "voided orders too (ticket 88)"
    assert latest.history_user.username == "page-account_manager"


def test_support_cannot_change_a_rule(setup):
    _, _, rule = setup
    client = login("support")
    assert client.get(f"/rules/{rule.pk}/edit/").status_code == 403
    assert client.post(f"/rules/{rule.pk}/edit/", {"change_reason": "x"}).status_code == 403
