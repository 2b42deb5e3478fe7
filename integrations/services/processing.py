"""Claiming due records and taking each one a step further: map, apply rules, deliver, record.

The shape of a chunk:
  claim (short transaction: lease up to SYNCDESK_CHUNK_SIZE records and their source ids)  →
  read what the decisions need for the whole chunk (records, links, newest versions: three
  queries)  →  per record: decide and deliver (no transaction, no locks held during HTTP)  →
  finish in batches (one short transaction per ≤ 50 records or 1 s: records, attempt rows,
  links, review items in a few statements for the lot).
A worker that dies anywhere leaves leases that expire; the sweeper hands the records on, and a
redelivery carries the same idempotency key.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from django.conf import settings
from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.db.models import F, JSONField, Max, Q
from django.utils import timezone

from integrations import queue
from integrations.engine import exactjson, mapping
from integrations.engine import retry_policy as rp
from integrations.engine.dedupe import DuplicateConfig
from integrations.models import (
    Integration,
    MappingVersion,
    RecordLink,
    ReviewItem,
    SyncAttempt,
    SyncRecord,
)
from integrations.services import health, specs
from integrations.services import rules as rules_service
from integrations.transports import registry as transports
from integrations.transports.rest_json import DeliveryRequest, TransportError

# Structured (integrations/logsetup.py): each line of a record's step carries record_id and
# integration_id. Never log payloads or requests: they hold personal data and credentials.
log = structlog.get_logger(__name__)
S = SyncRecord.Status


def lease_seconds() -> int:
    return settings.SYNCDESK_LEASE_SECONDS


# --------------------------------------------------------------------------------------------
# Claiming
# --------------------------------------------------------------------------------------------


def claim_due(integration_id: int, *, limit: int, token: str, now: datetime | None = None) -> list[int]:
    """Lease up to ``limit`` due records of one integration, oldest first.

    Two guards: ``FOR UPDATE SKIP LOCKED`` so concurrent workers take different rows, and a
    lease on the record's source id (RecordLink row, guarded UPDATE) so two versions of the same
    source record are never delivered at once — that would create it twice at the partner."""
    now = now or timezone.now()
    until = now + timedelta(seconds=lease_seconds())
    with transaction.atomic():
        candidates = list(
            SyncRecord.objects.filter(
                integration_id=integration_id, status__in=SyncRecord.DUE_STATUSES, next_attempt_at__lte=now
            )
            .order_by("next_attempt_at", "id")
            .select_for_update(skip_locked=True)
            .values_list("id", "source_id", "group_key")[: limit * 2]
        )
        if not candidates:
            return []
        chosen: dict[str, int] = {}
        for pk, source_id, group_key in candidates:
            entity = entity_key(source_id, group_key)
            if entity not in chosen and len(chosen) < limit:
                chosen[entity] = pk
        RecordLink.objects.bulk_create(
            [RecordLink(integration_id=integration_id, source_id=s) for s in chosen],
            ignore_conflicts=True,
        )
        leased = set(
            RecordLink.objects.filter(integration_id=integration_id, source_id__in=list(chosen))
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now) | Q(lease_token=token))
            .values_list("source_id", flat=True)
        )
        # Guarded update: only links whose lease is free are taken; what changed is ours.
        RecordLink.objects.filter(integration_id=integration_id, source_id__in=list(leased)).filter(
            Q(lease_until__isnull=True) | Q(lease_until__lt=now) | Q(lease_token=token)
        ).update(lease_until=until, lease_token=token)
        ids = [pk for entity, pk in chosen.items() if entity in leased]  # oldest first, as claimed
        SyncRecord.objects.filter(pk__in=ids).update(status=S.PROCESSING, lease_until=until, lease_token=token)
    return ids


def entity_key(source_id: str, group_key: str) -> str:
    """The destination record a source record feeds: its own, or its merged group's."""
    return f"group:{group_key}" if group_key else source_id


# --------------------------------------------------------------------------------------------
# Draining
# --------------------------------------------------------------------------------------------


def drain_integration(integration_id: int, *, max_seconds: float = 60.0, token: str | None = None) -> int:
    """Process due records of one integration in chunks until none are due or time is up."""
    queue.forget_wake(integration_id)
    token = token or secrets.token_hex(8)
    deadline = time.monotonic() + max_seconds
    done = 0
    chunk = settings.SYNCDESK_CHUNK_SIZE
    paced_until = 0.0
    while time.monotonic() < deadline:
        integration = Integration.objects.select_related("customer").filter(pk=integration_id).first()
        if integration is None or integration.is_paused:
            return done
        rate = integration.rate_limit_per_second
        if rate and not queue.hold_drain_lock(integration_id, token, seconds=int(max_seconds) + 30):
            return done  # a rate-limited destination gets one drain at a time; another is running
        ids = claim_due(integration_id, limit=min(chunk, max(1, int(rate or chunk))), token=token)
        if not ids:
            return done
        if len(ids) == chunk and not rate:
            queue.wake(integration_id)  # a backlog: let an idle worker help
        # One read of the published version per chunk: the chunk goes out under the version that
        # was published when it was claimed (a publish applies from the next chunk on).
        published = specs.published_version(integration_id)
        batch = _Batch(integration, token, _load_leased(ids, token, integration))
        for record in batch.records:
            if rate:
                # The destination's allowed rate: a short, bounded pause between deliveries.
                wait = paced_until - time.monotonic()
                if wait > 0:
                    batch.flush()  # nothing finished waits in memory while we sleep
                    time.sleep(wait)
                paced_until = time.monotonic() + 1.0 / rate
            batch.step(record, published)
            done += 1
        batch.flush()
    if SyncRecord.objects.filter(
        integration_id=integration_id, status__in=SyncRecord.DUE_STATUSES, next_attempt_at__lte=timezone.now()
    ).exists():
        queue.wake(integration_id)
    return done


def _load_leased(ids: list[int], token: str, integration: Integration | None) -> list[SyncRecord]:
    """The claimed records still leased to ``token``, in claim order (one query for a chunk)."""
    leased = SyncRecord.objects.filter(pk__in=ids, status=S.PROCESSING, lease_token=token)
    # The drain loop has the integration already (one row, its secrets decrypted once).
    related = ("pinned_version", "prepared_version") + (() if integration else ("integration__customer",))
    found = {r.pk: r for r in leased.select_related(*related)}
    if integration is None:
        return [found[pk] for pk in ids if pk in found]
    records = []
    for pk in ids:
        if pk in found:
            found[pk].integration = integration
            records.append(found[pk])
    return records


# --------------------------------------------------------------------------------------------
# One record
# --------------------------------------------------------------------------------------------


@dataclass
class Step:
    """What happened to a record in one attempt; written by ``_finish`` in one transaction."""

    outcome: str
    status: str
    error_class: str = ""
    reason: str = ""
    next_attempt_at: datetime | None = None
    counts_as_failure: bool = False
    version: MappingVersion | None = None
    rules: list[dict[str, Any]] = field(default_factory=list)
    operation: str = ""
    request: dict[str, Any] = field(default_factory=dict)
    response_status: int | None = None
    response_body: str = ""
    idempotency_key: str = ""
    output: Any = None
    trace: list[Any] = field(default_factory=list)
    problems: list[Any] = field(default_factory=list)
    destination_id: str = ""
    review: tuple[str, str, str, dict[str, Any]] | None = None  # code, text, group key, details
    review_rule_id: int | None = None
    prepared: tuple[str, str, str] | None = None  # body, operation, key — kept for retries
    keep_prepared: bool = False
    duration_ms: int = 0
    wake_children: bool = False
    extra_delivered: list[int] = field(default_factory=list)
    entity: str = ""  # the RecordLink this delivery writes (source id, or group:<key>)
    match_keys: dict[str, str] = field(default_factory=dict)
    source_id: str = ""


_LOOK_UP = object()


def process_record(
    record_id: int, *, token: str, integration: Integration | None = None, published: Any = _LOOK_UP
) -> str | None:
    """Take one leased record one step further. Returns its new status (None if not ours)."""
    records = _load_leased([record_id], token, integration)
    if not records:
        return None  # the lease expired and another worker has it
    record = records[0]
    batch = _Batch(record.integration, token, records)
    step = batch.step(record, published)
    batch.flush()
    return step.status


def _nothing() -> None:
    return None


class _ChunkView:
    """What a chunk's decisions read about their own source records, fetched once for the chunk:
    the links (destination id, newest delivered "updated at") and the newest "updated at" of
    every live version of each source id. The chunk's records hold the leases on these source
    ids, so no other worker changes them meanwhile."""

    def __init__(self, integration_id: int, records: list[SyncRecord]) -> None:
        self.integration_id = integration_id
        wanted = {r.source_id for r in records if r.source_id} | {
            entity_key(r.source_id, r.group_key) for r in records if r.group_key
        }
        self.links: dict[str, dict[str, Any]] = {}
        if wanted:
            self.links = {
                row["source_id"]: row
                for row in RecordLink.objects.filter(integration_id=integration_id, source_id__in=wanted).values(
                    "source_id", "destination_id", "last_source_updated_at"
                )
            }
        self.known = wanted
        dated = {r.source_id for r in records if r.source_id and r.source_updated_at is not None}
        self.newest: dict[str, datetime] = {}
        if dated:
            self.newest = dict(
                SyncRecord.objects.filter(integration_id=integration_id, source_id__in=dated)
                .exclude(status__in=(S.SKIPPED, S.REJECTED))
                .order_by()
                .values("source_id")
                .annotate(newest=Max("source_updated_at"))
                .values_list("source_id", "newest")
            )
        self.newest_known = dated
        self.settle: Callable[[], None] = _nothing  # the batch writes what it holds before a cross-record read

    def link(self, source_id: str) -> dict[str, Any]:
        """The link's values ({} when the source id has none yet)."""
        if source_id not in self.known:
            row = (
                RecordLink.objects.filter(integration_id=self.integration_id, source_id=source_id)
                .values("source_id", "destination_id", "last_source_updated_at")
                .first()
            )
            if row:
                self.links[source_id] = row
            self.known.add(source_id)
        return self.links.get(source_id) or {}

    def has_newer(self, source_id: str, than: datetime) -> bool:
        if source_id not in self.newest_known:
            return True  # not fetched for this id: let the caller ask the database
        newest = self.newest.get(source_id)
        return newest is not None and newest > than


class _Batch:
    """Steps of one chunk, decided and delivered one by one, written in one short transaction
    per ``flush``: a few statements for the lot instead of a dozen per record. A step waits in
    memory at most ``FLUSH_EVERY`` records or ``FLUSH_SECONDS``; a worker killed meanwhile loses
    only those attempt rows: the records stay leased, the sweeper hands them on, and the
    retry goes out with the same idempotency key, so the partner does not create them twice."""

    FLUSH_EVERY = 50
    FLUSH_SECONDS = 1.0

    def __init__(self, integration: Integration, token: str, records: list[SyncRecord]) -> None:
        self.integration = integration
        self.token = token
        self.records = records
        self.view = _ChunkView(integration.pk, records)
        self.view.settle = self.flush
        self.pending: list[tuple[SyncRecord, Step]] = []
        self.oldest = 0.0

    def step(self, record: SyncRecord, published: Any) -> Step:
        with structlog.contextvars.bound_contextvars(record_id=record.pk, integration_id=record.integration_id):
            started = time.monotonic()
            try:
                step = _decide_and_deliver(record, published, self.view)
            except Exception as exc:  # a bug must not lose the record or loop it forever
                log.exception("internal error processing record")
                step = _failure(record, rp.INTERNAL, f"Internal error: {type(exc).__name__}: {exc}"[:500], None)
                step.counts_as_failure = True
            step.duration_ms = step.duration_ms or int((time.monotonic() - started) * 1000)
            log.info(
                "record step finished",
                status=step.status,
                error_class=step.error_class,
                duration_ms=step.duration_ms,
            )
        if not self.pending:
            self.oldest = time.monotonic()
        self.pending.append((record, step))
        if len(self.pending) >= self.FLUSH_EVERY or time.monotonic() - self.oldest >= self.FLUSH_SECONDS:
            self.flush()
        return step

    WRITE_TRIES = 3

    def flush(self) -> None:
        """Write what is pending. The partner has these calls already, so a transient database
        error (a lock, a dropped connection) is worth two more tries before giving up: the
        transaction rolled back whole, and a broken connection is reopened on the next try."""
        if not self.pending:
            return
        pending, self.pending = self.pending, []
        for attempt in range(1, self.WRITE_TRIES + 1):
            try:
                _finish_many(self.integration, pending, self.token)
                return
            except (OperationalError, InterfaceError):
                if attempt == self.WRITE_TRIES or connection.in_atomic_block:
                    raise
                log.warning("writing a batch failed; trying again", records=len(pending), exc_info=True)
                connection.close_if_unusable_or_obsolete()
                time.sleep(0.5 * attempt)  # back off from a locked or restarting database


def _failure(record: SyncRecord, error_class: str, reason: str, retry_after: float | None) -> Step:
    """Retry a transient failure per the integration's policy, or hand it to a person."""
    policy = rules_service.retry_policy_for(record.integration)
    decision = rp.decide(
        policy,
        error_class=error_class,
        attempt_number=record.attempt_count + 1,
        failures_before=record.failure_count,
        now=timezone.now(),
        retry_after_seconds=retry_after,
    )
    if decision.retry:
        return Step(
            outcome=SyncAttempt.Outcome.RETRY,
            status=S.RETRYING,
            error_class=error_class,
            reason=f"{reason} — {decision.reason}",
            next_attempt_at=decision.at,
            counts_as_failure=decision.counts_as_failure,
            keep_prepared=True,
        )
    return Step(
        outcome=SyncAttempt.Outcome.REVIEW,
        status=S.REVIEW,
        error_class=error_class,
        reason=f"{reason} — {decision.reason}",
        counts_as_failure=decision.counts_as_failure,
        review=(
            error_class,
            f"{reason}. {decision.reason}.",
            f"{error_class}:{record.integration_id}",
            {},
        ),
        keep_prepared=True,
    )


def _parent_destination(record: SyncRecord, link: mapping.ParentLink, parent_id: str) -> str | None:
    parent_integration = record.integration
    if link.integration:
        parent_integration = Integration.objects.filter(slug=link.integration).only("id").first() or record.integration
    # The parent is a record of its own, or a merged group of related records (group:<key>).
    found = dict(
        RecordLink.objects.filter(
            integration_id=parent_integration.pk, source_id__in=[parent_id, entity_key("", parent_id)]
        )
        .exclude(destination_id="")
        .values_list("source_id", "destination_id")
    )
    return found.get(parent_id) or found.get(entity_key("", parent_id))


def idempotency_key(integration_id: int, source_id: str, operation: str, body: bytes) -> str:
    """Same record version → same key on every retry; a changed body → a new key. The operation
    is part of it: the same state sent again as an update (a second event carrying an unchanged
    record) must not reuse the create's key, or the partner would call it a mismatch."""
    source = hashlib.sha256(source_id.encode()).hexdigest()[:12]
    digest = hashlib.sha256(operation.encode() + b"\n" + body).hexdigest()[:32]
    return f"sd-{integration_id}-{source}-{digest}"


def _version_for(record: SyncRecord, published: Any = _LOOK_UP) -> MappingVersion | None:
    if record.pinned_version_id:
        return record.pinned_version
    if published is not _LOOK_UP:
        return published  # type: ignore[no-any-return]
    return specs.published_version(record.integration_id)


def _decide_and_deliver(record: SyncRecord, published: Any, view: _ChunkView) -> Step:
    integration = record.integration
    if record.prepared_body and record.prepared_version_id:
        # A retry of the same record version: resend the very same bytes with the same key.
        return _deliver(
            record,
            body=record.prepared_body.encode(),
            operation=record.prepared_operation,
            key=record.idempotency_key,
            version=record.prepared_version,
            rules=record.prepared_rules,
            output=None,
            trace=[],
            problems=[],
            view=view,
        )

    version = _version_for(record, published)
    if version is None:
        return Step(
            outcome=SyncAttempt.Outcome.REVIEW,
            status=S.REVIEW,
            error_class=rp.CONFIG,
            reason="No published mapping for this integration",
            review=(rp.CONFIG, "No published mapping for this integration.", f"config:{integration.pk}", {}),
        )
    spec = specs.compiled_for(version)
    meta = mapping.record_meta(spec, record.payload)
    source_id = record.source_id or meta.source_id or ""
    if source_id and not record.source_id:
        # Stored before a mapping could say where the id is; keep it for search from now on.
        SyncRecord.objects.filter(pk=record.pk).update(source_id=source_id[:255])
    if not source_id:
        return Step(
            outcome=SyncAttempt.Outcome.REVIEW,
            status=S.REVIEW,
            version=version,
            error_class=rp.MAPPING_REVIEW,
            reason="The record has no source id where the mapping expects one",
            review=(
                "missing_source_id",
                "The record has no source id where the mapping expects one.",
                f"missing_source_id:{version.pk}",
                {},
            ),
        )

    entity = entity_key(source_id, record.group_key)
    # One read of the record's own link serves both the staleness check and the create-or-update
    # choice below (the same row, unless the record feeds a merged group).
    own_link = view.link(source_id)

    # Newest "updated at" wins: an older event that arrives late is skipped, not delivered.
    stale = _stale_reason(record, source_id, own_link, view)
    if stale:
        return Step(
            outcome=SyncAttempt.Outcome.SKIPPED, status=S.SKIPPED, version=version, error_class=rp.STALE, reason=stale
        )

    ruling = rules_service.evaluate(integration, record.payload, spec)
    if ruling.skip:
        return Step(
            outcome=SyncAttempt.Outcome.SKIPPED,
            status=S.SKIPPED,
            version=version,
            rules=ruling.fired,
            error_class=rp.RULE_SKIP,
            reason=ruling.skip,
        )
    if ruling.hold:
        return Step(
            outcome=SyncAttempt.Outcome.REVIEW,
            status=S.REVIEW,
            version=version,
            rules=ruling.fired,
            error_class=rp.RULE_HOLD,
            reason=ruling.hold,
            review=("rule_hold", ruling.hold, f"rule_hold:{ruling.hold_rule_id}", {}),
            review_rule_id=ruling.hold_rule_id,
        )
    spec = ruling.spec or spec

    destination_id = view.link(entity).get("destination_id") or ""
    parent_destination_id = None
    parent = mapping.parent_link(spec)
    parent_id = meta.parent_id
    if parent is not None and parent_id:
        view.settle()  # a parent delivered earlier in this chunk must be findable
        parent_destination_id = _parent_destination(record, parent, parent_id)
        if parent_destination_id is None:
            return _waiting_for_parent(record, version, ruling.fired, parent_id, parent)

    context = mapping.MappingContext(
        is_update=bool(destination_id),
        parent_destination_id=parent_destination_id,
        field_notes=ruling.field_notes,
    )
    group_ids: list[int] = []
    if record.group_key and spec.group_mode == "merge":
        members = _group_members(record)
        group_ids = [m.pk for m in members if m.pk != record.pk]
        result = mapping.map_group(spec, [m.payload for m in members], context)
    else:
        result = mapping.map_record(spec, record.payload, context)
    out = result.to_json()
    if result.decision == "reject":
        return _mapped(S.REJECTED, rp.MAPPING_REJECTED, _problem_text(result.problems), out, version, ruling.fired)
    if result.decision == "review":
        first = result.problems[0] if result.problems else None
        code = first.code if first else "mapping_review"
        group = f"{code}:{version.pk}:{first.field if first else ''}:{_short(first.raw if first else '')}"
        text = _problem_text(result.problems)
        review = (code, text, group[:300], {"problems": out.get("problems", [])})
        return _mapped(S.REVIEW, rp.MAPPING_REVIEW, text, out, version, ruling.fired, review=review)

    keys: dict[str, str] = {}
    duplicate_note = ""
    if spec.duplicates != NO_DUPLICATE_CHECKS:
        keys = mapping.match_keys(spec, record.payload)
        if not destination_id and keys:
            view.settle()  # a duplicate delivered earlier in this chunk must be findable
            findings = mapping.find_duplicates(spec, keys, _duplicate_candidates(integration.pk, entity, keys))
            match = next((f for f in findings if f.kind == "match"), None)
            likely = next((f for f in findings if f.kind == "likely"), None)
            if match is not None:
                # The same real-world entity, already at the partner under another source id:
                # update that record instead of creating a second one.
                destination_id = _destination_of(integration.pk, match.candidate)
                duplicate_note = f" (matched {match.candidate}: {', '.join(match.reasons)})"
            elif likely is not None:
                problem = mapping.duplicate_problem(likely)
                both = {
                    "this": record.payload,
                    "other": _last_payload(integration.pk, likely.candidate),
                    "finding": likely.to_json(),
                }
                text = f"Possible duplicate: {problem.reason}. Both records are shown; nothing was merged."
                step = _mapped(
                    S.REVIEW,
                    rp.MAPPING_REVIEW,
                    problem.reason,
                    out,
                    version,
                    ruling.fired,
                    review=("possible_duplicate", text, f"possible_duplicate:{version.pk}", both),
                )
                step.problems = [*step.problems, problem.to_json()]
                return step

    body = exactjson.dumps(result.output).encode()
    operation = "update" if destination_id else "create"
    key = idempotency_key(integration.pk, entity, operation, body)
    step = _deliver(
        record,
        body=body,
        operation=operation,
        key=key,
        version=version,
        rules=ruling.fired,
        output=out.get("output"),
        trace=out.get("trace", []),
        problems=out.get("problems", []),
        destination_id=destination_id or None,
        entity=entity,
        view=view,
    )
    step.prepared = (body.decode(), operation, key)
    step.source_id = source_id
    step.match_keys = keys
    if step.status == S.DELIVERED:
        step.extra_delivered = group_ids
        step.reason += duplicate_note
    return step


NO_DUPLICATE_CHECKS = DuplicateConfig()


def _duplicate_candidates(integration_id: int, entity: str, keys: dict[str, str]) -> list[tuple[str, dict[str, str]]]:
    """Delivered records sharing at least one exact key (email, phone, declared key, a compared
    detail): the only ones worth a closer look, found through the links' stored keys."""
    sharing = Q()
    for name, value in keys.items():
        sharing |= Q(**{f"match_keys__{name}": value})
    return [
        (source_id, found)
        for source_id, found in RecordLink.objects.filter(integration_id=integration_id)
        .exclude(destination_id="")
        .exclude(source_id=entity)
        .filter(sharing)
        .values_list("source_id", "match_keys")[:50]
    ]


def _destination_of(integration_id: int, source_id: str) -> str | None:
    return (
        RecordLink.objects.filter(integration_id=integration_id, source_id=source_id)
        .values_list("destination_id", flat=True)
        .first()
    )


def _last_payload(integration_id: int, source_id: str) -> Any:
    return (
        SyncRecord.objects.filter(integration_id=integration_id, source_id=source_id, status=S.DELIVERED)
        .order_by("-delivered_at")
        .values_list("payload", flat=True)
        .first()
    )


_OUTCOME_OF = {S.REJECTED: SyncAttempt.Outcome.REJECTED, S.REVIEW: SyncAttempt.Outcome.REVIEW}


def _mapped(
    status: str,
    error_class: str,
    reason: str,
    out: dict[str, Any],
    version: MappingVersion,
    rules: list[dict[str, Any]],
    *,
    review: tuple[str, str, str, dict[str, Any]] | None = None,
) -> Step:
    """A step that ends at the mapping (rejected, or a problem for a person), with its output,
    trace and problems kept on the attempt."""
    return Step(
        outcome=_OUTCOME_OF[status],
        status=status,
        version=version,
        rules=rules,
        error_class=error_class,
        reason=reason,
        output=out.get("output"),
        trace=out.get("trace", []),
        problems=list(out.get("problems", [])),
        review=review,
    )


def _deliver(
    record: SyncRecord,
    *,
    body: bytes,
    operation: str,
    key: str,
    version: MappingVersion | None,
    rules: list[dict[str, Any]],
    output: Any,
    trace: list[Any],
    problems: list[Any],
    view: _ChunkView,
    destination_id: str | None = None,
    entity: str | None = None,
) -> Step:
    integration = record.integration
    entity = entity or entity_key(record.source_id, record.group_key)
    if operation == "update" and destination_id is None:
        destination_id = view.link(entity).get("destination_id") or None
    transport = transports.get(integration.destination_kind)
    request = DeliveryRequest(
        operation=operation,  # type: ignore[arg-type]
        destination_id=destination_id,
        external_id=entity,
        body=body,
        idempotency_key=key,
        attempt=record.attempt_count + 1,
    )
    common = {
        "version": version,
        "rules": rules,
        "operation": operation,
        "idempotency_key": key,
        "output": output,
        "trace": trace,
        "problems": problems,
    }
    try:
        result = transport.deliver(
            integration.destination_config,
            integration.destination_secret,
            request,
            timeouts=(settings.SYNCDESK_HTTP_CONNECT_TIMEOUT, settings.SYNCDESK_HTTP_READ_TIMEOUT),
        )
    except TransportError as exc:
        step = _failure(record, exc.error_class, exc.reason, exc.retry_after)
        for name, value in common.items():
            setattr(step, name, value)
        step.request = exc.request
        step.response_status = exc.status
        step.response_body = exc.response_body
        step.duration_ms = exc.duration_ms
        return step
    reason = "Delivered" if not result.linked_existing else "Already at the partner: linked to the existing record"
    return Step(
        outcome=SyncAttempt.Outcome.DELIVERED,
        status=S.DELIVERED,
        reason=f"{reason} ({operation}, {result.status})",
        entity=entity,
        request=result.request,
        response_status=result.status,
        response_body=result.response_body,
        duration_ms=result.duration_ms,
        destination_id=result.destination_id,
        wake_children=True,
        **common,
    )


def _waiting_for_parent(
    record: SyncRecord, version: MappingVersion, fired: list[dict[str, Any]], parent_id: str, parent: Any
) -> Step:
    what = f"parent {parent.label} {parent_id}" if getattr(parent, "label", "") else f"parent {parent_id}"
    policy = rules_service.retry_policy_for(record.integration)
    waits = record.failure_count + 1
    if waits >= policy.max_attempts:
        text = f"Missing {what}: it was not delivered within the retry budget ({waits} checks)"
        return Step(
            outcome=SyncAttempt.Outcome.REVIEW,
            status=S.REVIEW,
            version=version,
            rules=fired,
            error_class=rp.MISSING_PARENT,
            reason=text,
            counts_as_failure=True,
            review=("missing_parent", text, f"missing_parent:{record.integration_id}", {"parent_id": parent_id}),
        )
    delay = rp.backoff_seconds(policy, waits)
    return Step(
        outcome=SyncAttempt.Outcome.WAITING,
        status=S.WAITING_PARENT,
        version=version,
        rules=fired,
        error_class=rp.MISSING_PARENT,
        reason=f"Waiting for {what} to be delivered first; next check in {delay:.0f} s",
        next_attempt_at=timezone.now() + timedelta(seconds=delay),
        counts_as_failure=True,
    )


def _stale_reason(record: SyncRecord, source_id: str, link: dict[str, Any], view: _ChunkView) -> str:
    """``link``: the source id's RecordLink values ({} if it has none)."""
    if record.source_updated_at is None:
        return ""
    delivered = link.get("last_source_updated_at")
    if delivered and record.source_updated_at < delivered:
        return (
            f"Skipped as stale: this version was updated at {record.source_updated_at:%Y-%m-%d %H:%M:%S}, "
            f"but a newer one (updated at {delivered:%Y-%m-%d %H:%M:%S}) was already delivered"
        )
    if not view.has_newer(source_id, record.source_updated_at):
        return ""
    newer = (
        SyncRecord.objects.filter(
            integration_id=record.integration_id,
            source_id=source_id,
            source_updated_at__gt=record.source_updated_at,
        )
        .exclude(status__in=(S.SKIPPED, S.REJECTED))
        .order_by("-source_updated_at")
        .values_list("id", "source_updated_at")
        .first()
    )
    if newer:
        return (
            f"Skipped as stale: record #{newer[0]} carries a newer version "
            f"(updated at {newer[1]:%Y-%m-%d %H:%M:%S}) of the same source record"
        )
    return ""


def _group_members(record: SyncRecord) -> list[SyncRecord]:
    """The newest record per source id in this record's group, the claimed record included."""
    members: dict[str, SyncRecord] = {}
    for member in (
        SyncRecord.objects.filter(integration_id=record.integration_id, group_key=record.group_key)
        .exclude(status__in=(S.SKIPPED, S.REJECTED))
        .order_by("source_updated_at", "received_at", "id")
        .only("id", "payload", "source_id", "source_updated_at", "received_at")
    ):
        members[member.source_id] = member
    members[record.source_id] = record
    return list(members.values())


def _problem_text(problems: list[Any]) -> str:
    if not problems:
        return "The mapping did not accept this record"
    text = "; ".join(p.reason for p in problems[:3])
    if len(problems) > 3:
        text += f" (and {len(problems) - 3} more)"
    return text


def _short(value: Any) -> str:
    """A raw value as support reads it in a group label: named parts ({code, country}) as "4101, US"."""
    if isinstance(value, dict):
        return ", ".join(str(v) for v in value.values() if v not in (None, ""))[:80]
    return str(value)[:80]


# --------------------------------------------------------------------------------------------
# Finishing: one short transaction
# --------------------------------------------------------------------------------------------


_KEEP = object()  # in ``_update_rows``: leave this row's column as it is


@dataclass(frozen=True)
class _Add:
    """In ``_update_rows``: the column's current value plus ``n`` (counters)."""

    n: int


def _record_updates(step: Step, now: datetime) -> dict[str, Any]:
    """The record's new state after this step (column names as stored: ``…_id`` for links)."""
    updates: dict[str, Any] = {
        "status": step.status,
        "attempt_count": _Add(1),
        "last_error_class": step.error_class,
        "last_reason": step.reason[:2000],
        "lease_until": None,
        "lease_token": "",
        "requested_by_id": None,
        "next_attempt_at": step.next_attempt_at,
    }
    cleared = {"prepared_body": "", "prepared_operation": "", "prepared_version_id": None, "prepared_rules": []}
    if step.counts_as_failure:
        updates["failure_count"] = _Add(1)
    if step.prepared and step.status == S.RETRYING:
        body, operation, key = step.prepared
        updates.update(
            prepared_body=body,
            prepared_operation=operation,
            idempotency_key=key,
            prepared_version_id=step.version.pk if step.version else None,
            prepared_rules=step.rules,
        )
    elif not step.keep_prepared:
        updates.update(cleared)
        if step.idempotency_key:
            updates["idempotency_key"] = step.idempotency_key
    if step.status == S.DELIVERED:
        updates.update(
            cleared,
            destination_id=step.destination_id,
            delivered_at=now,
            failure_count=0,
            pinned_version_id=None,
        )
    return updates


def _update_rows(model: Any, key: str, rows: dict[Any, dict[str, Any]], **where: Any) -> int:
    """One UPDATE that gives each row (found by ``key``, within ``where``) its own values. A
    column every row gets the same value for is set plainly; one that differs is set by
    ``CASE key WHEN … THEN … ELSE column END`` (a row that does not name it keeps its value).
    Plain SQL: Django's Case/When costs ~0.5 ms per row to build. Returns the rows changed."""
    if not rows:
        return 0
    qn = connection.ops.quote_name
    meta = model._meta
    key_column = qn(meta.get_field(key).column)
    names: dict[str, None] = {}
    for values in rows.values():
        names.update(dict.fromkeys(values))
    assignments: list[str] = []
    params: list[Any] = []

    def value_sql(field: Any, column: str, value: Any) -> str:
        if isinstance(value, _Add):
            params.append(value.n)
            return f"{column} + %s"
        params.append(field.get_db_prep_save(value, connection))
        return "%s"

    for name in names:
        field = meta.get_field(name)
        column = qn(field.column)
        values = [row.get(name, _KEEP) for row in rows.values()]
        first = values[0]
        if first is not _KEEP and all(v is not _KEEP and type(v) is type(first) and v == first for v in values):
            assignments.append(f"{column} = {value_sql(field, column, first)}")
            continue
        whens = []
        for k, value in zip(rows, values, strict=True):
            if value is not _KEEP:
                params.append(k)
                whens.append(f"WHEN %s THEN {value_sql(field, column, value)}")
        assignments.append(f"{column} = CASE {key_column} {' '.join(whens)} ELSE {column} END")
    conditions = [f"{key_column} IN ({', '.join(['%s'] * len(rows))})"]
    params.extend(rows)
    for name, value in where.items():
        field = meta.get_field(name)
        conditions.append(f"{qn(field.column)} = %s")
        params.append(field.get_db_prep_value(value, connection))
    # Only quoted column names from the model are formatted in; every value is a parameter.
    sql = f"UPDATE {qn(meta.db_table)} SET {', '.join(assignments)} WHERE {' AND '.join(conditions)}"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return int(cursor.rowcount)


def _finish_many(integration: Integration, pending: list[tuple[SyncRecord, Step]], token: str) -> None:
    """Write the outcome of several steps in one short transaction: each record's new state, its
    attempt row, its link and its review item, in a few statements for the lot."""
    now = timezone.now()
    for record, step in pending:
        if step.next_attempt_at is not None and not record.window_override:
            # A scheduled integration retries inside its window too (unless support released it now).
            step.next_attempt_at = next_delivery_time(integration, step.next_attempt_at)
    by_id = {record.pk: (record, step) for record, step in pending}
    with transaction.atomic():
        # Still ours? If a lease expired and someone else took the record, our result is still a
        # true attempt, but the other worker now owns the record's state.
        owned = set(
            SyncRecord.objects.select_for_update()
            .filter(pk__in=list(by_id), lease_token=token, status=S.PROCESSING)
            .values_list("pk", flat=True)
        )
        _update_rows(SyncRecord, "id", {pk: _record_updates(by_id[pk][1], now) for pk in by_id if pk in owned})
        # Ours, so no other worker can be writing these records' next attempt numbers.
        _insert_attempts(
            [_attempt(record, step, record.attempt_count + 1, now) for record, step in pending if record.pk in owned]
        )
        for record, step in pending:
            if record.pk not in owned:
                _record_late_attempt(record, step, now)
        ours = [(record, step) for record, step in pending if record.pk in owned]
        _write_links(integration, ours, token, now)
        _write_review_items(ours, now)

        fired = [f for _, step in ours for f in step.rules]
        if fired:
            rules_service.count_fired(fired, now)
        parents: list[str] = []
        wake_soon = False
        for record, step in ours:
            if step.status == S.DELIVERED:
                health.note_delivered(integration, now)
                if step.extra_delivered:
                    _mark_group_delivered(step.extra_delivered, step, now)
                if step.wake_children:
                    parents += [step.source_id or record.source_id, record.group_key]
            elif step.error_class:
                health.note_failure(integration, step.error_class, step.reason, now)
                if step.status == S.REVIEW and step.error_class in rp.TRANSIENT:
                    health.note_gave_up(integration, record.pk, step.reason)
            # Due soon: ask for a worker now; far away: the sweeper will find it.
            due_soon = step.next_attempt_at is not None and step.next_attempt_at - now <= timedelta(seconds=2)
            wake_soon = wake_soon or (step.status in (S.RETRYING, S.WAITING_PARENT) and due_soon)
        if parents:
            _wake_children(now, *parents)
        if wake_soon:
            queue.wake_after_commit(integration.pk)


def _attempt(record: SyncRecord, step: Step, number: int, now: datetime) -> SyncAttempt:
    return SyncAttempt(
        record_id=record.pk,
        number=number,
        mapping_version=step.version,
        rules_applied=step.rules,
        started_at=now - timedelta(milliseconds=step.duration_ms),
        duration_ms=step.duration_ms,
        operation=step.operation,
        request=step.request,
        response_status=step.response_status,
        response_body=step.response_body,
        error_class=step.error_class,
        reason=step.reason,
        outcome=step.outcome,
        idempotency_key=step.idempotency_key,
        output=step.output,
        trace=step.trace,
        problems=step.problems,
        acting_user_id=record.requested_by_id,
    )


def _insert_attempts(attempts: list[SyncAttempt]) -> None:
    """Many attempt rows at once: ``COPY`` on PostgreSQL (a third of ``bulk_create``'s cost per
    row here), ``bulk_create`` elsewhere."""
    if not attempts:
        return
    if connection.vendor != "postgresql":
        SyncAttempt.objects.bulk_create(attempts)
        return
    fields = [f for f in SyncAttempt._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    json_fields = {f.attname for f in fields if isinstance(f, JSONField)}
    with (
        connection.cursor() as cursor,
        cursor.copy(f"COPY {connection.ops.quote_name(SyncAttempt._meta.db_table)} ({columns}) FROM STDIN") as copy,
    ):
        for attempt in attempts:
            row = []
            for f in fields:
                value = getattr(attempt, f.attname)
                if f.attname in json_fields:
                    row.append(None if value is None else exactjson.dumps(value))
                else:
                    row.append(f.get_db_prep_save(value, connection))
            copy.write_row(row)


def _record_late_attempt(record: SyncRecord, step: Step, now: datetime) -> None:
    """A step whose lease expired meanwhile: keep the attempt, numbered after what is there."""
    attempt = _attempt(record, step, SyncAttempt.objects.filter(record_id=record.pk).count() + 1, now)
    try:
        with transaction.atomic():
            attempt.save()
    except IntegrityError:
        attempt.number = SyncAttempt.objects.filter(record_id=record.pk).count() + 1
        attempt.save()


def _write_links(integration: Integration, ours: list[tuple[SyncRecord, Step]], token: str, now: datetime) -> None:
    """Release the source leases and write where each delivered record now lives."""
    release: list[str] = []
    delivered: dict[str, dict[str, Any]] = {}
    for record, step in ours:
        claimed = entity_key(record.source_id, record.group_key)  # what claim_due leased
        linked = step.entity or claimed
        if step.status != S.DELIVERED or linked != claimed:
            release.append(claimed)
        if step.status == S.DELIVERED:
            fields: dict[str, Any] = {
                "destination_id": step.destination_id,
                "last_version_id": step.version.pk if step.version else None,
                "last_record_id": record.pk,
                "last_delivered_at": now,
            }
            if record.source_updated_at:
                fields["last_source_updated_at"] = record.source_updated_at
            if step.match_keys:
                fields["match_keys"] = step.match_keys
            if linked == claimed:  # the delivering UPDATE releases the lease too
                fields.update(lease_until=None, lease_token="")
            delivered[linked] = fields
    if release:
        RecordLink.objects.filter(integration_id=integration.pk, source_id__in=release, lease_token=token).update(
            lease_until=None, lease_token=""
        )
    # claim_due made these rows, so one UPDATE finds them; a row gone meanwhile is made again.
    if _update_rows(RecordLink, "source_id", delivered, integration_id=integration.pk) < len(delivered):
        links = RecordLink.objects.filter(integration_id=integration.pk)
        present = set(links.filter(source_id__in=list(delivered)).values_list("source_id", flat=True))
        for source_id, fields in delivered.items():
            if source_id not in present:
                RecordLink.objects.update_or_create(
                    integration_id=integration.pk,
                    source_id=source_id,
                    defaults={k: v for k, v in fields.items() if k not in ("lease_until", "lease_token")},
                )


def _write_review_items(ours: list[tuple[SyncRecord, Step]], now: datetime) -> None:
    """Close what a delivery or a newer problem supersedes; open an item per new problem. A
    record on its first attempt has no item to close."""
    closing: dict[str, list[int]] = {}
    opened: list[ReviewItem] = []
    for record, step in ours:
        had_attempts = record.attempt_count > 0
        if had_attempts and step.status == S.DELIVERED:
            closing.setdefault("Resolved automatically: a later attempt delivered the record.", []).append(record.pk)
        if step.review:
            code, text, group, details = step.review
            if had_attempts:
                closing.setdefault("Superseded by a newer review item for the same record.", []).append(record.pk)
            opened.append(
                ReviewItem(
                    record_id=record.pk,
                    integration_id=record.integration_id,
                    reason_code=code[:60],
                    reason_text=text,
                    group_key=group[:300],
                    mapping_version=step.version,
                    rule_id=step.review_rule_id,
                    details=details,
                )
            )
    for note, record_ids in closing.items():
        ReviewItem.objects.filter(record_id__in=record_ids, status=ReviewItem.Status.OPEN).update(
            status=ReviewItem.Status.RESOLVED, resolved_at=now, resolution_note=note
        )
    if opened:
        ReviewItem.objects.bulk_create(opened)


def _mark_group_delivered(record_ids: list[int], step: Step, now: datetime) -> None:
    """Other pending members of a merged group went out in this delivery."""
    members = SyncRecord.objects.filter(pk__in=record_ids, status__in=SyncRecord.DUE_STATUSES)
    for member in members.only("id", "attempt_count"):
        SyncAttempt.objects.create(
            record_id=member.pk,
            number=member.attempt_count + 1,
            mapping_version=step.version,
            outcome=SyncAttempt.Outcome.DELIVERED,
            reason=f"Delivered as part of its group, merged into {step.destination_id}",
            idempotency_key=step.idempotency_key,
        )
    members.update(
        status=S.DELIVERED,
        destination_id=step.destination_id,
        delivered_at=now,
        attempt_count=F("attempt_count") + 1,
        next_attempt_at=None,
    )


def _wake_children(now: datetime, *parent_ids: str) -> None:
    """Children waiting for this record or its merged group (in any integration)."""
    waiting = SyncRecord.objects.filter(status=S.WAITING_PARENT, parent_source_id__in=[p for p in parent_ids if p])
    integration_ids = set(waiting.order_by().values_list("integration_id", flat=True).distinct())
    if integration_ids:
        waiting.update(next_attempt_at=now)
        queue.wake_after_commit(*integration_ids)


def next_delivery_time(integration: Integration, now: datetime) -> datetime:
    # The integration's own window or a customer rule's (rules_service.window_for).
    return rules_service.delivery_time(integration, now)


__all__ = ["claim_due", "drain_integration", "idempotency_key", "process_record"]
