"""A generated 1,000,000-row CSV through ``manage.py import_batch``: rows/s and peak RSS.

    .venv/bin/python bench/import.py [--rows N]

On a fresh database ``syncdesk_bench_import`` and Redis db 11 (flushed; no worker runs, so the
records stay stored and pending). The CSV (8 columns, UTF-8, a quoted field with a line break every
1,000 rows) is written to a temporary directory. The import runs as its own process; its peak RSS
comes from ``wait4`` for that process alone. The baseline in the same run is PostgreSQL ``COPY`` of
the same rows (the CSV file as is, into a scratch table of text columns) — no parsing, no dedupe
keys, no JSON. Targets: <= 60 s and <= 250 MB for 1,000,000 rows.

Nothing is asserted about speed; it exits non-zero only if the import fails or the database does
not hold one record per row. The last line is the summary.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import PYTHON, ROOT, machine, make_integration, setup_stack

HEADER = ["external_id", "first_name", "last_name", "email", "phone", "zip", "country", "updated_at"]
NAMES = [("Inès", "Varga"), ("Jean-François", "Lemaître"), ("Łukasz", "Żółw"), ("Ayşe", "Yılmaz"), ("Tom", "Haddad")]

IMPORT_SPEC = {
    "record": {"source_id": "external_id", "updated_at": "updated_at"},
    "fields": [
        {"name": "external_id", "source": "external_id", "convert": ["text"], "required": True},
        {"name": "email", "source": "email", "convert": ["email"], "on_invalid": "review"},
        {"name": "first_name", "source": "first_name", "convert": ["trim"]},
        {"name": "last_name", "source": "last_name", "convert": ["trim"]},
        {"name": "phone", "source": "phone"},
        {"name": "postcode", "source": "zip"},
        {"name": "country", "source": "country"},
    ],
}


def generate(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for number in range(rows):
            first, last = NAMES[number % len(NAMES)]
            note = f"{first}\n{last}" if number % 1000 == 0 else last
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


def copy_baseline(url: str, path: Path) -> float:
    """Seconds PostgreSQL's COPY takes to load the same file into text columns."""
    import psycopg

    with psycopg.connect(url) as conn:
        conn.execute(f"CREATE TABLE bench_copy ({', '.join(f'{c} text' for c in HEADER)})")
        started = time.perf_counter()
        copy_sql = "COPY bench_copy FROM STDIN WITH (FORMAT csv, HEADER true)"
        with conn.cursor() as cur, cur.copy(copy_sql) as copy, path.open("rb") as handle:
            while data := handle.read(1 << 20):
                copy.write(data)
        conn.commit()
        elapsed = time.perf_counter() - started
        conn.execute("DROP TABLE bench_copy")
        conn.commit()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()

    print(f"machine: {machine()}")
    env = setup_stack("import")
    from integrations.models import ImportBatch, SyncRecord

    hook = make_integration("bench-import", "http://127.0.0.1:9", IMPORT_SPEC)
    failures: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "contacts.csv"
        started = time.perf_counter()
        generate(path, args.rows)
        size_mb = path.stat().st_size / 1e6
        print(f"file: {args.rows:,} rows, {size_mb:.1f} MB, written in {time.perf_counter() - started:.1f} s")

        copy_seconds = copy_baseline(env["DATABASE_URL"], path)
        print(
            f"baseline: COPY of the same file into text columns: {copy_seconds:.1f} s = "
            f"{args.rows / copy_seconds:,.0f} rows/s"
        )

        log = Path(tmp) / "import.log"
        with log.open("wb") as out:
            started = time.perf_counter()
            proc = subprocess.Popen(
                [PYTHON, "manage.py", "import_batch", hook.slug, str(path), "--quiet"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
            _, status, usage = os.wait4(proc.pid, 0)
            seconds = time.perf_counter() - started
            proc.returncode = os.waitstatus_to_exitcode(status)
        peak_mb = usage.ru_maxrss / 1024  # KiB on Linux
        output = log.read_text(errors="replace").strip()
        print(f"import_batch: {output.splitlines()[-1] if output else '(no output)'}")
        rate = args.rows / seconds
        print(
            f"import_batch: {args.rows:,} rows in {seconds:.1f} s = {rate:,.0f} rows/s, peak RSS {peak_mb:.0f} MB "
            f"(CPU {usage.ru_utime + usage.ru_stime:.1f} s in the import process); targets <= 60 s, <= 250 MB"
        )
        if proc.returncode != 0:
            failures.append(f"import_batch exited {proc.returncode}: {output[-2000:]}")
        stored = SyncRecord.objects.filter(integration=hook).count()
        batch = ImportBatch.objects.filter(integration=hook).order_by("-pk").first()
        print(
            f"records stored: {stored:,}; batch: {batch.status if batch else '-'}, "
            f"{batch.accepted_rows if batch else 0:,} accepted, {batch.bad_rows if batch else 0:,} bad"
        )
        if stored != args.rows:
            failures.append(f"{stored} records stored for {args.rows} rows")

    for failure in failures:
        print(f"FAILED: {failure}")
    print(
        f"SUMMARY import: {args.rows:,} CSV rows through import_batch in {seconds:.1f} s = {rate:,.0f} rows/s, "
        f"peak RSS {peak_mb:.0f} MB (targets <= 60 s, <= 250 MB); COPY baseline {copy_seconds:.1f} s, "
        f"ratio {seconds / copy_seconds:.1f}x slower"
        + ("" if not failures else f"; {len(failures)} CORRECTNESS FAILURE(S)")
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
