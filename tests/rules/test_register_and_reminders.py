"""Rule writes keep history with the acting user; overdue and unused rules are found; owners
get one reminder email each; the complexity check counts what is special."""

from __future__ import annotations

import datetime as dt
import json
from io import StringIO

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.utils import timezone

from integrations.models import ExceptionRule, ReviewItem, SyncRecord
from integrations.services import rules as rules_service
from tests.conftest import make_user
from tests.rules.conftest import new_customer, order_integration

pytestmark = pytest.mark.django_db

SKIP = {"condition": {"field": "status", "op": "eq", "value": "cancelled"}}


@pytest.fixture
def customer(db):
    return new_customer("rules-register-co", "Rules Register Co")


@pytest.fixture
def flow(customer):
    return order_integration(customer, "rules-register-co-orders", "http://127.0.0.1:9")


def create(owner, customer, integration=None, kind="skip_when", params=None, **extra):
    return rules_service.rule_create(
        acting_user=owner,
        customer=customer,
        integration=integration,
        kind=kind,
        params=params or SKIP,
        reason=extra.pop("reason", "they cancel by mistake and re-order"),
        owner=owner,
        **extra,
    )


def test_every_change_is_in_history_with_the_acting_user_and_reason(owner, customer, flow):
    rule = create(owner, customer, flow)
    reviewer = make_user("account_manager", "rule-reviewer")
    rules_service.rule_update(
        rule=rule,
        acting_user=owner,
        change_reason="also on hold orders",
        params={"condition": {"field": "status", "op": "in", "value": ["cancelled", "on-hold"]}},
    )
    rules_service.rule_mark_reviewed(rule=rule, acting_user=reviewer, note="confirmed with their ops lead")
    rules_service.rule_retire(rule=rule, acting_user=reviewer, reason="fixed in their shop")

    rows = list(rule.history.order_by("history_id").values_list("history_user__username", "history_change_reason"))
    assert rows == [
        ("rule-owner", "Created"),
        ("rule-owner", "also on hold orders"),
        ("rule-reviewer", "Reviewed: confirmed with their ops lead"),
        ("rule-reviewer", "Retired: fixed in their shop"),
    ]
    rule.refresh_from_db()
    assert rule.created_by == owner
    assert rule.last_reviewed_by == reviewer
    assert rule.status == "retired"
    assert rule.next_review_due == (rule.last_reviewed_at + dt.timedelta(days=90)).date()


def test_parameters_are_checked_against_the_kind_with_clear_messages(owner, customer, flow):
    with pytest.raises(ValidationError) as caught:
        create(owner, customer, flow, kind="special_code", params={"field": "status", "code": "X", "colour": 1})
    assert caught.value.message_dict["params"] == [
        "unknown parameters: colour (use code, field, source, when)",
        "when is required: the source value(s) that get the code",
    ]
    with pytest.raises(ValidationError) as caught:
        create(owner, customer, flow, params={"condition": {"field": "status", "op": "like", "value": "x"}})
    assert "unknown operator 'like'" in caught.value.message_dict["params"][0]
    with pytest.raises(ValidationError) as caught:
        create(owner, customer, flow, kind="value_map_override", params={"field": "total", "from": "a", "to": "b"})
    assert caught.value.message_dict["params"] == [
        "Does not fit the published mapping v1: field 'total' has no value map to override"
    ]
    with pytest.raises(ValidationError) as caught:
        create(owner, customer, flow, reason="  ")
    assert "reason" in caught.value.message_dict
    assert not ExceptionRule.objects.exists()


def test_overdue_rules_are_found_and_highlighted_by_the_register(owner, customer, flow):
    overdue = create(owner, customer, flow)
    fresh = create(owner, customer, flow)
    ExceptionRule.objects.filter(pk=overdue.pk).update(next_review_due=timezone.localdate() - dt.timedelta(days=1))
    overdue.refresh_from_db()
    assert rules_service.is_overdue(overdue)
    assert not rules_service.is_overdue(fresh)
    assert list(rules_service.register(overdue=True)) == [overdue]
    # Reviewing it moves the next review a full interval ahead.
    rules_service.rule_mark_reviewed(rule=overdue, acting_user=owner, note="still needed")
    assert list(rules_service.register(overdue=True)) == []


def test_unused_rules_are_those_not_fired_for_30_or_90_days(owner, customer, flow):
    now = timezone.now()
    never_old = create(owner, customer, flow)
    never_new = create(owner, customer, flow)
    fired_long_ago = create(owner, customer, flow)
    fired_recently = create(owner, customer, flow)
    ExceptionRule.objects.filter(pk__in=[never_old.pk, fired_long_ago.pk, fired_recently.pk]).update(
        created_at=now - dt.timedelta(days=200)
    )
    ExceptionRule.objects.filter(pk=fired_long_ago.pk).update(last_fired_at=now - dt.timedelta(days=45), fire_count=3)
    ExceptionRule.objects.filter(pk=fired_recently.pk).update(last_fired_at=now - dt.timedelta(days=2), fire_count=9)

    assert set(rules_service.register(unused_days=30)) == {never_old, fired_long_ago}
    assert set(rules_service.register(unused_days=90)) == {never_old}
    assert never_new not in set(rules_service.register(unused_days=30))


def test_owners_get_one_email_each_listing_their_due_rules(owner, customer, flow):
    other = make_user("account_manager", "second-owner")
    other.email = "second@example.com"
    other.save()
    silent = make_user("account_manager", "not-due-owner")
    silent.email = "silent@example.com"
    silent.save()
    today = timezone.localdate()
    a = create(owner, customer, flow)
    b = create(owner, customer, flow, kind="destination_owned", params={"field": "phone"})
    c = create(other, customer, flow, reason="other owner's rule")
    create(silent, customer, flow)
    ExceptionRule.objects.filter(pk=a.pk).update(next_review_due=today - dt.timedelta(days=3))
    ExceptionRule.objects.filter(pk__in=[b.pk, c.pk]).update(next_review_due=today + dt.timedelta(days=2))

    out = StringIO()
    call_command("rules_due_reminder", stdout=out)
    assert out.getvalue().strip() == "Sent 2 reminder emails."
    by_to = {m.to[0]: m for m in mail.outbox}
    assert set(by_to) == {"owner@example.com", "second@example.com"}
    first = by_to["owner@example.com"]
    assert first.subject == "Syncdesk: 2 exception rules due for review (1 overdue)"
    assert f"#{a.pk} Rules Register Co" in first.body.split("Due within")[0]
    assert "Overdue:" in first.body
    assert f"#{b.pk}" in first.body.split("Due within 7 days:")[1]
    assert f"#{c.pk}" in by_to["second@example.com"].body


def test_complexity_counts_per_integration_and_customer(owner, customer, flow):
    create(owner, customer, None, kind="retry_policy", params={"max_attempts": 2}, reason="strict")
    create(owner, customer, flow, kind="delivery_window", params={"start": "22:00", "end": "05:00"}, reason="nights")
    record = SyncRecord.objects.create(integration=flow, source_id="o-1", dedupe_key="k1", payload={}, status="review")
    ReviewItem.objects.create(record=record, reason_code="x", reason_text="x", group_key="x")

    out = StringIO()
    call_command("integration_complexity", "--customer", customer.slug, "--json", stdout=out)
    report = json.loads(out.getvalue())["customers"]
    assert len(report) == 1
    row = report[0]["integrations"][0]
    assert row == {
        "integration": "rules-register-co-orders",
        "name": "rules-register-co-orders",
        "mapping_version": 1,
        "field_mappings": 5,
        "conversions": 2,
        "value_map_entries": 3,
        "exception_rules": 2,
        "retry_paths": 3,  # failures, the retry-policy rule, the window
        "open_review_items": 1,
    }
    assert report[0]["totals"]["exception_rules"] == 2

    text = StringIO()
    call_command("integration_complexity", stdout=text)
    assert "rules-register-co-orders" in text.getvalue()
