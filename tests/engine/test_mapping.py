"""The mapping engine as the pipeline sees it: specs, checks, outputs, traces and merges."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from integrations.engine import exactjson
from integrations.engine.mapping import (
    MappingContext,
    ParentLink,
    SpecError,
    compile_spec,
    diff_specs,
    duplicate_problem,
    find_duplicates,
    map_group,
    map_record,
    match_keys,
    parent_link,
    record_meta,
    validate_spec,
)
from integrations.engine.spectext import dump_spec_text, load_spec_text

CONTACT_SPEC = {
    "record": {
        "source_id": "id",
        "updated_at": "updated_at",
        "event_id": "meta.event",
        "parent": {"path": "company_id", "integration": "shop-companies", "output_field": "company"},
    },
    "default_region": "US",
    "fields": [
        {"name": "external_id", "source": "id", "convert": ["text"], "required": True},
        {"name": "email", "source": ["email", "contact.email"], "convert": ["email"]},
        {"name": "phone", "source": "phone", "convert": ["phone_e164"], "on_invalid": "drop"},
        {"name": "lead_source", "convert": [{"name": "constant", "value": "webshop"}], "owner": "destination"},
        {"name": "address.city", "source": "addresses[0].city", "convert": ["trim"]},
        {"name": "address.zip", "source": "addresses[-1].zip"},
        {"name": "total", "source": "total", "convert": [{"name": "decimal", "places": 2}]},
    ],
}


@pytest.fixture
def spec():
    return compile_spec(CONTACT_SPEC)


RECORD = {
    "id": 6569096478909,
    "updated_at": "2024-01-25T23:28:32-05:00",
    "meta": {"event": "3f1c2a9e"},
    "company_id": "cus_Q1fakeAbc",
    "email": "",
    "contact": {"email": "Ines.Varga@Example.com"},
    "phone": "+1 202-555-0143",
    "addresses": [{"city": " Louisville ", "zip": "40202"}, {"city": "x", "zip": "07410"}],
    "total": "49",
}


def test_a_record_becomes_the_destination_record_with_nested_fields(spec):
    result = map_record(spec, RECORD)
    assert result.decision == "deliver"
    assert result.output == {
        "external_id": "6569096478909",
        "email": "ines.varga@example.com",
        "phone": "+12025550143",
        "lead_source": "webshop",
        "address": {"city": "Louisville", "zip": "07410"},
        "total": Decimal("49.00"),
    }
    assert result.problems == []


def test_the_first_non_blank_source_wins_and_the_trace_names_it(spec):
    entry = next(e for e in map_record(spec, RECORD).trace if e["field"] == "email")
    assert entry["source"] == "contact.email"
    assert entry["raw"] == "Ines.Varga@Example.com"
    assert entry["steps"] == [{"conversion": "email", "output": "ines.varga@example.com"}]
    assert entry["output"] == "ines.varga@example.com"


def test_record_meta_reads_ids_times_and_links(spec):
    meta = record_meta(spec, RECORD)
    assert meta.source_id == "6569096478909"
    assert meta.updated_at == datetime(2024, 1, 26, 4, 28, 32, tzinfo=UTC)
    assert meta.event_id == "3f1c2a9e"
    assert meta.parent_id == "cus_Q1fakeAbc"
    assert meta.group_key is None


@pytest.mark.parametrize("record", [None, [], "text", 7, {"updated_at": "yesterday"}, {"id": {"x": 1}}])
def test_record_meta_never_raises(spec, record):
    meta = record_meta(spec, record)
    assert meta.updated_at is None


def test_destination_owned_fields_are_sent_on_create_and_left_out_on_update(spec):
    created = map_record(spec, RECORD)
    updated = map_record(spec, RECORD, MappingContext(is_update=True))
    assert created.output["lead_source"] == "webshop"
    assert "lead_source" not in updated.output
    assert "lead_source" in updated.omitted
    entry = next(e for e in updated.trace if e["field"] == "lead_source")
    assert entry["result"] == "destination_owned"


def test_an_invalid_value_with_on_invalid_drop_is_left_out_but_recorded(spec):
    result = map_record(spec, {**RECORD, "phone": "555-625-1199"})
    assert result.decision == "deliver"
    assert "phone" not in result.output
    assert result.omitted == ["phone", "company"]  # company: the parent is not delivered yet
    (problem,) = result.problems
    assert (problem.action, problem.code, problem.rule) == ("drop", "invalid_value", "phone_e164")
    assert problem.reason == "'555-625-1199' is not a valid phone number for US for field phone"


def test_invalid_values_go_to_review_by_default(spec):
    result = map_record(spec, {**RECORD, "total": "49.999"})
    assert result.decision == "review"
    assert result.problems[0].reason == "'49.999' has more than 2 decimal places for field total"
    trace = next(e for e in result.trace if e["field"] == "total")
    assert trace["result"] == "review"
    assert trace["steps"][0]["error"] == "'49.999' has more than 2 decimal places"


def test_reject_wins_over_review(spec):
    result = map_record(spec, {**RECORD, "id": None, "total": "x"})
    assert result.decision == "reject"
    assert {p.action for p in result.problems} == {"reject", "review"}


def test_the_parent_link_is_written_when_the_parent_is_known(spec):
    assert parent_link(spec) == ParentLink("company_id", "shop-companies", "company")
    waiting = map_record(spec, RECORD)
    assert "company" not in waiting.output
    assert waiting.trace[-1]["result"] == "waiting_parent"
    linked = map_record(spec, RECORD, MappingContext(parent_destination_id="crm-77"))
    assert linked.output["company"] == "crm-77"


def test_rule_notes_appear_in_the_trace_of_their_field(spec):
    context = MappingContext(field_notes={"phone": ["rule 12: phone numbers of this customer are masked"]})
    entry = next(e for e in map_record(spec, RECORD, context).trace if e["field"] == "phone")
    assert entry["notes"] == ["rule 12: phone numbers of this customer are masked"]


def test_to_json_is_plain_json_with_exact_numbers(spec):
    result = map_record(spec, {**RECORD, "phone": "bad"})
    text = exactjson.dumps(result.to_json())
    data = exactjson.loads(text)
    assert data["output"]["total"] == Decimal("49.00")
    assert data["meta"]["updated_at"] == "2024-01-26T04:28:32Z"
    assert data["problems"][0]["field"] == "phone"
    assert "49.00" in text


def test_a_record_that_is_not_an_object_is_rejected_plainly(spec):
    result = map_record(spec, ["not", "a", "record"])
    assert result.decision == "reject"
    assert result.problems[0].code == "not_an_object"
    assert result.problems[0].reason == "the record is a list, not an object with named fields"


def test_values_without_conversions_pass_through_exactly():
    spec = compile_spec({"fields": [{"name": "id", "source": "id"}, {"name": "n", "source": "n"}]})
    result = map_record(spec, {"id": 2**70, "n": Decimal("150.0")})
    assert result.output == {"id": 2**70, "n": Decimal("150.0")}


def test_compile_gives_the_same_object_for_the_same_content():
    assert compile_spec(copy.deepcopy(CONTACT_SPEC)) is compile_spec(copy.deepcopy(CONTACT_SPEC))


def test_compiled_spec_does_not_share_the_callers_dict():
    raw = copy.deepcopy(CONTACT_SPEC)
    spec = compile_spec(raw)
    raw["fields"].clear()
    assert len(spec.fields) == 7
    assert spec.spec["fields"][0]["name"] == "external_id"


# --------------------------------------------------------------------------- validation


def test_a_valid_spec_has_no_problems():
    assert validate_spec(CONTACT_SPEC) == []


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"fields": [{"name": "x", "source": "a", "convert": ["lowr"]}]}, "field 'x': unknown conversion 'lowr'"),
        ({"fields": [{"name": "x", "source": "a", "on_blank": "wipe"}]}, "field 'x' on_blank: 'wipe' is not one of"),
        ({"fields": [{"name": "x", "source": "a..b"}]}, "field 'x': path 'a..b' has an empty part"),
        ({"fields": [{"name": "x"}]}, "field 'x': has no source"),
        ({"fields": [{"name": "x", "source": "a"}, {"name": "x", "source": "b"}]}, "mapped twice"),
        ({"fields": [{"name": "x", "source": "a", "on_blank": "default"}]}, "no default is given"),
        ({"fields": [{"name": "x", "source": "a", "required": True, "on_blank": "keep"}]}, "cannot keep on blank"),
        ({"fields": [{"name": "x", "source": "a", "value_map_default": 1}]}, "value_map_default without"),
        ({"fields": [{"name": "x", "source": "a", "colour": "red"}]}, "field 'x': Additional properties"),
        ({"fields": [{"name": "x", "source": "a", "precedence": ["primary"]}]}, "precedence needs record.group"),
        ({"fields": [{"name": "x", "source": "a", "convert": [{"name": "split_name"}]}]}, "needs parameter 'part'"),
        ({"fields": [], "default_region": "XX"}, "default_region: 'XX' is not a known phone region"),
        ({"fields": [], "record": {"updated_at": {"path": "u", "format": "dd/mm"}}}, "record.updated_at: format"),
        ({"fields": []} | {"record": {"source_id": ""}}, "record.source_id"),
        ({}, "'fields' is a required property"),
    ],
)
def test_spec_problems_name_the_field(spec, message):
    errors = validate_spec(spec)
    assert any(message in e for e in errors), errors


@pytest.mark.parametrize("bad", [None, [], "fields: []", {"fields": "all"}, {"fields": [{"name": {"x": 1}}]}])
def test_compiling_an_invalid_spec_raises_spec_error_with_all_problems(bad):
    with pytest.raises(SpecError) as err:
        compile_spec(bad)
    assert err.value.errors


def test_spec_with_non_json_values_is_refused():
    assert validate_spec({"fields": [], "description": {1, 2}})[0].startswith("the spec must be plain JSON data")


# --------------------------------------------------------------------------- groups

GROUP_SPEC = {
    "record": {
        "source_id": "id",
        "updated_at": "updated_at",
        "group": {
            "key": "company_id",
            "mode": "merge",
            "precedence": {"path": "role", "order": ["primary", "billing", "shipping"]},
        },
    },
    "fields": [
        {"name": "company_id", "source": "company_id"},
        {"name": "email", "source": "email", "convert": ["email"]},
        {"name": "phone", "source": "phone"},
        {"name": "billing_street", "source": "street", "precedence": ["billing", "primary"]},
        {"name": "shipping_street", "source": "street", "precedence": ["shipping"]},
    ],
}


GROUP = [
    {
        "id": "c-3",
        "company_id": "acme",
        "role": "shipping",
        "street": "1 Dock Rd",
        "updated_at": "2024-01-03T00:00:00Z",
    },
    {
        "id": "c-1",
        "company_id": "acme",
        "role": "Primary",
        "email": "ceo@acme.test",
        "street": "9 Main St",
        "updated_at": "2024-01-01T00:00:00Z",
    },
    {
        "id": "c-2",
        "company_id": "acme",
        "role": "billing",
        "email": "ap@acme.test",
        "phone": "+1 202-555-0143",
        "street": "PO Box 4",
        "updated_at": "2024-01-02T00:00:00Z",
    },
]


def test_related_records_merge_with_per_field_precedence():
    spec = compile_spec(GROUP_SPEC)
    assert spec.group_mode == "merge"
    result = map_group(spec, GROUP)
    assert result.decision == "deliver"
    assert result.output == {
        "company_id": "acme",
        "email": "ceo@acme.test",
        "phone": "+1 202-555-0143",
        "billing_street": "PO Box 4",
        "shipping_street": "1 Dock Rd",
    }
    origin = {e["field"]: e["from"] for e in result.trace}
    assert origin["email"] == "record 2 of 3 (c-1), role primary"
    assert origin["phone"] == "record 3 of 3 (c-2), role billing"
    assert result.meta.source_id == "c-1"
    assert result.meta.group_key == "acme"
    assert result.meta.updated_at == datetime(2024, 1, 3, tzinfo=UTC)


def test_a_group_of_one_maps_like_the_record():
    spec = compile_spec(GROUP_SPEC)
    assert map_group(spec, GROUP[1:2]).output == map_record(spec, GROUP[1]).output


def test_an_empty_group_is_rejected_not_raised():
    result = map_group(compile_spec(GROUP_SPEC), [])
    assert result.decision == "reject"


def test_group_ignores_non_objects_and_says_so():
    result = map_group(compile_spec(GROUP_SPEC), [GROUP[1], "junk"])
    assert result.decision == "review"
    assert result.output["email"] == "ceo@acme.test"


# --------------------------------------------------------------------------- duplicates


def test_match_keys_are_normalised():
    spec = compile_spec(
        {
            "record": {
                "duplicates": {
                    "key": "external_id",
                    "email": ["email", "alt_email"],
                    "phone": "phone",
                    "name": ["first", "last"],
                    "compare": {"dob": "dob"},
                    "region": "US",
                }
            },
            "fields": [{"name": "x", "source": "x"}],
        }
    )
    keys = match_keys(
        spec,
        {
            "external_id": "shp-cus-7001",
            "email": "N/A",
            "alt_email": " Ines.Varga@Example.com",
            "phone": "(202) 555-0143",
            "first": "INÈS",
            "last": "Varga",
            "dob": "1990-05-01",
        },
    )
    assert keys == {
        "key": "shp-cus-7001",
        "email": "ines.varga@example.com",
        "phone": "+12025550143",
        "name": "inès varga",
        "dob": "1990-05-01",
    }
    assert match_keys(spec, "not a record") == {}


def test_exact_keys_match_and_similar_names_with_the_same_phone_are_likely():
    spec = compile_spec({"record": {"duplicates": {"email": "email", "phone": "phone", "name": "name"}}, "fields": []})
    me = {"email": "t.haddad@example.com", "phone": "+12025550143", "name": "tarek haddad"}
    candidates = [
        ("crm-1", {"email": "t.haddad@example.com"}),
        ("crm-2", {"phone": "+12025550143", "name": "tareq haddad"}),
        ("crm-3", {"phone": "+12025550143", "name": "tarek haddad"}),
        ("crm-4", {"phone": "+12025550143", "name": "maria exemplova"}),
        ("crm-5", {"name": "tarek haddad"}),
    ]
    findings = find_duplicates(spec, me, candidates)
    assert [(f.candidate, f.kind) for f in findings] == [("crm-1", "match"), ("crm-3", "match"), ("crm-2", "likely")]
    likely = findings[-1]
    assert likely.reasons == ("same phone number +12025550143", "similar name ('tarek haddad' / 'tareq haddad')")
    problem = duplicate_problem(likely)
    assert (problem.code, problem.action) == ("possible_duplicate", "review")
    assert problem.reason.startswith("possible duplicate of crm-2: same phone number")


# --------------------------------------------------------------------------- diff and text


def test_diff_lists_field_changes_in_plain_words():
    old = {
        "fields": [
            {"name": "status", "source": "status", "value_map": {"pending": "open", "on-hold": "open"}},
            {"name": "phone", "source": "phone"},
        ]
    }
    new = {
        "default_region": "US",
        "fields": [
            {"name": "status", "source": "status", "value_map": {"pending": "open", "on-hold": "held", "x": "y"}},
            {"name": "email", "source": "email", "convert": ["email"]},
        ],
    }
    texts = [d["text"] for d in diff_specs(old, new)]
    assert texts == [
        "Default phone region set to 'US'",
        "Field 'phone' removed (was from 'phone')",
        "Field 'email' added, from 'email', converted by email",
        "Field 'status': value map entry 'on-hold' changed from 'open' to 'held'",
        "Field 'status': value map entry 'x' → 'y' added",
    ]
    assert diff_specs(old, copy.deepcopy(old)) == []


def test_diff_shows_changed_conversions_and_rules():
    old = {"fields": [{"name": "zip", "source": "zip", "convert": ["postal_code"]}]}
    new = {
        "fields": [
            {"name": "zip", "source": "zip", "convert": [{"name": "postal_code", "pad": True}], "on_invalid": "drop"}
        ]
    }
    texts = [d["text"] for d in diff_specs(old, new)]
    assert texts == [
        "Field 'zip': conversions changed from postal_code to postal_code(pad=true)",
        "Field 'zip': invalid rule set to 'drop'",
    ]


def test_spec_text_round_trips_through_yaml_and_json_without_changing_values():
    spec = {
        "blank_values": ["N/A", "-"],
        "fields": [
            {"name": "country", "source": "c", "value_map": {"no": "NO", "0171": "oslo", "on": "ON"}},
            {"name": "rate", "convert": [{"name": "constant", "value": Decimal("1.10")}]},
            {"name": "id", "convert": [{"name": "constant", "value": 6569096478909}]},
        ],
    }
    for fmt in ("yaml", "json"):
        assert load_spec_text(dump_spec_text(spec, fmt)) == spec


def test_yaml_spec_files_keep_leading_zeros_and_norway():
    spec = load_spec_text("fields:\n  - name: c\n    source: c\n    value_map: {no: NO, 0171: x, yes: y}\n")
    assert spec["fields"][0]["value_map"] == {"no": "NO", "0171": "x", "yes": "y"}
    with pytest.raises(ValueError, match="not valid YAML"):
        load_spec_text("fields: [")
