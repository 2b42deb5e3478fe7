"""Storing inbound records: once, race-safe, before anything else happens to them.

Two ways in, one set of rules (dedupe key, stored payload, initial status, duplicates refused by
the unique key with ``INSERT … ON CONFLICT DO NOTHING``):

* ``ingest_items`` — a webhook's records, or any list of items. On PostgreSQL up to
  ``STATEMENT_ROWS`` items are one statement; outside a transaction it runs in autocommit, so a
  one-record webhook costs one round trip instead of BEGIN + INSERT + COMMIT.
* ``ImportWriter`` — the rows of an import batch on PostgreSQL: COPYed into a temporary table
  and moved into the record table by one ``INSERT … SELECT … ON CONFLICT DO NOTHING`` per
  flush (see bench/import.py and docs/bench.md for why).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from integrations import queue
from integrations.engine import exactjson, mapping
from integrations.models import ImportBatch, Integration, MappingVersion, SyncRecord
from integrations.services import specs
from integrations.sources.base import InboundItem


@dataclass(frozen=True)
class Stored:
    id: int
    source_id: str
    created: bool
    status: str


class StaleIntegration(Exception):
    """``ingest_items(guard=True)``: the integration or its published version changed since the
    caller read them. Nothing was stored; read them again and retry."""


# --------------------------------------------------------------------------------------------
# Dedupe keys and the payload text
# --------------------------------------------------------------------------------------------


def payload_text(payload: Any) -> str:
    """``exactjson.dumps(payload, sort_keys=True)``: what the dedupe hash is taken of, and on
    PostgreSQL what is stored as the jsonb payload (jsonb keeps no key order of its own)."""
    return exactjson.dumps(payload, sort_keys=True)


def payload_hash(payload: Any) -> str:
    return hashlib.sha256(payload_text(payload).encode()).hexdigest()


def _key(event_id: str | None, source_id: str, updated_at: datetime | None, text: str | None, payload: Any) -> str:
    if event_id:
        return "evt:" + event_id[:240]
    stamp = updated_at.isoformat() if updated_at else ""
    if text is None:
        text = payload_text(payload)
    digest = hashlib.sha256(text.encode()).hexdigest()[:32]
    raw = f"rec:{source_id}:{stamp}:{digest}"
    if len(raw) > 255:
        raw = "rec:" + hashlib.sha256(raw.encode()).hexdigest()
    return raw


def dedupe_key(*, event_id: str | None, source_id: str, updated_at: datetime | None, payload: Any) -> str:
    """The source's event id when it has one; else source id + updated-at + payload hash.

    Two deliveries of the same event always get the same key; a changed record gets a new one."""
    return _key(event_id, source_id, updated_at, None, payload)


def _text(value: Any) -> str:
    return "" if value is None else str(value)[:255]


class _Row(NamedTuple):
    """One record ready to store: the columns that differ from record to record."""

    dedupe_key: str
    source_id: str
    event_id: str
    event_type: str
    source_updated_at: datetime | None
    parent_source_id: str
    group_key: str
    payload: Any
    text: str | None  # payload_text(payload), when the statement needs it


class _Preparer:
    """Record options of the published version applied to items: ids, updated-at, dedupe key."""

    def __init__(self, spec: Any, *, with_text: bool) -> None:
        self.spec = spec
        # Only merged groups share a destination record (and a lease); see processing.
        self.merge = spec is not None and spec.group_mode == "merge"
        self.with_text = with_text

    def row(
        self,
        body: Any,
        source_id: str | None = None,
        event_id: str | None = None,
        event_type: str | None = None,
        updated_at: datetime | None = None,
    ) -> _Row:
        meta = mapping.record_meta(self.spec, body) if self.spec is not None else None
        if meta is not None:
            source_id = source_id or meta.source_id
            updated_at = updated_at or meta.updated_at
            event_id = event_id or meta.event_id
        source_id = source_id or ""
        text = payload_text(body) if self.with_text else None
        return _Row(
            _key(event_id, source_id, updated_at, text, body),
            _text(source_id),
            _text(event_id),
            _text(event_type)[:100],
            updated_at,
            _text(meta.parent_id if meta else None),
            _text(meta.group_key if meta and self.merge else None),
            body,
            text,
        )


def _initial_state(integration: Integration, now: datetime) -> tuple[str, datetime | None]:
    if integration.is_paused:
        return SyncRecord.Status.HELD, None
    # The window is the integration's own or a customer rule's (rules_service.window_for).
    from integrations.services import rules as rules_service

    return SyncRecord.Status.PENDING, rules_service.delivery_time(integration, now)


def _may_wait_for_window(integration: Integration) -> bool:
    """True if the initial state may count a window rule as used (an on-commit write)."""
    from integrations.services import rules as rules_service

    return not integration.is_paused and rules_service.window_for(integration) is not None


# --------------------------------------------------------------------------------------------
# Statements
# --------------------------------------------------------------------------------------------

# The columns that differ per record; every other column is one value for the whole statement.
_PER_ROW = (
    "source_id",
    "event_id",
    "event_type",
    "dedupe_key",
    "source_updated_at",
    "parent_source_id",
    "group_key",
    "payload",
)


def _fields() -> dict[str, Any]:
    return {f.attname: f for f in SyncRecord._meta.concrete_fields if f.attname != "id"}


# Columns the statement sets to one value for all its records, and that value's parameter name.
_SET = {
    "integration_id": "integration",
    "received_at": "now",
    "updated_at": "now",
    "status": "status",
    "next_attempt_at": "due",
    "batch_id": "batch",
}


@functools.cache
def _fixed_exprs() -> dict[str, str]:
    """SQL for every column that is not per record: a named, typed parameter for the values of
    _SET, and the model field's default for the rest (what Model.save() would write). A
    constant default (0, "", False, None, an empty list) is written into the statement once as a
    literal quoted by psycopg — fewer parameters to quote on every request; a default computed
    by a function stays a parameter (``default_<column>``), computed per statement."""
    from psycopg import sql

    connection.ensure_connection()
    exprs = {}
    for column, field in _fields().items():
        if column in _PER_ROW:
            continue
        cast = field.db_type(connection)
        if column in _SET:
            exprs[column] = f"%({_SET[column]})s::{cast}"
        elif not field.has_default() or not callable(field.default) or field.default in (list, dict):
            literal = sql.Literal(field.get_db_prep_save(field.get_default(), connection))
            # A "%" in it would read as a placeholder.
            exprs[column] = f"{literal.as_string(connection.connection).replace('%', '%%')}::{cast}"
        else:
            exprs[column] = f"%(default_{column})s::{cast}"
    return exprs


def _fixed_params(
    integration_id: int, status: str, due: datetime | None, now: datetime, batch_id: int | None
) -> dict[str, Any]:
    """The parameters of _fixed_exprs for one statement."""
    params: dict[str, Any] = {
        "integration": integration_id,
        "now": now,
        "status": status,
        "due": due,
        "batch": batch_id,
    }
    fields = _fields()
    for column, expr in _fixed_exprs().items():
        if expr.startswith("%(default_"):
            params[f"default_{column}"] = fields[column].get_db_prep_save(fields[column].get_default(), connection)
    return params


def _insert_sql(per_row: dict[str, str], source: str) -> str:
    """``INSERT INTO record (…) SELECT <per-row expressions, fixed values> FROM <source>
    ON CONFLICT DO NOTHING``. Only quoted identifiers, column types, psycopg-quoted constant
    defaults and named placeholders are formatted in; every value is a parameter."""
    qn = connection.ops.quote_name
    fixed = _fixed_exprs()
    columns = list(_fields())
    exprs = [per_row[c] if c in per_row else fixed[c] for c in columns]
    return (
        f"INSERT INTO {qn(SyncRecord._meta.db_table)} ({', '.join(qn(c) for c in columns)}) "  # noqa: S608
        f"SELECT {', '.join(exprs)} FROM {source} "
        f"ON CONFLICT ({qn('integration_id')}, {qn('dedupe_key')}) DO NOTHING"
    )


@functools.cache
def _statement_sql(guard: bool) -> str:
    """PostgreSQL, one statement for up to STATEMENT_ROWS records: the per-record columns come
    as one JSON array of rows (one parameter; psycopg quotes one string instead of ~30 arrays
    element by element, the largest cost of a 1,000-record request). With ``guard`` the rows are
    inserted only if the integration row (updated_at, status) and its published version are the
    ones the caller cached, and a last (NULL, NULL) row says the guard held."""
    qn = connection.ops.quote_name
    per_row = {
        "source_id": "r.v->>0",
        "event_id": "r.v->>1",
        "event_type": "r.v->>2",
        "dedupe_key": "r.v->>3",
        "source_updated_at": "(r.v->>4)::timestamptz",
        "parent_source_id": "r.v->>5",
        "group_key": "r.v->>6",
        "payload": "r.v->7",
    }
    source = "jsonb_array_elements(%(rows)s::jsonb) WITH ORDINALITY AS r(v, n)"
    source += " WHERE EXISTS (SELECT FROM ok) ORDER BY r.n" if guard else " ORDER BY r.n"
    insert = _insert_sql(per_row, source) + f" RETURNING {qn('id')}, {qn('dedupe_key')}"
    if not guard:
        return insert
    i, v = Integration._meta.db_table, MappingVersion._meta.db_table
    ok = (
        f"SELECT FROM {qn(i)} i WHERE i.{qn('id')} = %(integration)s "  # noqa: S608
        f"AND i.{qn('updated_at')} = %(cached_updated_at)s::timestamptz AND i.{qn('status')} = %(cached_status)s "
        f"AND (SELECT v.{qn('id')} FROM {qn(v)} v WHERE v.{qn('integration_id')} = i.{qn('id')} "
        f"AND v.{qn('status')} = 'published') IS NOT DISTINCT FROM %(cached_version)s::bigint"
    )
    return (
        f"WITH ok AS ({ok}), ins AS ({insert}) "  # noqa: S608
        f"SELECT {qn('id')}, {qn('dedupe_key')} FROM ins UNION ALL SELECT NULL, NULL FROM ok"
    )


def _row_json(row: _Row) -> str:
    """One element of the statement's JSON array: the text columns, then the payload as is."""
    updated = row.source_updated_at
    if updated is not None and updated.tzinfo is None:
        updated = timezone.make_aware(updated)  # what Django does with a naive datetime (USE_TZ)
    head = exactjson.dumps(
        [
            row.source_id,
            row.event_id,
            row.event_type,
            row.dedupe_key,
            updated.isoformat() if updated is not None else None,
            row.parent_source_id,
            row.group_key,
        ]
    )
    return head[:-1] + "," + row.text + "]"  # type: ignore[operator]


def _execute(sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Run ``sql`` on Django's connection and fetch its rows — as a prepared statement when
    ``SYNCDESK_PREPARED_STATEMENTS`` is on (``DATABASE_PREPARED_STATEMENTS``; default on): then
    PostgreSQL parses and plans the 32-column INSERT once per connection instead of on every
    request (half of its CPU for a one-record webhook).

    Django's own cursors bind parameters on the client and never prepare. This one is Django's
    server-binding cursor class, wrapped like any Django cursor (execute wrappers, error
    mapping), and the connection may prepare only while it runs: left on, psycopg would keep the
    text of every other query of the connection (values included) in its prepared-statement
    bookkeeping."""
    connection.ensure_connection()
    if not settings.SYNCDESK_PREPARED_STATEMENTS:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()
    from django.db.backends.postgresql.base import ServerBindingCursor

    raw = connection.connection
    with connection.wrap_database_errors:
        server_cursor = ServerBindingCursor(raw)
    cursor = (
        connection.make_debug_cursor(server_cursor)
        if connection.queries_logged
        else connection.make_cursor(server_cursor)
    )
    previous, raw.prepare_threshold = raw.prepare_threshold, 0
    try:
        cursor.execute(sql, params)
        return cursor.fetchall()
    finally:
        raw.prepare_threshold = previous
        cursor.close()


def _run_statement(sql: str, params: dict[str, Any]) -> tuple[list[tuple[Any, ...]], bool]:
    """Run ingest's one statement: its rows, and whether it had to be sent a second time.

    Outside a transaction Django's health check of a reused connection (a ``SELECT 1`` before the
    request's first query: a second round trip for a one-statement webhook) is skipped. If the
    reused connection turns out dead (PostgreSQL restarted, an idle timeout), it is closed and
    the statement sent once more on a new one. Sending it twice is safe: in autocommit it is all
    or nothing, and rows that did commit before the connection died are found by their dedupe
    keys (see _ingest). A connection that cannot be opened at all is not tried twice. Inside a
    transaction nothing can be sent again, so the usual check runs."""
    if connection.in_atomic_block:
        connection.close_if_health_check_failed()
        return _execute(sql, params), False
    reused = connection.connection is not None
    connection.health_check_done = True  # the statement itself tells whether the connection works
    try:
        return _execute(sql, params), False
    except (OperationalError, InterfaceError):
        if not reused or (connection.connection is not None and not connection.connection.closed):
            raise  # a new connection that failed, or a working one whose statement failed
        connection.close()
    return _execute(sql, params), True


def _insert_postgres(
    integration: Integration,
    rows: list[_Row],
    params: dict[str, Any],
    *,
    guard: bool,
    published: MappingVersion | None,
) -> tuple[dict[str, int], bool]:
    """One statement; returns dedupe_key -> id for the rows it created, and whether the statement
    had to be sent a second time (then rows it stored the first time show up as existing)."""
    params = {**params, "rows": "[" + ",".join(_row_json(r) for r in rows) + "]"}
    if guard:
        params["cached_updated_at"] = integration.updated_at
        params["cached_status"] = integration.status
        params["cached_version"] = published.pk if published else None
    result, resent = _run_statement(_statement_sql(guard), params)
    if guard:
        if (None, None) not in result:
            raise StaleIntegration
        result = [r for r in result if r[0] is not None]
    return {key: pk for pk, key in result}, resent


def _insert_values(
    integration: Integration, rows: list[_Row], status: str, due: datetime | None, now: datetime, batch_id: int | None
) -> dict[str, int]:
    """Any other database (SQLite): a VALUES list, every value a parameter."""
    fields = _fields()
    columns = list(fields)
    qn = connection.ops.quote_name
    table = qn(SyncRecord._meta.db_table)
    set_values = {
        "integration_id": integration.pk,
        "received_at": now,
        "updated_at": now,
        "status": status,
        "next_attempt_at": due,
        "batch_id": batch_id,
    }
    fixed = {
        column: field.get_db_prep_save(set_values[column] if column in set_values else field.get_default(), connection)
        for column, field in fields.items()
        if column not in _PER_ROW
    }
    params: list[Any] = []
    for row in rows:
        for column in columns:
            if column in fixed:
                params.append(fixed[column])
            else:
                params.append(fields[column].get_db_prep_save(getattr(row, column), connection))
    one = "(" + ",".join(["%s"] * len(columns)) + ")"
    sql = (
        f"INSERT INTO {table} ({','.join(qn(c) for c in columns)}) VALUES {','.join([one] * len(rows))} "  # noqa: S608
        f"ON CONFLICT ({qn('integration_id')}, {qn('dedupe_key')}) DO NOTHING RETURNING {qn('id')}, {qn('dedupe_key')}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {key: pk for pk, key in cursor.fetchall()}


# SQLite allows at most 32,766 bound parameters per statement; ~30 columns → 500 rows fit.
_CHUNK = 500
# PostgreSQL: one statement (one JSON parameter) for a whole webhook request.
STATEMENT_ROWS = 1000

_FETCH: Any = object()


def ingest_items(
    integration: Integration,
    items: Sequence[InboundItem],
    *,
    batch: ImportBatch | None = None,
    published: MappingVersion | None = _FETCH,
    guard: bool = False,
) -> list[Stored]:
    """Store each inbound item once; wake a worker after commit.

    Side effects: inserts SyncRecord rows (a duplicate — same dedupe key — inserts nothing and is
    reported with the existing id; the same key twice in one call is stored and reported once),
    then, after commit, wakes the integration's drain job. All or nothing: one transaction, or
    one statement in autocommit when one statement does it all (PostgreSQL, at most
    STATEMENT_ROWS items, no window rule to count as used).

    ``published``: the integration's published version if the caller already has it.
    ``guard`` (PostgreSQL): ``integration`` and ``published`` come from a cache; the rows are
    inserted only if the integration's updated_at and status and its published version are still
    those, else StaleIntegration is raised and nothing is stored."""
    postgres = connection.vendor == "postgresql"
    if published is _FETCH:
        published = specs.published_version(integration.pk)
    if (
        postgres
        and len(items) <= STATEMENT_ROWS
        and not connection.in_atomic_block
        and not _may_wait_for_window(integration)
    ):
        return _ingest(integration, items, batch, published, guard)
    with transaction.atomic():
        return _ingest(integration, items, batch, published, guard)


def _ingest(
    integration: Integration,
    items: Sequence[InboundItem],
    batch: ImportBatch | None,
    published: MappingVersion | None,
    guard: bool,
) -> list[Stored]:
    postgres = connection.vendor == "postgresql"
    now = timezone.now()
    try:
        spec = specs.compiled_for(published) if published else None
    except MappingVersion.DoesNotExist:
        if guard:
            raise StaleIntegration from None  # the cached version is gone
        raise
    prepare = _Preparer(spec, with_text=postgres).row
    rows: dict[str, _Row] = {}
    for item in items:
        row = prepare(item.body, item.source_id, item.event_id, item.event_type, item.updated_at)
        if row.dedupe_key not in rows:  # else the same event twice in one call
            rows[row.dedupe_key] = row
    status, due = _initial_state(integration, now)
    batch_id = batch.pk if batch else None
    ordered = list(rows.values())
    created: dict[str, int] = {}
    resent = False
    if postgres:
        params = _fixed_params(integration.pk, status, due, now, batch_id)
        for start in range(0, len(ordered), STATEMENT_ROWS):
            chunk = ordered[start : start + STATEMENT_ROWS]
            stored, again = _insert_postgres(integration, chunk, params, guard=guard, published=published)
            created.update(stored)
            resent = resent or again
    else:
        for start in range(0, len(ordered), _CHUNK):
            created.update(_insert_values(integration, ordered[start : start + _CHUNK], status, due, now, batch_id))
    missing = [key for key in rows if key not in created]
    existing: dict[str, tuple[int, str]] = {}
    if missing:
        for pk, key, found, received_at in SyncRecord.objects.filter(
            integration_id=integration.pk, dedupe_key__in=missing
        ).values_list("id", "dedupe_key", "status", "received_at"):
            if resent and received_at == now:
                # Stored by this call: its statement committed, the connection dropped before the
                # answer and the statement was sent again (_run_statement), which then found it.
                created[key] = pk
            else:
                existing[key] = (pk, found)
    result = []
    for key, row in rows.items():
        if key in created:
            result.append(Stored(created[key], row.source_id, True, status))
        else:
            pk, found = existing[key]
            result.append(Stored(pk, row.source_id, False, found))
    if created and not integration.is_paused:
        queue.wake_after_commit(integration.pk)
    return result


# --------------------------------------------------------------------------------------------
# Import batches (PostgreSQL)
# --------------------------------------------------------------------------------------------

STAGE_TABLE = "syncdesk_import_stage"
# A flush: at most this many rows, or this many characters of payload JSON (rows can be large).
FLUSH_ROWS = 20_000
FLUSH_CHARS = 32 * 1024 * 1024

_STAGE_COLUMNS = ("seq", *_PER_ROW)


def uses_staging() -> bool:
    """Whether imports go through ImportWriter (PostgreSQL) or ingest_items in chunks."""
    return connection.vendor == "postgresql"


@functools.cache
def _stage_sql() -> tuple[str, str, str]:
    qn = connection.ops.quote_name
    create = (
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {qn(STAGE_TABLE)} ("
        "seq integer NOT NULL, source_id text NOT NULL, event_id text NOT NULL, event_type text NOT NULL, "
        "dedupe_key text NOT NULL, source_updated_at timestamptz, parent_source_id text NOT NULL, "
        "group_key text NOT NULL, payload jsonb NOT NULL)"
    )
    copy = f"COPY {qn(STAGE_TABLE)} ({', '.join(_STAGE_COLUMNS)}) FROM STDIN"
    per_row = {c: f"s.{c}" for c in _PER_ROW}
    insert = _insert_sql(per_row, f"{qn(STAGE_TABLE)} s ORDER BY s.seq")
    count = f"WITH ins AS ({insert} RETURNING 1) SELECT count(*) FROM ins"  # noqa: S608
    return create, copy, count


def _close_this_threads_connection() -> None:
    # ``connection`` is per thread: looked up here, on the thread that runs this, it is that
    # thread's own (``submit(connection.close)`` would hand over the caller's).
    connection.close()


class ImportWriter:
    """The good rows of an import batch, stored as ``ingest_items`` would store them in chunks of
    ``chunk_rows`` rows (same dedupe keys, payloads, statuses, counts), but with a few statements
    per FLUSH_ROWS rows instead of one per 1,000 (PostgreSQL only):

    rows are COPYed into a temporary table (session-local, not WAL-logged) and moved into the
    record table with one ``INSERT … SELECT … ORDER BY seq ON CONFLICT DO NOTHING``, in one
    transaction per flush. File order is kept, so of two rows with the same dedupe key the first
    is stored and the second counted as already known — also when both are in the same chunk
    (stored once, the repeat counted as known when the chunk is flushed).
    The published version is read again after every flush (a publish applies from the next
    flush on), and the integration's state (held if paused, the delivery window) at each flush.

    Outside a transaction the flushes run one at a time on a background thread (its own
    database connection), so PostgreSQL inserts one flush while this thread reads and prepares
    the next: at most two flushes of rows are held in memory. Inside a transaction (tests) they
    run in it, in order. Call ``close()`` when done, whatever happens."""

    def __init__(self, integration: Integration, batch: ImportBatch, *, chunk_rows: int) -> None:
        self.integration = integration
        self.batch = batch
        self.chunk_rows = chunk_rows
        self.rows: list[_Row] = []
        self.chars = 0
        self.good = 0  # rows given to add(), for the chunk boundaries
        self.seen: set[str] = set()
        self.repeats = 0  # rows repeating a key of the same chunk since the last flush: already known
        self._pending: Future[tuple[int, int]] | None = None
        # A transaction here would be invisible to another connection: store in it instead.
        self._thread = None if connection.in_atomic_block else ThreadPoolExecutor(1, thread_name_prefix="import")
        self._load_spec()

    def _load_spec(self) -> None:
        published = specs.published_version(self.integration.pk)
        spec = specs.compiled_for(published) if published else None
        self._prepare = _Preparer(spec, with_text=True).row

    def add(self, body: Any) -> None:
        if self.good % self.chunk_rows == 0:
            self.seen.clear()
        self.good += 1
        row = self._prepare(body)
        if row.dedupe_key in self.seen:
            self.repeats += 1  # the same key twice in one chunk: stored once, the repeat is known
            return
        self.seen.add(row.dedupe_key)
        self.rows.append(row)
        self.chars += len(row.text)  # type: ignore[arg-type]

    @property
    def full(self) -> bool:
        return len(self.rows) >= FLUSH_ROWS or self.chars >= FLUSH_CHARS

    def flush(self, *, wait: bool = False) -> tuple[int, int]:
        """Store the rows added since the last flush (in the background when there is a thread).
        Returns (stored, already known) for the flushes finished since the last call; with
        ``wait``, for all of them. Side effects: SyncRecords, the integration woken after each
        commit. An error of a background flush is raised here."""
        done = self._collect() if self._pending is not None and (wait or self.rows) else (0, 0)
        done, self.repeats = (done[0], done[1] + self.repeats), 0
        if self.rows:
            rows, self.rows, self.chars = self.rows, [], 0
            if self._thread is None:
                stored = self._store(rows)
                done = (done[0] + stored, done[1] + len(rows) - stored)
            else:
                self._pending = self._thread.submit(self._store_counted, rows)
                if wait:
                    later = self._collect()
                    done = (done[0] + later[0], done[1] + later[1])
            self._load_spec()
        return done

    def close(self) -> None:
        """Wait for a background flush still running, and close the thread's connection."""
        if self._thread is not None:
            self._thread.submit(_close_this_threads_connection)
            self._thread.shutdown(wait=True)
            self._thread = None

    def _collect(self) -> tuple[int, int]:
        pending, self._pending = self._pending, None
        return pending.result() if pending is not None else (0, 0)

    def _store_counted(self, rows: list[_Row]) -> tuple[int, int]:
        stored = self._store(rows)
        return stored, len(rows) - stored

    def _store(self, rows: list[_Row]) -> int:
        create, copy_sql, count_sql = _stage_sql()
        with transaction.atomic():
            now = timezone.now()
            status, due = _initial_state(self.integration, now)
            with connection.cursor() as cursor:
                cursor.execute(create)
                cursor.execute(f"TRUNCATE {connection.ops.quote_name(STAGE_TABLE)}")
                with connection.wrap_database_errors, cursor.copy(copy_sql) as copy:
                    for seq, row in enumerate(rows):
                        updated = row.source_updated_at
                        if updated is not None and updated.tzinfo is None:
                            updated = timezone.make_aware(updated)
                        copy.write_row(
                            (
                                seq,
                                row.source_id,
                                row.event_id,
                                row.event_type,
                                row.dedupe_key,
                                updated,
                                row.parent_source_id,
                                row.group_key,
                                row.text,
                            )
                        )
                cursor.execute(count_sql, _fixed_params(self.integration.pk, status, due, now, self.batch.pk))
                stored = int(cursor.fetchone()[0])
            if stored and not self.integration.is_paused:
                queue.wake_after_commit(self.integration.pk)
        return stored
