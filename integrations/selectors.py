"""Reads for views, commands and the API, with their joins set."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connections
from django.db.models import Count, F, Max, Min, Q
from django.utils import timezone

from integrations.models import (
    ActionLog,
    ExceptionRule,
    Integration,
    MappingVersion,
    RecordLink,
    ReviewItem,
    SyncAttempt,
    SyncRecord,
)


def sync_report(*, customer_slug: str | None = None, since: datetime | None = None) -> dict[str, Any]:
    """Records per status per integration, oldest pending, review queue, attempts by error class."""
    now = timezone.now()
    since = since or now - timedelta(days=7)
    integrations = Integration.objects.select_related("customer").order_by("customer__name", "name")
    if customer_slug:
        integrations = integrations.filter(customer__slug=customer_slug)
    ids = [i.pk for i in integrations]
    per_status: dict[int, dict[str, int]] = {i: {} for i in ids}
    for row in (
        SyncRecord.objects.filter(integration_id__in=ids).values("integration_id", "status").annotate(n=Count("id"))
    ):
        per_status[row["integration_id"]][row["status"]] = row["n"]
    oldest = dict(
        SyncRecord.objects.filter(integration_id__in=ids, status__in=[*SyncRecord.DUE_STATUSES, "processing", "held"])
        .values("integration_id")
        .annotate(oldest=Min("received_at"))
        .values_list("integration_id", "oldest")
    )
    due_now = dict(
        SyncRecord.objects.filter(integration_id__in=ids, status__in=SyncRecord.DUE_STATUSES, next_attempt_at__lte=now)
        .values("integration_id")
        .annotate(n=Count("id"), first_due=Min("next_attempt_at"))
        .values_list("integration_id", "n")
    )
    first_due = dict(
        SyncRecord.objects.filter(integration_id__in=ids, status__in=SyncRecord.DUE_STATUSES, next_attempt_at__lte=now)
        .values("integration_id")
        .annotate(first=Min("next_attempt_at"))
        .values_list("integration_id", "first")
    )
    review = dict(
        ReviewItem.objects.filter(integration_id__in=ids, status=ReviewItem.Status.OPEN)
        .values("integration_id")
        .annotate(n=Count("id"))
        .values_list("integration_id", "n")
    )
    errors: dict[int, dict[str, int]] = {i: {} for i in ids}
    for row in (
        SyncAttempt.objects.filter(record__integration_id__in=ids, started_at__gte=since)
        .filter(~Q(error_class=""))
        .values("record__integration_id", "error_class")
        .annotate(n=Count("id"))
    ):
        errors[row["record__integration_id"]][row["error_class"]] = row["n"]
    rows = []
    for integration in integrations:
        pid = integration.pk
        lag = (now - first_due[pid]).total_seconds() if pid in first_due else 0.0
        rows.append(
            {
                "customer": integration.customer.slug,
                "integration": integration.slug,
                "status": integration.status,
                "records": per_status[pid],
                "total": sum(per_status[pid].values()),
                "oldest_pending": oldest[pid].isoformat() if pid in oldest else None,
                "due_now": due_now.get(pid, 0),
                "lag_seconds": round(lag, 1),
                "review_open": review.get(pid, 0),
                "attempt_errors_since": since.isoformat(),
                "attempt_errors": errors[pid],
            }
        )
    return {"generated_at": now.isoformat(), "integrations": rows, "queue": queue_depth()}


def queue_depth() -> dict[str, Any]:
    from integrations import queue

    if not queue.uses_rq():
        return {"backend": "embedded"}
    try:
        q = queue._queue()
        return {"backend": "rq", "queued_jobs": q.count, "scheduled_jobs": q.scheduled_job_registry.count}
    except Exception as exc:  # Redis down: the report still works from the database
        return {"backend": "rq", "error": str(exc)}


# ============================================================================================
# Support UI and operations API reads: dashboard, record search, record page, review queue.
# Every function here runs a fixed number of queries, whatever the number of rows.
# ============================================================================================

# The dashboard's four columns, as record statuses. "Waiting" is everything not finished yet.
STATUS_GROUPS: dict[str, tuple[str, ...]] = {
    "delivered": ("delivered",),
    "failed": ("rejected",),
    "review": ("review",),
    "waiting": ("pending", "processing", "retrying", "waiting_parent", "held"),
}
OUTCOME_ORDER = ("delivered", "retry", "waiting", "review", "rejected", "skipped", "held")
PAGE_SIZE = 50


SNAPSHOT_TASK = "dashboard_snapshot"
SNAPSHOT_MAX_AGE = timedelta(seconds=150)
# Only worth reading the snapshot when computing the facts live would make the page slow.
SNAPSHOT_WORTH_MS = 250


def dashboard_facts(now: datetime | None = None) -> dict[str, Any]:
    """The heavy part of the dashboard, for every integration, as JSON: counts per status group
    over 24 h and 7 days, oldest waiting record, open review items, attempt outcomes per hour and
    day. Workers compute it every minute (periodic task ``dashboard_snapshot``) so the page does
    not aggregate millions of rows per view; five queries."""
    from django.db.models.functions import TruncDay, TruncHour

    now = now or timezone.now()
    day_ago, week_ago = now - timedelta(hours=24), now - timedelta(days=7)
    group_of = {status: group for group, statuses in STATUS_GROUPS.items() for status in statuses}
    counts: dict[str, dict[str, dict[str, int]]] = {}
    # Served by record_recent_idx (received_at range); both windows in one pass.
    for row in (
        SyncRecord.objects.filter(received_at__gte=week_ago)
        .values("integration_id", "status")
        .annotate(week=Count("id"), day=Count("id", filter=Q(received_at__gte=day_ago)))
        .order_by()
    ):
        group = group_of.get(row["status"])
        if group:
            entry = counts.setdefault(str(row["integration_id"]), {"day": {}, "week": {}})
            entry["week"][group] = entry["week"].get(group, 0) + row["week"]
            entry["day"][group] = entry["day"].get(group, 0) + row["day"]
    oldest = {
        str(i): when.isoformat()
        for i, when in SyncRecord.objects.filter(status__in=STATUS_GROUPS["waiting"])
        .values("integration_id")
        .annotate(oldest=Min("received_at"))
        .order_by()
        .values_list("integration_id", "oldest")
    }
    review = {
        str(i): n
        for i, n in ReviewItem.objects.filter(status=ReviewItem.Status.OPEN)
        .values("integration_id")
        .annotate(n=Count("id"))
        .order_by()
        .values_list("integration_id", "n")
    }
    charts: dict[str, dict[str, dict[str, dict[str, int]]]] = {"hour": {}, "day": {}}
    for unit, trunc, since in (("hour", TruncHour, day_ago), ("day", TruncDay, week_ago)):
        start = _chart_start(since, unit)
        for row in (
            SyncAttempt.objects.filter(started_at__gte=start, started_at__lte=now)
            .annotate(bucket=trunc("started_at"))
            .values("record__integration_id", "bucket", "outcome")
            .annotate(n=Count("id"))
            .order_by()
        ):
            per = charts[unit].setdefault(str(row["record__integration_id"]), {})
            per.setdefault(row["bucket"].isoformat(), {})[row["outcome"]] = row["n"]
    return {
        "computed_at": now.isoformat(),
        "counts": counts,
        "oldest": oldest,
        "review": review,
        "charts": charts,
    }


def refresh_dashboard_snapshot() -> dict[str, Any]:
    from integrations.models import PeriodicRun

    started = time.monotonic()
    facts = dashboard_facts()
    facts["compute_ms"] = round((time.monotonic() - started) * 1000)
    PeriodicRun.objects.update_or_create(name=SNAPSHOT_TASK, defaults={"last_result": facts})
    return {"integrations": len(facts["counts"]), "compute_ms": facts["compute_ms"]}


def _fresh_snapshot(now: datetime) -> dict[str, Any] | None:
    from django.utils.dateparse import parse_datetime

    from integrations.models import PeriodicRun

    stored = PeriodicRun.objects.filter(name=SNAPSHOT_TASK).values_list("last_result", flat=True).first()
    if not stored or "computed_at" not in stored:
        return None
    computed = parse_datetime(stored["computed_at"])
    if computed is None or now - computed > SNAPSHOT_MAX_AGE or computed > now:
        return None
    if stored.get("compute_ms", 0) < SNAPSHOT_WORTH_MS:
        return None  # cheap to compute live: show live numbers (a small install, the demo)
    return stored


def dashboard(*, customer_slug: str | None = None, now: datetime | None = None) -> dict[str, Any]:
    """Per integration: record counts by status group over 24 h and 7 days (by received time),
    oldest unfinished record, open review items; attempt outcomes over time; rules due for review.
    Reads the workers' snapshot when it is under 150 s old and took long to compute (a big
    install: one query instead of aggregating millions of rows), else computes it live."""
    from django.utils.dateparse import parse_datetime

    live_now = now or timezone.now()
    facts = None if now is not None else _fresh_snapshot(live_now)
    if facts is None:
        facts = dashboard_facts(live_now)
    now = parse_datetime(facts["computed_at"]) or live_now
    day_ago, week_ago = now - timedelta(hours=24), now - timedelta(days=7)
    integrations = list(Integration.objects.select_related("customer").order_by("customer__name", "name"))
    if customer_slug:
        integrations = [i for i in integrations if i.customer.slug == customer_slug]
    ids = [i.pk for i in integrations]
    empty = dict.fromkeys(STATUS_GROUPS, 0)
    rows = []
    for i in integrations:
        got = facts["counts"].get(str(i.pk), {})
        oldest = facts["oldest"].get(str(i.pk))
        rows.append(
            {
                "integration": i,
                "customer": i.customer,
                "day": {**empty, **got.get("day", {})},
                "week": {**empty, **got.get("week", {})},
                "oldest_waiting": parse_datetime(oldest) if oldest else None,
                "review_open": facts["review"].get(str(i.pk), 0),
            }
        )
    totals = {
        window: {g: sum(r[window][g] for r in rows) for g in STATUS_GROUPS}  # type: ignore[index]
        for window in ("day", "week")
    }
    rules_due = list(
        ExceptionRule.objects.filter(
            status=ExceptionRule.Status.ACTIVE,
            next_review_due__lte=timezone.localdate(now),
            customer__in=[i.customer_id for i in integrations],
        )
        .select_related("customer", "integration", "owner")
        .order_by("next_review_due", "id")[:50]
    )
    return {
        "now": now,
        "day_ago": day_ago,
        "week_ago": week_ago,
        "rows": rows,
        "totals": totals,
        "review_open": sum(r["review_open"] for r in rows),
        "chart_day": outcome_chart(ids, since=day_ago, until=now, unit="hour", facts=facts),
        "chart_week": outcome_chart(ids, since=week_ago, until=now, unit="day", facts=facts),
        "rules_due": rules_due,
    }


def _chart_start(since: datetime, unit: str) -> datetime:
    if unit == "day":
        return timezone.localtime(since).replace(hour=0, minute=0, second=0, microsecond=0)
    return since.replace(minute=0, second=0, microsecond=0)


def outcome_chart(
    integration_ids: list[int],
    *,
    since: datetime,
    until: datetime,
    unit: str,
    facts: dict[str, Any] | None = None,
    width: int = 720,
    height: int = 160,
) -> dict[str, Any]:
    """Attempt outcomes per hour or day as stacked bars, laid out for an inline SVG (no JS),
    from the dashboard facts (computed live when not given)."""
    from django.utils.dateparse import parse_datetime

    facts = facts or dashboard_facts(until)
    step = timedelta(hours=1) if unit == "hour" else timedelta(days=1)
    start = _chart_start(since, unit)
    buckets: list[datetime] = []
    at = start
    while at <= until:
        buckets.append(at)
        at += step
    data: dict[datetime, dict[str, int]] = {b: {} for b in buckets}
    for integration_id in integration_ids:
        for stamp, outcomes in facts["charts"][unit].get(str(integration_id), {}).items():
            bucket = parse_datetime(stamp)
            if bucket in data:
                for outcome, n in outcomes.items():
                    data[bucket][outcome] = data[bucket].get(outcome, 0) + n
    peak = max([sum(v.values()) for v in data.values()] + [1])
    left, bottom, top = 36, 18, 6
    plot_h = height - bottom - top
    slot = (width - left) / max(len(buckets), 1)
    bar_w = max(slot * 0.75, 1.0)
    bars = []
    totals: dict[str, int] = {}
    label_every = 3 if unit == "hour" else 1
    for index, bucket in enumerate(buckets):
        y = float(top + plot_h)
        segments = []
        for outcome in OUTCOME_ORDER:
            n = data[bucket].get(outcome, 0)
            if not n:
                continue
            totals[outcome] = totals.get(outcome, 0) + n
            h = plot_h * n / peak
            y -= h
            segments.append({"outcome": outcome, "n": n, "y": round(y, 1), "h": round(max(h, 0.5), 1)})
        local = timezone.localtime(bucket)
        bars.append(
            {
                "x": round(left + index * slot + (slot - bar_w) / 2, 1),
                "w": round(bar_w, 1),
                "segments": segments,
                "total": sum(data[bucket].values()),
                "when": local,
                "label": (local.strftime("%H:%M") if unit == "hour" else local.strftime("%a %d"))
                if index % label_every == 0
                else "",
                "label_x": round(left + index * slot + slot / 2, 1),
            }
        )
    return {
        "width": width,
        "height": height,
        "plot_bottom": top + plot_h,
        "plot_top": top,
        "left": left,
        "peak": peak,
        "bars": bars,
        "totals": [(o, totals[o]) for o in OUTCOME_ORDER if o in totals],
        "unit": unit,
        "empty": not totals,
    }


# --------------------------------------------------------------------------------------------
# Record search
# --------------------------------------------------------------------------------------------


@dataclass
class RecordFilters:
    customer: str = ""
    integration: str = ""
    source_id: str = ""
    destination_id: str = ""
    statuses: list[str] = field(default_factory=list)
    error_class: str = ""
    reason: str = ""
    received_from: datetime | None = None
    received_to: datetime | None = None
    oldest_first: bool = False

    def is_empty(self) -> bool:
        return not any(
            [
                self.customer,
                self.integration,
                self.source_id,
                self.destination_id,
                self.statuses,
                self.error_class,
                self.reason,
                self.received_from,
                self.received_to,
            ]
        )


class BadCursor(ValueError):
    pass


def encode_cursor(received_at: datetime, pk: int) -> str:
    raw = f"{received_at.isoformat()}|{pk}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, _, pk = raw.rpartition("|")
        parsed = datetime.fromisoformat(when)
        if timezone.is_naive(parsed):
            raise ValueError("naive")
        return parsed, int(pk)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadCursor("That page link is not valid; start from the first page.") from exc


def search_records(
    filters: RecordFilters, *, cursor: str | None = None, limit: int = PAGE_SIZE
) -> tuple[list[SyncRecord], str | None]:
    """One page of records, newest first (or oldest first), and the cursor of the next page.

    Keyset pagination on (received_at, id): no OFFSET and no COUNT, so page 1000 costs what
    page 1 costs. The ordering is served by record_recent_idx / record_status_recent_idx; a
    source id by record_source_idx (integration first: without one, every integration's id is
    listed so PostgreSQL can still use that index); a destination id by record_destination_idx.
    Two queries at most (integration ids, then the page)."""
    qs = SyncRecord.objects.select_related("integration__customer").defer(
        "payload", "original_payload", "prepared_body", "prepared_rules"
    )
    if filters.integration:
        qs = qs.filter(integration__slug=filters.integration)
    if filters.customer:
        qs = qs.filter(integration__customer__slug=filters.customer)
    if filters.source_id:
        if not filters.integration:
            scope = Integration.objects.all()
            if filters.customer:
                scope = scope.filter(customer__slug=filters.customer)
            qs = qs.filter(integration_id__in=list(scope.values_list("id", flat=True)))
        qs = qs.filter(source_id=filters.source_id)
    if filters.destination_id:
        qs = qs.exclude(destination_id="").filter(destination_id=filters.destination_id)
    if filters.statuses:
        qs = qs.filter(status__in=filters.statuses)
    if filters.error_class:
        qs = qs.filter(last_error_class=filters.error_class)
    if filters.reason:
        qs = qs.filter(last_reason__icontains=filters.reason)
    if filters.received_from:
        qs = qs.filter(received_at__gte=filters.received_from)
    if filters.received_to:
        qs = qs.filter(received_at__lt=filters.received_to)
    if cursor:
        when, pk = decode_cursor(cursor)
        if filters.oldest_first:
            qs = qs.filter(Q(received_at__gt=when) | Q(received_at=when, id__gt=pk))
        else:
            qs = qs.filter(Q(received_at__lt=when) | Q(received_at=when, id__lt=pk))
    qs = qs.order_by("received_at", "id") if filters.oldest_first else qs.order_by("-received_at", "-id")
    rows = list(qs[: limit + 1])
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].received_at, rows[-1].pk)
    return rows, next_cursor


def error_classes() -> list[str]:
    from integrations.engine import retry_policy as rp

    return sorted(
        {
            value
            for name, value in vars(rp).items()
            if name.isupper() and isinstance(value, str) and value.islower() and " " not in value
        }
    )


# --------------------------------------------------------------------------------------------
# Record page
# --------------------------------------------------------------------------------------------


def record_detail(record_id: int) -> dict[str, Any]:
    """Everything the record page shows, in seven queries: the record, its attempts, review
    items, action log, link, the published version, and the versions needed for the diff."""
    record = (
        SyncRecord.objects.select_related(
            "integration__customer", "pinned_version", "prepared_version", "requested_by", "batch"
        )
        .filter(pk=record_id)
        .first()
    )
    if record is None:
        raise SyncRecord.DoesNotExist(f"No record {record_id}")
    attempts = list(record.attempts.select_related("mapping_version", "acting_user").order_by("number"))
    review_items = list(
        record.review_items.select_related("assignee", "resolved_by", "mapping_version", "rule").order_by("-opened_at")
    )
    actions = list(ActionLog.objects.filter(record=record).select_related("actor").order_by("-created_at", "-id")[:200])
    link = (
        RecordLink.objects.filter(integration_id=record.integration_id, source_id=record.source_id)
        .select_related("last_version")
        .first()
    )
    published = MappingVersion.objects.filter(integration_id=record.integration_id, status="published").first()
    used = next((a.mapping_version for a in reversed(attempts) if a.mapping_version_id), None)
    diff: list[dict[str, Any]] = []
    if used is not None and published is not None and used.pk != published.pk:
        from integrations.engine import mapping

        diff = mapping.diff_specs(used.spec, published.spec)
    original_version_id = record.prepared_version_id or next(
        (a.mapping_version_id for a in attempts if a.mapping_version_id), None
    )
    last = attempts[-1] if attempts else None
    return {
        "record": record,
        "attempts": attempts,
        "last_attempt": last,
        "last_with_output": next((a for a in reversed(attempts) if a.output is not None or a.trace), None),
        "last_with_request": next((a for a in reversed(attempts) if a.request), None),
        "review_items": review_items,
        "open_review": next((i for i in review_items if i.status == ReviewItem.Status.OPEN), None),
        "actions": actions,
        "link": link,
        "published": published,
        "used_version": used,
        "original_version_id": original_version_id,
        "version_diff": diff,
    }


def preview_resend(record: SyncRecord, *, version: str = "current") -> dict[str, Any]:
    """What a resend would send, computed in-process: the mapping and the customer's rules run
    on the record's payload. Reads only: no attempt, no status change, no HTTP, no rule counts."""
    from integrations.engine import mapping
    from integrations.services import processing, specs
    from integrations.services import rules as rules_service

    integration = record.integration
    chosen = None
    if version == "original":
        original_id = record.prepared_version_id or (
            SyncAttempt.objects.filter(record_id=record.pk, mapping_version__isnull=False)
            .order_by("number")
            .values_list("mapping_version_id", flat=True)
            .first()
        )
        chosen = MappingVersion.objects.filter(pk=original_id).first() if original_id else None
    else:
        chosen = specs.published_version(integration.pk)
    if chosen is None:
        return {"version": None, "decision": "none", "message": "No mapping version to preview with."}
    spec = specs.compiled_for(chosen)
    ruling = rules_service.evaluate(integration, record.payload, spec)
    base = {"version": chosen, "rules": ruling.fired, "problems": [], "trace": [], "output": None}
    if ruling.skip:
        return {**base, "decision": "skip", "message": ruling.skip}
    if ruling.hold:
        return {**base, "decision": "hold", "message": ruling.hold}
    spec = ruling.spec or spec
    entity = processing.entity_key(record.source_id, record.group_key)
    destination_id = (
        RecordLink.objects.filter(integration_id=integration.pk, source_id=entity)
        .values_list("destination_id", flat=True)
        .first()
    )
    context = mapping.MappingContext(is_update=bool(destination_id), field_notes=ruling.field_notes)
    result = mapping.map_record(spec, record.payload, context).to_json()
    return {
        **base,
        "decision": result["decision"],
        "message": "",
        "operation": "update" if destination_id else "create",
        "destination_id": destination_id or "",
        "output": result["output"],
        "problems": result["problems"],
        "trace": result["trace"],
    }


# --------------------------------------------------------------------------------------------
# Review queue
# --------------------------------------------------------------------------------------------

GROUP_BY = ("cause", "version", "rule")

_CAUSE_WORDS = {
    "client_error": "partner refused the record",
    "server_error": "partner kept failing (server errors)",
    "timeout": "partner kept timing out",
    "connection": "could not connect to the partner",
    "lost_response": "answers from the partner were lost",
    "rate_limited": "partner kept rate-limiting",
    "auth": "partner refused our credentials",
    "conflict": "partner reported a conflict",
    "idempotency_mismatch": "partner reported an idempotency mismatch",
    "config": "no published mapping",
    "missing_parent": "parent record never delivered",
    "missing_source_id": "no source id where the mapping expects one",
    "rule_hold": "held by a customer rule",
    "internal": "internal error",
}


@dataclass
class ReviewFilters:
    customer: str = ""
    integration: str = ""
    reason_code: str = ""
    assignee: str = ""  # a username, "me" is resolved by the view, "none" = unassigned


def _open_items(filters: ReviewFilters) -> Any:
    qs = ReviewItem.objects.filter(status=ReviewItem.Status.OPEN)
    # Through the item's own integration, never through its record: that joined every open item
    # to its record (the grouping took 336 ms at 50,000 open items, 6 ms now). A join to the
    # small integration and customer tables, in the same statement: the grouping reads
    # review_open_integration_idx once per integration, the item list walks
    # review_open_recent_idx newest first until it has a page. That walk is long only for
    # integrations with few, old open items (all 50,000 entries, 15 ms, for one with 30); their
    # ids looked up first would let the planner see that, for one more query on every page.
    if filters.customer:
        qs = qs.filter(integration__customer__slug=filters.customer)
    if filters.integration:
        qs = qs.filter(integration__slug=filters.integration)
    if filters.reason_code:
        qs = qs.filter(reason_code=filters.reason_code)
    if filters.assignee == "none":
        qs = qs.filter(assignee__isnull=True)
    elif filters.assignee:
        qs = qs.filter(assignee__username=filters.assignee)
    return qs


def _group_field(group_by: str) -> str:
    return {"cause": "group_key", "version": "mapping_version_id", "rule": "rule_id"}[group_by]


def group_items(filters: ReviewFilters, *, group_by: str, key: str) -> Any:
    """The open items of one group (as the queue shows it), for a group action."""
    qs = _open_items(filters)
    name = _group_field(group_by)
    if group_by == "cause":
        return qs.filter(group_key=key)
    if key in ("", "none"):
        return qs.filter(**{f"{name}__isnull": True})
    return qs.filter(**{name: int(key)})


def cause_label(group_key: str, reason_code: str, count: int | None = None) -> str:
    """A readable name for a cause group: "unmapped value 'awaiting-pickup' for status × 37"."""
    parts = group_key.split(":", 3)
    if len(parts) == 4 and parts[1].isdigit():
        code, _version, field_name, raw = parts
        words = code.replace("_", " ")
        text = f"{words} {raw!r} for {field_name}" if raw else f"{words} for {field_name}"
    else:
        text = _CAUSE_WORDS.get(reason_code, reason_code.replace("_", " "))
    return f"{text} × {count}" if count is not None else text


def _converted(value: Any, field_name: str, connection: Any) -> Any:
    """A value from raw SQL as the ORM would hand it back (SQLite returns datetimes as text)."""
    col = ReviewItem._meta.get_field(field_name).get_col(ReviewItem._meta.db_table)
    for convert in connection.ops.get_db_converters(col) + col.get_db_converters(connection):
        value = convert(value, col, connection)
    return value


GROUP_LIMIT = 200
# The outer half of the grouping (the inner half is the ORM query of ``_group_rows``): the same
# aggregates and order as one ORM grouping would give — biggest first, then by group (NULL
# where the database sorts it), at most GROUP_LIMIT groups — plus the queue's counts over all
# groups as window sums (computed before the LIMIT).
_GROUPS_SQL = """
SELECT s.group_value, SUM(s.item_count), MIN(s.oldest), MIN(s.code_min), MIN(s.sample_min),
       MAX(s.version_ref), MAX(s.rule_ref), MIN(v.integration_id), COUNT(DISTINCT v.integration_id),
       SUM(s.unassigned_count),
       SUM(SUM(s.item_count)) OVER (), SUM(SUM(s.unassigned_count)) OVER (), SUM(SUM(s.mine_count)) OVER ()
FROM ({inner}) s LEFT JOIN {versions} v ON v.id = s.version_ref
GROUP BY s.group_value
ORDER BY 2 DESC, 1 ASC
LIMIT %s
"""


def _group_rows(
    filters: ReviewFilters, *, group_by: str, user_id: int | None
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The grouping and the queue's counts in one statement.

    The inner query groups the open items by (group, mapping version): a hash aggregate over one
    scan of the open items, with no join. The outer one folds those few rows into groups and
    looks up each version's integration in the small mapping-version table. Joining every open
    item to its mapping version instead (to count integrations per group) cost a nested loop
    per item and a sorted scan: 32 ms against 15 ms at 50,000 open items. The window sums give
    the counts over all groups, not only the first ``GROUP_LIMIT`` (open = sum of the groups'
    items, and so on), so no second scan of the open items is needed for them."""
    name = _group_field(group_by)
    inner = (
        _open_items(filters)
        .order_by()
        .values(group_value=F(name), version_ref=F("mapping_version_id"))
        .annotate(
            item_count=Count("id"),
            oldest=Min("opened_at"),
            code_min=Min("reason_code"),
            sample_min=Min("reason_text"),
            rule_ref=Max("rule_id"),
            unassigned_count=Count("id", filter=Q(assignee__isnull=True)),
            mine_count=Count("id", filter=Q(assignee_id=user_id)),
        )
    )
    connection = connections[inner.db]
    inner_sql, params = inner.query.sql_with_params()
    versions = connection.ops.quote_name(MappingVersion._meta.db_table)
    # Only ORM-compiled SQL and a quoted table name go into the text; values stay parameters.
    sql = _GROUPS_SQL.format(inner=inner_sql, versions=versions)
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, GROUP_LIMIT])
        fetched = cursor.fetchall()
    rows = [
        {
            "key": key,
            "n": int(n),
            "first": _converted(first, "opened_at", connection),
            "code": code,
            "sample": sample,
            "version_id": version_id,
            "rule_ref": rule_ref,
            "integration_id": integration_id,
            "integrations": int(integrations),
            "unassigned": int(unassigned),
        }
        for key, n, first, code, sample, version_id, rule_ref, integration_id, integrations, unassigned, *_ in fetched
    ]
    totals = fetched[0][-3:] if fetched else (0, 0, 0)
    counts = {"open": int(totals[0] or 0), "unassigned": int(totals[1] or 0), "mine": int(totals[2] or 0)}
    return rows, counts


def review_groups(filters: ReviewFilters, *, group_by: str = "cause") -> list[dict[str, Any]]:
    """Open items grouped by cause (group_key), by mapping version, or by rule, biggest first."""
    return review_overview(filters, group_by=group_by, user_id=None)[0]


def review_overview(
    filters: ReviewFilters, *, group_by: str = "cause", user_id: int | None
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The review queue's groups (as ``review_groups``) and its counts: open, unassigned and
    assigned to ``user_id``. Two or three queries: the grouping with the counts, the mapping
    versions with their integrations and customers, the rules if any."""
    rows, counts = _group_rows(filters, group_by=group_by, user_id=user_id)
    version_ids = {r["version_id"] for r in rows if r["version_id"]}
    integration_ids = {r["integration_id"] for r in rows if r["integration_id"] is not None}
    # One query for versions and integrations: the groups' versions plus the newest version of
    # each group's integration, which brings that integration and its customer along.
    newest = (
        MappingVersion.objects.filter(integration_id__in=integration_ids)
        .order_by()
        .values("integration_id")
        .annotate(newest=Max("id"))
        .values("newest")
    )
    fetched = (
        list(
            MappingVersion.objects.filter(Q(pk__in=version_ids) | Q(pk__in=newest))
            .select_related("integration__customer")
            .defer("spec")
        )
        if rows
        else []
    )
    versions = {v.pk: v for v in fetched}
    integrations = {v.integration_id: v.integration for v in fetched}
    rule_ids = {r["rule_ref"] for r in rows if r["rule_ref"]}
    rules = (
        {r.pk: r for r in ExceptionRule.objects.filter(pk__in=rule_ids).select_related("customer")} if rule_ids else {}
    )
    groups = []
    for row in rows:
        key_value = row["key"]
        version = versions.get(row["version_id"])
        rule = rules.get(row["rule_ref"])
        if group_by == "cause":
            label = cause_label(key_value, row["code"], row["n"])
        elif group_by == "version":
            label = (
                f"mapping {version.integration.slug} v{version.number or 'draft'} × {row['n']}"
                if version
                else f"no mapping version × {row['n']}"
            )
        else:
            label = f"rule #{rule.pk} {rule.kind} ({rule.customer}) × {row['n']}" if rule else f"no rule × {row['n']}"
        groups.append(
            {
                "key": "none" if key_value is None else str(key_value),
                "label": label,
                "count": row["n"],
                "first": row["first"],
                "reason_code": row["code"],
                "sample": row["sample"],
                "version": version,
                "rule": rule,
                "integration": integrations.get(row["integration_id"]),
                "integration_count": row["integrations"],
                "unassigned": row["unassigned"],
            }
        )
    return groups, counts


REVIEW_ITEM_FIELDS = (
    "id",
    "record_id",
    "reason_code",
    "reason_text",
    "group_key",
    "mapping_version_id",
    "rule_id",
    "opened_at",
    "assignee_id",
    "notes",
    "status",
    "record__id",
    "record__source_id",
    "record__integration_id",
    "integration",
    "integration__id",
    "integration__slug",
    "integration__name",
    "integration__customer_id",
    "integration__sensitive_fields",
    "integration__customer__id",
    "integration__customer__name",
    "integration__customer__slug",
    "assignee__id",
    "assignee__username",
    "mapping_version__id",
    "mapping_version__integration_id",
    "mapping_version__number",
    "mapping_version__status",
)


def review_items_page(
    filters: ReviewFilters,
    *,
    group_by: str | None = None,
    key: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[ReviewItem], str | None]:
    """Open items newest first, keyset-paginated on (opened_at, id); one query."""
    qs = group_items(filters, group_by=group_by, key=key) if group_by and key is not None else _open_items(filters)
    if cursor:
        when, pk = decode_cursor(cursor)
        qs = qs.filter(Q(opened_at__lt=when) | Q(opened_at=when, id__lt=pk))
    items = list(
        # Only what the queue page and the API show of each item: the rest of the joined rows
        # (payloads, encrypted secrets) would only cost loading, decrypting and parsing. No join
        # to the item's rule (only its id is shown): each join costs planning time (~1 ms).
        # The integration and customer come through the item's own integration, the joins a
        # customer or integration filter has made already (through the record they were two
        # more tables: planning 1.1 -> 4.2 ms).
        qs.select_related("record", "integration__customer", "assignee", "mapping_version")
        .only(*REVIEW_ITEM_FIELDS)
        .order_by("-opened_at", "-id")[: limit + 1]
    )
    for item in items:
        if item.integration is not None:  # always, but for rows the migration had not reached
            item.record.integration = item.integration  # the same row: pages show record.integration
    next_cursor = None
    if len(items) > limit:
        items = items[:limit]
        next_cursor = encode_cursor(items[-1].opened_at, items[-1].pk)
    return items, next_cursor


# Every reason code the pipeline writes (problem codes of the mapping engine, error classes of
# deliveries, rule holds): the review filter offers these without scanning the open items.
REVIEW_REASON_CODES = (
    "unmapped_value",
    "invalid_value",
    "blank_required",
    "conversion_error",
    "not_an_object",
    "possible_duplicate",
    "missing_parent",
    "missing_source_id",
    "rule_hold",
    "client_error",
    "auth",
    "conflict",
    "idempotency_mismatch",
    "timeout",
    "connection",
    "lost_response",
    "server_error",
    "rate_limited",
    "config",
    "internal",
    "mapping_review",
)


def review_reason_codes() -> list[str]:
    return sorted(REVIEW_REASON_CODES)
