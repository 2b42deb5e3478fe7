"""mapping_export, mapping_import and map_preview through call_command, as an engineer runs them."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from integrations.engine import exactjson, spectext
from integrations.models import MappingVersion
from integrations.services import mappings
from tests.mappings.conftest import spec_with


def run(*args: str, **options: object) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, **options)
    return out.getvalue()


def test_mapping_export_prints_the_published_spec_as_yaml_that_reads_back(integration, engineer, contact_spec):
    mappings.publish_spec(integration=integration, spec=contact_spec, acting_user=engineer, note="First version")

    text = run("mapping_export", integration.slug)

    assert text.startswith(f"# {integration.slug} mapping v1 (published)\n# note: First version\n")
    assert "value_map:\n    enabled: active\n" in text
    assert spectext.load_spec_text(text) == contact_spec


def test_mapping_export_of_an_older_version_as_json(integration, engineer, contact_spec):
    mappings.publish_spec(integration=integration, spec=contact_spec, acting_user=engineer, note="v1")
    mappings.publish_spec(integration=integration, spec=spec_with(invited="invited"), acting_user=engineer, note="v2")

    text = run("mapping_export", integration.slug, "--version", "1", "--format", "json")

    assert json.loads(text) == contact_spec


def test_mapping_export_of_a_missing_version_says_so(integration):
    with pytest.raises(CommandError, match="has no published mapping version yet"):
        run("mapping_export", integration.slug)
    with pytest.raises(CommandError, match="No integration is called 'nope'"):
        run("mapping_export", "nope")


def test_mapping_import_saves_a_draft_then_publishes_with_the_note(integration, engineer, tmp_path, contact_spec):
    path = tmp_path / "spec.yaml"
    path.write_text(spectext.dump_spec_text(contact_spec), encoding="utf-8")

    assert "draft saved" in run("mapping_import", integration.slug, str(path), "--user", "erin")
    out = run("mapping_import", integration.slug, str(path), "--note", "From file", "--publish", "--user", "erin")

    assert out.strip() == f"{integration.slug}: published v1 — From file"
    version = MappingVersion.objects.get(integration=integration, status="published")
    assert version.spec == contact_spec
    assert version.published_by == engineer
    assert version.history.latest().history_user == engineer


def test_mapping_import_of_an_invalid_file_names_every_problem_and_writes_nothing(integration, tmp_path):
    path = tmp_path / "spec.json"
    path.write_text('{"fields": [{"name": "a", "convert": ["nope"]}, {"name": "b", "owner": "me"}]}')

    with pytest.raises(CommandError) as refused:
        run("mapping_import", integration.slug, str(path), "--note", "x", "--publish")

    assert "nope" in str(refused.value)
    assert "owner" in str(refused.value)
    assert not MappingVersion.objects.filter(integration=integration).exists()


def test_mapping_import_without_a_note_is_refused_when_publishing(integration, tmp_path, contact_spec):
    path = tmp_path / "spec.yaml"
    path.write_text(spectext.dump_spec_text(contact_spec))

    with pytest.raises(CommandError, match="change note is required"):
        run("mapping_import", integration.slug, str(path), "--publish")


def test_mapping_import_of_broken_yaml_says_where(integration, tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text("fields:\n  - name: [unclosed\n")

    with pytest.raises(CommandError, match=r"(?s)not valid YAML.*line 2"):
        run("mapping_import", integration.slug, str(path))


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_map_preview_prints_one_json_line_per_record_and_one_per_bad_row(integration, engineer, tmp_path, contact_spec):
    mappings.publish_spec(integration=integration, spec=contact_spec, acting_user=engineer, note="v1")
    path = write_jsonl(
        tmp_path / "records.jsonl",
        [
            '{"id": 12345678901234567890, "email": "A@B.CO", "state": "enabled", "total": 49.00}',
            '{"id": 2, "email": "x@y.org", "state": "???"}',
            "{broken",
            '"just a string"',
        ],
    )

    lines = [exactjson.loads(line) for line in run("map_preview", integration.slug, str(path)).splitlines()]

    assert lines[0] == {
        "line": 1,
        "source_id": "12345678901234567890",
        "decision": "deliver",
        "output": {"email": "a@b.co", "status": "active"},
        "problems": [],
        "trace": lines[0]["trace"],
    }
    assert lines[1]["decision"] == "review"
    assert lines[1]["problems"][0]["code"] == "unmapped_value"
    assert lines[2]["line"] == 3
    assert "error" in lines[2]
    assert lines[3] == {"line": 4, "error": "line is a string, not a JSON object"}


def test_map_preview_can_use_the_draft_an_old_version_or_a_spec_file(integration, engineer, tmp_path, contact_spec):
    mappings.publish_spec(integration=integration, spec=contact_spec, acting_user=engineer, note="v1")
    mappings.publish_spec(integration=integration, spec=spec_with(weird="odd"), acting_user=engineer, note="v2")
    mappings.draft_save(integration=integration, spec=spec_with(weird="draft"), acting_user=engineer)
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(spectext.dump_spec_text(spec_with(weird="file")))
    path = write_jsonl(tmp_path / "r.jsonl", ['{"id": 1, "email": "a@b.co", "state": "Weird"}'])

    def status(*options: str) -> object:
        return exactjson.loads(run("map_preview", integration.slug, str(path), *options))["output"].get("status")

    assert status() == "odd"
    assert status("--version", "1") is None
    assert status("--draft") == "draft"
    assert status("--spec", str(spec_file)) == "file"


def test_map_preview_keeps_numbers_exact_in_the_output(integration, engineer, tmp_path):
    spec = {
        "fields": [
            {"name": "total", "source": "total", "convert": [{"name": "decimal"}]},
            {"name": "id", "source": "id"},
        ]
    }
    mappings.publish_spec(integration=integration, spec=spec, acting_user=engineer, note="v1")
    path = write_jsonl(tmp_path / "r.jsonl", ['{"id": 9007199254740993, "total": "49.00"}'])

    text = run("map_preview", integration.slug, str(path))

    assert '"output":{"total":49.00,"id":9007199254740993}' in text
