"""The customer exception-rule layer, as the pipeline sees it, and every write to rules.

One place decides, per record, which of the customer's active rules apply and what they do:
skip, hold for review, a patched mapping spec (value-map overrides, defaults, destination-owned
fields, special codes, merge precedence), and a different retry policy or delivery window. The
order they apply in is documented in ``integrations/engine/rules.py`` and docs/rules.md.

Cost: the pipeline calls ``evaluate`` per record. A customer's rules are loaded with one query
and kept per process for ``CACHE_SECONDS``; writes through the services below clear this
process's cache on commit, so a change reaches other running workers within that many seconds.
Expiry is checked on every call against the cached rows, so an expired rule stops at once.
Patched specs are compiled once per (base spec, rules, patches) and kept.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time as monotonic_time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Count, F, Q, QuerySet
from django.utils import timezone

from customers.models import Customer
from integrations.engine import exactjson, mapping, schedule
from integrations.engine import retry_policy as rp
from integrations.engine import rules as engine_rules
from integrations.models import ExceptionRule, Integration, MappingVersion, ReviewItem

log = logging.getLogger(__name__)

CACHE_SECONDS = 5.0
DUE_SOON_DAYS = 7


@dataclass
class Ruling:
    skip: str = ""
    hold: str = ""
    hold_rule_id: int | None = None
    fired: list[dict[str, Any]] = field(default_factory=list)
    spec: Any = None  # a compiled spec patched by rules, or None for the version's own
    field_notes: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Loading rules (cached per process)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Loaded:
    at: float
    rows: tuple[tuple[engine_rules.RuleData, datetime | None], ...]
    signature: str


_lock = threading.Lock()
_loaded: dict[int, _Loaded] = {}
_base_specs: dict[str, dict[str, Any]] = {}
_patched: dict[tuple[str, str, tuple[int | None, ...]], Any] = {}
_CACHE_MAX = 256


def clear_cache() -> None:
    """Forget loaded rules and patched specs (after a rule write; tests)."""
    with _lock:
        _loaded.clear()
        _patched.clear()


def _rule_rows(integration: Integration, now: datetime) -> QuerySet[ExceptionRule]:
    # Customer-wide rules first, then the integration's own, each oldest first: later rules win
    # on the same field, so the most specific, newest rule has the last word.
    return (
        ExceptionRule.objects.filter(customer_id=integration.customer_id, status=ExceptionRule.Status.ACTIVE)
        .filter(Q(integration__isnull=True) | Q(integration_id=integration.pk))
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .order_by(F("integration_id").asc(nulls_first=True), "id")
    )


def _load(integration: Integration, now: datetime) -> _Loaded:
    key = integration.pk
    entry = _loaded.get(key)
    tick = monotonic_time.monotonic()
    if entry is not None and tick - entry.at < CACHE_SECONDS:
        return entry
    rows = tuple(
        (engine_rules.RuleData(pk, kind, params if isinstance(params, dict) else {}, reason), expires)
        for pk, kind, params, reason, expires in _rule_rows(integration, now).values_list(
            "id", "kind", "params", "reason", "expires_at"
        )
    )
    text = exactjson.dumps([[r.id, r.kind, r.params] for r, _ in rows], sort_keys=True)
    entry = _Loaded(tick, rows, hashlib.sha256(text.encode()).hexdigest()[:16])
    with _lock:
        if len(_loaded) >= _CACHE_MAX:
            _loaded.clear()
        _loaded[key] = entry
    return entry


def rules_for(integration: Integration, now: datetime | None = None) -> list[engine_rules.RuleData]:
    """The customer's active, unexpired rules for this integration, in application order."""
    now = now or timezone.now()
    return [rule for rule, expires in _load(integration, now).rows if expires is None or expires > now]


def active_rules(integration: Integration, now: datetime | None = None) -> list[ExceptionRule]:
    """The same rules as model rows (pages, not the hot path)."""
    return list(_rule_rows(integration, now or timezone.now()).select_related("owner", "integration"))


# --------------------------------------------------------------------------------------------
# What the pipeline calls
# --------------------------------------------------------------------------------------------


def _spec_dict(spec: Any) -> dict[str, Any]:
    cached = _base_specs.get(spec.digest)
    if cached is None:
        cached = spec.spec
        with _lock:
            if len(_base_specs) >= _CACHE_MAX:
                _base_specs.clear()
            _base_specs[spec.digest] = cached
    return cached


def evaluate(integration: Integration, payload: Any, spec: Any) -> Ruling:
    """Apply the customer's rules to one record: skip, hold, or a patched spec with field notes.

    ``spec`` is the version's compiled spec. Reads only (fire counts are written with the
    attempt, by ``count_fired``). A patched spec that no longer compiles holds the record."""
    now = timezone.now()
    loaded = _load(integration, now)
    rules = [rule for rule, expires in loaded.rows if expires is None or expires > now]
    if all(
        engine_rules.KINDS.get(r.kind) is not None and engine_rules.KINDS[r.kind].stage == "delivery" for r in rules
    ):
        return Ruling()  # nothing that acts on records: the common, cheap case
    outcome = engine_rules.apply_rules(rules, payload, _spec_dict(spec))
    for warning in outcome.warnings:
        log.warning("integration %s: %s", integration.pk, warning)
    ruling = Ruling(
        skip=outcome.skip,
        hold=outcome.hold,
        hold_rule_id=outcome.hold_rule_id,
        fired=outcome.fired,
        field_notes=outcome.field_notes,
        warnings=outcome.warnings,
    )
    if ruling.skip or ruling.hold or not outcome.patched_by:
        return ruling
    key = (spec.digest, loaded.signature, outcome.patched_by)
    compiled = _patched.get(key)
    if compiled is None:
        try:
            compiled = mapping.compile_spec(outcome.spec)
        except mapping.SpecError as exc:
            ids = ", ".join(f"#{i}" for i in outcome.patched_by)
            ruling.hold = f"Held: customer rules {ids} make the mapping invalid ({exc}); an engineer needs to look"
            ruling.hold_rule_id = outcome.patched_by[-1]
            return ruling
        with _lock:
            if len(_patched) >= _CACHE_MAX:
                _patched.clear()
            _patched[key] = compiled
    ruling.spec = compiled
    return ruling


def _note_used(rule_id: int | None) -> None:
    """A delivery-stage rule decided something: count it once the decision is saved."""
    if rule_id is None:
        return
    now = timezone.now()
    transaction.on_commit(
        lambda: ExceptionRule.objects.filter(pk=rule_id).update(fire_count=F("fire_count") + 1, last_fired_at=now)
    )


def retry_policy_for(integration: Integration) -> rp.RetryPolicy:
    """The integration's retry policy, or a ``retry_policy`` rule's (counted as used)."""
    found = engine_rules.retry_policy_from_rules(rules_for(integration))
    if found is None:
        return integration.policy
    policy, rule = found
    _note_used(rule.id)
    return policy


def _window(integration: Integration) -> tuple[time, time, int | None] | None:
    found = engine_rules.window_from_rules(rules_for(integration))
    if found is not None:
        return found[0], found[1], found[2].id
    if (
        integration.delivery_mode == Integration.DeliveryMode.SCHEDULED
        and integration.window_start
        and integration.window_end
    ):
        return integration.window_start, integration.window_end, None
    return None


def window_for(integration: Integration) -> tuple[time, time] | None:
    """The delivery window (customer's local times): a ``delivery_window`` rule's, else the
    integration's own when it is scheduled, else None (deliver at any time)."""
    found = _window(integration)
    return (found[0], found[1]) if found else None


def delivery_time(integration: Integration, now: datetime) -> datetime:
    """``now`` inside the window (or without one), else the window's next start. A rule's
    window that holds records back is counted as used."""
    found = _window(integration)
    if found is None:
        return now
    start, end, rule_id = found
    due = schedule.next_delivery_time(now, tz=integration.customer.time_zone, start=start, end=end)
    if due > now:
        _note_used(rule_id)
    return due


def count_fired(fired: list[dict[str, Any]], now: datetime) -> None:
    """``fired``: the rules fired by one or more records (a batch); each firing counts once."""
    times = Counter(f["id"] for f in fired if f.get("id"))
    by_times: dict[int, list[int]] = {}
    for rule_id, n in times.items():
        by_times.setdefault(n, []).append(rule_id)
    for n, ids in by_times.items():  # one UPDATE per distinct count: usually one
        ExceptionRule.objects.filter(pk__in=ids).update(fire_count=F("fire_count") + n, last_fired_at=now)


# --------------------------------------------------------------------------------------------
# Writes
# --------------------------------------------------------------------------------------------

EDITABLE = {
    "integration",
    "kind",
    "params",
    "reason",
    "owner",
    "approver",
    "review_interval_days",
    "expires_at",
}


def _check(rule: ExceptionRule) -> None:
    errors: dict[str, list[str]] = {}
    problems = engine_rules.validate_params(rule.kind, rule.params)
    if problems:
        errors["kind" if rule.kind not in engine_rules.KINDS else "params"] = problems
    if not (rule.reason or "").strip():
        errors["reason"] = ["A reason is required: why does this customer need the rule?"]
    if not rule.owner_id:
        errors["owner"] = ["Every rule needs an owner who answers for it."]
    if rule.integration_id and rule.integration.customer_id != rule.customer_id:
        errors["integration"] = ["The integration belongs to another customer."]
    if not problems and rule.integration_id:
        version = MappingVersion.objects.filter(integration_id=rule.integration_id, status="published").first()
        if version is not None:
            mismatch = engine_rules.check_against_spec(rule.kind, rule.params, version.spec)
            if mismatch:
                errors["params"] = [f"Does not fit the published mapping v{version.number}: {m}" for m in mismatch]
    if errors:
        raise ValidationError(errors)


def _save(rule: ExceptionRule, *, acting_user: AbstractBaseUser | None, change_reason: str) -> None:
    rule.full_clean(exclude=["params"])  # params are checked against the kind by _check
    rule._history_user = acting_user  # type: ignore[attr-defined]
    rule._change_reason = change_reason  # type: ignore[attr-defined]
    rule.save()
    transaction.on_commit(clear_cache)


@transaction.atomic
def rule_create(
    *,
    acting_user: AbstractBaseUser | None,
    customer: Customer,
    kind: str,
    params: dict[str, Any],
    reason: str,
    owner: AbstractBaseUser,
    integration: Integration | None = None,
    approver: AbstractBaseUser | None = None,
    review_interval_days: int = 90,
    expires_at: datetime | None = None,
) -> ExceptionRule:
    """Create a rule. Params are checked against the kind (and the integration's published
    mapping when the rule names one). Side effects: a history row with the acting user and
    reason "Created"; this process's rule cache is cleared on commit."""
    rule = ExceptionRule(
        customer=customer,
        integration=integration,
        kind=kind,
        params=params,
        reason=reason,
        owner=owner,
        approver=approver,
        review_interval_days=review_interval_days,
        expires_at=expires_at,
        created_by=acting_user if acting_user is not None and acting_user.pk else None,
    )
    _check(rule)
    _save(rule, acting_user=acting_user, change_reason="Created")
    return rule


@transaction.atomic
def rule_update(
    *, rule: ExceptionRule, acting_user: AbstractBaseUser | None, change_reason: str, **fields: Any
) -> ExceptionRule:
    """Change a rule's settings. ``change_reason`` is required and kept in history."""
    unknown = set(fields) - EDITABLE
    if unknown:
        raise ValueError(f"unknown rule fields: {', '.join(sorted(unknown))}")
    if not change_reason.strip():
        raise ValidationError("A reason is required for every change to a rule.")
    rule = ExceptionRule.objects.select_for_update().get(pk=rule.pk)
    if rule.status == ExceptionRule.Status.RETIRED:
        raise ValidationError("A retired rule cannot be changed; create a new one.")
    for name, value in fields.items():
        setattr(rule, name, value)
    _check(rule)
    _save(rule, acting_user=acting_user, change_reason=change_reason.strip())
    return rule


@transaction.atomic
def rule_mark_reviewed(*, rule: ExceptionRule, acting_user: AbstractBaseUser, note: str) -> ExceptionRule:
    """Record that the owner (or someone allowed) confirmed the rule is still needed; the next
    review falls due ``review_interval_days`` from now. The note goes into history."""
    if not note.strip():
        raise ValidationError("Say what was checked: a review needs a note.")
    rule = ExceptionRule.objects.select_for_update().get(pk=rule.pk)
    if rule.status == ExceptionRule.Status.RETIRED:
        raise ValidationError("A retired rule needs no review.")
    rule.last_reviewed_at = timezone.now()
    rule.last_reviewed_by = acting_user  # type: ignore[assignment]
    _save(rule, acting_user=acting_user, change_reason=f"Reviewed: {note.strip()}")
    return rule


@transaction.atomic
def rule_retire(*, rule: ExceptionRule, acting_user: AbstractBaseUser, reason: str) -> ExceptionRule:
    """Stop a rule applying (it stays in the register and in history with the reason)."""
    if not reason.strip():
        raise ValidationError("Say why the rule is retired.")
    rule = ExceptionRule.objects.select_for_update().get(pk=rule.pk)
    if rule.status == ExceptionRule.Status.RETIRED:
        return rule
    rule.status = ExceptionRule.Status.RETIRED
    _save(rule, acting_user=acting_user, change_reason=f"Retired: {reason.strip()}")
    return rule


# --------------------------------------------------------------------------------------------
# Reads: register, due and unused rules
# --------------------------------------------------------------------------------------------


def describe(rule: ExceptionRule) -> str:
    return engine_rules.describe_rule(rule.kind, rule.params if isinstance(rule.params, dict) else {})


def is_overdue(rule: ExceptionRule, today: date | None = None) -> bool:
    today = today or timezone.localdate()
    return (
        rule.status == ExceptionRule.Status.ACTIVE and rule.next_review_due is not None and rule.next_review_due < today
    )


def unused_filter(days: int, now: datetime | None = None) -> Q:
    """Active rules that have not fired for ``days`` days (and are at least that old)."""
    cutoff = (now or timezone.now()) - timedelta(days=days)
    return Q(status=ExceptionRule.Status.ACTIVE) & (
        Q(last_fired_at__lt=cutoff) | Q(last_fired_at__isnull=True, created_at__lt=cutoff)
    )


def register(
    *,
    customer: str = "",
    kind: str = "",
    owner: str = "",
    status: str = "active",
    overdue: bool = False,
    unused_days: int | None = None,
    today: date | None = None,
) -> QuerySet[ExceptionRule]:
    """The register page's rules, filtered; owner by user name, customer by slug."""
    today = today or timezone.localdate()
    qs = ExceptionRule.objects.select_related("customer", "integration", "owner", "approver", "last_reviewed_by")
    if status in (ExceptionRule.Status.ACTIVE, ExceptionRule.Status.RETIRED):
        qs = qs.filter(status=status)
    if customer:
        qs = qs.filter(customer__slug=customer)
    if kind:
        qs = qs.filter(kind=kind)
    if owner:
        qs = qs.filter(owner__username=owner)
    if overdue:
        qs = qs.filter(status=ExceptionRule.Status.ACTIVE, next_review_due__lt=today)
    if unused_days:
        qs = qs.filter(unused_filter(unused_days))
    return qs.order_by("next_review_due", "customer__name", "id")


def rules_due(today: date | None = None, within_days: int = DUE_SOON_DAYS) -> QuerySet[ExceptionRule]:
    """Active rules whose review is overdue or due within ``within_days`` days."""
    today = today or timezone.localdate()
    return (
        ExceptionRule.objects.filter(
            status=ExceptionRule.Status.ACTIVE, next_review_due__lte=today + timedelta(days=within_days)
        )
        .select_related("customer", "integration", "owner")
        .order_by("owner_id", "next_review_due", "id")
    )


def send_review_reminders(*, today: date | None = None, within_days: int = DUE_SOON_DAYS) -> int:
    """One email per owner listing their overdue and soon-due rules. Returns emails sent.

    Owners without an email address are logged and skipped (their rules still show as overdue
    on the register page)."""
    today = today or timezone.localdate()
    by_owner: dict[int, list[ExceptionRule]] = {}
    for rule in rules_due(today, within_days):
        by_owner.setdefault(rule.owner_id, []).append(rule)
    sent = 0
    for rules in by_owner.values():
        owner = rules[0].owner
        if not owner.email:
            log.warning("rule owner %s has no email address; %d rules due", owner.get_username(), len(rules))
            continue
        overdue = [r for r in rules if r.next_review_due and r.next_review_due < today]
        soon = [r for r in rules if r not in overdue]
        lines = [f"Hello {owner.get_full_name() or owner.get_username()},", ""]
        lines.append("These customer exception rules you own need a review (is each one still needed?):")
        for title, group in (("Overdue", overdue), (f"Due within {within_days} days", soon)):
            if not group:
                continue
            lines += ["", f"{title}:"]
            for r in group:
                scope = r.integration.name if r.integration_id else "all integrations"
                lines.append(f"  #{r.pk} {r.customer.name} ({scope}), due {r.next_review_due:%Y-%m-%d}: {describe(r)}")
                lines.append(f"      why: {r.reason}")
        lines += ["", "Mark each reviewed (with a note) or retire it on the rule register: /rules/"]
        subject = f"Syncdesk: {len(rules)} exception rule{'s' if len(rules) != 1 else ''} due for review"
        if overdue:
            subject += f" ({len(overdue)} overdue)"
        send_mail(subject, "\n".join(lines), settings.DEFAULT_FROM_EMAIL, [owner.email])
        sent += 1
    return sent


# --------------------------------------------------------------------------------------------
# Reads: what's special about a customer, the standard mapping
# --------------------------------------------------------------------------------------------

STANDARD_MARK = "[standard]"


def _extends(spec: Any) -> str | None:
    description = spec.get("description", "") if isinstance(spec, dict) else ""
    marker = "[extends "
    if marker in description:
        rest = description.split(marker, 1)[1]
        slug = rest.split("]", 1)[0].strip()
        return slug or None
    return None


def _is_standard(spec: Any) -> bool:
    return isinstance(spec, dict) and STANDARD_MARK in str(spec.get("description", ""))


def standard_for(integration: Integration, published: MappingVersion | None) -> MappingVersion | None:
    """The standard mapping this integration's published mapping is compared with.

    A spec whose ``description`` says ``[extends <integration-slug>]`` names its standard; else
    the published mapping of another integration of the same record type whose description
    contains ``[standard]`` (same destination kind preferred, then the oldest). None when the
    integration is itself a standard or there is none."""
    spec = published.spec if published else {}
    if published is not None and _is_standard(spec):
        return None
    base = MappingVersion.objects.filter(status=MappingVersion.Status.PUBLISHED).select_related("integration")
    named = _extends(spec)
    if named:
        return base.filter(integration__slug=named).exclude(integration=integration).first()
    candidates = [
        v
        for v in base.filter(integration__record_type=integration.record_type)
        .exclude(integration=integration)
        .order_by("integration_id")
        if _is_standard(v.spec)
    ]
    candidates.sort(key=lambda v: v.integration.destination_kind != integration.destination_kind)
    return candidates[0] if candidates else None


def schedule_words(integration: Integration) -> str:
    found = _window(integration)
    zone = integration.customer.time_zone
    if found is None:
        return "Real time: records are delivered as soon as they arrive."
    start, end, rule_id = found
    source = f"customer rule #{rule_id}" if rule_id else "the integration's schedule"
    return (
        f"Delivered only between {start:%H:%M} and {end:%H:%M} ({zone}), per {source}; "
        "records that arrive outside the window, and retries, wait for the next window."
    )


def retry_words(integration: Integration) -> str:
    found = engine_rules.retry_policy_from_rules(rules_for(integration))
    if found is not None:
        return f"Per customer rule #{found[1].id}: " + engine_rules.describe_policy(found[0])
    try:
        policy = integration.policy
    except ValueError as exc:
        return f"The integration's retry policy is not valid: {exc}"
    default = " (the default)" if policy == rp.DEFAULT_POLICY else ""
    return f"The integration's own policy{default}: " + engine_rules.describe_policy(policy)


def customer_special(customer: Customer) -> dict[str, Any]:
    """Everything that makes this customer differ from the standard, in plain language."""
    now = timezone.now()
    rules = list(
        ExceptionRule.objects.filter(customer=customer, status=ExceptionRule.Status.ACTIVE)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .select_related("integration", "owner")
        .order_by(F("integration_id").asc(nulls_first=True), "id")
    )
    today = timezone.localdate()
    rule_rows = [{"rule": r, "text": describe(r), "overdue": is_overdue(r, today)} for r in rules]
    integrations = []
    for integration in customer.integrations.all().order_by("name"):
        integration.customer = customer
        published = MappingVersion.objects.filter(integration=integration, status="published").first()
        standard = standard_for(integration, published)
        differences: list[str] = []
        if published is not None and standard is not None:
            differences = [
                d["text"]
                for d in mapping.diff_specs(standard.spec, published.spec)
                if not (d.get("area") == "options" and d.get("key") == "description")
            ]
        integrations.append(
            {
                "integration": integration,
                "published": published,
                "standard": standard,
                "is_standard": published is not None and _is_standard(published.spec),
                "differences": differences,
                "schedule": schedule_words(integration),
                "retry": retry_words(integration),
                "rules": [row for row in rule_rows if row["rule"].integration_id in (None, integration.pk)],
            }
        )
    return {"customer": customer, "rules": rule_rows, "integrations": integrations}


# --------------------------------------------------------------------------------------------
# Reads: the complexity check
# --------------------------------------------------------------------------------------------

COUNTS = ("field_mappings", "conversions", "value_map_entries", "exception_rules", "retry_paths", "open_review_items")


def _spec_counts(spec: Any) -> dict[str, int]:
    fields = spec.get("fields", []) if isinstance(spec, dict) else []
    fields = [f for f in fields if isinstance(f, dict)]
    return {
        "field_mappings": len(fields),
        "conversions": sum(len(f.get("convert", []) or []) for f in fields),
        "value_map_entries": sum(len(f.get("value_map") or {}) for f in fields if isinstance(f.get("value_map"), dict)),
    }


def complexity(customer_slug: str | None = None) -> list[dict[str, Any]]:
    """Per customer, per integration: how much is special. See docs/rules.md for each count.

    ``retry_paths`` counts the ways a record is sent again without a person: failure retries
    (always 1), each ``retry_policy`` rule that can apply, waiting for a parent record (when the
    mapping links to one) and waiting for a delivery window (when one applies)."""
    now = timezone.now()
    customers = Customer.objects.order_by("name").prefetch_related("integrations")
    if customer_slug:
        customers = customers.filter(slug=customer_slug)
    customers_list = list(customers)
    ids = [i.pk for c in customers_list for i in c.integrations.all()]
    published = {v.integration_id: v for v in MappingVersion.objects.filter(integration_id__in=ids, status="published")}
    open_items = dict(
        ReviewItem.objects.filter(integration_id__in=ids, status=ReviewItem.Status.OPEN)
        .order_by()
        .values_list("integration_id")
        .annotate(n=Count("id"))
        .values_list("integration_id", "n")
    )
    rules = list(
        ExceptionRule.objects.filter(customer__in=customers_list, status=ExceptionRule.Status.ACTIVE)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .values_list("customer_id", "integration_id", "kind", "params")
    )
    out = []
    for customer in customers_list:
        rows = []
        for integration in customer.integrations.all():
            spec = published[integration.pk].spec if integration.pk in published else {}
            counts = _spec_counts(spec)
            applying = [r for r in rules if r[0] == customer.pk and r[1] in (None, integration.pk)]
            retry_rules = sum(1 for r in applying if r[2] == "retry_policy")
            has_window = integration.delivery_mode == Integration.DeliveryMode.SCHEDULED or any(
                r[2] == "delivery_window" for r in applying
            )
            has_parent = isinstance(spec, dict) and "parent" in (spec.get("record") or {})
            counts.update(
                exception_rules=len(applying),
                retry_paths=1 + retry_rules + int(has_parent) + int(has_window),
                open_review_items=open_items.get(integration.pk, 0),
            )
            rows.append(
                {
                    "integration": integration.slug,
                    "name": integration.name,
                    "mapping_version": published[integration.pk].number if integration.pk in published else None,
                    **counts,
                }
            )
        totals = {name: sum(r[name] for r in rows) for name in COUNTS}
        # Customer-wide rules apply to every integration: count each rule once in the total.
        totals["exception_rules"] = sum(1 for r in rules if r[0] == customer.pk)
        out.append({"customer": customer.slug, "name": customer.name, "totals": totals, "integrations": rows})
    return out
