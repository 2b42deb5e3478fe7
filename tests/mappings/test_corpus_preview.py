"""Acceptance: every file in corpus/csvkit_edgecases and corpus/blns goes through map_preview with
no crash, and every record gets an output or a clear problem."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from integrations.engine import exactjson
from integrations.services import mappings
from tests.conftest import CORPUS

# Reads the columns the csvkit files use, with conversions that can fail on odd values.
CORPUS_SPEC = {
    "record": {"source_id": "a"},
    "blank_values": ["N/A", "NULL", "-", "NA", "NONE", "."],
    "fields": [
        {"name": "first", "source": ["a", "foo", "column_a", "a "], "convert": [{"name": "trim", "collapse": True}]},
        {
            "name": "amount",
            "source": ["b", "bar", "column_b", " b "],
            "convert": [{"name": "decimal"}],
            "on_invalid": "review",
        },
        {"name": "day", "source": ["a", "foo"], "convert": [{"name": "date"}], "on_invalid": "drop"},
        {"name": "third", "source": ["c", "baz", "column_c", " c "], "convert": ["nfc", "trim"]},
        {"name": "flag", "source": ["d", "e"], "convert": ["boolean"], "on_invalid": "drop"},
    ],
}

FILES = sorted(
    p.relative_to(CORPUS).as_posix()
    for folder in ("csvkit_edgecases", "blns")
    if (CORPUS / folder).is_dir()
    for p in (CORPUS / folder).iterdir()
    if p.suffix in {".csv", ".json", ".jsonl"}
)


@pytest.mark.skipif(not FILES, reason="corpus not found")
@pytest.mark.parametrize("name", FILES)
def test_every_corpus_record_gets_an_output_or_a_clear_problem(name, integration, engineer):
    mappings.publish_spec(integration=integration, spec=CORPUS_SPEC, acting_user=engineer, note="corpus")
    out = io.StringIO()

    call_command("map_preview", integration.slug, str(CORPUS / name), stdout=out)

    lines = [exactjson.loads(line) for line in out.getvalue().splitlines()]
    assert lines, f"{name}: no lines printed"
    for item in lines:
        assert isinstance(item["line"], int)
        if "error" in item:
            assert set(item) == {"line", "error"}
            assert len(item["error"]) > 10
        else:
            assert item["decision"] in {"deliver", "review", "reject"}
            assert isinstance(item["output"], dict)
            assert item["decision"] == "deliver" or item["problems"], item
            assert all(p["reason"] for p in item["problems"])


def test_every_blns_string_is_a_clear_not_an_object_line(integration, engineer, corpus):
    mappings.publish_spec(integration=integration, spec=CORPUS_SPEC, acting_user=engineer, note="corpus")
    out = io.StringIO()
    count = len(exactjson.loads((corpus / "blns" / "blns.json").read_text("utf-8")))

    call_command("map_preview", integration.slug, str(corpus / "blns" / "blns.json"), stdout=out)

    lines = [exactjson.loads(line) for line in out.getvalue().splitlines()]
    assert len(lines) == count
    assert all(line["error"].endswith("is a string, not a JSON object") for line in lines)
