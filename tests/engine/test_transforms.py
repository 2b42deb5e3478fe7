"""Each named conversion on its own: what it accepts, what it gives, and what it refuses."""

from __future__ import annotations

import unicodedata
from decimal import Decimal

import pytest

from integrations.engine import transforms as t
from integrations.engine.transforms import ConversionError


def test_every_registered_conversion_has_a_docstring_and_described_parameters():
    for name, conv in t.REGISTRY.items():
        assert conv.doc, name
        for param in conv.params:
            assert param.description, (name, param.name)
    names = {row["name"] for row in t.describe()}
    assert {"trim", "split_name", "phone_e164", "country", "postal_code", "datetime", "date", "value_map"} <= names


def test_text_keeps_big_integers_and_decimal_digits_exactly():
    assert t.text(6569096478909) == "6569096478909"
    assert t.text(2**70) == str(2**70)
    assert t.text(Decimal("49.00")) == "49.00"
    assert t.text(True) == "true"
    with pytest.raises(ConversionError):
        t.text({"a": 1})


def test_trim_strips_and_optionally_collapses_inner_whitespace():
    assert t.trim("  Okafor Agro Ltd \n") == "Okafor Agro Ltd"
    assert t.trim(" Okafor \t Agro\u00a0 Ltd ", collapse=True) == "Okafor Agro Ltd"


def test_case_conversions_handle_unicode():
    assert t.lower("ÉCOLE") == "école"
    assert t.upper("straße") == "STRASSE"
    assert t.title("MAria exemplova") == "Maria Exemplova"
    assert t.title("jean-françois lemaître") == "Jean-François Lemaître"
    assert t.title("zoë o’connor") == "Zoë O’Connor"
    assert t.title("bob's garage") == "Bob's Garage"
    assert t.title("3rd street") == "3rd Street"


def test_nfc_composes_decomposed_text_and_leaves_other_values_alone():
    decomposed = unicodedata.normalize("NFD", "Nguyễn")
    assert decomposed != "Nguyễn"
    assert t.nfc(decomposed) == "Nguyễn"
    assert t.nfc(42) == 42


@pytest.mark.parametrize(
    ("full", "first", "last"),
    [
        ("Jean-François Lemaître", "Jean-François", "Lemaître"),
        ("Łukasz Żółw", "Łukasz", "Żółw"),
        ("Zoë O’Connor", "Zoë", "O’Connor"),
        ("Ayşe Yılmaz", "Ayşe", "Yılmaz"),
        ("Nguyễn Thị Lan", "Nguyễn Thị", "Lan"),
        ("  Bob   Norman ", "Bob", "Norman"),
        ("Norman, Bob", "Bob", "Norman"),
        ("王芳", "", "王芳"),
    ],
)
def test_split_name_splits_on_the_last_space(full, first, last):
    assert t.split_name(full, part="first") == first
    assert t.split_name(full, part="last") == last


def test_split_name_of_decomposed_text_gives_composed_parts():
    nfd = unicodedata.normalize("NFD", "Nguyễn Thị Lan")
    assert t.split_name(nfd, part="first") == "Nguyễn Thị"
    assert t.split_name(nfd, part="last") == "Lan"


def test_split_name_never_separates_a_combining_mark_from_its_base():
    # A combining acute accent right after a space belongs to that space's grapheme.
    odd = "Ana \u0301Lopes Silva"
    first = t.split_name(odd, part="first")
    last = t.split_name(odd, part="last")
    assert first == "Ana \u0301Lopes"
    assert last == "Silva"
    assert not unicodedata.combining(last[0])


def test_split_name_single_word_can_go_to_first_name():
    assert t.split_name("王芳", part="first", single="first") == "王芳"
    assert t.split_name("王芳", part="last", single="first") == ""


def test_split_name_with_nameparser_drops_titles_and_keeps_particles():
    assert t.split_name("Dr. Juan de la Vega III", part="first", method="nameparser") == "Juan"
    assert t.split_name("Dr. Juan de la Vega III", part="last", method="nameparser") == "de la Vega"


def test_join_skips_blank_parts():
    assert t.join(["Chestnut Street 92", "", None, " Apt 4 "]) == "Chestnut Street 92 Apt 4"
    assert t.join({"a": "Louisville", "b": "KY"}, sep=", ") == "Louisville, KY"


def test_template_fills_named_parts_and_tidies_spaces():
    assert t.template({"first": "Bob", "last": "Norman"}, template="{last}, {first}") == "Norman, Bob"
    assert t.template({"first": None, "last": "Norman"}, template="{first} {last}") == "Norman"
    # No attribute access or format specs: a placeholder is a plain name.
    assert t.template({"x": "a"}, template="{x.__class__}") == "{x.__class__}"


def test_constant_ignores_the_source():
    assert t.constant("anything", value="webshop") == "webshop"


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+1 202-555-0143", None, "+12025550143"),
        ("(520) 773-9050", "US", "+15207739050"),
        ("+55 (12) 3923-5555", None, "+551239235555"),
        ("+49 0711 2842222", None, "+497112842222"),
        ("+380630000000", None, "+380630000000"),
        ("(014) 427-4427", "FR", "+33144274427"),
    ],
)
def test_phone_numbers_become_e164(raw, region, expected):
    assert t.phone_e164(raw, region=region) == expected


def test_phone_takes_the_country_from_a_named_source():
    assert t.phone_e164({"number": "(014) 427-4427", "country": "France"}) == "+33144274427"
    assert t.phone_e164({"number": "0711 2842222", "country": "Germany"}, region="US") == "+497112842222"


@pytest.mark.parametrize(
    ("raw", "region"),
    [
        ("555-625-1199", "US"),  # area code 555 does not exist
        ("2262649", "US"),  # seven digits, no area code
        ("0711 2842222", None),  # no country code and no country
        ("call me", "US"),
        ("+1 800", None),
    ],
)
def test_impossible_or_ambiguous_phone_numbers_are_invalid(raw, region):
    with pytest.raises(ConversionError) as err:
        t.phone_e164(raw, region=region)
    assert err.value.code == "invalid_value"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Bob.Norman@HostMail.com ", "bob.norman@hostmail.com"),
        ("mailto:shef@dne.io", "shef@dne.io"),
        ("ines.varga@example.com", "ines.varga@example.com"),
        ("josé@exämple.de", "josé@exämple.de"),
    ],
)
def test_emails_are_normalised(raw, expected):
    assert t.email(raw) == expected


def test_email_can_keep_the_local_part_case():
    assert t.email("Bob.Norman@HostMail.com", lowercase=False) == "Bob.Norman@hostmail.com"


@pytest.mark.parametrize("raw", ["bob@", "bob norman@x.com", "@x.com", "bob@x", "a..b@x.com", "08/01/16", "x@y.c0m"])
def test_malformed_emails_are_invalid(raw):
    with pytest.raises(ConversionError):
        t.email(raw)


def test_country_output_forms():
    assert t.country("Deutschland", output="alpha3") == "DEU"
    assert t.country("gb", output="name") == "United Kingdom"
    assert t.country("DEU") == "DE"
    assert t.country("Brazil") == "BR"


def test_subdivisions_both_ways():
    assert t.subdivision("Kentucky", country="US") == "US-KY"
    assert t.subdivision("KY", country="US", output="name") == "Kentucky"
    assert t.subdivision("US-KY", country="US", output="short") == "KY"
    assert t.subdivision({"name": "Québec", "country": "Canada"}, output="short") == "QC"
    with pytest.raises(ConversionError):
        t.subdivision("Atlantis", country="US")
    with pytest.raises(ConversionError):
        t.subdivision("KY")


def test_postal_codes_normalise_per_country():
    assert t.postal_code("sw1v 3en", country="GB") == "SW1V 3EN"
    assert t.postal_code("h2g1a7", country="CA") == "H2G 1A7"
    assert t.postal_code("021394307", country="US") == "02139-4307"
    assert t.postal_code("12227-000", country="BR") == "12227-000"
    assert t.postal_code("anything goes", country="Atlantis") == "ANYTHING GOES"
    assert t.postal_code("1234", country="DE", check=False) == "1234"
    with pytest.raises(ConversionError):
        t.postal_code("1234", country="DE")


def test_postal_code_from_a_number_is_text():
    assert t.postal_code(40202, country="US") == "40202"


def test_postal_padding_is_opt_in_and_only_for_digit_codes():
    assert t.postal_code("4101", country="US", pad=True) == "04101"
    assert t.postal_code("171", country="NO", pad=True) == "0171"
    with pytest.raises(ConversionError):
        t.postal_code("41O1", country="US", pad=True)


def test_dates_keep_the_calendar_day_as_written():
    assert t.date_value("19510826", format="%Y%m%d") == "1951-08-26"
    assert t.date_value("01/08/2016", format="%d/%m/%Y") == "2016-08-01"
    assert t.date_value("1990-05-01") == "1990-05-01"
    # The date part of a local datetime is never moved to another day by a time zone.
    assert t.date_value("2008-01-10T23:30:00-05:00") == "2008-01-10"
    assert t.date_value(1680064028, format="epoch_s") == "2023-03-29"
    with pytest.raises(ConversionError):
        t.date_value("19511326", format="%Y%m%d")
    with pytest.raises(ConversionError):
        t.date_value("26/08/1951")


def test_datetime_with_a_strptime_format_and_a_named_zone():
    assert t.datetime("22/12/2023 19:35", format="%d/%m/%Y %H:%M", assume_tz="Europe/Berlin") == "2023-12-22T18:35:00Z"
    assert t.datetime("2021-01-01T00:00:00", assume_tz="UTC") == "2021-01-01T00:00:00Z"


def test_datetime_without_zone_is_invalid_unless_the_mapping_names_one():
    with pytest.raises(ConversionError) as err:
        t.datetime("2021-01-01T00:00:00")
    assert "no time zone" in err.value.reason


def test_datetime_refuses_a_date_only_value_instead_of_shifting_it():
    with pytest.raises(ConversionError) as err:
        t.datetime("1990-05-01")
    assert "date conversion" in err.value.reason


def test_epoch_values_must_be_whole_numbers():
    assert t.datetime(Decimal("1680064028"), format="epoch_s") == "2023-03-29T04:27:08Z"
    for bad in ("1680064028.5", True, "soon", Decimal("1.5")):
        with pytest.raises(ConversionError):
            t.datetime(bad, format="epoch_s")


def test_datetime_keeps_microseconds_when_there_are_some():
    assert t.datetime("2020-12-11T01:29:50.116123+00:00") == "2020-12-11T01:29:50.116123Z"
    assert t.datetime("2020-12-11T01:29:50.116000+00:00") == "2020-12-11T01:29:50.116Z"


def test_decimal_is_exact_and_never_a_float():
    assert t.decimal("49.00") == Decimal("49.00")
    assert isinstance(t.decimal("49.00"), Decimal)
    assert t.decimal("49.00", output="text") == "49.00"
    assert t.decimal(4999, minor_units=2) == Decimal("49.99")
    assert t.decimal("49", places=2) == Decimal("49.00")
    assert t.decimal(" 1,234.50 ", thousands_separator=",") == Decimal("1234.50")
    assert t.decimal("1,7", decimal_separator=",") == Decimal("1.7")
    assert t.decimal("0.125", places=2, round=True) == Decimal("0.13")
    assert str(t.decimal("200000000000000000000.01")) == "200000000000000000000.01"


def test_decimal_refuses_what_it_would_have_to_guess():
    for bad in ("0.125", "1.2.3", "abc", True, "NaN", "Infinity"):
        with pytest.raises(ConversionError):
            t.decimal(bad, places=2)
    with pytest.raises(ConversionError):
        t.decimal("1.7", decimal_separator=",")


def test_integer_ids_are_exact_at_any_size():
    assert t.integer("6569096478909") == 6569096478909
    assert t.integer(2**64 + 1) == 2**64 + 1
    assert t.integer(12345678901234567890, output="text") == "12345678901234567890"
    assert t.integer(Decimal("150.0")) == 150
    assert t.integer(3.0) == 3
    for bad in (2.0**60, 1.5, "12a", True, Decimal("1.5")):
        with pytest.raises(ConversionError):
            t.integer(bad)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("yes", True),
        ("No", False),
        ("1", True),
        (0, False),
        ("TRUE", True),
        (" n ", False),
        ("y", True),
        (False, False),
    ],
)
def test_booleans_from_common_words(raw, expected):
    assert t.boolean(raw) is expected


def test_boolean_extra_words_and_refusals():
    assert t.boolean("Maybe", true=["maybe"]) is True
    for bad in ("maybe", 2, "", None):
        with pytest.raises(ConversionError):
            t.boolean(bad)


def test_value_map_lookup_is_trimmed_and_case_insensitive():
    table = {"pending": "open", "Completed": "fulfilled", 1: "one"}
    assert t.value_map("  COMPLETED  ", map=table) == "fulfilled"
    assert t.value_map("1", map=table) == "one"
    assert t.value_map(1, map=table) == "one"


def test_value_map_without_default_refuses_unknown_values_with_their_name():
    with pytest.raises(ConversionError) as err:
        t.value_map("awaiting-pickup", map={"pending": "open"})
    assert err.value.code == "unmapped_value"
    assert err.value.reason == "unmapped value 'awaiting-pickup'"


def test_value_map_default_only_when_the_mapping_gives_one():
    assert t.value_map("awaiting-pickup", map={"pending": "open"}, default="other") == "other"
    assert t.value_map("awaiting-pickup", map={"pending": "open"}, default=None) is None


def test_check_args_names_unknown_conversions_and_bad_parameters():
    assert "unknown conversion 'lowr'" in t.check_args("lowr", {})[0]
    assert t.check_args("split_name", {}) == ["conversion 'split_name' needs parameter 'part'"]
    assert "must be one of" in t.check_args("split_name", {"part": "middle"})[0]
    assert "no parameter 'zone'" in t.check_args("datetime", {"zone": "UTC"})[0]
    assert "unknown time zone" in t.check_args("datetime", {"assume_tz": "Mars/Olympus"})[0]
    assert "not a known phone region" in t.check_args("phone_e164", {"region": "XX"})[0]
    assert "whole number" in t.check_args("decimal", {"places": True})[0]
    assert t.check_args("datetime", {"format": "%d.%m.%Y", "assume_tz": "Europe/Berlin"}) == []
