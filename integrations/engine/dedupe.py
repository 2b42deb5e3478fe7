"""Duplicate checks: match keys from a record, and which known records it matches.

Two kinds of finding, never mixed up:

* ``match`` — the same real-world entity for certain: the same declared key (an external id),
  the same normalised e-mail, or the same E.164 phone with the same (or no) name.
* ``likely`` — probably the same, but not certain: the same phone with a similar but different
  name, or a similar name plus agreeing details (date of birth, postcode, address...). These go
  to review with both records shown; the engine never merges them.

Names are compared case-folded and NFC-normalised (never byte for byte), with Jaro-Winkler
similarity, and also with their words swapped ("luchetti tiana" vs "tiana luchetti").
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from integrations.engine import transforms
from integrations.engine.paths import MISSING, Step, lookup

Paths = tuple[tuple[Step, ...], ...]

SIMILAR_NAME = 0.88  # similar name + one agreeing detail → likely
LOOSE_NAME = 0.75  # loosely similar name + two agreeing details → likely
PHONE_NAME = 0.80  # same phone + a name at least this similar → likely (lower: different people)
AGREEING_DETAILS_ALONE = 3  # this many agreeing details → likely even if the names differ


@dataclass(frozen=True)
class DuplicateConfig:
    """Compiled ``record.duplicates`` options. ``email``/``phone`` paths: first non-blank;
    ``name`` paths: joined with a space (given name + surname); each ``compare`` entry: joined."""

    key: tuple[Step, ...] | None = None
    key_label: str = "key"
    email: Paths = ()
    phone: Paths = ()
    name: Paths = ()
    compare: tuple[tuple[str, Paths], ...] = ()
    region: str | None = None


@dataclass(frozen=True)
class DuplicateFinding:
    """One known record this record matches. ``reasons`` are plain words for the review queue."""

    candidate: str
    kind: Literal["match", "likely"]
    reasons: tuple[str, ...]
    score: float

    def to_json(self) -> dict[str, Any]:
        return {"candidate": self.candidate, "kind": self.kind, "reasons": list(self.reasons), "score": self.score}


def _text(value: Any, blanks: frozenset[str]) -> str | None:
    if value is MISSING or value is None or isinstance(value, dict | list | bool):
        return None
    try:
        raw = transforms.text(value).strip()
    except transforms.ConversionError:
        return None
    if not raw or raw.casefold() in blanks:
        return None
    return raw


def _first(record: Any, paths: Paths, blanks: frozenset[str]) -> str | None:
    for steps in paths:
        found = _text(lookup(record, steps), blanks)
        if found is not None:
            return found
    return None


def _joined(record: Any, paths: Paths, blanks: frozenset[str]) -> str | None:
    parts = [p for p in (_text(lookup(record, steps), blanks) for steps in paths) if p]
    return " ".join(parts) if parts else None


_NOT_WORD = re.compile(r"[^\w\s]", re.UNICODE)


def name_key(name: str) -> str:
    """Case-folded, NFC, punctuation dropped, spaces collapsed: "Zoë O’Connor " → "zoë oconnor"."""
    return " ".join(_NOT_WORD.sub("", transforms.nfc(name)).casefold().split())


def keys_for(config: DuplicateConfig, record: Any, blanks: frozenset[str]) -> dict[str, str]:
    """The match keys of one source record (see ``mapping.match_keys``). Never raises."""
    keys: dict[str, str] = {}
    if config.key is not None:
        key = _text(lookup(record, config.key), blanks)
        if key is not None:
            keys["key"] = key
    email = _first(record, config.email, blanks)
    if email is not None:
        with contextlib.suppress(transforms.ConversionError):
            keys["email"] = transforms.email(email)
    phone = _first(record, config.phone, blanks)
    if phone is not None:
        with contextlib.suppress(transforms.ConversionError):
            keys["phone"] = transforms.phone_e164(phone, region=config.region)
    name = _joined(record, config.name, blanks)
    if name is not None and name_key(name):
        keys["name"] = name_key(name)
    for label, paths in config.compare:
        value = _joined(record, paths, blanks)
        if value is not None:
            keys[label] = transforms.value_key(value)
    return keys


def jaro_winkler(a: str, b: str) -> float:
    """Jaro-Winkler similarity, 0.0 (nothing alike) to 1.0 (equal)."""
    if a == b:
        return 1.0
    len_a, len_b = len(a), len(b)
    if not len_a or not len_b:
        return 0.0
    window = max(max(len_a, len_b) // 2 - 1, 0)
    matched_a = [False] * len_a
    matched_b = [False] * len_b
    matches = 0
    for i, char in enumerate(a):
        for j in range(max(0, i - window), min(i + window + 1, len_b)):
            if not matched_b[j] and b[j] == char:
                matched_a[i] = matched_b[j] = True
                matches += 1
                break
    if not matches:
        return 0.0
    transpositions = 0
    j = 0
    for i in range(len_a):
        if matched_a[i]:
            while not matched_b[j]:
                j += 1
            if a[i] != b[j]:
                transpositions += 1
            j += 1
    jaro = (matches / len_a + matches / len_b + (matches - transpositions / 2) / matches) / 3
    prefix = 0
    for x, y in zip(a[:4], b[:4], strict=False):
        if x != y:
            break
        prefix += 1
    return jaro + prefix * 0.1 * (1 - jaro)


def name_similarity(a: str, b: str) -> float:
    """The best of: as written, either side's words reversed, words sorted (for swapped
    given/family names). Symmetric: the order of the two names does not matter."""
    if a == b:
        return 1.0
    words_a, words_b = a.split(), b.split()
    return max(
        jaro_winkler(a, b),
        jaro_winkler(" ".join(reversed(words_a)), b),
        jaro_winkler(a, " ".join(reversed(words_b))),
        jaro_winkler(" ".join(sorted(words_a)), " ".join(sorted(words_b))),
    )


def compare(
    keys: dict[str, str], other: dict[str, str], compare_labels: Iterable[str], key_label: str = "key"
) -> tuple[str, tuple[str, ...], float] | None:
    """(kind, reasons, score) for one pair of key sets, or None when they do not look alike."""
    if keys.get("key") and keys.get("key") == other.get("key"):
        return "match", (f"same {key_label} {keys['key']!r}",), 1.0
    if keys.get("email") and keys.get("email") == other.get("email"):
        return "match", (f"same e-mail address {keys['email']}",), 1.0
    name_a, name_b = keys.get("name"), other.get("name")
    similarity = name_similarity(name_a, name_b) if name_a and name_b else None
    same_phone = bool(keys.get("phone")) and keys.get("phone") == other.get("phone")
    if same_phone:
        if similarity is None or name_a == name_b:
            return "match", (f"same phone number {keys['phone']}",), 1.0
        if similarity >= PHONE_NAME:
            return (
                "likely",
                (f"same phone number {keys['phone']}", f"similar name ({name_a!r} / {name_b!r})"),
                round(similarity, 3),
            )
    agreeing = [label for label in compare_labels if keys.get(label) and keys.get(label) == other.get(label)]
    sim = similarity or 0.0
    if (
        (sim >= SIMILAR_NAME and agreeing)
        or (sim >= LOOSE_NAME and len(agreeing) >= 2)
        or len(agreeing) >= AGREEING_DETAILS_ALONE
    ):
        reasons: list[str] = []
        if similarity is not None:
            kind_of = "same name" if name_a == name_b else "similar name"
            reasons.append(f"{kind_of} ({name_a!r} / {name_b!r})")
        reasons.extend(f"same {label}" for label in agreeing)
        score = round(min(0.99, 0.5 * sim + 0.5 * min(1.0, len(agreeing) / AGREEING_DETAILS_ALONE)), 3)
        return "likely", tuple(reasons), score
    return None


def find(
    config: DuplicateConfig, record_keys: dict[str, str], candidates: list[tuple[str, dict[str, str]]]
) -> list[DuplicateFinding]:
    """Findings for ``record_keys`` among ``candidates`` — matches first, then likely by score."""
    labels = [label for label, _ in config.compare]
    findings: list[DuplicateFinding] = []
    for candidate_id, other in candidates:
        try:
            found = compare(record_keys, other, labels, config.key_label)
        except Exception:  # noqa: S112 - a malformed candidate must not stop the check of the others
            continue
        if found is not None:
            kind, reasons, score = found
            findings.append(DuplicateFinding(str(candidate_id), kind, reasons, score))  # type: ignore[arg-type]
    findings.sort(key=lambda f: (f.kind != "match", -f.score, f.candidate))
    return findings
