"""Read batch files (CSV, JSON, JSON Lines) as a stream of records, in constant memory.

Pure Python: no ORM, no settings, no network. ``open_records`` turns a binary stream into
``Row`` (a record and the 1-based line where it starts) and ``RowError`` (a line and a reason in
plain words) items; reading never stops at a bad row. ``ReaderError`` is raised only when the file
as a whole cannot be read (unknown format, an encoding that cannot be decoded, an empty file, a
JSON structure the splitter cannot find its way through).

What a caller can rely on:

* CSV cells are always text, exactly as written (``04101`` stays ``"04101"``, ``'04101`` keeps its
  apostrophe; cleaning values is the mapping's job). Records are ``dict[str, str]`` keyed by header.
* JSON numbers are exact: integers of any size stay ``int``, fractions become ``Decimal``
  (``49.00`` stays ``Decimal("49.00")``), via ``integrations.engine.exactjson``.
* Memory does not grow with the file: bytes are read and decoded in chunks, CSV/JSONL are split
  into lines and JSON arrays into elements; only the current record is held.
* ``ReadProgress`` (passed in or ``reader.progress``) is updated as the file is read: bytes read,
  good rows, bad rows, skipped blank rows, plus the format, encoding, delimiter, header and notes
  (renamed columns, an encoding switch) chosen along the way.

See docs/import.md for the rules in prose.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections import deque
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, BinaryIO, Final

from integrations.engine.exactjson import StorableJSONDecoder

__all__ = [
    "FORMATS",
    "ReadProgress",
    "ReaderError",
    "RecordReader",
    "Row",
    "RowError",
    "detect_format",
    "open_records",
]

FORMATS: Final = ("csv", "json", "jsonl")

CHUNK_BYTES: Final = 256 * 1024  # bytes read per call after the sample
SAMPLE_BYTES: Final = 1024 * 1024  # bytes looked at to choose the encoding (held in memory once)
SNIFF_CHARS: Final = 64 * 1024  # characters looked at to choose the CSV delimiter
MAX_RECORD_CHARS: Final = 16 * 1024 * 1024  # one line / one JSON element; beyond that the file is not a batch file

CSV_DELIMITERS: Final = (",", ";", "\t", "|")  # in order of preference when the sample cannot decide
CSV_EXTENSIONS: Final = frozenset({".csv", ".tsv", ".tab", ".psv"})
JSONL_EXTENSIONS: Final = frozenset({".jsonl", ".ndjson", ".jsonlines", ".ldjson"})
UNSUPPORTED_EXTENSIONS: Final = {
    ".xlsx": "an Excel workbook",
    ".xlsm": "an Excel workbook",
    ".xls": "an Excel workbook",
    ".ods": "a spreadsheet",
    ".numbers": "a Numbers spreadsheet",
    ".xml": "an XML file",
    ".parquet": "a Parquet file",
    ".zip": "a ZIP archive",
    ".gz": "a compressed file",
    ".pdf": "a PDF",
}
MAGIC: Final = (
    (b"PK\x03\x04", "a ZIP archive (an .xlsx workbook is one)"),
    (b"\xd0\xcf\x11\xe0", "an old Excel (.xls) workbook"),
    (b"\x1f\x8b", "a gzip-compressed file"),
    (b"%PDF", "a PDF"),
)
BOMS: Final = (  # longest first: the UTF-32-LE mark starts with the UTF-16-LE one
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
LABELS: Final = {
    "utf-8": "UTF-8",
    "cp1252": "Windows-1252 (Latin-1)",
    "iso8859-1": "Latin-1",
    "utf-16-le": "UTF-16-LE",
    "utf-16-be": "UTF-16-BE",
    "utf-32-le": "UTF-32-LE",
    "utf-32-be": "UTF-32-BE",
}

# Undecodable bytes become one lone surrogate each (U+DC00 + byte value). A successful decode never
# produces lone surrogates, so they mark exactly the bad bytes; the text is never handed out with
# them (the row is reported instead), and the reverse handler turns them back into the same bytes
# to count byte offsets.
_MARK: Final = "syncdesk-readers-mark"
_UNMARK: Final = "syncdesk-readers-unmark"
_MARKS: Final = re.compile("[\udc00-\udcff]+")
_CONTROL: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_JSON_NON_WS: Final = re.compile(r"[^ \t\n\r]")
_SUSPECT_ESCAPE: Final = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")
_STRUCTURE: Final = re.compile(r'["{}\[\],\s]')
_STRING_BODY: Final = re.compile(r'(?:[^"\\\n]+|\\[^\n])*')
_CLOSER: Final = {"{": "}", "[": "]"}
_BLANK: Final = " \t\r\n\ufeff"  # blank for "is the file empty"
_RESYNC: Final = re.compile(r"\n[ \t\r]*[{\]]")


def _mark_undecodable(exc: UnicodeError) -> tuple[str, int]:
    if isinstance(exc, UnicodeDecodeError):
        return "".join(chr(0xDC00 + b) for b in exc.object[exc.start : exc.end]), exc.end
    raise exc


def _unmark(exc: UnicodeError) -> tuple[bytes, int]:
    if isinstance(exc, UnicodeEncodeError):
        chars = exc.object[exc.start : exc.end]
        if all(0xDC00 <= ord(c) <= 0xDCFF for c in chars):
            return bytes(ord(c) - 0xDC00 for c in chars), exc.end
    raise exc


codecs.register_error(_MARK, _mark_undecodable)
codecs.register_error(_UNMARK, _unmark)


@dataclass(frozen=True, slots=True)
class Row:
    """One record. ``line`` is the 1-based physical line where it starts (CSV: the header is line 1)."""

    line: int
    record: Any


@dataclass(frozen=True, slots=True)
class RowError:
    """One record that could not be read, and why, in plain words."""

    line: int
    reason: str


class ReaderError(ValueError):
    """The file as a whole cannot be read. The message says why and where."""


@dataclass
class ReadProgress:
    """Updated while reading. ``rows`` counts good records, ``errors`` bad ones; ``skipped`` blank lines/rows."""

    bytes_read: int = 0
    rows: int = 0
    errors: int = 0
    skipped: int = 0
    file_format: str | None = None
    encoding: str | None = None  # Python codec name actually used: utf-8, cp1252, utf-16-le, ...
    delimiter: str | None = None
    header: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- format detection


def detect_format(name: str, head: bytes) -> str:
    """``"csv"``, ``"json"`` or ``"jsonl"`` from the file name and its first bytes.

    The extension decides for .csv/.tsv/.tab/.psv and .jsonl/.ndjson; for .json and anything else
    the content decides (``[`` → json; an object on the first line followed by more objects → jsonl;
    other ``{`` → json; anything else → csv). Raises ``ReaderError`` for an empty file, a workbook,
    an archive or a PDF.
    """
    ext = _extension(name)
    if ext in UNSUPPORTED_EXTENSIONS:
        raise ReaderError(
            f"cannot import {UNSUPPORTED_EXTENSIONS[ext]} ({ext}): save the data as CSV, JSON or JSON Lines"
        )
    for magic, what in MAGIC:
        if head.startswith(magic):
            raise ReaderError(f"the file is {what}, not CSV, JSON or JSON Lines: save the data as CSV and import that")
    text = _head_text(head)
    stripped = text.lstrip(_BLANK)
    if not stripped:
        raise ReaderError("the file is empty")
    if ext in CSV_EXTENSIONS:
        return "csv"
    if ext in JSONL_EXTENSIONS:
        return "jsonl"
    first = stripped[0]
    if first == "[":
        return "json"
    if first == "{":
        return "jsonl" if _looks_like_jsonl(stripped, strict=ext == ".json") else "json"
    return "json" if ext == ".json" else "csv"


def _extension(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1].lower()
    return "." + base.rsplit(".", 1)[1] if "." in base else ""


def _head_text(head: bytes) -> str:
    """A lenient decoding of the first few KiB, only to look at the first characters."""
    head = head[:4096]
    encoding, bom, _ = _bom_or_utf16(head)
    return head[bom:].decode(encoding or "utf-8", errors="replace")


def _looks_like_jsonl(text: str, *, strict: bool = False) -> bool:
    """An object on the first line, then more lines of objects (or, unless ``strict``, nothing else)."""
    first, _, rest = text.partition("\n")
    try:
        value = json.loads(first)
    except (ValueError, RecursionError):
        return False  # the first object spans lines: one JSON document
    if not isinstance(value, dict):
        return False
    if any(line.lstrip().startswith("{") for line in rest.split("\n", 50)[:50]):
        return True
    if strict:
        return False
    return bool(rest.strip(" \t\r\n")) or not isinstance(value.get("records"), list)


def _bom_or_utf16(head: bytes) -> tuple[str | None, int, str | None]:
    """(encoding, BOM length, note) from a byte-order mark, or from the zero bytes of BOM-less UTF-16."""
    for bom, encoding in BOMS:
        if head.startswith(bom):
            return encoding, len(bom), None
    sample = head[:4096]
    pairs = len(sample) // 2
    if pairs >= 2:
        even_zero = sample[0::2].count(0)
        odd_zero = sample[1::2].count(0)
        # ASCII-range text in UTF-16 has a zero in every other byte; real CSV with a stray NUL does not.
        if odd_zero >= 0.4 * pairs and even_zero <= 0.05 * pairs:
            return "utf-16-le", 0, "no byte-order mark; read as UTF-16-LE (every other byte is zero)"
        if even_zero >= 0.4 * pairs and odd_zero <= 0.05 * pairs:
            return "utf-16-be", 0, "no byte-order mark; read as UTF-16-BE (every other byte is zero)"
    return None, 0, None


def _looks_like_text(text: str) -> bool:
    return len(_CONTROL.findall(text)) * 100 <= len(text)  # a Latin-1 file has no control characters


def _utf8_evidence(data: bytes, final: bool) -> tuple[int, int, int]:
    """(valid non-ASCII characters, invalid bytes, offset of the first invalid byte) if read as UTF-8."""
    text = codecs.getincrementaldecoder("utf-8")(_MARK).decode(data, final)
    first = _MARKS.search(text)
    invalid = sum(len(m.group()) for m in _MARKS.finditer(text))
    non_ascii = sum(1 for c in text if ord(c) > 0x7F) - invalid if not text.isascii() else 0
    offset = len(text[: first.start()].encode("utf-8", _UNMARK)) if first else 0
    return non_ascii, invalid, offset


def _honour_bom(chosen: str, bom_encoding: str | None, bom: int) -> tuple[str, int]:
    """An explicit encoding of the BOM's family follows the BOM (and drops it); any other reads it as text."""
    if not bom or bom_encoding is None:
        return chosen, 0
    family = chosen.replace("-sig", "")[:6]
    return (bom_encoding, bom) if bom_encoding.startswith(family) else (chosen, 0)


def _label(encoding: str) -> str:
    return LABELS.get(encoding, encoding.upper())


# --------------------------------------------------------------------------- bytes -> text


class _Text:
    """The stream decoded to text in pieces. Undecodable bytes are located, never handed out silently.

    ``problems`` holds (absolute character index, message) for undecodable bytes in pieces already
    yielded; the line splitter and the JSON splitter turn them into row errors.
    """

    def __init__(self, stream: BinaryIO, head: bytes, eof: bool, encoding: str | None, progress: ReadProgress) -> None:
        self.stream = stream
        self.head = head
        self.eof = eof
        self.progress = progress
        self.problems: deque[tuple[int, str]] = deque()
        self.chars_out = 0  # characters yielded so far
        self.bytes_in = 0  # bytes given to the decoder so far (BOM included)
        self.auto = encoding is None
        self.ascii_so_far = True
        self._pushed: list[str] = []
        bom_encoding, self.bom, note = _bom_or_utf16(head)
        if encoding is not None:
            try:
                chosen = codecs.lookup(encoding).name
            except LookupError:
                raise ReaderError(f"unknown encoding {encoding!r}") from None
            chosen, self.bom = _honour_bom(chosen, bom_encoding, self.bom)
            self.auto = False
        elif bom_encoding is not None:
            chosen = bom_encoding
            self.auto = False
            progress.notes.append(f"byte-order mark found: read as {_label(chosen)}" if self.bom else note or "")
        else:
            chosen = "utf-8"
        self._use(chosen)
        self.bytes_in = self.bom
        progress.bytes_read = len(head)
        self._gen = self._pieces()

    def _use(self, encoding: str) -> None:
        self.encoding = encoding
        self.decoder = codecs.getincrementaldecoder(encoding)("strict")
        self.progress.encoding = encoding

    def peek(self) -> str:
        """The start of the text, to sniff: SNIFF_CHARS (or the whole file if shorter) and some non-blank text."""
        size = sum(len(piece) for piece in self._pushed)
        blank = not any(piece.strip(_BLANK) for piece in self._pushed)
        while size < SNIFF_CHARS or (blank and size < MAX_RECORD_CHARS):
            piece = next(self._gen, None)
            if piece is None:
                break
            self._pushed.append(piece)
            size += len(piece)
            blank = blank and not piece.strip(_BLANK)
        text = "".join(self._pushed)
        self._pushed = [text]
        return text

    def pieces(self) -> Iterator[str]:
        pushed, self._pushed = self._pushed, []
        yield from pushed
        yield from self._gen

    def _pieces(self) -> Iterator[str]:
        data = self.head[self.bom :]
        self.head = b""
        first = True
        while True:
            final = self.eof
            text = self._decode(data, final, first)
            first = False
            if text:
                yield text
                self.chars_out += len(text)
            if final:
                return
            data = self.stream.read(CHUNK_BYTES)
            if not data:
                self.eof = True
            else:
                self.progress.bytes_read += len(data)

    def _decode(self, data: bytes, final: bool, is_head: bool) -> str:
        state = self.decoder.getstate()
        pending = state[0] if isinstance(state[0], bytes) else b""
        start_offset = self.bytes_in - len(pending)  # byte offset of this piece's first character
        self.bytes_in += len(data)
        try:
            text = self.decoder.decode(data, final)
        except UnicodeDecodeError:
            self.decoder.setstate((b"", state[1]))
            text = self._recover(pending + data, start_offset, final, is_head)
        if self.ascii_so_far and not data.isascii():
            self.ascii_so_far = False
        return text

    def _recover(self, data: bytes, start_offset: int, final: bool, is_head: bool) -> str:
        """A strict decode of ``data`` failed: switch to Windows-1252, or mark the bad bytes."""
        if self.auto and self.encoding == "utf-8" and self.ascii_so_far:
            valid, invalid, first_bad = _utf8_evidence(data, final)
            byte = data[first_bad]
            where = f"byte 0x{byte:02X} at byte offset {start_offset + first_bad}"
            if valid <= invalid:  # no real UTF-8 in sight: Windows-1252 if that reads as text
                try:
                    latin: str | None = data.decode("cp1252")
                except UnicodeDecodeError:
                    latin = None
                if latin is not None and _looks_like_text(latin):
                    self._use("cp1252")
                    before = "" if is_head else "; everything before it was plain ASCII"
                    self.progress.notes.append(f"not UTF-8 ({where}{before}): read as Windows-1252 (Latin-1)")
                    return self.decoder.decode(data, final)
                if is_head:
                    raise ReaderError(
                        f"cannot decode the file: {where} is not valid UTF-8, and the file does not read as "
                        "Windows-1252/Latin-1 text either. Save it as UTF-8 (or UTF-16 with a byte-order mark) "
                        "and import it again."
                    )
        self.decoder.errors = _MARK
        try:
            text = self.decoder.decode(data, final)
        finally:
            self.decoder.errors = "strict"
        self._locate(text, start_offset)
        return text

    def _locate(self, text: str, start_offset: int) -> None:
        bom_len = len("".encode(self.encoding))  # "utf-16"/"utf-8-sig" would count a BOM per call
        offset = start_offset
        previous = 0
        label = _label(self.encoding)
        for match in _MARKS.finditer(text):
            offset += len(text[previous : match.start()].encode(self.encoding, _UNMARK)) - bom_len
            previous = match.start()
            bad = bytes(ord(c) - 0xDC00 for c in match.group())
            shown = " ".join(f"0x{b:02X}" for b in bad[:8])
            what = "byte" if len(bad) == 1 else "bytes"
            hint = " (if the file is Latin-1, import it with encoding cp1252)" if self.encoding == "utf-8" else ""
            message = f"has {what} {shown} at byte offset {offset}, which is not valid {label}{hint}"
            self.problems.append((self.chars_out + match.start(), message))


# --------------------------------------------------------------------------- text -> lines


class _Lines:
    """Physical lines (terminator kept, as the csv module needs) with per-line problems."""

    def __init__(self, text: _Text, newline: str) -> None:
        self.text = text
        self.newline = newline
        self.problems: deque[tuple[int, str]] = deque()  # (line number, message), ascending

    def __iter__(self) -> Iterator[str]:
        newline = self.newline
        carry = ""
        carry_at = 0  # absolute character index of carry[0]
        base_line = 0  # lines yielded so far
        pieces = self.text.pieces()
        for piece in pieces:
            body = carry + piece if carry else piece
            cut = body.rfind(newline) + 1
            if cut == 0:
                carry = body
                if len(carry) > MAX_RECORD_CHARS:
                    raise ReaderError(
                        f"line {base_line + 1} is longer than {MAX_RECORD_CHARS:,} characters: "
                        "this does not look like a CSV or JSON Lines file"
                    )
                continue
            if cut < len(body):
                carry, body = body[cut:], body[:cut]
            else:
                carry = ""
            self._note_problems(body, carry_at, base_line)
            yield from io.StringIO(body, newline=newline)
            base_line += body.count(newline)
            carry_at += len(body)
        if carry:
            self._note_problems(carry, carry_at, base_line)
            yield carry

    def _note_problems(self, body: str, body_at: int, base_line: int) -> None:
        found: dict[int, str] = {}
        problems = self.text.problems
        end = body_at + len(body)
        while problems and problems[0][0] < end:
            index, message = problems.popleft()
            found.setdefault(base_line + body.count(self.newline, 0, max(index - body_at, 0)) + 1, message)
        if "\x00" in body:
            index = body.find("\x00")
            while index >= 0:
                found.setdefault(base_line + body.count(self.newline, 0, index) + 1, "contains a NUL byte (\\x00)")
                index = body.find("\x00", index + 1)
        for line in sorted(found):
            self.problems.append((line, found[line]))

    def problem(self, start: int, end: int) -> str | None:
        """The first problem on lines start..end, forgetting those up to end."""
        problems = self.problems
        while problems and problems[0][0] < start:
            problems.popleft()
        message = None
        while problems and problems[0][0] <= end:
            line, text = problems.popleft()
            if message is None:
                message = text if line == start else f"{text} (on line {line})"
        return message


# --------------------------------------------------------------------------- the reader


class RecordReader(Iterator[Row | RowError]):
    """What ``open_records`` returns: an iterator of Row/RowError that also carries ``progress``.

    Nothing is read until the first ``next()``; ``ReaderError`` is raised from iteration.
    """

    def __init__(
        self,
        stream: BinaryIO,
        *,
        name: str,
        file_format: str | None,
        encoding: str | None,
        progress: ReadProgress | None,
        delimiter: str | None,
        records_key: str,
    ) -> None:
        if file_format is not None and file_format not in FORMATS:
            raise ReaderError(f"unknown format {file_format!r}: expected one of {', '.join(FORMATS)}")
        if delimiter is not None and len(delimiter) != 1:
            raise ReaderError(f"a CSV delimiter is one character, not {delimiter!r}")
        self.stream = stream
        self.name = name
        self.file_format = file_format
        self.encoding = encoding
        self.delimiter = delimiter
        self.records_key = records_key
        self.progress = progress if progress is not None else ReadProgress()
        self._items = self._read()

    def __iter__(self) -> RecordReader:
        return self

    def __next__(self) -> Row | RowError:
        return next(self._items)

    def close(self) -> None:
        self._items.close()

    def _read(self) -> Generator[Row | RowError]:
        head, eof = _read_sample(self.stream)
        file_format = self.file_format or detect_format(self.name, head)
        if not head:
            raise ReaderError("the file is empty")
        self.progress.file_format = file_format
        text = _Text(self.stream, head, eof, self.encoding, self.progress)
        first = text.peek()
        if not first.strip(_BLANK):
            raise ReaderError("the file is empty")
        if file_format == "csv":
            yield from self._read_csv(text, first)
        elif file_format == "jsonl":
            yield from self._read_jsonl(text, first)
        else:
            yield from _JSONArray(text, self.progress, self.records_key).items()

    # CSV --------------------------------------------------------------

    def _read_csv(self, text: _Text, first: str) -> Iterator[Row | RowError]:
        progress = self.progress
        newline = _newline(first)
        delimiter, skip_space = _sniff_csv(first[:SNIFF_CHARS], complete=text.eof and len(first) <= SNIFF_CHARS)
        if self.delimiter is not None:
            delimiter = self.delimiter
        progress.delimiter = delimiter
        if skip_space:
            progress.notes.append(
                f"every {_delimiter_name(delimiter)} is followed by a space: spaces after it are skipped"
            )
        lines = _Lines(text, newline)
        reader = csv.reader(
            lines, delimiter=delimiter, quotechar='"', doublequote=True, skipinitialspace=skip_space, strict=True
        )
        header: list[str] = []
        width = -1  # no header yet: every non-blank row goes to the header branch
        previous_end = 0
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                start, previous_end = previous_end + 1, reader.line_num
                if width < 0:
                    raise ReaderError(f"cannot read the header row (line {start}): {exc}") from None
                progress.errors += 1
                yield RowError(start, f"cannot split the row into cells: {exc}")
                continue
            start = previous_end + 1
            end = previous_end = reader.line_num
            if lines.problems:
                problem = lines.problem(start, end)
                if problem is not None:
                    if width < 0:
                        raise ReaderError(f"cannot read the header row (line {start}): it {problem}")
                    progress.errors += 1
                    yield RowError(start, f"row {problem}")
                    continue
            if len(cells) == width:
                first_cell = cells[0]
                if (not first_cell or first_cell.isspace()) and not "".join(cells).strip():
                    progress.skipped += 1
                    continue
                progress.rows += 1
                yield Row(start, dict(zip(header, cells, strict=True)))
                continue
            if not cells or not "".join(cells).strip():
                progress.skipped += 1
                continue
            if width < 0:
                header = _header_names(cells, start, progress.notes)
                width = len(header)
                progress.header = list(header)
                continue
            progress.errors += 1
            yield RowError(start, f"row has {len(cells)} {_cells(len(cells))}, header has {width}")
        if width < 0:
            raise ReaderError("the file has no header row (it has only blank lines)")

    # JSON Lines -------------------------------------------------------

    def _read_jsonl(self, text: _Text, first: str) -> Iterator[Row | RowError]:
        progress = self.progress
        lines = _Lines(text, _newline(first))
        decoder = StorableJSONDecoder()
        number = 0
        for raw in lines:
            number += 1
            if lines.problems:
                problem = lines.problem(number, number)
                if problem is not None:
                    progress.errors += 1
                    yield RowError(number, f"line {problem}")
                    continue
            stripped = raw.strip(" \t\r\n")
            if not stripped:
                progress.skipped += 1
                continue
            if number == 1 and stripped.startswith("\ufeff"):
                stripped = stripped[1:]
            lead = len(raw) - len(raw.lstrip(" \t\r\n"))
            try:
                value = decoder.decode(stripped)
            except json.JSONDecodeError as exc:
                progress.errors += 1
                yield RowError(number, f"invalid JSON at column {exc.colno + lead}: {exc.msg}")
                continue
            except (ValueError, RecursionError) as exc:
                progress.errors += 1
                yield RowError(number, f"invalid JSON: {_plain(exc)}")
                continue
            item = _as_record(value, number, "line", stripped, 0, len(stripped))
            if isinstance(item, Row):
                progress.rows += 1
            else:
                progress.errors += 1
            yield item


def open_records(
    stream: BinaryIO,
    *,
    name: str,
    file_format: str | None = None,
    encoding: str | None = None,
    progress: ReadProgress | None = None,
    delimiter: str | None = None,
    records_key: str = "records",
) -> RecordReader:
    """Stream the records of a CSV, JSON or JSON Lines file as ``Row`` / ``RowError`` items.

    ``name`` is the file name (its extension helps choose the format); ``file_format``, ``encoding``
    and ``delimiter`` override detection; ``records_key`` names the array in a ``{"records": [...]}``
    document. Reading is lazy and raises ``ReaderError`` (from iteration) when the whole file cannot be
    read; rows already yielded stay valid. ``progress`` (or ``reader.progress``) is updated as it goes.
    """
    return RecordReader(
        stream,
        name=name,
        file_format=file_format,
        encoding=encoding,
        progress=progress,
        delimiter=delimiter,
        records_key=records_key,
    )


# --------------------------------------------------------------------------- helpers


def _read_sample(stream: BinaryIO) -> tuple[bytes, bool]:
    parts: list[bytes] = []
    size = 0
    while size < SAMPLE_BYTES:
        data = stream.read(SAMPLE_BYTES - size)
        if not isinstance(data, bytes | bytearray):
            raise TypeError("open_records needs a binary stream (open the file with 'rb')")
        if not data:
            return b"".join(parts), True
        parts.append(bytes(data))
        size += len(data)
    return b"".join(parts), False


def _newline(sample: str) -> str:
    # Old Mac exports end lines with a lone CR; everything else has LF (CRLF included).
    return "\r" if "\n" not in sample and "\r" in sample else "\n"


def _sniff_csv(sample: str, *, complete: bool) -> tuple[str, bool]:
    """(delimiter, skip spaces after it) from the sample: the candidate that splits the header into
    the most consistent number of cells wins; ties go to the earlier of , ; TAB |."""
    best: tuple[float, int, int] | None = None
    chosen = ","
    chosen_rows: list[list[str]] = []
    for preference, delimiter in enumerate(CSV_DELIMITERS):
        rows = _sample_rows(sample, delimiter, complete)
        if not rows or len(rows[0]) < 2:
            continue
        width = len(rows[0])
        others = rows[1:]
        consistency = sum(len(row) == width for row in others) / len(others) if others else 1.0
        key = (consistency, width, -preference)
        if best is None or key > best:
            best, chosen, chosen_rows = key, delimiter, rows
    # The spaces are part of the delimiter (", ") only if every cell after one starts with a space.
    padded = unpadded = 0
    for row in chosen_rows:
        for cell in row[1:]:
            if cell.startswith(" "):
                padded += 1
            else:
                unpadded += 1
    return chosen, padded > 0 and unpadded == 0


def _sample_rows(sample: str, delimiter: str, complete: bool) -> list[list[str]]:
    rows: list[list[str]] = []
    reader = csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter)
    try:
        for row in reader:
            if row and "".join(row).strip():
                rows.append(row)
            if len(rows) > 200:
                break
    except csv.Error:
        pass
    if not complete and len(rows) > 1:
        rows.pop()  # may be cut in the middle
    return rows


def _header_names(cells: list[str], line: int, notes: list[str]) -> list[str]:
    """Header cells → unique names. Surrounding whitespace is dropped and inner runs of whitespace
    (line breaks in a header cell) become one space; a blank name becomes ``column_<n>`` and a repeat
    ``<name>_2``, ``<name>_3`` …, each with a note."""
    names: list[str] = []
    cleaned = [" ".join(cell.replace("\ufeff", "").split()) for cell in cells]
    taken = set(cleaned)
    seen: set[str] = set()
    for position, (raw, name) in enumerate(zip(cells, cleaned, strict=True), start=1):
        if name and name != raw.strip() and name != raw.replace("\ufeff", "").strip():
            notes.append(f"column {position}: whitespace inside the name {raw.strip()!r} read as {name!r}")
        if not name:
            new = _unique(f"column_{position}", taken | seen)
            notes.append(f"column {position} has no name in the header (line {line}): read as {new!r}")
            name = new
        elif name in seen:
            new = _unique(name, taken | seen)
            notes.append(f"column {position} repeats the name {name!r}: read as {new!r}")
            name = new
        seen.add(name)
        names.append(name)
    return names


def _unique(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    number = 2
    while f"{name}_{number}" in taken:
        number += 1
    return f"{name}_{number}"


def _cells(count: int) -> str:
    return "cell" if count == 1 else "cells"


def _delimiter_name(delimiter: str) -> str:
    return {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}.get(delimiter, repr(delimiter))


def _plain(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc)


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | Decimal):
        return "a number"
    return type(value).__name__


def _as_record(value: Any, line: int, what: str, text: str, start: int, end: int) -> Row | RowError:
    if not isinstance(value, dict):
        return RowError(line, f"{what} is {_kind(value)}, not a JSON object")
    if "\\u" in text[start:end] and _SUSPECT_ESCAPE.search(text, start, end):
        problem = _bad_string(value)
        if problem:
            return RowError(line, f"{what} has {problem}")
    return Row(line, value)


def _bad_string(value: Any) -> str | None:
    """NUL characters and unpaired surrogates parse as JSON but cannot be stored as text."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            if "\x00" in item:
                return "a NUL character (\\u0000) in a string, which cannot be stored"
            if any(0xD800 <= ord(c) <= 0xDFFF for c in item):
                return "an unpaired surrogate escape (\\ud800-\\udfff) in a string, which is not text"
    return None


# --------------------------------------------------------------------------- JSON documents


class _Broken(Exception):
    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index
        self.message = message


class _BrokenString(_Broken):
    pass


class _JSONArray:
    """Streams the elements of ``[...]`` or ``{"records": [...]}``.

    Each element is parsed in place with ``StorableJSONDecoder.raw_decode``; only when that fails does
    a small splitter (strings, escapes, bracket nesting) find where the element ends, so a malformed
    element becomes a RowError and reading continues after it. When the splitter cannot tell (brackets
    that do not match, the file ending inside an element) the file gets a ReaderError with the position.
    """

    def __init__(self, text: _Text, progress: ReadProgress, records_key: str) -> None:
        self.text = text
        self.pieces = text.pieces()
        self.progress = progress
        self.records_key = records_key
        self.decoder = StorableJSONDecoder()
        self.buf = ""
        self.pos = 0
        self.base = 0  # absolute character index of buf[0]
        self.eof = False
        self.cursor = 0  # index in buf whose line is known
        self.cursor_line = 1
        self.cursor_line_start = 0  # absolute index where cursor_line starts
        self.count = 0
        self.broken_string = False

    # buffer --------------------------------------------------------------

    def _fill(self, at_least: int = 1) -> bool:
        """Append at least ``at_least`` more characters (or up to the end); False at the end of the file."""
        if self.eof:
            return False
        self._advance(self.pos)
        if self.cursor > 0:
            self.buf = self.buf[self.cursor :]
            self.base += self.cursor
            self.pos -= self.cursor
            self.cursor = 0
        added = 0
        parts = [self.buf]
        while added < at_least:
            piece = next(self.pieces, None)
            if piece is None:
                self.eof = True
                break
            parts.append(piece)
            added += len(piece)
        self.buf = "".join(parts)
        return added > 0

    def _advance(self, index: int) -> None:
        if index <= self.cursor:
            return
        newlines = self.buf.count("\n", self.cursor, index)
        if newlines:
            self.cursor_line += newlines
            self.cursor_line_start = self.base + self.buf.rfind("\n", self.cursor, index) + 1
        self.cursor = index

    def _where(self, index: int) -> tuple[int, int]:
        index = max(index, self.cursor)
        line, line_start = self.cursor_line, self.cursor_line_start
        newlines = self.buf.count("\n", self.cursor, index)
        if newlines:
            line += newlines
            line_start = self.base + self.buf.rfind("\n", self.cursor, index) + 1
        return line, self.base + index - line_start + 1

    def _peek(self) -> str:
        """The next non-whitespace character (pos moves to it), or "" at the end of the file."""
        while True:
            match = _JSON_NON_WS.search(self.buf, self.pos)
            if match is not None:
                self.pos = match.start()
                return self.buf[self.pos]
            self.pos = len(self.buf)
            if not self._fill():
                return ""

    def _fail(self, index: int, message: str) -> ReaderError:
        line, column = self._where(index)
        return ReaderError(f"cannot read the JSON at line {line} column {column}: {message}")

    # values --------------------------------------------------------------

    def _value(self) -> tuple[Any, int, int, BaseException | None]:
        """Parse the value at pos: (value, start, end, None), or (None, start, end, error) when it is
        malformed but its end was found. The buffer grows (and shifts) as needed; pos stays at start."""
        while True:
            start = self.pos
            try:
                value, end = self.decoder.raw_decode(self.buf, start)
            except (ValueError, RecursionError) as exc:
                try:
                    end_found = _scan_end(self.buf, start, self.eof)
                except _BrokenString as broken:
                    self.broken_string = True
                    end_found = broken.index
                except _Broken as broken:
                    if not self.eof and broken.index >= len(self.buf):
                        end_found = None
                    else:
                        raise self._fail(broken.index, broken.message) from None
                if end_found is not None:
                    return None, start, max(end_found, start + 1), exc
                self._grow(start)
                continue
            if end == len(self.buf) and not self.eof:
                self._grow(start)  # a number or literal might continue in the next piece
                continue
            return value, start, end, None

    def _grow(self, start: int) -> None:
        held = len(self.buf) - start
        if held > MAX_RECORD_CHARS:
            line, _ = self._where(start)
            raise ReaderError(
                f"the JSON value starting at line {line} is larger than {MAX_RECORD_CHARS:,} characters "
                "(or a string or bracket in it is never closed)"
            )
        self._fill(max(held, CHUNK_BYTES))

    def _skip_value(self) -> None:
        while True:
            try:
                end = _scan_end(self.buf, self.pos, self.eof)
            except _Broken as broken:
                raise self._fail(broken.index, broken.message) from None
            if end is not None:
                self.pos = max(end, self.pos + 1)
                return
            self._grow(self.pos)

    # document ------------------------------------------------------------

    def items(self) -> Iterator[Row | RowError]:
        first = self._peek()
        if first == "[":
            self.pos += 1
            yield from self._elements()
        elif first == "{":
            yield from self._wrapper()
        elif first == "":
            raise ReaderError("the file is empty")
        else:
            raise self._fail(self.pos, f"expected a JSON array or object, found {first!r}")
        trailing = self._peek()
        if trailing:
            line, column = self._where(self.pos)
            self.progress.errors += 1
            yield RowError(line, f"unexpected text after the end of the JSON data at column {column}: {trailing!r}")

    def _wrapper(self) -> Iterator[Row | RowError]:
        self.pos += 1
        keys: list[str] = []
        found = False
        while True:
            char = self._peek()
            if char == "}":
                self.pos += 1
                break
            if char != '"':
                raise self._fail(
                    self.pos, "expected a key in double quotes" if char else "the file ends inside the top-level object"
                )
            key, _, end, error = self._value()
            if error is not None or not isinstance(key, str):
                raise self._fail(self.pos, "a key of the top-level object cannot be read")
            self.pos = end
            keys.append(key)
            if self._peek() != ":":
                raise self._fail(self.pos, f"expected ':' after the key {key!r}")
            self.pos += 1
            char = self._peek()
            if key == self.records_key:
                if char != "[":
                    raise self._fail(self.pos, f'"{key}" must be an array of records')
                found = True
                self.pos += 1
                yield from self._elements()
            elif char:
                self._skip_value()
            char = self._peek()
            if char == ",":
                self.pos += 1
            elif char != "}":
                raise self._fail(
                    self.pos,
                    "expected ',' or '}' in the top-level object"
                    if char
                    else "the file ends inside the top-level object",
                )
        if not found:
            shown = ", ".join(f'"{k}"' for k in keys[:10]) or "none"
            raise ReaderError(
                f'the JSON object has no "{self.records_key}" array (its keys: {shown}); expected an array of '
                f'objects, {{"{self.records_key}": [...]}}, or JSON Lines (one object per line)'
            )

    def _elements(self) -> Iterator[Row | RowError]:
        """From just after '[' to just after the matching ']'."""
        progress = self.progress
        problems = self.text.problems
        expect_value = True
        while True:
            char = self._peek()
            if char == "":
                raise self._fail(self.pos, "the file ends before the closing ']' of the records array")
            if char == "]":
                self.pos += 1
                return
            if char == ",":
                if expect_value:
                    line, _ = self._where(self.pos)
                    progress.errors += 1
                    yield RowError(line, "empty record (two commas in a row)")
                self.pos += 1
                expect_value = True
                continue
            if not expect_value:
                line, column = self._where(self.pos)
                progress.errors += 1
                yield RowError(line, f"expected ',' or ']' at column {column}, found {char!r}; reading on from there")
            if char in "}:":
                raise self._fail(self.pos, f"unexpected {char!r}")
            self._advance(self.pos)
            line = self.cursor_line
            value, start, end, error = self._value()
            self.count += 1
            abs_start, abs_end = self.base + start, self.base + end
            while problems and problems[0][0] < abs_start:
                problems.popleft()
            if problems and problems[0][0] < abs_end:
                message = problems[0][1]
                while problems and problems[0][0] < abs_end:
                    problems.popleft()
                progress.errors += 1
                yield RowError(line, f"record {message}")
            elif error is not None:
                progress.errors += 1
                if isinstance(error, json.JSONDecodeError):
                    err_line, err_column = self._where(error.pos)
                    yield RowError(line, f"invalid JSON at line {err_line} column {err_column}: {error.msg}")
                else:
                    yield RowError(line, f"invalid JSON: {_plain(error)}")
            else:
                item = _as_record(value, line, f"record {self.count}", self.buf, start, end)
                if isinstance(item, Row):
                    progress.rows += 1
                else:
                    progress.errors += 1
                yield item
            self.pos = end
            expect_value = False
            if self.broken_string:
                self.broken_string = False
                self._resync()
                expect_value = True

    def _resync(self) -> None:
        """Move to the next line that starts with '{' (a record) or ']' (the end of the array)."""
        while True:
            match = _RESYNC.search(self.buf, self.pos)
            if match is not None:
                self.pos = match.end() - 1
                return
            last_newline = self.buf.rfind("\n", self.pos)
            self.pos = last_newline if last_newline >= 0 else len(self.buf)
            if not self._fill():
                self.pos = len(self.buf)
                return


def _scan_end(buf: str, start: int, eof: bool) -> int | None:
    """Where the JSON value starting at ``start`` ends, by strings and brackets alone (no parsing).

    None: the buffer ends first (read more). Raises _Broken when brackets do not match or the file
    ends inside the value, and _BrokenString (with the index of the line break) when a string runs
    into a raw line break: JSON strings cannot hold one, so the value ends there and the caller
    resynchronises on the next line that starts a record.
    """
    stack: list[str] = []
    index = start
    size = len(buf)
    while True:
        match = _STRUCTURE.search(buf, index)
        if match is None:
            if not stack and eof:
                return size
            if eof:
                raise _Broken(size, "the file ends inside a record")
            return None
        at = match.start()
        char = buf[at]
        if char == '"':
            body = _STRING_BODY.match(buf, at + 1)
            stop = body.end() if body else at + 1
            if stop >= size or (buf[stop] == "\\" and stop + 1 >= size):
                if eof:
                    raise _Broken(size, "the file ends inside a string")
                return None
            if buf[stop] != '"':
                raise _BrokenString(stop, "a string runs into a line break")
            index = stop + 1
            if not stack and at == start:
                return index
            if not stack:
                return at
            continue
        if char in "{[":
            if not stack and at != start:
                return at
            stack.append(char)
            index = at + 1
            continue
        if char in "}]":
            if not stack:
                return at
            opener = stack.pop()
            if _CLOSER[opener] != char:
                raise _Broken(at, f"found '{char}' where '{_CLOSER[opener]}' was expected")
            index = at + 1
            if not stack:
                return index
            continue
        if not stack:  # ',' or whitespace ends a bare value
            return at
        index = at + 1
