"""Batch import: stream a file into records, in constant memory, never stopping at a bad row."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from integrations.engine import exactjson, readers
from integrations.models import ImportBatch, Integration
from integrations.services import ingest
from integrations.sources.base import InboundItem

CHUNK_ROWS = 1000
MAX_STORED_ERRORS = 1000


@dataclass
class Progress:
    rows: int
    accepted: int
    duplicates: int
    bad: int
    bytes_read: int
    bytes_total: int
    elapsed: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta_seconds(self) -> float | None:
        if not self.bytes_read or not self.bytes_total or self.elapsed <= 0:
            return None
        return max(self.elapsed * (self.bytes_total - self.bytes_read) / self.bytes_read, 0.0)


_TEXT = frozenset({str})


def _storage_problem(record: dict[object, object]) -> str | None:
    """``exactjson.storage_problem``, with a shortcut for the usual record of text cells (every
    CSV row): one level deep, it can only fail on a NUL or an unpaired surrogate, and one join
    finds either. Anything else — or a problem found — gets the full check and its message."""
    if _TEXT.issuperset(map(type, record)) and _TEXT.issuperset(map(type, record.values())):
        text = "".join(record) + "".join(record.values())  # type: ignore[arg-type]
        if "\x00" not in text:
            if text.isascii():
                return None
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                pass
            else:
                return None
    return exactjson.storage_problem(record)


def start_batch(
    *, integration: Integration, file_name: str, acting_user: AbstractBaseUser | None, bytes_total: int = 0
) -> ImportBatch:
    return ImportBatch.objects.create(
        integration=integration, file_name=file_name[:300], created_by=acting_user, bytes_total=bytes_total
    )


def run_import(
    *,
    batch: ImportBatch,
    stream: BinaryIO,
    file_format: str | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> ImportBatch:
    """Read ``stream`` into records of ``batch.integration``, chunk by chunk (one transaction each).

    Bad rows are counted and the first 1,000 kept with line number and reason; a file that
    cannot be read at all fails the batch with a clear message. Side effects: SyncRecords,
    ImportBatch progress after every chunk, and a worker woken after each chunk commits."""
    integration = Integration.objects.select_related("customer").get(pk=batch.integration_id)
    if not batch.bytes_total:
        try:
            batch.bytes_total = os.fstat(stream.fileno()).st_size
        except (OSError, AttributeError, ValueError):
            batch.bytes_total = 0
    batch.status = ImportBatch.Status.RUNNING
    batch.started_at = timezone.now()
    batch.save(update_fields=["status", "started_at", "bytes_total"])
    started = time.monotonic()
    progress = readers.ReadProgress(bytes_read=0, rows=0, errors=0)
    errors: list[dict[str, object]] = list(batch.errors or [])
    pending: list[InboundItem] = []
    # PostgreSQL: COPY into a staging table, one INSERT … SELECT per flush (ingest.ImportWriter);
    # elsewhere ingest_items per CHUNK_ROWS rows. Same records and counts either way.
    writer = ingest.ImportWriter(integration, batch, chunk_rows=CHUNK_ROWS) if ingest.uses_staging() else None

    def flush(*, last: bool = False) -> None:
        if writer is not None:
            accepted, known = writer.flush(wait=last)
            batch.accepted_rows += accepted
            batch.duplicate_rows += known
        elif pending:
            stored = ingest.ingest_items(integration, pending, batch=batch)
            created = sum(1 for s in stored if s.created)
            batch.accepted_rows += created
            # Known already: stored before, or a repeat of a row earlier in this chunk.
            batch.duplicate_rows += len(pending) - created
            pending.clear()
        batch.bytes_read = progress.bytes_read
        batch.errors = errors
        batch.save(update_fields=["total_rows", "accepted_rows", "duplicate_rows", "bad_rows", "bytes_read", "errors"])
        if on_progress:
            on_progress(
                Progress(
                    rows=batch.total_rows,
                    accepted=batch.accepted_rows,
                    duplicates=batch.duplicate_rows,
                    bad=batch.bad_rows,
                    bytes_read=progress.bytes_read,
                    bytes_total=batch.bytes_total,
                    elapsed=time.monotonic() - started,
                )
            )

    try:
        for item in readers.open_records(stream, name=batch.file_name, file_format=file_format, progress=progress):
            batch.total_rows += 1
            if isinstance(item, readers.RowError):
                batch.bad_rows += 1
                if len(errors) < MAX_STORED_ERRORS:
                    errors.append({"line": item.line, "reason": item.reason})
                continue
            problem = (
                "the record is not an object with named fields"
                if not isinstance(item.record, dict)
                else _storage_problem(item.record)
            )
            if problem:
                batch.bad_rows += 1
                if len(errors) < MAX_STORED_ERRORS:
                    errors.append({"line": item.line, "reason": problem})
                continue
            if writer is not None:
                writer.add(item.record)
                if writer.full:
                    flush()
                continue
            pending.append(InboundItem(body=item.record))
            if len(pending) >= CHUNK_ROWS:
                flush()
        flush(last=True)
    except readers.ReaderError as exc:
        flush(last=True)
        batch.status = ImportBatch.Status.FAILED
        batch.message = f"The file could not be read: {exc}"
    else:
        batch.status = ImportBatch.Status.DONE
        batch.message = (
            f"{batch.accepted_rows} records stored, {batch.duplicate_rows} already known, {batch.bad_rows} bad rows"
        )
        if progress.skipped:  # not records, so not in the row counts; said so nobody wonders where they went
            batch.message += f"; {progress.skipped} blank row{'s' if progress.skipped != 1 else ''} skipped"
    finally:
        if writer is not None:
            writer.close()
    batch.finished_at = timezone.now()
    batch.save(update_fields=["status", "message", "finished_at"])
    return batch
