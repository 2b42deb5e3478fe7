"""Storing inbound records: once, race-safe, before anything else happens to them."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from integrations import queue
from integrations.engine import exactjson, mapping
from integrations.models import ImportBatch, Integration, SyncRecord
from integrations.services import specs
from integrations.sources.base import InboundItem


@dataclass(frozen=True)
class Stored:
    id: int
    source_id: str
    created: bool
    status: str


def payload_hash(payload: Any) -> str:
    return hashlib.sha256(exactjson.dumps(payload, sort_keys=True).encode()).hexdigest()


def dedupe_key(*, event_id: str | None, source_id: str, updated_at: datetime | None, payload: Any) -> str:
    """The source's event id when it has one; else source id + updated-at + payload hash.

    Two deliveries of the same event always get the same key; a changed record gets a new one."""
    if event_id:
        return "evt:" + event_id[:240]
    stamp = updated_at.isoformat() if updated_at else ""
    digest = payload_hash(payload)[:32]
    raw = f"rec:{source_id}:{stamp}:{digest}"
    if len(raw) > 255:
        raw = "rec:" + hashlib.sha256(raw.encode()).hexdigest()
    return raw


def _text(value: Any) -> str:
    return "" if value is None else str(value)[:255]


def _initial_state(integration: Integration, now: datetime) -> tuple[str, datetime | None]:
    if integration.is_paused:
        return SyncRecord.Status.HELD, None
    # The window is the integration's own or a customer rule's (rules_service.window_for).
    from integrations.services import rules as rules_service

    return SyncRecord.Status.PENDING, rules_service.delivery_time(integration, now)


def _rows(integration: Integration, items: Iterable[InboundItem], now: datetime, batch_id: int | None) -> list[dict]:
    version = specs.published_version(integration.pk)
    spec = specs.compiled_for(version) if version else None
    status, due = _initial_state(integration, now)
    rows: dict[str, dict] = {}
    for item in items:
        meta = mapping.record_meta(spec, item.body) if spec is not None else None
        source_id = item.source_id or (meta.source_id if meta else None) or ""
        updated_at = item.updated_at or (meta.updated_at if meta else None)
        event_id = item.event_id or (meta.event_id if meta else None)
        key = dedupe_key(event_id=event_id, source_id=source_id, updated_at=updated_at, payload=item.body)
        if key in rows:
            continue  # the same event twice in one request
        rows[key] = {
            "integration_id": integration.pk,
            "source_id": _text(source_id),
            "event_id": _text(event_id),
            "event_type": _text(item.event_type)[:100],
            "dedupe_key": key,
            "payload": item.body,
            "received_at": now,
            "source_updated_at": updated_at,
            "status": status,
            "next_attempt_at": due,
            "parent_source_id": _text(meta.parent_id if meta else None),
            # Only merged groups share a destination record (and a lease); see processing.
            "group_key": _text(meta.group_key if meta and spec is not None and spec.group_mode == "merge" else None),
            "batch_id": batch_id,
        }
    return list(rows.values())


def _insert_ignoring_duplicates(rows: list[dict]) -> dict[str, int]:
    """INSERT … ON CONFLICT DO NOTHING RETURNING: race-safe (B02) and one round trip for many rows.
    Returns dedupe_key -> id for the rows this call created."""
    if not rows:
        return {}
    fields = {f.attname: f for f in SyncRecord._meta.concrete_fields if f.attname != "id"}
    columns = list(fields)
    # Columns the row does not set take the model field's default, as Model.save() would.
    defaults = {c: fields[c].get_default() for c in columns if c not in rows[0]}
    now = rows[0]["received_at"]
    values: list[list[Any]] = [[] for _ in columns]  # one list per column
    for row in rows:
        for column, out in zip(columns, values, strict=True):
            if column == "updated_at":
                value = now
            elif column in row:
                value = row[column]
            else:
                value = defaults[column]
            out.append(fields[column].get_db_prep_save(value, connection))
    qn = connection.ops.quote_name
    table = qn(SyncRecord._meta.db_table)
    conflict = (
        f"ON CONFLICT ({qn('integration_id')}, {qn('dedupe_key')}) DO NOTHING RETURNING {qn('id')}, {qn('dedupe_key')}"
    )
    # Only quoted identifiers, column types and placeholders are formatted in; every value is a parameter.
    if connection.vendor == "postgresql":
        # One array parameter per column, unnested into rows: ~30 parameters instead of ~15,000,
        # which psycopg would otherwise parse out of the statement again on every call
        # (the largest single cost of a 1,000-record request; see bench/ingest.py).
        arrays = ",".join(f"%s::{fields[c].db_type(connection)}[]" for c in columns)
        sql = f"INSERT INTO {table} ({','.join(qn(c) for c in columns)}) SELECT * FROM unnest({arrays}) {conflict}"  # noqa: S608
        params: list[Any] = values
    else:
        one = "(" + ",".join(["%s"] * len(columns)) + ")"
        sql = (
            f"INSERT INTO {table} ({','.join(qn(c) for c in columns)}) VALUES {','.join([one] * len(rows))} {conflict}"  # noqa: S608
        )
        params = [column[i] for i in range(len(rows)) for column in values]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {key: pk for pk, key in cursor.fetchall()}


# SQLite allows at most 32,766 bound parameters per statement; ~25 columns → 1,000 rows fit.
_CHUNK = 500


@transaction.atomic
def ingest_items(
    integration: Integration, items: Sequence[InboundItem], *, batch: ImportBatch | None = None
) -> list[Stored]:
    """Store each inbound item once; wake a worker after commit.

    Side effects: inserts SyncRecord rows (a duplicate — same dedupe key — inserts nothing and is
    reported with the existing id), then, after commit, wakes the integration's drain job."""
    now = timezone.now()
    rows = _rows(integration, items, now, batch.pk if batch else None)
    created: dict[str, int] = {}
    for start in range(0, len(rows), _CHUNK):
        created.update(_insert_ignoring_duplicates(rows[start : start + _CHUNK]))
    missing = [r["dedupe_key"] for r in rows if r["dedupe_key"] not in created]
    existing: dict[str, tuple[int, str]] = {}
    if missing:
        for pk, key, status in SyncRecord.objects.filter(
            integration_id=integration.pk, dedupe_key__in=missing
        ).values_list("id", "dedupe_key", "status"):
            existing[key] = (pk, status)
    result = []
    for row in rows:
        key = row["dedupe_key"]
        if key in created:
            result.append(Stored(created[key], row["source_id"], True, row["status"]))
        else:
            pk, status = existing[key]
            result.append(Stored(pk, row["source_id"], False, status))
    if created and not integration.is_paused:
        queue.wake_after_commit(integration.pk)
    return result
