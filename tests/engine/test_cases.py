"""The fault kinds of ../shared/CASES.md this engine owns (B06, B07, B08, B10, B14, B19): each
expected value is a test, and each kind is covered beyond its one example."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime

import pytest

from integrations.engine import exactjson
from integrations.engine.mapping import MappingContext, compile_spec, map_record, match_keys, record_meta

UPDATE = MappingContext(is_update=True)


def spec_of(*fields, **options):
    return compile_spec({"fields": list(fields), **options})


# --------------------------------------------------------------------------- B06


B06_SPEC = spec_of(
    {"name": "email", "source": "email", "convert": ["email"], "required": True},
    {"name": "phone", "source": "phone", "convert": [{"name": "phone_e164", "region": "US"}]},
    {"name": "company", "source": "company", "convert": ["trim"]},
)


def test_b06_blank_phone_and_company_are_left_out_of_the_update():
    row = {"email": "p.okafor@example.org", "phone": "", "company": "   "}
    result = map_record(B06_SPEC, row, UPDATE)
    assert result.decision == "deliver"
    assert result.output == {"email": "p.okafor@example.org"}
    assert result.omitted == ["phone", "company"]
    assert result.cleared == []
    trace = {entry["field"]: entry for entry in result.trace}
    assert trace["phone"]["result"] == "blank_kept"
    assert trace["company"]["result"] == "blank_kept"
    assert "keeps its value" in trace["company"]["why"]


@pytest.mark.parametrize("blank", [None, "", "   ", "\t\n", "NULL", "null", "N/A", "n/a", " - ", [], {}])
def test_b06_every_kind_of_blank_means_no_data(blank):
    result = map_record(B06_SPEC, {"email": "p.okafor@example.org", "phone": blank, "company": blank}, UPDATE)
    assert result.output == {"email": "p.okafor@example.org"}
    assert result.decision == "deliver"


def test_b06_a_missing_key_is_also_no_data_and_says_so_in_the_trace():
    result = map_record(B06_SPEC, {"email": "p.okafor@example.org"}, UPDATE)
    assert result.output == {"email": "p.okafor@example.org"}
    phone = next(e for e in result.trace if e["field"] == "phone")
    assert phone["missing"] is True


def test_b06_only_a_field_whose_mapping_says_blank_clears_sends_a_clear():
    spec = spec_of(
        {"name": "email", "source": "email"},
        {"name": "phone", "source": "phone", "on_blank": "clear"},
        {"name": "company", "source": "company"},
    )
    result = map_record(spec, {"email": "p.okafor@example.org", "phone": "", "company": "   "}, UPDATE)
    assert result.output == {"email": "p.okafor@example.org", "phone": None}
    assert result.cleared == ["phone"]
    assert result.omitted == ["company"]
    results = {e["field"]: e["result"] for e in result.trace}
    assert results == {"email": "set", "phone": "cleared", "company": "blank_kept"}


def test_b06_the_tenant_can_name_its_own_placeholders():
    spec = spec_of({"name": "company", "source": "company"}, blank_values=["unknown", "(none)"])
    assert map_record(spec, {"company": "Unknown"}).output == {}
    assert map_record(spec, {"company": "(none)"}).output == {}
    # Its own list replaces the default one.
    assert map_record(spec, {"company": "N/A"}).output == {"company": "N/A"}


def test_b06_a_value_that_becomes_blank_after_conversion_follows_the_blank_rule():
    spec = spec_of({"name": "first_name", "source": "name", "convert": [{"name": "split_name", "part": "first"}]})
    result = map_record(spec, {"name": "王芳"}, UPDATE)
    assert result.output == {}
    assert result.omitted == ["first_name"]
    assert "after conversion" in result.trace[0]["why"]


def test_b06_blank_required_field_is_rejected_with_a_plain_reason():
    result = map_record(B06_SPEC, {"email": " ", "phone": "+1 202-555-0143"})
    assert result.decision == "reject"
    (problem,) = result.problems
    assert (problem.field, problem.code, problem.action) == ("email", "blank_required", "reject")
    assert problem.reason == "email is required but blank in the source"


# --------------------------------------------------------------------------- B07

STATUS_MAP = {
    "pending": "open",
    "processing": "open",
    "on-hold": "open",
    "completed": "fulfilled",
    "cancelled": "cancelled",
    "refunded": "refunded",
}
B07_SPEC = spec_of({"name": "status", "source": "status", "value_map": STATUS_MAP})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("Completed ", "fulfilled"), ("completed", "fulfilled"), ("  ON-HOLD", "open"), ("Refunded", "refunded")],
)
def test_b07_status_lookup_trims_and_ignores_case(raw, expected):
    result = map_record(B07_SPEC, {"status": raw})
    assert result.decision == "deliver"
    assert result.output == {"status": expected}


def test_b07_unmapped_status_goes_to_review_with_the_value_named():
    result = map_record(B07_SPEC, {"status": "awaiting-pickup"})
    assert result.decision == "review"
    assert result.output == {}
    (problem,) = result.problems
    assert problem.reason == "unmapped value 'awaiting-pickup' for field status"
    assert (problem.code, problem.action, problem.raw, problem.field) == (
        "unmapped_value",
        "review",
        "awaiting-pickup",
        "status",
    )


def test_b07_a_default_is_used_only_when_the_mapping_defines_one():
    spec = spec_of({"name": "status", "source": "status", "value_map": STATUS_MAP, "value_map_default": "open"})
    assert map_record(spec, {"status": "awaiting-pickup"}).output == {"status": "open"}
    assert map_record(spec, {"status": "awaiting-pickup"}).decision == "deliver"


def test_b07_the_mapping_can_reject_unmapped_values_instead():
    spec = spec_of({"name": "status", "source": "status", "value_map": STATUS_MAP, "on_invalid": "reject"})
    result = map_record(spec, {"status": "Posted"})
    assert result.decision == "reject"
    assert result.problems[0].reason == "unmapped value 'Posted' for field status"


def test_b07_unmapped_numeric_codes_are_named_too():
    spec = spec_of(
        {"name": "stage", "source": "dealstage", "value_map": {"9567448": "won", "appointmentscheduled": "new"}}
    )
    assert map_record(spec, {"dealstage": 9567448}).output == {"stage": "won"}
    assert map_record(spec, {"dealstage": 1234}).problems[0].reason == "unmapped value '1234' for field stage"


def test_b07_after_support_adds_the_mapping_the_replay_maps():
    spec = spec_of({"name": "status", "source": "status", "value_map": {**STATUS_MAP, "awaiting-pickup": "open"}})
    assert map_record(spec, {"status": "awaiting-pickup"}).output == {"status": "open"}


# --------------------------------------------------------------------------- B08

B08_SPEC = spec_of(
    {"name": "sf_created", "source": "CreatedDate", "convert": ["datetime"]},
    {"name": "sf_modified", "source": "LastModifiedDate", "convert": ["datetime"]},
    {"name": "hs_created", "source": "createdate", "convert": [{"name": "datetime", "format": "epoch_ms"}]},
    {"name": "stripe_created", "source": "created", "convert": [{"name": "datetime", "format": "epoch_s"}]},
    {"name": "shopify_created", "source": "created_at", "convert": ["datetime"]},
)


def test_b08_all_offset_styles_and_epochs_become_utc_with_z():
    record = {
        "CreatedDate": "2020-10-22T21:03:23.000+0000",
        "LastModifiedDate": "2021-03-01T08:15:00.000-0500",
        "createdate": "1671820531742",
        "created": 1680064028,
        "created_at": "2008-01-10T11:00:00-05:00",
    }
    result = map_record(B08_SPEC, record)
    assert result.decision == "deliver"
    assert result.output == {
        "sf_created": "2020-10-22T21:03:23Z",
        "sf_modified": "2021-03-01T13:15:00Z",
        "hs_created": "2022-12-23T18:35:31.742Z",
        "stripe_created": "2023-03-29T04:27:08Z",
        "shopify_created": "2008-01-10T16:00:00Z",
    }


@pytest.mark.parametrize(
    "raw",
    [
        "2020-10-22T21:03:23.000+0000",
        "2020-10-22T21:03:23+00:00",
        "2020-10-22T21:03:23Z",
        "2020-10-22T21:03:23.000Z",
        "2020-10-22T23:03:23+0200",
        "2020-10-22T16:03:23.000000-05:00",
        "2020-10-22 21:03:23+00",
    ],
)
def test_b08_every_iso_offset_spelling_is_understood(raw):
    assert map_record(B08_SPEC, {"CreatedDate": raw}).output == {"sf_created": "2020-10-22T21:03:23Z"}


def test_b08_epoch_milliseconds_as_a_number_work_too():
    assert map_record(B08_SPEC, {"createdate": 1671820531742}).output == {"hs_created": "2022-12-23T18:35:31.742Z"}


def test_b08_the_format_comes_from_the_mapping_not_from_the_look_of_the_value():
    # Milliseconds in a field mapped as seconds are refused, not silently reinterpreted.
    result = map_record(B08_SPEC, {"created": "1671820531742"})
    assert result.decision == "review"
    assert result.problems[0].field == "stripe_created"
    # Seconds in a field mapped as milliseconds are a (1970) date: the mapping said so.
    assert map_record(B08_SPEC, {"createdate": 1680064028}).output == {"hs_created": "1970-01-20T10:41:04.028Z"}
    # An epoch in a field mapped as ISO text is refused.
    assert map_record(B08_SPEC, {"CreatedDate": "1680064028"}).decision == "review"


def test_b08_updated_at_for_ordering_reads_the_salesforce_offset():
    spec = compile_spec(
        {"record": {"source_id": "Id", "updated_at": "LastModifiedDate"}, "fields": [{"name": "id", "source": "Id"}]}
    )
    meta = record_meta(spec, {"Id": "0014W000027f6V3QAI", "LastModifiedDate": "2021-03-01T08:15:00.000-0500"})
    assert meta.updated_at == datetime(2021, 3, 1, 13, 15, tzinfo=UTC)
    assert meta.updated_at.tzinfo is UTC


def test_b08_updated_at_in_epoch_ms_text():
    spec = compile_spec(
        {
            "record": {"updated_at": {"path": "properties.lastmodified", "format": "epoch_ms"}},
            "fields": [{"name": "x", "source": "x"}],
        }
    )
    meta = record_meta(spec, {"properties": {"lastmodified": "1671820531742"}})
    assert meta.updated_at == datetime(2022, 12, 23, 18, 35, 31, 742000, tzinfo=UTC)


def test_b08_date_only_values_are_never_shifted_by_a_zone():
    spec = spec_of(
        {"name": "birthday", "source": "dob", "convert": ["date"]},
        {"name": "order_day", "source": "created_at", "convert": ["date"]},
    )
    result = map_record(spec, {"dob": "1990-05-01", "created_at": "2008-01-10T23:30:00-05:00"})
    assert result.output == {"birthday": "1990-05-01", "order_day": "2008-01-10"}


# --------------------------------------------------------------------------- B10

B10_SPEC = spec_of(
    {"name": "external_id", "source": "external_id"},
    {"name": "zip", "source": {"code": "zip", "country": "country"}, "convert": ["postal_code"]},
)


@pytest.mark.parametrize(
    ("zip_code", "country", "expected"),
    [
        ("04101", "US", "04101"),
        ("0171", "NO", "0171"),
        ("00192", "IT", "00192"),
        ("'04101", "US", "04101"),
        ("02139-4307", "US", "02139-4307"),
    ],
)
def test_b10_postal_codes_keep_their_leading_zeros(zip_code, country, expected):
    result = map_record(B10_SPEC, {"external_id": "c-1", "zip": zip_code, "country": country})
    assert result.decision == "deliver"
    assert result.output["zip"] == expected
    assert isinstance(result.output["zip"], str)


def test_b10_a_four_digit_us_zip_goes_to_review():
    result = map_record(B10_SPEC, {"external_id": "c-4", "zip": "4101", "country": "US"})
    assert result.decision == "review"
    (problem,) = result.problems
    assert problem.field == "zip"
    assert problem.reason == "'4101' is not a valid US postal code (expected 5 digits or 5+4 digits) for field zip"


def test_b10_a_zip_that_arrived_as_a_number_is_not_silently_padded():
    result = map_record(B10_SPEC, {"external_id": "c-4", "zip": 4101, "country": "US"})
    assert result.decision == "review"


def test_b10_padding_happens_only_when_the_mapping_enables_it():
    spec = spec_of(
        {
            "name": "zip",
            "source": {"code": "zip", "country": "country"},
            "convert": [{"name": "postal_code", "pad": True}],
        }
    )
    assert map_record(spec, {"zip": "4101", "country": "US"}).output == {"zip": "04101"}
    assert map_record(spec, {"zip": 4101, "country": "United States"}).output == {"zip": "04101"}


def test_b10_the_default_country_applies_when_the_record_has_none():
    spec = spec_of({"name": "zip", "source": "zip", "convert": ["postal_code"]}, default_country="US")
    assert map_record(spec, {"zip": "4101"}).decision == "review"
    assert map_record(spec, {"zip": "'04101"}).output == {"zip": "04101"}


def test_b10_a_csv_file_read_as_text_keeps_every_zip():
    import csv
    import io

    text = (
        "external_id,zip,country\n"
        "c-1,04101,US\nc-2,0171,NO\nc-3,00192,IT\nc-4,4101,US\nc-5,'04101,US\nc-6,02139-4307,US\n"
    )
    results = {row["external_id"]: map_record(B10_SPEC, row) for row in csv.DictReader(io.StringIO(text))}
    assert {k: r.output.get("zip") for k, r in results.items()} == {
        "c-1": "04101",
        "c-2": "0171",
        "c-3": "00192",
        "c-4": None,
        "c-5": "04101",
        "c-6": "02139-4307",
    }
    assert [k for k, r in results.items() if r.decision == "review"] == ["c-4"]


# --------------------------------------------------------------------------- B14

B14_SPEC = spec_of(
    {"name": "first_name", "source": "name", "convert": [{"name": "split_name", "part": "first"}]},
    {"name": "last_name", "source": "name", "convert": [{"name": "split_name", "part": "last"}]},
    {"name": "full_name", "source": "name"},
    record={"duplicates": {"name": "name"}},
)


@pytest.mark.parametrize(
    ("name", "first", "last"),
    [
        ("Jean-François Lemaître", "Jean-François", "Lemaître"),
        ("Łukasz Żółw", "Łukasz", "Żółw"),
        ("王芳", None, "王芳"),
        ("Zoë O’Connor", "Zoë", "O’Connor"),
        (unicodedata.normalize("NFD", "Nguyễn Thị Lan"), "Nguyễn Thị", "Lan"),
        ("Ayşe Yılmaz", "Ayşe", "Yılmaz"),
    ],
)
def test_b14_names_are_split_on_the_last_space_and_stay_nfc(name, first, last):
    result = map_record(B14_SPEC, {"name": name})
    assert result.decision == "deliver"
    assert result.output.get("first_name") == first
    assert result.output["last_name"] == last
    for value in result.output.values():
        assert unicodedata.is_normalized("NFC", value)
    assert result.output["full_name"] == unicodedata.normalize("NFC", name)


def test_b14_output_is_utf8_without_mojibake_or_question_marks():
    result = map_record(B14_SPEC, {"name": "Jean-François Lemaître"})
    body = exactjson.dumps(result.to_json()).encode("utf-8")
    text = body.decode("utf-8")
    assert "Jean-François" in text
    assert "FranÃ§ois" not in text
    assert "?" not in text


def test_b14_decomposed_input_is_composed_in_output_and_trace():
    nfd = unicodedata.normalize("NFD", "Nguyễn Thị Lan")
    result = map_record(B14_SPEC, {"name": nfd})
    assert result.trace[0]["raw"] == "Nguyễn Thị Lan"
    assert len(result.output["first_name"]) == len("Nguyễn Thị")


def test_b14_duplicate_keys_compare_names_case_folded_and_normalised():
    a = match_keys(B14_SPEC, {"name": "JEAN-FRANÇOIS LEMAÎTRE"})
    b = match_keys(B14_SPEC, {"name": unicodedata.normalize("NFD", "jean-françois lemaître")})
    assert a["name"] == b["name"]


# --------------------------------------------------------------------------- B19

B19_SPEC = spec_of({"name": "country", "source": "country", "convert": ["country"]})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("United States", "US"),
        ("USA", "US"),
        ("U.S.A.", "US"),
        ("us", "US"),
        ("United States of America", "US"),
        ("UK", "GB"),
        ("United Kingdom", "GB"),
        ("Great Britain", "GB"),
        ("Deutschland", "DE"),
        ("Czech Republic", "CZ"),
        ("Czechia", "CZ"),
        ("  u.s.  ", "US"),
        ("DEU", "DE"),
        ("Brazil", "BR"),
        ("Norway", "NO"),
    ],
)
def test_b19_country_names_codes_and_variants_become_iso_alpha2(raw, expected):
    result = map_record(B19_SPEC, {"country": raw})
    assert result.decision == "deliver"
    assert result.output == {"country": expected}


@pytest.mark.parametrize("raw", ["", "N/A", None])
def test_b19_blank_countries_are_no_data(raw):
    result = map_record(B19_SPEC, {"country": raw})
    assert result.decision == "deliver"
    assert result.output == {}


def test_b19_blank_country_uses_the_tenant_default_when_there_is_one():
    spec = spec_of({"name": "country", "source": "country", "convert": ["country"], "default": "DE"})
    assert map_record(spec, {"country": "N/A"}).output == {"country": "DE"}


def test_b19_blank_country_is_an_error_only_when_required():
    spec = spec_of({"name": "country", "source": "country", "convert": ["country"], "required": True})
    result = map_record(spec, {"country": ""})
    assert result.decision == "reject"
    assert result.problems[0].code == "blank_required"


def test_b19_unknown_country_goes_to_review_showing_the_raw_value():
    result = map_record(B19_SPEC, {"country": "Atlantis"})
    assert result.decision == "review"
    (problem,) = result.problems
    assert problem.raw == "Atlantis"
    assert "'Atlantis'" in problem.reason
    assert problem.reason.endswith("for field country")


def test_b19_one_hubspot_portal_spells_the_us_two_ways(corpus):
    rows = [
        exactjson.loads(line)
        for name in ("companies.jsonl", "contacts.jsonl")
        for line in (corpus / "airbyte_hubspot_testportal" / name).read_text().splitlines()
        if line.strip()
    ]
    spec = spec_of({"name": "country", "source": "properties.country", "convert": ["country"]})
    raw = {r["properties"].get("country") for r in rows} - {None}
    assert raw == {"United States", "USA"}
    outputs = {map_record(spec, r).output.get("country") for r in rows} - {None}
    assert outputs == {"US"}
