"""Named conversions: the only vocabulary a mapping spec may use to change a value.

Every conversion is a plain function ``fn(value, /, **params)`` with a docstring. It returns the
converted value or raises :class:`ConversionError` with a reason a support person understands
("'4101' is not a valid US postal code (5 digits or 5+4 digits)"). Conversions never return a
float: money and decimals are ``Decimal`` or text, ids are ``int`` or text at any size.

``REGISTRY`` maps each name to a :class:`Conversion` (function + parameter descriptions +
an optional ``prepare`` step that validates and pre-computes parameters once, when a spec is
compiled, so the per-record call does no parsing of its own configuration).

Blank handling is not done here: the mapping layer decides what a blank means before a value
reaches a conversion (see ``mapping.py``). Conversions that get ``None`` raise a ConversionError.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, timedelta, tzinfo
from datetime import datetime as _dt
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
import pycountry
from nameparser import HumanName


class ConversionError(ValueError):
    """A value the conversion cannot turn into a valid output.

    ``reason`` is plain words about the value (the mapping layer adds "for field X");
    ``code`` is a stable machine word: ``invalid_value`` or ``unmapped_value``."""

    def __init__(self, reason: str, code: str = "invalid_value") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class BlankValue(ConversionError):
    """The part a conversion needs is blank (a named source whose number/code/name is empty):
    the mapping treats the field as blank and applies its on_blank rule."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, code="blank")


def show(value: Any, limit: int = 80) -> str:
    """A value as quoted in a reason: ``'abc'``, shortened when long."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"'{text}'"


def nfc(value: Any, /) -> Any:
    """Unicode NFC normalisation of text (decomposed "é" = e + ◌́ becomes one character).

    Applied to every text value by default when it is read from the record; listed so a
    chain can ask for it explicitly. Non-text values pass through unchanged."""
    if isinstance(value, str) and not value.isascii():
        return unicodedata.normalize("NFC", value)
    return value


# --------------------------------------------------------------------------- text


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, float):
        # Only reached for values that did not come through exactjson; repr is the shortest
        # text that round-trips, so no digits are invented.
        return repr(value)
    raise ConversionError(f"expected text, got {_kind(value)} {show(value)}")


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float | Decimal):
        return "a number"
    return "text" if isinstance(value, str) else type(value).__name__


def text(value: Any, /) -> str:
    """Any scalar as text, exactly: 6569096478909 → "6569096478909", Decimal 49.00 → "49.00",
    true → "true". Objects and lists are invalid."""
    return nfc(_as_text(value))  # type: ignore[no-any-return]


_SPACES = re.compile(r"\s+")


def trim(value: Any, /, *, collapse: bool = False) -> str:
    """Strip leading/trailing whitespace; with ``collapse: true`` also turn every inner run of
    whitespace (tabs, newlines, non-breaking spaces) into one space."""
    out = (value if type(value) is str else _as_text(value)).strip()
    if collapse:
        out = " ".join(out.split())
    return out


def lower(value: Any, /) -> str:
    """Lower case ("ÉCOLE" → "école")."""
    return _as_text(value).lower()


def upper(value: Any, /) -> str:
    """Upper case ("straße" → "STRASSE": Unicode upper-casing may change the length)."""
    return _as_text(value).upper()


_TITLE_SLOW = re.compile(r"[\d'_]")
_TITLE_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*", re.UNICODE)


def title(value: Any, /) -> str:
    """Title case for names and places: each word starts upper case, the rest lower case.

    "MAria exemplova" → "Maria Exemplova", "jean-françois" → "Jean-François",
    "o’connor" → "O’Connor", "bob's" → "Bob's" (one-letter prefixes before an apostrophe are
    treated as a name particle, longer ones as a possessive)."""

    def fix(match: re.Match[str]) -> str:
        word = match.group(0)
        parts = re.split(r"(['’])", word)
        if len(parts) == 3 and len(parts[0]) == 1:
            return parts[0].upper() + parts[1] + parts[2][:1].upper() + parts[2][1:].lower()
        return word[:1].upper() + word[1:].lower()

    raw = _as_text(value)
    if raw.isascii() and _TITLE_SLOW.search(raw) is None:
        return raw.title()  # the same result for ASCII letters without digits or apostrophes
    return _TITLE_WORD.sub(fix, raw)


# --------------------------------------------------------------------------- names


def _is_mark(char: str) -> bool:
    return unicodedata.category(char) in ("Mn", "Mc", "Me")


def _last_space_split(name: str) -> tuple[str, str] | None:
    """Index-safe split on the last whitespace that does not carry a combining mark."""
    for i in range(len(name) - 1, 0, -1):
        if name[i].isspace() and not (i + 1 < len(name) and _is_mark(name[i + 1])):
            head, tail = name[:i].rstrip(), name[i + 1 :].strip()
            if head and tail:
                return head, tail
    return None


def split_name(value: Any, /, *, part: str, method: str = "last_space", single: str = "last") -> str:
    """One part ("first" or "last") of a full name.

    ``method: last_space`` (default): the last name is the text after the last space, the
    first name everything before it — "Nguyễn Thị Lan" → first "Nguyễn Thị", last "Lan".
    Text is NFC-normalised first and never split inside a combining sequence. A single comma
    means "Last, First" ("Norman, Bob" → first "Bob", last "Norman").
    ``method: nameparser``: titles and suffixes are dropped, particles kept with the last name
    ("Dr. Juan de la Vega III" → first "Juan", last "de la Vega").
    ``single``: where a name without a space goes ("王芳"): ``last`` (default) or ``first``."""
    name = _SPACES.sub(" ", nfc(_as_text(value)).strip())
    if not name:
        raise ConversionError("the name is empty")
    first: str
    last: str
    if method == "nameparser":
        parsed = HumanName(name)
        first = " ".join(p for p in (parsed.first, parsed.middle) if p)
        last = parsed.last
        if not first and not last:
            first, last = ("", name) if single == "last" else (name, "")
    elif name.count(",") == 1:
        last, first = (p.strip() for p in name.split(","))
    else:
        split = _last_space_split(name)
        if split is None:
            first, last = ("", name) if single == "last" else (name, "")
        else:
            first, last = split
    return first if part == "first" else last


def join(value: Any, /, *, sep: str = " ") -> str:
    """Join several source values (a list, or the values of a named-source object, in order)
    with ``sep`` (default one space), skipping blank parts: ["Chestnut Street 92", "", null]
    → "Chestnut Street 92"."""
    items: list[Any]
    if isinstance(value, dict):
        items = list(value.values())
    elif isinstance(value, list):
        items = value
    else:
        items = [value]
    parts = [_as_text(v).strip() for v in items if v is not None and not isinstance(v, dict | list)]
    return sep.join(p for p in parts if p)


_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def template(value: Any, /, *, template: str) -> str:
    """Fill ``{name}`` placeholders from a named-source object: source
    ``{first: first_name, last: last_name}`` with template ``"{last}, {first}"``. Blank
    parts become empty text; the result is trimmed and inner runs of spaces collapsed. Only
    plain ``{name}`` placeholders are understood (no attribute access, no format specs)."""
    parts = value if isinstance(value, dict) else {"value": value}

    def fill(match: re.Match[str]) -> str:
        item = parts.get(match.group(1))
        if item is None or isinstance(item, dict | list):
            return ""
        return _as_text(item).strip()

    return re.sub(r" {2,}", " ", _PLACEHOLDER.sub(fill, template)).strip()


def constant(_value: Any, /, *, value: Any) -> Any:
    """Always ``value``, whatever the source says (a fixed lead source, a pipeline id)."""
    return value


# --------------------------------------------------------------------------- phone / email


def _split_named(value: Any, main: str, other: str) -> tuple[Any, Any]:
    """A value from a named source ``{number: ..., country: ...}`` or a plain value."""
    if isinstance(value, dict):
        return value.get(main), value.get(other)
    return value, None


@lru_cache(maxsize=32768)
def _phone_cached(raw: str, region: str | None) -> tuple[bool, str]:
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        if exc.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE:
            return False, f"phone number {show(raw)} has no country code and no default country is set"
        return False, f"{show(raw)} is not a phone number"
    if not phonenumbers.is_valid_number(number):
        where = phonenumbers.region_code_for_number(number) or region or "any country"
        return False, f"{show(raw)} is not a valid phone number for {where}"
    return True, phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def phone_e164(value: Any, /, *, region: str | None = None) -> str:
    """A phone number in E.164 ("+12025550143").

    Numbers without a country code are read in ``region`` (ISO alpha-2, e.g. "US"; the spec's
    ``default_region`` is used when the step does not set one). A named source
    ``{number: phone, country: country_code}`` reads the number in the record's own country
    (names like "France" work too). Numbers that are impossible or not valid in that country,
    or that have no country code when no country is known, are invalid — never guessed."""
    raw, country = _split_named(value, "number", "country")
    if raw is None:
        raise BlankValue("no phone number")
    digits = _as_text(raw).strip()
    where = region
    if country is not None and not isinstance(country, dict | list):
        found = country_code(country)
        if found is not None:
            where = found
    ok, out = _phone_cached(digits, where.upper() if where else None)
    if not ok:
        raise ConversionError(out)
    return out


_EMAIL = re.compile(
    r"^(?P<local>[^\s@\"(),:;<>\[\]\\]{1,64})@(?P<domain>(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,63})$",
    re.UNICODE,
)


def email(value: Any, /, *, lowercase: bool = True) -> str:
    """An e-mail address, trimmed and lower-cased (``lowercase: false`` keeps the local part's
    case), and checked: one "@", a local part without spaces or quotes, a domain with a dot and
    a top-level name of letters. "Bob.Norman@HostMail.com " → "bob.norman@hostmail.com";
    "bob@", "bob norman@x.com", "n/a@" are invalid."""
    raw = nfc(_as_text(value)).strip()
    if raw.lower().startswith("mailto:"):
        raw = raw[7:]
    match = _EMAIL.match(raw)
    if match is None or ".." in raw or match.group("local").startswith(".") or match.group("local").endswith("."):
        raise ConversionError(f"{show(raw)} is not a valid e-mail address")
    local, domain = match.group("local"), match.group("domain").lower()
    return f"{local.lower() if lowercase else local}@{domain}"


# --------------------------------------------------------------------------- countries

# Spellings pycountry does not know, or knows as something else. Keys are normalised with
# _country_key (case-folded, dots removed, spaces collapsed). "UK" is the common name of the
# United Kingdom although its ISO code is GB.
COUNTRY_ALIASES: Final[dict[str, str]] = {
    "uk": "GB",
    "great britain": "GB",
    "britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northern ireland": "GB",
    "united kingdom": "GB",
    "usa": "US",
    "us": "US",
    "united states": "US",
    "united states of america": "US",
    "america": "US",
    "deutschland": "DE",
    "allemagne": "DE",
    "czech republic": "CZ",
    "czechia": "CZ",
    "cesko": "CZ",
    "česko": "CZ",
    "holland": "NL",
    "the netherlands": "NL",
    "nederland": "NL",
    "russia": "RU",
    "south korea": "KR",
    "korea": "KR",
    "north korea": "KP",
    "vietnam": "VN",
    "iran": "IR",
    "syria": "SY",
    "laos": "LA",
    "bolivia": "BO",
    "venezuela": "VE",
    "tanzania": "TZ",
    "moldova": "MD",
    "macedonia": "MK",
    "ivory coast": "CI",
    "turkey": "TR",
    "türkiye": "TR",
    "turkiye": "TR",
    "españa": "ES",
    "espana": "ES",
    "france métropolitaine": "FR",
    "italia": "IT",
    "österreich": "AT",
    "osterreich": "AT",
    "schweiz": "CH",
    "suisse": "CH",
    "svizzera": "CH",
    "sverige": "SE",
    "norge": "NO",
    "danmark": "DK",
    "suomi": "FI",
    "polska": "PL",
    "brasil": "BR",
    "méxico": "MX",
    "mexico": "MX",
    "uae": "AE",
    "hong kong": "HK",
    "taiwan": "TW",
    "vatican": "VA",
    "palestine": "PS",
    "micronesia": "FM",
    "brunei": "BN",
    "cape verde": "CV",
    "swaziland": "SZ",
    "burma": "MM",
    "east timor": "TL",
}


def _country_key(text: str) -> str:
    """Case-folded, dots dropped, spaces collapsed, accents removed ("Québec" = "quebec")."""
    key = _SPACES.sub(" ", text.replace(".", "").strip()).casefold()
    if not key.isascii():
        key = "".join(c for c in unicodedata.normalize("NFKD", key) if not unicodedata.combining(c))
    return key


def _build_country_index() -> dict[str, str]:
    index: dict[str, str] = {}
    for c in pycountry.countries:
        code = str(c.alpha_2)
        for attr in ("alpha_2", "alpha_3", "name", "official_name", "common_name"):
            name = getattr(c, attr, None)
            if name:
                index.setdefault(_country_key(str(name)), code)
    for alias, code in COUNTRY_ALIASES.items():
        index[_country_key(alias)] = code
    return index


_COUNTRY_INDEX: Final[dict[str, str]] = _build_country_index()


def country_code(value: Any) -> str | None:
    """ISO alpha-2 for a country name/code/variant, or None. Never guesses (no fuzzy match)."""
    if not isinstance(value, str):
        return None
    return _COUNTRY_INDEX.get(_country_key(value))


def country(value: Any, /, *, output: str = "alpha2") -> str:
    """A country as ISO 3166-1: ``alpha2`` (default, "US"), ``alpha3`` ("USA") or ``name``.

    Understands ISO names, official names, alpha-2/alpha-3 codes and common variants, case and
    dots ignored: "United States", "USA", "U.S.A.", "us" → US; "UK", "United Kingdom", "Great
    Britain" → GB; "Deutschland" → DE; "Czechia", "Czech Republic" → CZ. Anything else
    ("Atlantis") is invalid — there is no fuzzy guessing."""
    raw = _as_text(value)
    code = country_code(raw)
    if code is None:
        raise ConversionError(f"{show(raw.strip())} is not a country we recognise")
    if output == "alpha2":
        return code
    found = pycountry.countries.get(alpha_2=code)
    if found is None:  # pragma: no cover - the index is built from pycountry
        raise ConversionError(f"{show(raw)} is not a country we recognise")
    return str(found.alpha_3) if output == "alpha3" else str(found.name)


@lru_cache(maxsize=512)
def _subdivision_index(country: str) -> tuple[dict[str, str], dict[str, str]]:
    """(normalised name or code → full code, full code → name) for one country."""
    keys: dict[str, str] = {}
    names: dict[str, str] = {}
    for sub in pycountry.subdivisions.get(country_code=country) or []:  # type: ignore[no-untyped-call]
        full = str(sub.code)
        names[full] = str(sub.name)
        keys[_country_key(full)] = full
        keys[_country_key(full.split("-", 1)[1])] = full
        keys.setdefault(_country_key(str(sub.name)), full)
    return keys, names


def subdivision(value: Any, /, *, country: str | None = None, output: str = "code") -> str:
    """A state/province/region, from its name or code, as ``code`` ("US-KY"), ``short``
    ("KY") or ``name`` ("Kentucky"). The country is ``country`` (fixed) or comes from a named
    source ``{name: province, country: country_code}``. Unknown names are invalid."""
    raw, record_country = _split_named(value, "name", "country")
    if raw is None:
        raise BlankValue("no subdivision")
    where = country_code(record_country) if record_country is not None else None
    where = where or (country_code(country) if country else None)
    if where is None:
        raise ConversionError(f"cannot look up subdivision {show(raw)} without a country")
    label = _as_text(raw)
    keys, names = _subdivision_index(where)
    full = keys.get(_country_key(label))
    if full is None:
        raise ConversionError(f"{show(label.strip())} is not a known subdivision of {where}")
    if output == "short":
        return full.split("-", 1)[1]
    if output == "name":
        return names[full]
    return full


# --------------------------------------------------------------------------- postal codes


@dataclass(frozen=True)
class PostalFormat:
    pattern: re.Pattern[str]
    description: str
    pad_to: int | None = None


def _pf(pattern: str, description: str, pad_to: int | None = None) -> PostalFormat:
    return PostalFormat(re.compile(pattern), description, pad_to)


_DIGITS4 = ("4 digits", 4)
_DIGITS5 = ("5 digits", 5)
POSTAL_FORMATS: Final[dict[str, PostalFormat]] = {
    "US": _pf(r"\d{5}(-\d{4})?", "5 digits or 5+4 digits", 5),
    "GB": _pf(r"[A-Z]{1,2}\d[A-Z\d]? \d[A-Z]{2}", "a UK postcode like SW1V 3EN"),
    "CA": _pf(r"[A-Z]\d[A-Z] \d[A-Z]\d", "a Canadian postal code like H2G 1A7"),
    "NL": _pf(r"\d{4} ?[A-Z]{2}", "4 digits and 2 letters"),
    "BR": _pf(r"\d{5}-\d{3}", "8 digits as 12345-678"),
    "PT": _pf(r"\d{4}-\d{3}", "7 digits as 1234-567"),
    "PL": _pf(r"\d{2}-\d{3}", "5 digits as 12-345"),
    "CZ": _pf(r"\d{3} ?\d{2}", "5 digits"),
    "SK": _pf(r"\d{3} ?\d{2}", "5 digits"),
    "SE": _pf(r"\d{3} ?\d{2}", "5 digits"),
    "HU": _pf(r"(H-)?\d{4}", "4 digits"),
    "JP": _pf(r"\d{3}-?\d{4}", "7 digits"),
    "IN": _pf(r"\d{6}", "6 digits", 6),
    "CL": _pf(r"\d{7}", "7 digits", 7),
    "AR": _pf(r"([A-Z]\d{4}[A-Z]{3}|\d{4})", "4 digits or a CPA like C1425DKF"),
    "IE": _pf(r"[A-Z\d]{3} ?[A-Z\d]{4}", "an Eircode like D02 X285"),
    **{c: _pf(r"\d{4}", *_DIGITS4) for c in ("AT", "AU", "BE", "CH", "DK", "LU", "NO", "NZ", "ZA", "BG")},
    **{c: _pf(r"\d{5}", *_DIGITS5) for c in ("DE", "FR", "IT", "ES", "FI", "MX", "HR", "GR", "EE", "TR")},
}


def postal_code(value: Any, /, *, country: str | None = None, pad: bool = False, check: bool = True) -> str:
    """A postal code, always text: leading zeros kept ("04101"), a leading apostrophe left by
    Excel removed ("'04101" → "04101"), letters upper-cased and spaces collapsed.

    The country is ``country`` (fixed) or comes from a named source ``{code: zip, country:
    country}``. Where the country's format is known it is checked: US 5 digits or 5+4
    ("02139-4307"; "021394307" becomes "02139-4307"), GB/CA with the space put back, etc.
    "4101" for the US is invalid unless ``pad: true`` (then "04101") — padding is opt-in
    because a lost digit is not always a lost leading zero. ``check: false`` skips the check."""
    raw, record_country = _split_named(value, "code", "country")
    if raw is None:
        raise BlankValue("no postal code")
    code = _SPACES.sub(" ", _as_text(raw).strip().lstrip("'’").strip()).upper()
    if not code:
        raise ConversionError("the postal code is empty")
    where = country_code(record_country) if isinstance(record_country, str) else None
    where = where or (country_code(country) if country else None)
    fmt = POSTAL_FORMATS.get(where) if where else None
    if fmt is None or not check:
        return code
    if where == "US" and len(code) == 9 and code.isdigit():
        code = f"{code[:5]}-{code[5:]}"
    elif where in ("GB", "CA") and " " not in code and len(code) > 3:
        code = f"{code[:-3]} {code[-3:]}"
    if pad and fmt.pad_to and code.isdigit() and len(code) < fmt.pad_to:
        code = code.zfill(fmt.pad_to)
    if fmt.pattern.fullmatch(code) is None:
        raise ConversionError(f"{show(code)} is not a valid {where} postal code (expected {fmt.description})")
    return code


# --------------------------------------------------------------------------- dates


_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")
_EPOCH = re.compile(r"[+-]?\d+")
_EPOCH_ZERO = _dt(1970, 1, 1, tzinfo=UTC)


_FAST_DIRECTIVES: Final = {
    "%Y": r"(?P<Y>\d{4})",
    "%m": r"(?P<m>\d{1,2})",
    "%d": r"(?P<d>\d{1,2})",
    "%H": r"(?P<H>\d{1,2})",
    "%M": r"(?P<M>\d{1,2})",
    "%S": r"(?P<S>\d{1,2})",
}


@lru_cache(maxsize=256)
def _fast_pattern(fmt: str) -> re.Pattern[str] | None:
    """A regex for strptime patterns made only of %Y %m %d %H %M %S and literal text (the
    common case, ~10x faster than strptime); None for anything else (strptime is used)."""
    parts = re.split(r"(%.)", fmt)
    out: list[str] = []
    seen: set[str] = set()
    for part in parts:
        if part.startswith("%") and len(part) == 2:
            if part not in _FAST_DIRECTIVES or part in seen:
                return None
            seen.add(part)
            out.append(_FAST_DIRECTIVES[part])
        elif "%" in part:
            return None
        else:
            out.append(re.escape(part))
    if not {"%Y", "%m", "%d"} <= seen:
        return None
    return re.compile("".join(out))


def _strptime(raw: str, fmt: str) -> _dt:
    """``datetime.strptime`` (naive), fast for plain numeric patterns. Raises ValueError."""
    pattern = _fast_pattern(fmt)
    if pattern is None:
        return _dt.strptime(raw, fmt)
    match = pattern.fullmatch(raw)
    if match is None:
        raise ValueError(f"{raw!r} does not match {fmt!r}")
    g = match.groupdict()
    return _dt(int(g["Y"]), int(g["m"]), int(g["d"]), int(g.get("H") or 0), int(g.get("M") or 0), int(g.get("S") or 0))


def _epoch(value: Any, unit: int) -> _dt:
    """Seconds (unit=1) or milliseconds (unit=1000) since 1970, from an int or digits."""
    if isinstance(value, bool):
        raise ConversionError(f"{show(value)} is not a timestamp")
    number: int
    if isinstance(value, int):
        number = value
    elif isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        number = int(value)
    elif isinstance(value, str) and _EPOCH.fullmatch(value.strip()):
        number = int(value.strip())
    else:
        what = "seconds" if unit == 1 else "milliseconds"
        raise ConversionError(f"{show(value)} is not a whole number of {what} since 1970")
    try:
        return _EPOCH_ZERO + (timedelta(seconds=number) if unit == 1 else timedelta(milliseconds=number))
    except OverflowError:
        raise ConversionError(f"{show(value)} is out of range for a date") from None


def _zone(name: str) -> tzinfo:
    if name.upper() in ("UTC", "Z"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConversionError(f"unknown time zone {show(name)}") from None


def parse_datetime(value: Any, *, format: str = "iso", assume_tz: str | None = None) -> _dt:
    """An aware datetime (UTC) from a value read with one explicit ``format``:

    ``iso`` — ISO 8601 with an offset: "2020-10-22T21:03:23.000+0000", "…-05:00", "…Z";
    ``epoch_s`` / ``epoch_ms`` — whole seconds / milliseconds since 1970 (number or digits);
    anything else — a ``strptime`` pattern ("%d/%m/%Y %H:%M").
    Values without an offset need ``assume_tz`` (an IANA zone such as "Europe/Berlin" or
    "UTC"); without it they are invalid rather than silently read as UTC."""
    if format == "epoch_s":
        return _epoch(value, 1)
    if format == "epoch_ms":
        return _epoch(value, 1000)
    if not isinstance(value, str):
        raise ConversionError(f"{show(value)} is not a date and time ({format})")
    raw = value.strip()
    if format == "iso" and _DATE_ONLY.fullmatch(raw):
        raise ConversionError(f"{show(raw)} is a date without a time; use the date conversion")
    try:
        parsed = _dt.fromisoformat(raw) if format == "iso" else _strptime(raw, format)
    except (ValueError, OverflowError):
        raise ConversionError(f"{show(raw)} is not a date and time in the format {format}") from None
    if parsed.tzinfo is None:
        if assume_tz is None:
            raise ConversionError(f"{show(raw)} has no time zone and the mapping does not name one")
        parsed = parsed.replace(tzinfo=_zone(assume_tz))
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ConversionError(f"{show(raw)} is out of range for a date") from None


def format_utc(moment: _dt) -> str:
    """ISO 8601 in UTC with ``Z``; milliseconds only when there are any
    ("2022-12-23T18:35:31.742Z", "2023-03-29T04:27:08Z")."""
    m = moment.astimezone(UTC)
    base = f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}"
    moment = m
    micro = moment.microsecond
    if micro == 0:
        return base + "Z"
    if micro % 1000 == 0:
        return f"{base}.{micro // 1000:03d}Z"
    return f"{base}.{micro:06d}Z"


def datetime(value: Any, /, *, format: str = "iso", assume_tz: str | None = None) -> str:
    """A moment in time as ISO 8601 UTC with ``Z``. The ``format`` is explicit, never guessed per
    value: ``iso`` (offsets "+0000" and "+00:00" and "Z" all work), ``epoch_s`` (Stripe
    ``1680064028`` → "2023-03-29T04:27:08Z"), ``epoch_ms`` (HubSpot "1671820531742" →
    "2022-12-23T18:35:31.742Z") or a ``strptime`` pattern. Naive values need ``assume_tz``.
    A date without a time is invalid here: use ``date`` so it is never shifted by a zone."""
    return format_utc(parse_datetime(value, format=format, assume_tz=assume_tz))


def date_value(value: Any, /, *, format: str = "iso") -> str:
    """A calendar date as "YYYY-MM-DD", never shifted by a time zone.

    ``format``: ``iso`` ("1990-05-01", or a datetime "2008-01-10T23:30:00-05:00" whose date as
    written — 2008-01-10 — is kept), a ``strptime`` pattern ("%Y%m%d" for febrl's 19510826,
    "%d/%m/%Y"), or ``epoch_s``/``epoch_ms`` (the UTC date of that moment)."""
    if format in ("epoch_s", "epoch_ms"):
        return parse_datetime(value, format=format).date().isoformat()
    raw = _as_text(value).strip()
    try:
        if format == "iso":
            if len(raw) > 10 and raw[10] in "T ":
                return _dt.fromisoformat(raw).date().isoformat()
            return date.fromisoformat(raw).isoformat()
        return _strptime(raw, format).date().isoformat()
    except ValueError:
        raise ConversionError(f"{show(raw)} is not a date in the format {format}") from None


# --------------------------------------------------------------------------- numbers


def decimal(
    value: Any,
    /,
    *,
    places: int | None = None,
    minor_units: int | None = None,
    output: str = "decimal",
    decimal_separator: str = ".",
    thousands_separator: str | None = None,
    round: bool = False,
) -> Decimal | str:
    """A decimal number or amount of money, exact (never a float).

    Accepts numbers and text ("49.00", " 1,234.50 " with ``thousands_separator: ","``, "1,7"
    with ``decimal_separator: ","``). ``minor_units: 2`` reads Stripe-style cents (4999 →
    49.99). ``places: 2`` writes exactly two decimals ("49" → 49.00); a value with more
    decimals than that is invalid unless ``round: true`` (half up). ``output``: ``decimal``
    (a JSON number with its exact digits) or ``text``."""
    if isinstance(value, bool):
        raise ConversionError(f"{show(value)} is not a number")
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value))
    elif isinstance(value, str):
        raw = value.strip().replace("\u00a0", "").replace(" ", "")
        if thousands_separator:
            raw = raw.replace(thousands_separator, "")
        if decimal_separator != ".":
            if "." in raw:
                raise ConversionError(f"{show(value)} is not a number (expected {decimal_separator!r} as decimal mark)")
            raw = raw.replace(decimal_separator, ".")
        if not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", raw):
            raise ConversionError(f"{show(value)} is not a number")
        number = Decimal(raw)
    else:
        raise ConversionError(f"{show(value)} is not a number")
    if not number.is_finite():
        raise ConversionError(f"{show(value)} is not a finite number")
    try:
        if minor_units:
            number = number.scaleb(-minor_units)
        if places is not None:
            exponent = Decimal(1).scaleb(-places)
            rounded = number.quantize(exponent, rounding=ROUND_HALF_UP)
            if rounded != number and not round:
                raise ConversionError(f"{show(value)} has more than {places} decimal places")
            number = rounded
    except InvalidOperation:
        raise ConversionError(f"{show(value)} is too large") from None
    return str(number) if output == "text" else number


def _whole(value: Any) -> bool:
    if isinstance(value, Decimal):
        return value.is_finite() and value == value.to_integral_value()
    if isinstance(value, float):
        return value.is_integer() and abs(value) <= 2**53
    return isinstance(value, str) and len(value) < 4000 and re.fullmatch(r"\s*[+-]?\d+\s*", value) is not None


def integer(value: Any, /, *, output: str = "int") -> int | str:
    """A whole number or numeric id, exact at any size (6569096478909, 20-digit ids).
    ``output: text`` gives "6569096478909". "007" → 7 (use ``text`` to keep leading zeros).
    Decimals with a fraction and floats above 2**53 are invalid: they may have lost digits."""
    if isinstance(value, bool):
        raise ConversionError(f"{show(value)} is not a whole number")
    number: int
    if isinstance(value, int):
        number = value
    elif (
        (isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value())
        or (isinstance(value, float) and value.is_integer() and abs(value) <= 2**53)
        or (isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value) and len(value) < 4000)
    ):
        number = int(value)
    else:
        raise ConversionError(f"{show(value)} is not a whole number")
    return str(number) if output == "text" else number


_TRUE = frozenset({"true", "t", "yes", "y", "1", "on", "ja", "oui", "si", "sí", "x"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "off", "nein", "non"})


def boolean(value: Any, /, *, true: list[str] | None = None, false: list[str] | None = None) -> bool:
    """true/false from yes/no, y/n, 1/0, true/false, on/off (any case, trimmed), plus extra
    words given in ``true`` / ``false``. Anything else ("maybe", 2) is invalid."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | Decimal) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        key = value.strip().casefold()
        if key in _TRUE or (true and key in {t.casefold() for t in true}):
            return True
        if key in _FALSE or (false and key in {f.casefold() for f in false}):
            return False
    raise ConversionError(f"{show(value)} is not yes/no")


# --------------------------------------------------------------------------- value maps

_NO_DEFAULT: Final = object()


def value_key(value: Any) -> str:
    """How value-map lookups compare: trimmed, inner spaces collapsed, case-folded, NFC."""
    return _SPACES.sub(" ", nfc(_as_text(value)).strip()).casefold()


@dataclass(frozen=True)
class ValueMap:
    """A prepared value map: normalised keys → output, and the explicit default if any."""

    lookup: Mapping[str, Any]
    default: Any = _NO_DEFAULT

    @classmethod
    def build(cls, mapping: Mapping[Any, Any], default: Any = _NO_DEFAULT) -> ValueMap:
        return cls({value_key(k): v for k, v in mapping.items()}, default)

    @property
    def has_default(self) -> bool:
        return self.default is not _NO_DEFAULT


def value_map(value: Any, /, *, map: Mapping[Any, Any] | ValueMap, default: Any = _NO_DEFAULT) -> Any:
    """Look the value up in ``map`` (keys compared trimmed and case-insensitively: "Completed "
    finds ``completed``). Unknown values use ``default`` only when the mapping defines one;
    otherwise they are "unmapped" and go to review with the value named — never a silent
    fallback."""
    table = map if isinstance(map, ValueMap) else ValueMap.build(map, default)
    if isinstance(value, dict | list):
        raise ConversionError(f"{show(value)} cannot be looked up in a value map")
    key = value_key(value)
    if key in table.lookup:
        return table.lookup[key]
    if table.has_default:
        return table.default
    raise ConversionError(f"unmapped value {show(_as_text(value).strip())}", code="unmapped_value")


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Param:
    """One parameter of a conversion as the spec writes it."""

    name: str
    description: str
    types: tuple[type, ...] = (str,)
    required: bool = False
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Conversion:
    name: str
    function: Callable[..., Any]
    params: tuple[Param, ...] = ()
    # Turns the spec's parameters into the function's keyword arguments, once per compile.
    prepare: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    # True when the conversion produces a value even without a source (constant).
    needs_source: bool = True
    extra_checks: tuple[Callable[[dict[str, Any]], str | None], ...] = field(default=())

    @property
    def summary(self) -> str:
        doc = (self.function.__doc__ or "").strip()
        return doc.split("\n\n")[0].replace("\n", " ")

    @property
    def doc(self) -> str:
        return (self.function.__doc__ or "").strip()


SUPPORTED_REGIONS: Final[frozenset[str]] = frozenset(phonenumbers.SUPPORTED_REGIONS)


def _check_region(args: dict[str, Any]) -> str | None:
    region = args.get("region")
    if region is not None and str(region).upper() not in SUPPORTED_REGIONS:
        return f"region {region!r} is not a known phone region (use an ISO code such as 'US')"
    return None


def _check_country(args: dict[str, Any]) -> str | None:
    value = args.get("country")
    if value is not None and country_code(value) is None:
        return f"country {value!r} is not a country we recognise"
    return None


def _check_tz(args: dict[str, Any]) -> str | None:
    zone = args.get("assume_tz")
    if zone is None:
        return None
    try:
        _zone(str(zone))
    except ConversionError as exc:
        return exc.reason
    return None


def _check_format(args: dict[str, Any]) -> str | None:
    fmt = args.get("format", "iso")
    if fmt in ("iso", "epoch_s", "epoch_ms"):
        return None
    if "%" not in str(fmt):
        return f"format {fmt!r} is not iso, epoch_s, epoch_ms or a strptime pattern such as '%d/%m/%Y'"
    return None


def _check_template(args: dict[str, Any]) -> str | None:
    return None if "{" in str(args.get("template", "")) else "template has no {name} placeholder"


def _prepare_value_map(args: dict[str, Any]) -> dict[str, Any]:
    table = ValueMap.build(args["map"], args.get("default", _NO_DEFAULT))
    return {"map": table}


def _prepare_boolean(args: dict[str, Any]) -> dict[str, Any]:
    out = dict(args)
    for word in ("true", "false"):
        if word in out:
            out[word] = [str(w).casefold() for w in out[word]]
    return out


def _register(*conversions: Conversion) -> dict[str, Conversion]:
    return {c.name: c for c in conversions}


_ANY = (str, int, bool, Decimal, float, dict, list, type(None))

REGISTRY: Final[dict[str, Conversion]] = _register(
    Conversion("text", text),
    Conversion("trim", trim, (Param("collapse", "also collapse inner whitespace to one space", (bool,)),)),
    Conversion("lower", lower),
    Conversion("upper", upper),
    Conversion("title", title),
    Conversion("nfc", nfc),
    Conversion(
        "split_name",
        split_name,
        (
            Param("part", "which part to keep", required=True, choices=("first", "last")),
            Param("method", "last_space (default) or nameparser", choices=("last_space", "nameparser")),
            Param("single", "where a one-word name goes: last (default) or first", choices=("first", "last")),
        ),
    ),
    Conversion("join", join, (Param("sep", "separator, default one space"),)),
    Conversion("template", template, (Param("template", "text with {name} placeholders", required=True),)),
    Conversion("constant", constant, (Param("value", "the value to send", _ANY, required=True),), needs_source=False),
    Conversion(
        "phone_e164",
        phone_e164,
        (Param("region", "ISO country for numbers without a country code (default: the spec's default_region)"),),
        extra_checks=(_check_region,),
    ),
    Conversion("email", email, (Param("lowercase", "lower-case the local part too (default true)", (bool,)),)),
    Conversion(
        "country", country, (Param("output", "alpha2 (default), alpha3 or name", choices=("alpha2", "alpha3", "name")),)
    ),
    Conversion(
        "subdivision",
        subdivision,
        (
            Param("country", "the country when the source does not name one"),
            Param("output", "code (US-KY, default), short (KY) or name", choices=("code", "short", "name")),
        ),
        extra_checks=(_check_country,),
    ),
    Conversion(
        "postal_code",
        postal_code,
        (
            Param("country", "the country when the source does not name one (default: the spec's default_country)"),
            Param("pad", "left-pad all-digit codes with zeros to the country's length (default false)", (bool,)),
            Param("check", "check the country's format (default true)", (bool,)),
        ),
        extra_checks=(_check_country,),
    ),
    Conversion(
        "datetime",
        datetime,
        (
            Param("format", "iso (default), epoch_s, epoch_ms or a strptime pattern"),
            Param("assume_tz", "IANA time zone for values without an offset"),
        ),
        extra_checks=(_check_format, _check_tz),
    ),
    Conversion(
        "date",
        date_value,
        (Param("format", "iso (default), a strptime pattern, epoch_s or epoch_ms"),),
        extra_checks=(_check_format,),
    ),
    *(
        Conversion(
            name,
            decimal,
            (
                Param("places", "exact number of decimals in the output", (int,)),
                Param("minor_units", "the source counts in 1/10^n units (cents: 2)", (int,)),
                Param("output", "decimal (default) or text", choices=("decimal", "text")),
                Param("decimal_separator", "decimal mark in text values, default '.'"),
                Param("thousands_separator", "grouping mark to ignore in text values"),
                Param("round", "round half up to places instead of refusing extra decimals", (bool,)),
            ),
        )
        for name in ("decimal", "money")
    ),
    Conversion("integer", integer, (Param("output", "int (default) or text", choices=("int", "text")),)),
    Conversion(
        "boolean",
        boolean,
        (Param("true", "extra words meaning true", (list,)), Param("false", "extra words meaning false", (list,))),
        prepare=_prepare_boolean,
    ),
    Conversion(
        "value_map",
        value_map,
        (
            Param("map", "source value → destination value", (dict,), required=True),
            Param("default", "value for anything not in the map (without it: review)", _ANY),
        ),
        prepare=_prepare_value_map,
    ),
)


def describe() -> list[dict[str, Any]]:
    """The registry as plain data: name, summary, documentation and parameters (for docs/UI)."""
    return [
        {
            "name": c.name,
            "summary": c.summary,
            "doc": c.doc,
            "params": [
                {"name": p.name, "description": p.description, "required": p.required, "choices": list(p.choices)}
                for p in c.params
            ],
        }
        for c in REGISTRY.values()
    ]


def check_args(name: str, args: Mapping[str, Any]) -> list[str]:
    """Problems with one conversion step's parameters ([] when fine)."""
    conv = REGISTRY.get(name)
    if conv is None:
        return [f"unknown conversion {name!r} (known: {', '.join(sorted(REGISTRY))})"]
    errors: list[str] = []
    known = {p.name: p for p in conv.params}
    for key, val in args.items():
        param = known.get(key)
        if param is None:
            allowed = ", ".join(known) or "none"
            errors.append(f"conversion {name!r} has no parameter {key!r} (parameters: {allowed})")
            continue
        if param.types == (int,) and (isinstance(val, bool) or not isinstance(val, int)):
            errors.append(f"conversion {name!r}: {key} must be a whole number")
        elif not isinstance(val, param.types):
            errors.append(f"conversion {name!r}: {key} must be {'/'.join(t.__name__ for t in param.types)}")
        elif param.choices and val not in param.choices:
            errors.append(f"conversion {name!r}: {key} must be one of {', '.join(param.choices)}, not {val!r}")
    for param in conv.params:
        if param.required and param.name not in args:
            errors.append(f"conversion {name!r} needs parameter {param.name!r}")
    if name in ("decimal", "money"):
        for key in ("places", "minor_units"):
            val = args.get(key)
            if isinstance(val, int) and not 0 <= val <= 18:
                errors.append(f"conversion {name!r}: {key} must be between 0 and 18")
    if not errors:
        for check in conv.extra_checks:
            msg = check(dict(args))
            if msg:
                errors.append(f"conversion {name!r}: {msg}")
    return errors


def bind(name: str, args: Mapping[str, Any]) -> Callable[[Any], Any]:
    """A one-argument callable for a checked step (call ``check_args`` first)."""
    conv = REGISTRY[name]
    kwargs = conv.prepare(dict(args)) if conv.prepare else dict(args)
    function = conv.function
    if not kwargs:
        return function
    return functools.partial(function, **kwargs)
