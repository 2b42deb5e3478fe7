"""Batch import: streamed files become records; bad rows are reported by line and never stop it."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from integrations.models import ImportBatch, SyncRecord
from tests.pipeline.helpers import CONTACT_SPEC, make_integration

pytestmark = pytest.mark.django_db

ZIP_SPEC = {
    "record": {"source_id": "external_id"},
    "fields": [
        {"name": "external_id", "source": "external_id", "required": True},
        {"name": "zip", "source": {"code": "zip", "country": "country"}, "convert": ["postal_code"]},
    ],
}


@pytest.fixture
def hook(db):
    return make_integration(slug="imports", partner_url="http://127.0.0.1:9", spec=CONTACT_SPEC)


def test_a_csv_with_bad_rows_imports_the_good_ones_and_names_each_bad_line(hook, tmp_path, capsys):
    path = tmp_path / "contacts.csv"
    path.write_text(
        "id,email,first_name\n"
        "c-1,a@example.com,Ana\n"
        "c-2,b@example.com\n"  # ragged
        "c-3,c@example.com,Cleo\n"
        "c-4,d@example.com,Dan,extra\n"  # ragged
        "c-5,e@example.com,Eve\n",
        encoding="utf-8",
    )
    call_command("import_batch", hook.slug, str(path), "--quiet")
    out = capsys.readouterr().out
    assert "line 3: row has 2 cells, header has 3" in out
    assert "line 5:" in out
    batch = ImportBatch.objects.get()
    assert (batch.total_rows, batch.accepted_rows, batch.bad_rows) == (5, 3, 2)
    assert batch.status == "done"
    assert set(SyncRecord.objects.values_list("source_id", flat=True)) == {"c-1", "c-3", "c-5"}
    assert all(r.batch_id == batch.pk for r in SyncRecord.objects.all())


def test_importing_the_same_file_twice_stores_nothing_new(hook, tmp_path):
    path = tmp_path / "contacts.jsonl"
    path.write_text('{"id": "c-1", "email": "a@example.com"}\n{"id": "c-2", "email": "b@example.com"}\n')
    call_command("import_batch", hook.slug, str(path), "--quiet")
    call_command("import_batch", hook.slug, str(path), "--quiet")
    second = ImportBatch.objects.order_by("-id").first()
    assert (second.accepted_rows, second.duplicate_rows) == (0, 2)
    assert SyncRecord.objects.count() == 2


def test_a_json_array_keeps_big_integers_and_decimals_exact(hook, tmp_path):
    path = tmp_path / "records.json"
    path.write_text('[{"id": 7008123456789012345678, "total": 49.00}]')
    call_command("import_batch", hook.slug, str(path), "--quiet")
    record = SyncRecord.objects.get()
    assert record.source_id == "7008123456789012345678"
    assert str(record.payload["total"]) == "49.00"


def test_csv_cells_stay_text_so_leading_zeros_survive(db, tmp_path):
    """B10: ZIP 04101 must not become 4101 on the way in."""
    hook = make_integration(slug="zips", partner_url="http://127.0.0.1:9", spec=ZIP_SPEC)
    path = tmp_path / "zips.csv"
    path.write_text("external_id,zip,country\nc-1,04101,US\nc-2,0171,NO\nc-3,00192,IT\n")
    call_command("import_batch", hook.slug, str(path), "--quiet")
    assert dict(SyncRecord.objects.values_list("source_id", "payload__zip")) == {
        "c-1": "04101",
        "c-2": "0171",
        "c-3": "00192",
    }


@pytest.mark.parametrize(
    ("encoding", "bom"), [("utf-8", b""), ("utf-8", b"\xef\xbb\xbf"), ("utf-16-le", b"\xff\xfe"), ("cp1252", b"")]
)
def test_csv_encodings_are_read_as_the_right_text(hook, tmp_path, encoding, bom):
    """B14: non-ASCII names arrive as the same text whatever the file's encoding."""
    name = "Jean-François Lemaître" if encoding == "cp1252" else "Łukasz Żółw"
    path = tmp_path / "names.csv"
    path.write_bytes(bom + f"id,first_name\nc-1,{name}\n".encode(encoding))
    call_command("import_batch", hook.slug, str(path), "--quiet")
    assert SyncRecord.objects.get().payload["first_name"] == name


def test_an_unreadable_file_fails_the_batch_with_a_clear_message(hook, tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(CommandError, match="could not be read"):
        call_command("import_batch", hook.slug, str(path), "--quiet")
    assert ImportBatch.objects.get().status == "failed"


def test_an_unknown_integration_or_missing_file_is_a_clear_error(hook, tmp_path):
    with pytest.raises(CommandError, match="No integration is called 'nope'"):
        call_command("import_batch", "nope", str(tmp_path / "x.csv"))
    with pytest.raises(CommandError, match="Cannot open"):
        call_command("import_batch", hook.slug, str(tmp_path / "missing.csv"))


def test_records_of_a_scheduled_integration_wait_for_the_window(db, tmp_path):
    hook = make_integration(
        slug="nightly",
        partner_url="http://127.0.0.1:9",
        spec=CONTACT_SPEC,
        delivery_mode="scheduled",
        window_start=dt.time(1, 0),
        window_end=dt.time(4, 0),
    )
    hook.customer.time_zone = "America/Chicago"
    hook.customer.save()
    path = tmp_path / "c.jsonl"
    path.write_text('{"id": "c-1"}\n')
    call_command("import_batch", hook.slug, str(path), "--quiet")
    due = SyncRecord.objects.get().next_attempt_at
    local = due.astimezone(__import__("zoneinfo").ZoneInfo("America/Chicago"))
    now_local = timezone.now().astimezone(local.tzinfo)
    if dt.time(1, 0) <= now_local.time() < dt.time(4, 0):
        assert due <= timezone.now()
    else:
        assert (local.hour, local.minute) == (1, 0)
        assert due > timezone.now()


def test_a_record_too_deep_to_store_is_a_bad_row_and_the_import_goes_on(hook, tmp_path):
    path = tmp_path / "deep.jsonl"
    path.write_text('{"id": "ok-1"}\n{"id": "deep", "x": ' + "[" * 200 + "]" * 200 + '}\n{"id": "ok-2"}\n')
    call_command("import_batch", hook.slug, str(path), "--quiet")
    batch = ImportBatch.objects.get()
    assert (batch.status, batch.accepted_rows, batch.bad_rows) == ("done", 2, 1)
    assert "nested deeper than 64 levels" in batch.errors[0]["reason"]


def test_an_unterminated_quote_is_reported_not_swallowed_into_one_cell(hook, tmp_path):
    """Found by a fresh pair of eyes: the rest of the file used to become one silent cell."""
    path = tmp_path / "broken.csv"
    path.write_text('id,email\nc-1,a@example.com\nc-2,"b@example.com\nc-3,c@example.com\n')
    call_command("import_batch", hook.slug, str(path), "--quiet")
    batch = ImportBatch.objects.get()
    assert (batch.accepted_rows, batch.bad_rows) == (1, 1)
    assert batch.errors == [{"line": 3, "reason": "cannot split the row into cells: unexpected end of data"}]


def test_a_row_repeated_in_the_same_file_is_stored_once_and_counted_as_known(hook, tmp_path):
    path = tmp_path / "contacts.csv"
    path.write_text("id,email\nc-1,a@example.com\nc-2,b@example.com\nc-1,a@example.com\n", encoding="utf-8")
    call_command("import_batch", hook.slug, str(path), "--quiet")
    batch = ImportBatch.objects.get()
    assert (batch.total_rows, batch.accepted_rows, batch.duplicate_rows, batch.bad_rows) == (3, 2, 1, 0)
    assert SyncRecord.objects.count() == 2


def test_blank_rows_are_skipped_and_the_message_says_how_many(hook, tmp_path):
    path = tmp_path / "contacts.csv"
    path.write_text("id,email\nc-1,a@example.com\n\n,\nc-2,b@example.com\n", encoding="utf-8")
    call_command("import_batch", hook.slug, str(path), "--quiet")
    batch = ImportBatch.objects.get()
    assert (batch.total_rows, batch.accepted_rows, batch.bad_rows) == (2, 2, 0)
    assert batch.message.endswith("; 2 blank rows skipped")
