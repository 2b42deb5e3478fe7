"""Properties that must hold for any input: the engine never raises, is deterministic, and an
invalid spec is always a SpecError."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integrations.engine import exactjson
from integrations.engine.mapping import SpecError, compile_spec, map_group, map_record, match_keys, record_meta
from integrations.engine.transforms import REGISTRY

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.decimals(allow_nan=False, allow_infinity=False, places=4),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(
        [
            "",
            " ",
            "N/A",
            "null",
            "USA",
            "+1 202-555-0143",
            "04101",
            "1671820531742",
            "2020-10-22T21:03:23.000+0000",
            "yes",
            "Completed ",
            "a@b.co",
            "Nguyễn Thị Lan",
        ]
    ),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=20,
)
records = st.one_of(
    st.dictionaries(
        st.sampled_from(["id", "email", "phone", "name", "zip", "country", "when", "total", "flag", "status", "a"]),
        json_values,
        max_size=11,
    ),
    json_values,
)

KEYS = ("id", "email", "phone", "name", "zip", "country", "when", "total", "flag", "status", "a")
EVERY_CONVERSION = {
    "record": {
        "source_id": "id",
        "updated_at": "when",
        "event_id": "a.b",
        "parent": {"path": "a[0]", "output_field": "parent"},
        "group": {"key": "id", "precedence": {"path": "status", "order": ["primary", "billing"]}},
        "duplicates": {"key": "id", "email": "email", "phone": "phone", "name": "name", "compare": {"z": "zip"}},
    },
    "default_region": "US",
    "default_country": "US",
    "fields": [
        {"name": "id_text", "source": "id", "convert": ["text"], "required": True},
        {"name": "id_int", "source": "id", "convert": [{"name": "integer", "output": "text"}]},
        {"name": "email", "source": ["email", "a.email"], "convert": ["email"], "on_invalid": "drop"},
        {"name": "phone", "source": {"number": "phone", "country": "country"}, "convert": ["phone_e164"]},
        {"name": "first", "source": "name", "convert": ["trim", {"name": "split_name", "part": "first"}, "title"]},
        {"name": "last", "source": "name", "convert": [{"name": "split_name", "part": "last", "method": "nameparser"}]},
        {"name": "joined", "source": {"a": "name", "b": "email"}, "convert": ["join"]},
        {"name": "tpl", "source": {"a": "name", "b": "zip"}, "convert": [{"name": "template", "template": "{a}-{b}"}]},
        {"name": "zip", "source": {"code": "zip", "country": "country"}, "convert": ["postal_code"]},
        {"name": "country", "source": "country", "convert": [{"name": "country", "output": "name"}]},
        {"name": "state", "source": {"name": "a", "country": "country"}, "convert": ["subdivision"]},
        {"name": "when", "source": "when", "convert": ["datetime"], "on_blank": "clear"},
        {"name": "when_ms", "source": "when", "convert": [{"name": "datetime", "format": "epoch_ms"}]},
        {"name": "day", "source": "when", "convert": [{"name": "date", "format": "%Y%m%d"}]},
        {"name": "total", "source": "total", "convert": [{"name": "money", "places": 2, "minor_units": 2}]},
        {"name": "flag", "source": "flag", "convert": ["boolean"], "on_invalid": "reject"},
        {"name": "status", "source": "status", "value_map": {"completed": "done"}, "default": "x"},
        {"name": "lower", "source": "a", "convert": ["lower", "upper", "nfc", "trim"]},
        {"name": "raw", "source": "a"},
        {"name": "nested.value", "source": "a[1].b", "owner": "destination"},
        {"name": "const", "convert": [{"name": "constant", "value": Decimal("1.10")}]},
    ],
}
SPEC = compile_spec(EVERY_CONVERSION)


def test_the_property_spec_uses_every_conversion():
    used = {
        (step if isinstance(step, str) else step["name"])
        for f in EVERY_CONVERSION["fields"]
        for step in f.get("convert", [])
    } | {"value_map"}
    assert used | {"decimal"} >= set(REGISTRY)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(records)
def test_map_record_never_raises_and_its_result_is_json(record):
    result = map_record(SPEC, record)
    assert result.decision in ("deliver", "reject", "review")
    exactjson.dumps(result.to_json())
    assert all(p.reason for p in result.problems)
    # Not merely caught: no conversion and no part of the engine failed unexpectedly.
    assert not [p for p in result.problems if p.code in ("internal_error", "conversion_error")], result.problems


@settings(max_examples=150, deadline=None)
@given(records)
def test_map_record_is_deterministic(record):
    first = exactjson.dumps(map_record(SPEC, record).to_json())
    second = exactjson.dumps(map_record(SPEC, record).to_json())
    assert first == second


@settings(max_examples=100, deadline=None)
@given(st.lists(records, max_size=4))
def test_map_group_match_keys_and_record_meta_never_raise(group):
    result = map_group(SPEC, group)
    exactjson.dumps(result.to_json())
    assert not [p for p in result.problems if p.code in ("internal_error", "conversion_error")]
    for record in group:
        record_meta(SPEC, record)
        assert all(isinstance(v, str) for v in match_keys(SPEC, record).values())


field_parts = st.fixed_dictionaries(
    {},
    optional={
        "name": st.one_of(st.text(max_size=5), json_values),
        "source": st.one_of(st.sampled_from(["a", "a.b[0]", "", "a..b", "[x", '["q"]']), json_values),
        "convert": st.one_of(
            st.lists(
                st.one_of(
                    st.sampled_from(sorted(REGISTRY)),
                    st.fixed_dictionaries(
                        {"name": st.sampled_from([*sorted(REGISTRY), "nope"])},
                        optional={
                            "part": st.sampled_from(["first", "x"]),
                            "format": st.sampled_from(["iso", "%Y", "nonsense", "epoch_s"]),
                            "map": json_values,
                            "value": json_values,
                            "places": json_values,
                            "region": st.sampled_from(["US", "XX", ""]),
                        },
                    ),
                ),
                max_size=3,
            ),
            json_values,
        ),
        "on_blank": st.sampled_from(["keep", "clear", "default", "reject", "review", "bogus"]),
        "on_invalid": st.sampled_from(["drop", "reject", "review", "x"]),
        "required": json_values,
        "default": json_values,
        "value_map": json_values,
        "precedence": json_values,
    },
)
specs = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"fields": st.one_of(st.lists(field_parts, max_size=3), json_values)},
        optional={
            "record": st.one_of(
                json_values,
                st.fixed_dictionaries(
                    {},
                    optional={
                        "source_id": json_values,
                        "updated_at": st.one_of(json_values, st.fixed_dictionaries({"path": st.text(max_size=4)})),
                        "group": json_values,
                        "duplicates": json_values,
                        "parent": json_values,
                    },
                ),
            ),
            "blank_values": json_values,
            "default_region": json_values,
        },
    ),
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(specs)
def test_compile_spec_either_works_or_raises_spec_error(spec):
    try:
        compiled = compile_spec(spec)
    except SpecError as exc:
        errors = exc.errors
    else:
        errors = []
    if errors:
        assert all(isinstance(e, str) and e for e in errors)
        return
    result = map_record(compiled, {"a": "x"})
    exactjson.dumps(result.to_json())


def test_naughty_strings_map_without_crashing(corpus):
    naughty = exactjson.loads((corpus / "blns" / "blns.json").read_text("utf-8"))
    for text in naughty:
        record = dict.fromkeys(
            ("id", "email", "phone", "name", "zip", "country", "when", "total", "flag", "status", "a"), text
        )
        result = map_record(SPEC, record)
        assert result.decision in ("deliver", "reject", "review")
        assert not [p for p in result.problems if p.code in ("internal_error", "conversion_error")], text
        exactjson.dumps(result.to_json())
