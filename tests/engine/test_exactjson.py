"""exactjson: the fast encoder writes exactly what the reference encoder writes, digits kept."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integrations.engine import exactjson

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.text()
)
keys = st.text() | st.integers() | st.booleans() | st.none() | st.floats(allow_nan=False)
values = st.recursive(scalars, lambda inner: st.lists(inner) | st.dictionaries(keys, inner), max_leaves=30)


# Generating nested values is slow on a loaded machine: that is not what these tests are about.
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(values, st.booleans())
def test_dumps_matches_the_reference_encoder(value, sort_keys):
    assert exactjson.dumps(value, sort_keys=sort_keys) == exactjson.dumps_reference(value, sort_keys=sort_keys)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.recursive(scalars, lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner), max_leaves=30))
def test_what_it_writes_reads_back_to_the_same_value(value):
    again = exactjson.loads(exactjson.dumps(value))
    assert exactjson.dumps(again) == exactjson.dumps(exactjson.loads(exactjson.dumps_reference(value)))


def test_money_and_big_ids_keep_every_digit():
    value = {"total": Decimal("49.00"), "tiny": Decimal("-1E-7"), "id": 6569096478909123456789, "f": 0.1}
    assert exactjson.dumps(value) == '{"total":49.00,"tiny":-1E-7,"id":6569096478909123456789,"f":0.1}'
    assert exactjson.loads(exactjson.dumps(value)) == {**value, "f": Decimal("0.1")}  # floats read back exact


def test_a_string_that_looks_like_the_decimal_marker_stays_a_string():
    text = "\\u0000abc:12"
    assert exactjson.loads(exactjson.dumps({"a": text, "b": Decimal("1.5")})) == {"a": text, "b": Decimal("1.5")}
    assert json.loads(exactjson.dumps(["\x00x:1"])) == ["\x00x:1"]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), Decimal("NaN"), Decimal("-Infinity")])
def test_numbers_json_cannot_hold_are_refused(bad):
    with pytest.raises(ValueError, match="cannot be written as JSON"):
        exactjson.dumps({"x": [bad]})


def test_values_json_cannot_hold_are_refused():
    with pytest.raises(TypeError, match="set is not JSON serialisable"):
        exactjson.dumps({"x": {1, 2}})


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("1e999999", "a whole number has 1,000,000 digits; at most 4,300 can be stored and read back"),
        ("1e4300", "a whole number has 4,301 digits"),
        ("1.5e4300", "a whole number has 4,301 digits"),
        ("1" * 131073 + ".5", "131,073 digits before the point; at most 131,072"),
        ("1e-16384", "16,384 digits after the point; at most 16,383"),
        ("0e-99999", "99,999 digits after the point"),
        ("0." + "1" * 20000, "20,000 digits after the point"),
        ("1.0e-1000000000", "1,000,000,001 digits after the point"),
        ("1e99999999999999999999", "the number 1e99999999999999999999 is out of range"),
    ],
)
def test_input_with_a_number_that_cannot_be_stored_and_read_back_is_refused_with_the_reason(text, reason):
    with pytest.raises(exactjson.NumberOutOfRange, match=reason):
        exactjson.loads('{"v": ' + text + "}", storable=True)
    assert issubclass(exactjson.NumberOutOfRange, ValueError)  # every caller's ValueError handling holds


@pytest.mark.parametrize(
    "text",
    [
        "1e4299",
        "-1e4299",
        "1" * 4301 + ".5",  # comes back with its fraction, as a Decimal: no integer limit
        "1e-16383",
        "0." + "1" * 16383,
        "1" * 3000 + ".5e1299",
        "0e999999",  # zero is stored as 0
        "-0e5000",
        "0.0e131071",
        "49.00",
        "-1.5E+3",
        "0e-5",
    ],
)
def test_numbers_up_to_the_limits_are_read_exactly(text):
    assert exactjson.loads('{"v": ' + text + "}", storable=True) == {"v": Decimal(text)}
    assert exactjson.number_problem(Decimal(text)) is None


def test_reading_stays_lenient_so_stored_rows_and_partner_answers_still_parse():
    # A row stored before the limits, or a partner's answer: read as it is, never refused.
    assert exactjson.loads('{"v": 1e999999}') == {"v": Decimal("1e999999")}
    assert exactjson.loads('{"v": ' + "1" * 5000 + ".5}")["v"] == Decimal("1" * 5000 + ".5")
    from integrations.transports.http import redact_text

    assert "sk_live" not in redact_text('{"access_token": "sk_live_abc", "n": 1e999999}')
    with pytest.raises(exactjson.NumberOutOfRange):  # no Decimal holds this one at all
        exactjson.loads('{"v": 1e99999999999999999999}')


def test_storage_problem_names_a_number_built_in_python_that_cannot_be_stored():
    assert "16,384 digits after the point" in exactjson.storage_problem({"a": [Decimal("1E-16384")]})
    assert exactjson.storage_problem({"a": [Decimal("1E-16383")]}) is None
