"""The rule layer as a pure function: validation messages, the order of application, notes."""

from __future__ import annotations

import copy

from integrations.engine import rules
from integrations.engine.rules import RuleData, apply_rules
from tests.rules.conftest import ORDER_SPEC, order


def rule(n, kind, params, reason="why"):
    return RuleData(n, kind, params, reason)


def test_every_kind_documents_an_example_that_validates():
    for kind in rules.KINDS.values():
        assert rules.validate_params(kind.name, kind.example) == [], kind.name
        assert rules.describe_rule(kind.name, kind.example)


def test_validation_messages_name_the_bad_part():
    assert rules.validate_params("nope", {}) == ["unknown rule kind 'nope' (known: " + ", ".join(rules.KINDS) + ")"]
    assert rules.validate_params("delivery_window", {"start": "25:00", "end": "05:00"}) == [
        "start: '25:00' is not a time like '22:00'"
    ]
    assert rules.validate_params("retry_policy", {"max_attempts": 0}) == [
        "max_attempts must be a whole number from 1 to 50, not 0"
    ]
    assert rules.validate_params("merge_policy", {"mode": "separate"})[0].startswith("mode cannot be changed by a rule")
    assert rules.validate_params("skip_when", {"condition": {"all": []}}) == [
        "condition.all must be the only key and a non-empty list"
    ]


def test_skip_wins_over_hold_and_stops_everything_after_it():
    spec = copy.deepcopy(ORDER_SPEC)
    outcome = apply_rules(
        [
            rule(1, "hold_for_review", {"condition": {"field": "total", "op": "gt", "value": 1}}),
            rule(2, "skip_when", {"condition": {"field": "status", "op": "eq", "value": "cancelled"}}),
            rule(3, "special_code", {"field": "status", "when": "cancelled", "code": "X"}),
        ],
        order(1, status="cancelled"),
        spec,
    )
    assert outcome.skip.startswith("Skipped by customer rule #2")
    assert not outcome.hold
    assert [f["id"] for f in outcome.fired] == [2]
    assert outcome.spec is spec


def test_spec_patches_never_change_the_input_and_later_rules_win():
    spec = copy.deepcopy(ORDER_SPEC)
    before = copy.deepcopy(spec)
    outcome = apply_rules(
        [
            rule(1, "value_map_override", {"field": "status", "from": "PAID ", "to": "P1"}),
            rule(2, "value_map_override", {"field": "status", "from": "paid", "to": "P2"}),
        ],
        order(1),
        spec,
    )
    assert spec == before
    status = next(f for f in outcome.spec["fields"] if f["name"] == "status")
    assert status["value_map"] == {"refunded": "REFUNDED", "cancelled": "CANCELLED", "paid": "P2"}
    assert outcome.patched_by == (1, 2)
    assert len(outcome.field_notes["status"]) == 2


def test_a_stored_rule_that_is_no_longer_valid_holds_the_record():
    outcome = apply_rules([rule(7, "skip_when", {"condition": {"op": "eq"}})], order(1), ORDER_SPEC)
    assert outcome.hold.startswith("Held: customer rule #7 (skip_when) is not valid (condition needs a field)")
    assert outcome.hold_rule_id == 7


def test_a_rule_that_does_not_fit_the_mapping_is_reported_not_applied():
    outcome = apply_rules([rule(4, "destination_owned", {"field": "fax"})], order(1), ORDER_SPEC)
    assert outcome.warnings == [
        "rule #4 (destination_owned) does not apply to this mapping: the mapping has no field 'fax'"
    ]
    assert outcome.fired == []
    assert outcome.patched_by == ()


def test_special_code_can_add_a_field_read_from_its_own_source():
    outcome = apply_rules(
        [rule(5, "special_code", {"field": "flag", "source": "status", "when": "cancelled", "code": "X"})],
        order(1, status="cancelled"),
        ORDER_SPEC,
    )
    assert outcome.spec["fields"][-1] == {"name": "flag", "convert": [{"name": "constant", "value": "X"}]}


def test_policies_and_windows_take_the_last_valid_rule():
    found = rules.retry_policy_from_rules(
        [rule(1, "retry_policy", {"max_attempts": 2}), rule(2, "retry_policy", {"max_attempts": 4})]
    )
    assert found is not None
    assert found[0].max_attempts == 4
    assert found[1].id == 2
    assert rules.describe_policy(found[0]).startswith("up to 4 failed tries, waiting 5 s, 5 min, 30 min, 2 h")
