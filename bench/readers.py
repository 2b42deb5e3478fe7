"""Stream a generated 1,000,000-row CSV through the batch-import reader and print its speed.

    SECRET_KEY=x .venv/bin/python bench/readers.py [rows]

The baseline is the standard library's csv.reader over the same file in the same run (a text file
opened with newline=""), doing no more than counting rows. Peak RSS is read from
resource.getrusage after each pass; ru_maxrss never goes down, so the reader runs first and its
figure is not inflated by the baseline.
"""

from __future__ import annotations

import csv
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from integrations.engine.readers import ReadProgress, Row, open_records

HEADER = ["external_id", "first_name", "last_name", "email", "phone", "zip", "country", "updated_at"]
NAMES = [("Inès", "Varga"), ("Jean-François", "Lemaître"), ("Łukasz", "Żółw"), ("Ayşe", "Yılmaz"), ("Tom", "Haddad")]


def generate(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for number in range(rows):
            first, last = NAMES[number % len(NAMES)]
            note = f"{first}\n{last}" if number % 1000 == 0 else last  # a quoted field with a line break now and then
            writer.writerow(
                [
                    f"c-{number}",
                    first,
                    note,
                    f"user{number}@example.com",
                    f"+1 202-555-{number % 10000:04d}",
                    f"{number % 100000:05d}",
                    "US",
                    "2024-01-25T23:28:32-05:00",
                ]
            )


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.csv"
        generate(path, rows)
        size_mb = path.stat().st_size / 1e6
        print(f"file: {rows:,} rows, {size_mb:.1f} MB")
        rss_before = peak_rss_mb()

        progress = ReadProgress()
        started = time.perf_counter()
        good = 0
        with path.open("rb") as handle:
            for item in open_records(handle, name=path.name, progress=progress):
                if isinstance(item, Row):
                    good += 1
        reader_seconds = time.perf_counter() - started
        reader_rss = peak_rss_mb()
        assert good == rows == progress.rows, (good, rows, progress.rows)
        assert progress.errors == 0
        print(
            f"readers.open_records: {rows / reader_seconds:,.0f} rows/s ({reader_seconds:.2f} s), "
            f"{size_mb / reader_seconds:.0f} MB/s, peak RSS {reader_rss:.0f} MB (before reading {rss_before:.0f} MB)"
        )

        started = time.perf_counter()
        count = 0
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle)
            next(reader)
            for _ in reader:
                count += 1
        baseline_seconds = time.perf_counter() - started
        assert count == rows
        print(f"baseline csv.reader: {rows / baseline_seconds:,.0f} rows/s ({baseline_seconds:.2f} s)")
        ratio = reader_seconds / baseline_seconds
        print(
            f"SUMMARY readers: {rows:,} rows at {rows / reader_seconds:,.0f} rows/s, {ratio:.1f}x the time of plain "
            f"csv.reader, peak RSS {reader_rss:.0f} MB"
        )


if __name__ == "__main__":
    main()
