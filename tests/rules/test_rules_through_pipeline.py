"""Each rule kind through the pipeline: a signed webhook stores the record, the worker's own
claim/process code maps it with the customer's rules and delivers it to a real partner
simulator over HTTP. What we check is what a person would see: the record's status, the
attempt's reason and rules, the per-field trace, and what the partner received."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from integrations.models import ExceptionRule, ReviewItem, SyncAttempt, SyncRecord
from integrations.services import rules as rules_service
from integrations.services.rules import rule_create
from tests.rules.conftest import (
    ORDER_SPEC,
    at_partner,
    deliver_due,
    new_customer,
    order,
    order_integration,
    record,
    send,
)

pytestmark = pytest.mark.django_db


def make_rule(owner, integration, kind, params, reason="the customer asked for it", **extra):
    return rule_create(
        acting_user=owner,
        customer=integration.customer,
        integration=integration,
        kind=kind,
        params=params,
        reason=reason,
        owner=owner,
        **extra,
    )


def trace_entry(attempt: SyncAttempt, field: str) -> dict:
    return next(e for e in attempt.trace if e["field"] == field)


def test_skip_when_skips_matching_records_and_names_the_rule(shop, partner, owner):
    rule = make_rule(owner, shop, "skip_when", {"condition": {"field": "status", "op": "eq", "value": "cancelled"}})
    send(shop, order(1, status="Cancelled "), order(2))
    deliver_due(shop)

    skipped = record(shop, "o-1")
    assert skipped.status == SyncRecord.Status.SKIPPED
    attempt = skipped.attempts.get()
    assert attempt.error_class == "rule_skip"
    assert attempt.reason.startswith(f"Skipped by customer rule #{rule.pk}: status equals 'cancelled'")
    assert attempt.rules_applied == [
        {
            "id": rule.pk,
            "kind": "skip_when",
            "summary": "Skip records where status equals 'cancelled'",
            "effect": "skipped the record because status equals 'cancelled'",
        }
    ]
    assert record(shop, "o-2").status == SyncRecord.Status.DELIVERED
    assert at_partner(partner, "o-1") is None
    assert at_partner(partner, "o-2")["status"] == "PAID"
    rule.refresh_from_db()
    assert rule.fire_count == 1
    assert rule.last_fired_at is not None


def test_hold_for_review_sends_matching_records_to_the_review_queue(shop, partner, owner):
    rule = make_rule(
        owner,
        shop,
        "hold_for_review",
        {"condition": {"field": "total", "op": "gt", "value": 1000}, "message": "confirm large orders by phone"},
    )
    send(shop, order(1, total="1500.00"), order(2, total="999.99"))
    deliver_due(shop)

    held = record(shop, "o-1")
    assert held.status == SyncRecord.Status.REVIEW
    item = ReviewItem.objects.get(record=held)
    assert item.rule_id == rule.pk
    assert item.reason_text == (
        f"Held for review by customer rule #{rule.pk}: total is greater than 1000 — confirm large orders by phone"
    )
    assert held.attempts.get().rules_applied[0]["id"] == rule.pk
    assert at_partner(partner, "o-1") is None
    assert record(shop, "o-2").status == SyncRecord.Status.DELIVERED


def test_default_for_blank_sends_the_default_and_says_so_in_the_trace(shop, partner, owner):
    rule = make_rule(owner, shop, "default_for_blank", {"field": "country", "value": "AT"}, reason="all stores in AT")
    send(shop, order(1, country="  "), order(2, country="DE"))
    deliver_due(shop)

    assert at_partner(partner, "o-1")["country"] == "AT"
    assert at_partner(partner, "o-2")["country"] == "DE"
    attempt = record(shop, "o-1").attempts.get()
    entry = trace_entry(attempt, "country")
    assert entry["output"] == "AT"
    assert entry["notes"] == [
        f"rule #{rule.pk} (default for a blank field): the source value was blank, so 'AT' is sent. "
        "Why: all stores in AT"
    ]
    assert [f["id"] for f in attempt.rules_applied] == [rule.pk]
    # The record whose country was given did not need the rule: it did not fire for it.
    assert record(shop, "o-2").attempts.get().rules_applied == []
    rule.refresh_from_db()
    assert rule.fire_count == 1


def test_value_map_override_changes_one_entry_for_this_customer(shop, partner, owner):
    rule = make_rule(owner, shop, "value_map_override", {"field": "status", "from": "Refunded", "to": "RETURNED"})
    send(shop, order(1, status="refunded"), order(2, status="paid"))
    deliver_due(shop)

    assert at_partner(partner, "o-1")["status"] == "RETURNED"
    assert at_partner(partner, "o-2")["status"] == "PAID"
    entry = trace_entry(record(shop, "o-1").attempts.get(), "status")
    assert entry["notes"][0].startswith(
        f"rule #{rule.pk} (override a value-map entry): 'refunded' is sent as 'RETURNED' (the mapping says 'REFUNDED')"
    )


def test_special_code_sends_a_code_for_one_value(shop, partner, owner):
    rule = make_rule(owner, shop, "special_code", {"field": "status", "when": ["cancelled", "voided"], "code": "X"})
    send(shop, order(1, status="voided"), order(2, status="paid"))
    deliver_due(shop)

    assert at_partner(partner, "o-1")["status"] == "X"
    assert at_partner(partner, "o-2")["status"] == "PAID"
    attempt = record(shop, "o-1").attempts.get()
    assert trace_entry(attempt, "status")["notes"] == [
        f"rule #{rule.pk} (send a special code for a value): the value 'voided' is sent as the code 'X'. "
        "Why: the customer asked for it"
    ]
    assert attempt.rules_applied[0]["effect"] == "the value 'voided' is sent as the code 'X'"


def test_destination_owned_field_is_sent_on_create_and_never_overwritten(shop, partner, owner):
    rule = make_rule(owner, shop, "destination_owned", {"field": "phone"}, reason="their call centre edits phones")
    send(shop, order(1, phone="+4930111111"))
    deliver_due(shop)
    send(shop, order(1, phone="+4930999999", total="30.00", updated_at="2024-03-02T10:00:00Z"))
    deliver_due(shop)

    stored = at_partner(partner, "o-1")
    assert stored["phone"] == "+4930111111"
    assert stored["total"] in ("30.00", 30)
    update = record(shop, "o-1").attempts.get()
    assert update.operation == "update"
    assert "phone" not in update.output
    entry = trace_entry(update, "phone")
    assert entry["result"] == "destination_owned"
    assert update.rules_applied[0]["id"] == rule.pk


def test_merge_policy_changes_which_related_record_wins(db, partner, owner):
    spec = {
        "record": {
            "source_id": "id",
            "updated_at": "updated_at",
            "group": {"key": "company_id", "mode": "merge", "precedence": {"path": "role", "order": ["primary"]}},
        },
        "fields": [
            {"name": "external_id", "source": "company_id", "convert": ["text"], "required": True},
            {"name": "email", "source": "email"},
            {"name": "name", "source": "company"},
        ],
    }
    customer = new_customer("rules-merge-co", "Rules Merge Co")
    integration = order_integration(customer, "rules-merge-co-companies", partner.url, spec=spec)
    rule = make_rule(owner, integration, "merge_policy", {"order": ["billing", "primary"]}, reason="invoices first")
    base = {"company_id": "k-1", "company": "Kiosk", "updated_at": "2024-03-01T10:00:00Z"}
    send(
        integration,
        {**base, "id": "p-1", "role": "primary", "email": "front@example.com"},
        {**base, "id": "b-1", "role": "billing", "email": "invoices@example.com"},
    )
    deliver_due(integration)

    assert at_partner(partner, "k-1")["email"] == "invoices@example.com"
    assert set(SyncRecord.objects.filter(integration=integration).values_list("status", flat=True)) == {"delivered"}
    fired = SyncAttempt.objects.filter(record__integration=integration).exclude(rules_applied=[]).get()
    assert fired.rules_applied[0]["id"] == rule.pk
    assert fired.rules_applied[0]["summary"] == (
        "Merge related records with a different precedence: related records ranked billing > primary"
    )


def test_retry_policy_rule_replaces_the_integration_policy(shop, partner, owner, django_capture_on_commit_callbacks):
    rule = make_rule(owner, shop, "retry_policy", {"max_attempts": 1}, reason="they page us on any failure")
    partner.configure(fail_next=1, fail_status=503)
    send(shop, order(1))
    with django_capture_on_commit_callbacks(execute=True):
        deliver_due(shop)

    failed = record(shop, "o-1")
    # The integration's own policy would retry six times; the rule gives up after one failure.
    assert failed.status == SyncRecord.Status.REVIEW
    attempt = failed.attempts.get()
    assert attempt.error_class == "server_error"
    assert "Gave up after 1 failed attempts" in attempt.reason
    rule.refresh_from_db()
    assert rule.fire_count == 1
    assert rules_service.retry_policy_for(shop).max_attempts == 1


def test_delivery_window_rule_holds_records_until_the_window(db, partner, owner, django_capture_on_commit_callbacks):
    customer = new_customer("rules-night-shop", "Rules Night Shop", tz="America/Chicago")
    integration = order_integration(customer, "rules-night-shop-orders", partner.url)
    local = timezone.now().astimezone(ZoneInfo("America/Chicago"))
    start = (local + dt.timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    end = start + dt.timedelta(hours=3)
    rule = make_rule(
        owner, integration, "delivery_window", {"start": f"{start:%H:%M}", "end": f"{end:%H:%M}"}, reason="night batch"
    )
    assert rules_service.window_for(integration) == (start.time(), end.time())

    with django_capture_on_commit_callbacks(execute=True):
        send(integration, order(1))
    waiting = record(integration, "o-1")
    assert waiting.status == SyncRecord.Status.PENDING
    assert waiting.next_attempt_at == start.astimezone(dt.UTC)
    assert deliver_due(integration) == []  # not due before the window opens
    assert deliver_due(integration, at=start.astimezone(dt.UTC) + dt.timedelta(seconds=1)) == [waiting.pk]
    assert record(integration, "o-1").status == SyncRecord.Status.DELIVERED
    rule.refresh_from_db()
    assert rule.fire_count == 1


def test_a_retired_or_expired_rule_stops_applying(shop, partner, owner):
    rule = make_rule(owner, shop, "skip_when", {"condition": {"field": "status", "op": "eq", "value": "cancelled"}})
    rules_service.rule_retire(rule=rule, acting_user=owner, reason="they cancel in the shop now")
    rules_service.clear_cache()
    expired = make_rule(
        owner,
        shop,
        "special_code",
        {"field": "status", "when": "cancelled", "code": "X"},
        expires_at=timezone.now() + dt.timedelta(minutes=5),
    )
    ExceptionRule.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    rules_service.clear_cache()
    send(shop, order(1, status="cancelled"))
    deliver_due(shop)
    assert at_partner(partner, "o-1")["status"] == "CANCELLED"
    assert record(shop, "o-1").attempts.get().rules_applied == []


def test_a_customer_wide_rule_applies_to_every_integration_and_the_integration_rule_wins(db, partner, owner):
    customer = new_customer("rules-two-flows", "Rules Two Flows")
    first = order_integration(customer, "rules-two-flows-a", partner.url)
    second = order_integration(customer, "rules-two-flows-b", partner.url)
    rule_create(
        acting_user=owner,
        customer=customer,
        kind="special_code",
        params={"field": "status", "when": "cancelled", "code": "C-ALL"},
        reason="all flows",
        owner=owner,
    )
    make_rule(owner, second, "special_code", {"field": "status", "when": "cancelled", "code": "C-B"}, reason="B only")
    send(first, order(1, status="cancelled"))
    send(second, order(2, status="cancelled"))
    deliver_due(first)
    deliver_due(second)
    assert at_partner(partner, "o-1")["status"] == "C-ALL"
    assert at_partner(partner, "o-2")["status"] == "C-B"


def test_the_classic_case_one_code_path_only_rule_rows_differ(db, partner, owner):
    """Customer A does not want cancelled orders at all; customer B wants them with code X.
    Same mapping, same pipeline code: the only difference is one rule row each."""
    a = order_integration(new_customer("rules-cust-a", "Rules Customer A"), "rules-cust-a-orders", partner.url)
    b = order_integration(new_customer("rules-cust-b", "Rules Customer B"), "rules-cust-b-orders", partner.url)
    assert a.mapping_versions.get().spec == b.mapping_versions.get().spec == ORDER_SPEC  # the same mapping for both
    skip = make_rule(owner, a, "skip_when", {"condition": {"field": "status", "op": "eq", "value": "cancelled"}})
    code = make_rule(owner, b, "special_code", {"field": "status", "when": "cancelled", "code": "X"})

    send(a, order(100, status="cancelled"), order(101, status="paid"))
    send(b, order(200, status="cancelled"), order(201, status="paid"))
    deliver_due(a)
    deliver_due(b)

    assert record(a, "o-100").status == "skipped"
    assert record(a, "o-100").attempts.get().rules_applied[0]["id"] == skip.pk
    assert at_partner(partner, "o-100") is None
    assert record(b, "o-200").status == "delivered"
    assert at_partner(partner, "o-200")["status"] == "X"
    assert record(b, "o-200").attempts.get().rules_applied[0]["id"] == code.pk
    # Everything else is treated the same.
    assert at_partner(partner, "o-101")["status"] == at_partner(partner, "o-201")["status"] == "PAID"


def test_a_rule_fired_by_several_records_of_one_batch_counts_each_firing(shop, partner, owner):
    from integrations.services.processing import drain_integration

    rule = make_rule(owner, shop, "skip_when", {"condition": {"field": "status", "op": "eq", "value": "cancelled"}})
    send(shop, order(1, status="cancelled"), order(2, status="cancelled"), order(3, status="cancelled"), order(4))
    assert drain_integration(shop.pk, max_seconds=30) == 4  # one chunk, written as one batch
    rule.refresh_from_db()
    assert rule.fire_count == 3
