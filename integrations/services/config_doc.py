"""Configuration as one readable YAML document: customers, their integrations (no secrets), the
published mapping of each integration and the customers' exception rules.

``export_document`` builds it, ``dump_document`` writes it, ``load_document`` reads it (YAML
1.2-style scalars, see ``engine.spectext``), ``plan_import`` compares it with the database
without writing, and ``import_document`` applies the plan in one transaction.

Import rules:

* Everything is checked before anything is written; any problem refuses the whole document
  (``ConfigRefused`` lists them all) and nothing changes.
* Customers and integrations are matched by slug, exception rules by their ``key`` (see
  ``rule_keys``). Only what differs is written, so importing the same document twice writes
  nothing the second time: no new history rows, no new mapping versions.
* A key left out of an entry leaves that value as it is; things missing from the document (a
  customer, an integration, a rule) are left alone, never deleted.
* A changed mapping is published as a new version with the document's note (or ``--note``).
* Every history row carries the acting user and the change reason "Config import: <note>".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import Any

import yaml
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import models, transaction
from simple_history.utils import update_change_reason

from customers.models import Customer
from customers.services import audited_save, customer_create, customer_update
from integrations.engine import exactjson, mapping, spectext
from integrations.engine import rules as engine_rules
from integrations.models import ExceptionRule, Integration, MappingVersion
from integrations.services import mappings
from integrations.services import rules as rules_service

FORMAT = 1
ALL = "*"  # the integration part of a rule key for a rule that applies to all integrations

CUSTOMER_FIELDS = ("name", "status", "time_zone", "account_manager", "notes")
INTEGRATION_FIELDS = (
    "name",
    "record_type",
    "source_system",
    "source_kind",
    "destination_kind",
    "destination_config",
    "delivery_mode",
    "window_start",
    "window_end",
    "retry_policy",
    "status",
    "paused_reason",
    "retention_days",
    "rate_limit_per_second",
    "sensitive_fields",
)
RULE_FIELDS = (
    "kind",
    "integration",
    "params",
    "reason",
    "owner",
    "approver",
    "review_interval_days",
    "expires_at",
    "status",
)
USER_FIELDS = frozenset({"account_manager", "owner", "approver"})
# JSON fields stored with the plain encoder: numbers from the document go in as float/int.
PLAIN_JSON_FIELDS = frozenset({"destination_config", "retry_policy", "sensitive_fields"})


class ConfigRefused(ValueError):
    """A document that was not imported. ``problems`` names every reason, each with its place."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        count = f"{len(problems)} problem" + ("s" if len(problems) != 1 else "")
        super().__init__(f"The configuration document has {count}; nothing was changed:\n" + _bullets(problems))


def _bullets(lines: list[str]) -> str:
    return "\n".join(f"  - {line}" for line in lines)


def find_user(username: str | None) -> AbstractBaseUser | None:
    """The user with this username; None for None/empty. Raises LookupError naming the user."""
    if not username:
        return None
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise LookupError(f"no user is called {username!r}")
    return user


# --------------------------------------------------------------------------- export


def rule_keys(rules: list[ExceptionRule]) -> dict[int, str]:
    """The document key of each rule: ``customer/integration-or-*/kind/N``.

    N counts the rules of that customer, scope and kind in creation order (1, 2, …). Rules are
    retired, never deleted, so the numbers stay put; an import creates new rules in the same
    order, so the keys match in every environment the document goes to. ``rules`` must all
    belong to one customer."""
    counts: dict[tuple[str, str], int] = {}
    keys: dict[int, str] = {}
    for rule in sorted(rules, key=lambda r: r.pk):
        scope = rule.integration.slug if rule.integration is not None else ALL
        group = (scope, rule.kind)
        counts[group] = counts.get(group, 0) + 1
        keys[rule.pk] = f"{rule.customer.slug}/{scope}/{rule.kind}/{counts[group]}"
    return keys


def _out(obj: models.Model, name: str) -> Any:
    if name in USER_FIELDS:
        user = getattr(obj, name)
        return user.get_username() if user is not None else None
    if name == "integration":
        return obj.integration.slug if obj.integration_id else None  # type: ignore[attr-defined]
    value = getattr(obj, name)
    if isinstance(value, dt.datetime | dt.time | dt.date):
        return value.isoformat()
    return value


def export_document(*, customer_slug: str | None = None) -> dict[str, Any]:
    """The configuration as plain data (one customer, or all), ready for ``dump_document``."""
    customers = Customer.objects.select_related("account_manager").order_by("slug")
    if customer_slug:
        customers = customers.filter(slug=customer_slug)
        if not customers.exists():
            raise LookupError(f"no customer is called {customer_slug!r}")
    doc_customers = []
    for customer in customers:
        entry: dict[str, Any] = {"slug": customer.slug}
        entry.update({name: _out(customer, name) for name in CUSTOMER_FIELDS})
        integrations = []
        for integration in customer.integrations.order_by("slug"):
            item: dict[str, Any] = {"slug": integration.slug}
            item.update({name: _out(integration, name) for name in INTEGRATION_FIELDS})
            published = MappingVersion.objects.filter(
                integration=integration, status=MappingVersion.Status.PUBLISHED
            ).first()
            if published is not None:
                item["mapping"] = {
                    "version": published.number,
                    "note": published.note,
                    "spec": mappings.ordered_spec(published.spec),
                }
            integrations.append(item)
        entry["integrations"] = integrations
        rules = list(
            ExceptionRule.objects.filter(customer=customer)
            .select_related("customer", "integration", "owner", "approver")
            .order_by("id")
        )
        keys = rule_keys(rules)
        entry["exception_rules"] = [
            {"key": keys[rule.pk], **{name: _out(rule, name) for name in RULE_FIELDS}} for rule in rules
        ]
        doc_customers.append(entry)
    return {"format": FORMAT, "note": "", "customers": doc_customers}


HEADER = """\
# Syncdesk configuration: customers, integrations (no secrets), published mappings and
# exception rules. Import with `manage.py config_import FILE --note "why"` (try --dry-run first).
# Matched by slug; rules by key = customer/integration-or-*/kind/N (N-th such rule, oldest first).
# A key left out keeps its current value; nothing missing from this file is deleted.
# mapping.version and mapping.note are for reading: a changed spec is published as a new version.
"""


def dump_document(doc: dict[str, Any]) -> str:
    body = yaml.dump(doc, Dumper=spectext.SpecDumper, sort_keys=False, allow_unicode=True, width=100)
    return HEADER + body


def load_document(text: str) -> Any:
    """The document from YAML (or JSON) text. Raises ValueError with the place of a syntax error."""
    return spectext.load_spec_text(text)


# --------------------------------------------------------------------------- planning


@dataclass
class Change:
    """One write the import will make, described for a person reviewing it."""

    what: str  # customer, integration, mapping, rule
    key: str
    action: str  # create, update, publish
    details: list[str] = field(default_factory=list)
    apply: Callable[[AbstractBaseUser | None, str], None] | None = field(default=None, repr=False)

    def text(self) -> str:
        line = f"{self.action} {self.what} {self.key}"
        return line + (": " + "; ".join(self.details) if self.details else "")


@dataclass
class Plan:
    changes: list[Change] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # things left alone, secrets to set, ...

    @property
    def publishes(self) -> bool:
        return any(c.what == "mapping" for c in self.changes)


def _same(a: Any, b: Any) -> bool:
    try:
        return exactjson.dumps(a, sort_keys=True) == exactjson.dumps(b, sort_keys=True)
    except (TypeError, ValueError):
        return bool(a == b)


def _plain_json(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and "." not in str(value) else float(value)
    if isinstance(value, dict):
        return {str(k): _plain_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_json(v) for v in value]
    return value


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "…")
    try:
        text = exactjson.dumps(value)
    except (TypeError, ValueError):
        text = str(value)
    return text if len(text) <= 60 else text[:57] + "…"


class _Checker:
    """Collects problems, each prefixed with where in the document it is."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.users: dict[str, AbstractBaseUser | None] = {}
        # Integration slug → the mapping spec it will have after the import (rules are checked
        # against it: a value-map override needs the field's value map, …).
        self.specs: dict[str, Any] = {}

    def add(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    def keys(self, where: str, entry: Any, allowed: set[str], required: tuple[str, ...]) -> bool:
        if not isinstance(entry, dict):
            self.add(where, "must be a mapping of keys to values")
            return False
        unknown = sorted(str(k) for k in entry if k not in allowed)
        if unknown:
            self.add(where, f"unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})")
        ok = True
        for key in required:
            if entry.get(key) in (None, ""):
                self.add(where, f"{key} is required")
                ok = False
        # Unknown keys are reported, and the rest of the entry is still checked.
        return ok

    def user(self, where: str, username: Any) -> AbstractBaseUser | None:
        if username in (None, ""):
            return None
        name = str(username)
        if name not in self.users:
            try:
                self.users[name] = find_user(name)
            except LookupError:
                self.users[name] = None
                self.add(where, f"no user is called {name!r} in this environment (create the user first)")
        return self.users[name]


def _values(
    check: _Checker, where: str, model: type[models.Model], entry: dict[str, Any], names: tuple[str, ...]
) -> dict[str, Any]:
    """The entry's values as the model stores them (user names → users, text → times, …)."""
    values: dict[str, Any] = {}
    for name in names:
        if name not in entry or name == "integration":
            continue
        raw = entry[name]
        if name in USER_FIELDS:
            user = check.user(f"{where}.{name}", raw)
            if user is not None or raw in (None, ""):  # an unknown user is already a problem
                values[name] = user
            continue
        model_field = model._meta.get_field(name)
        if isinstance(model_field, models.JSONField):
            values[name] = _plain_json(raw) if name in PLAIN_JSON_FIELDS else raw
            continue
        if raw is None and not model_field.null:
            raw = "" if isinstance(model_field, models.CharField | models.TextField) else raw
        try:
            value = model_field.to_python(raw)  # type: ignore[union-attr]
        except ValidationError as exc:
            check.add(f"{where}.{name}", " ".join(exc.messages))
            continue
        if isinstance(value, dt.datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        values[name] = value
    return values


def _differences(obj: models.Model, values: dict[str, Any]) -> dict[str, str]:
    """Field name → "name old → new" for each value that differs from the object's."""
    changed: dict[str, str] = {}
    for name, new in values.items():
        old = getattr(obj, name)
        if name in USER_FIELDS:
            same = (old.pk if old else None) == (new.pk if new else None)
        elif isinstance(old, dict | list) or isinstance(new, dict | list):
            same = _same(old, new)
        else:
            same = old == new
        if not same:
            shown_old = old.get_username() if name in USER_FIELDS and old else old
            shown_new = new.get_username() if name in USER_FIELDS and new else new
            changed[name] = f"{name} {_show(shown_old)} → {_show(shown_new)}"
    return changed


def _full_clean(check: _Checker, where: str, obj: models.Model, exclude: list[str]) -> None:
    try:
        obj.full_clean(exclude=exclude)
    except ValidationError as exc:
        for name, messages in exc.message_dict.items():
            place = where if name == "__all__" else f"{where}.{name}"
            check.add(place, " ".join(messages))


def plan_import(doc: Any, *, note: str = "") -> Plan:
    """Compare the document with the database: every change it would make, and every problem.
    Reads only. ``note`` (or the document's ``note``) is the reason recorded for the changes."""
    check = _Checker()
    plan = Plan()
    if not check.keys("document", doc, {"format", "note", "customers"}, ("customers",)):
        plan.problems = check.problems
        return plan
    if doc.get("format", FORMAT) != FORMAT:
        check.add("format", f"this Syncdesk reads format {FORMAT}, the document says {doc.get('format')!r}")
    customers = doc["customers"]
    if not isinstance(customers, list):
        check.add("customers", "must be a list")
        customers = []
    seen_customers: set[str] = set()
    seen_integrations: set[str] = set()
    for i, entry in enumerate(customers):
        where = f"customers[{i}]"
        if isinstance(entry, dict) and entry.get("slug"):
            where = f"customer {entry['slug']}"
        allowed = {"slug", *CUSTOMER_FIELDS, "integrations", "exception_rules"}
        if not check.keys(where, entry, allowed, ("slug",)):
            continue
        slug = str(entry["slug"])
        if slug in seen_customers:
            check.add(where, "appears twice in the document")
            continue
        seen_customers.add(slug)
        _plan_customer(check, plan, where, slug, entry, seen_integrations)
    plan.problems = check.problems
    if plan.publishes and not (note or str(doc.get("note") or "")).strip():
        plan.problems.append(
            "note: the document changes mappings, and publishing needs a change note "
            "(set note: in the document or pass --note)"
        )
    return plan


def _plan_customer(
    check: _Checker, plan: Plan, where: str, slug: str, entry: dict[str, Any], seen_integrations: set[str]
) -> None:
    customer = Customer.objects.filter(slug=slug).select_related("account_manager").first()
    values = _values(check, where, Customer, entry, CUSTOMER_FIELDS)
    if customer is None:
        candidate = Customer(slug=slug, **values)
        _full_clean(check, where, candidate, exclude=[])
        fields = {"slug": slug, **values}

        def create(user: AbstractBaseUser | None, reason: str) -> None:
            customer_create(acting_user=user, reason=reason, **fields)

        plan.changes.append(Change("customer", slug, "create", [], create))
    else:
        changed = _differences(customer, values)
        if changed:
            updates = {k: v for k, v in values.items() if k in changed}
            probe = Customer.objects.get(pk=customer.pk)
            for key, value in updates.items():
                setattr(probe, key, value)
            _full_clean(check, where, probe, exclude=[])

            def apply(user: AbstractBaseUser | None, reason: str, pk: int = customer.pk) -> None:
                customer_update(customer=Customer.objects.get(pk=pk), acting_user=user, reason=reason, **updates)

            plan.changes.append(Change("customer", slug, "update", list(changed.values()), apply))

    integrations = entry.get("integrations") or []
    if not isinstance(integrations, list):
        check.add(f"{where}.integrations", "must be a list")
        integrations = []
    local: dict[str, Integration | None] = {}
    for j, item in enumerate(integrations):
        iwhere = f"{where}.integrations[{j}]"
        if isinstance(item, dict) and item.get("slug"):
            iwhere = f"integration {item['slug']}"
        if not check.keys(iwhere, item, {"slug", *INTEGRATION_FIELDS, "mapping"}, ("slug",)):
            continue
        islug = str(item["slug"])
        if islug in seen_integrations:
            check.add(iwhere, "appears twice in the document")
            continue
        seen_integrations.add(islug)
        local[islug] = _plan_integration(check, plan, iwhere, customer, slug, islug, item)

    rules = entry.get("exception_rules") or []
    if not isinstance(rules, list):
        check.add(f"{where}.exception_rules", "must be a list")
        rules = []
    _plan_rules(check, plan, where, customer, slug, local, rules)


def _plan_integration(
    check: _Checker,
    plan: Plan,
    where: str,
    customer: Customer | None,
    customer_slug: str,
    slug: str,
    item: dict[str, Any],
) -> Integration | None:
    existing = Integration.objects.filter(slug=slug).select_related("customer").first()
    if existing is not None and existing.customer.slug != customer_slug:
        check.add(where, f"belongs to customer {existing.customer.slug} in this environment; slugs must be unique")
        return existing
    values = _values(check, where, Integration, item, INTEGRATION_FIELDS)
    if existing is None:
        candidate = Integration(slug=slug, **values)
        if customer is not None:
            candidate.customer = customer
        _full_clean(check, where, candidate, exclude=[] if customer is not None else ["customer"])

        def create(user: AbstractBaseUser | None, reason: str) -> None:
            obj = Integration(slug=slug, customer=Customer.objects.get(slug=customer_slug), **values)
            audited_save(obj, acting_user=user, reason=reason)

        plan.changes.append(Change("integration", slug, "create", [], create))
        plan.notes.append(
            f"integration {slug}: new here; set its destination secret, and give the source its new webhook secret"
        )
    else:
        changed = _differences(existing, values)
        if changed:
            probe = Integration.objects.get(pk=existing.pk)
            for key, value in values.items():
                setattr(probe, key, value)
            _full_clean(check, where, probe, exclude=[])

            def update(user: AbstractBaseUser | None, reason: str, pk: int = existing.pk) -> None:
                obj = Integration.objects.get(pk=pk)
                for key, value in values.items():
                    setattr(obj, key, value)
                audited_save(obj, acting_user=user, reason=reason)

            plan.changes.append(Change("integration", slug, "update", list(changed.values()), update))

    if existing is not None:
        published = MappingVersion.objects.filter(integration=existing, status=MappingVersion.Status.PUBLISHED).first()
        if published is not None:
            check.specs[slug] = published.spec
    if "mapping" in item and item["mapping"] is not None:
        _plan_mapping(check, plan, f"{where}.mapping", existing, slug, item["mapping"])
    return existing


def _plan_mapping(
    check: _Checker, plan: Plan, where: str, integration: Integration | None, slug: str, entry: Any
) -> None:
    if not check.keys(where, entry, {"spec", "version", "note"}, ("spec",)):
        return
    spec = entry["spec"]
    errors = mapping.validate_spec(spec)
    if errors:
        for error in errors:
            check.add(f"{where}.spec", error)
        return
    check.specs[slug] = spec
    current = (
        MappingVersion.objects.filter(integration=integration, status=MappingVersion.Status.PUBLISHED).first()
        if integration is not None
        else None
    )
    if current is not None and _same(current.spec, spec):
        return
    details = [d["text"] for d in mapping.diff_specs(current.spec, spec)] if current else ["first version"]

    def publish(user: AbstractBaseUser | None, reason: str) -> None:
        mappings.publish_spec(integration=Integration.objects.get(slug=slug), spec=spec, acting_user=user, note=reason)

    label = f"(replaces v{current.number})" if current else ""
    plan.changes.append(Change("mapping", f"{slug} {label}".strip(), "publish", details or ["key order only"], publish))


def _plan_rules(
    check: _Checker,
    plan: Plan,
    where: str,
    customer: Customer | None,
    customer_slug: str,
    local: dict[str, Integration | None],
    entries: list[Any],
) -> None:
    existing_rules = (
        list(
            ExceptionRule.objects.filter(customer=customer).select_related(
                "customer", "integration", "owner", "approver"
            )
        )
        if customer is not None
        else []
    )
    keys = rule_keys(existing_rules)
    by_key = {keys[rule.pk]: rule for rule in existing_rules}
    counts: dict[tuple[str, str], int] = {}
    for key in by_key:
        _, scope, kind, n = key.split("/")
        counts[(scope, kind)] = max(counts.get((scope, kind), 0), int(n))
    seen: set[str] = set()
    for k, entry in enumerate(entries):
        rwhere = f"{where}.exception_rules[{k}]"
        if isinstance(entry, dict) and entry.get("key"):
            rwhere = f"rule {entry['key']}"
        if not check.keys(rwhere, entry, {"key", *RULE_FIELDS}, ("key", "kind")):
            continue
        key, kind = str(entry["key"]), str(entry["kind"])
        scope = str(entry.get("integration") or ALL)
        prefix = f"{customer_slug}/{scope}/{kind}/"
        if not key.startswith(prefix) or not key[len(prefix) :].isdigit():
            check.add(rwhere, f"key must be {prefix}N for this customer, integration and kind")
            continue
        if key in seen:
            check.add(rwhere, "appears twice in the document")
            continue
        seen.add(key)
        if (
            scope != ALL
            and scope not in local
            and not Integration.objects.filter(slug=scope, customer__slug=customer_slug).exists()
        ):
            check.add(f"{rwhere}.integration", f"{scope!r} is not an integration of customer {customer_slug}")
            continue
        values = _values(check, rwhere, ExceptionRule, entry, RULE_FIELDS)
        values.pop("kind", None)  # part of the key: a different kind is a different rule
        status = values.pop("status", None)
        rule = by_key.get(key)
        params = values.get("params", rule.params if rule is not None else {})
        param_problems = engine_rules.validate_params(kind, params)
        for problem in param_problems:
            check.add(f"{rwhere}.params", problem)
        spec = check.specs.get(scope) if scope != ALL else None
        if not param_problems and isinstance(spec, dict):
            for problem in engine_rules.check_against_spec(kind, params, spec):
                check.add(f"{rwhere}.params", f"does not fit the mapping of {scope}: {problem}")
        if rule is None:
            number = int(key[len(prefix) :])
            expected = counts.get((scope, kind), 0) + 1
            if number != expected:
                check.add(rwhere, f"a new rule here must be number {expected} ({prefix}{expected})")
                continue
            counts[(scope, kind)] = number
            if not entry.get("owner"):
                check.add(f"{rwhere}.owner", "a new rule needs an owner (a username)")
            candidate = ExceptionRule(kind=kind, **values)
            exclude = ["customer", "integration", "owner", "params"]
            if customer is not None:
                candidate.customer = customer
                exclude.remove("customer")
            _full_clean(check, rwhere, candidate, exclude=exclude)

            def create(
                user: AbstractBaseUser | None,
                reason: str,
                values: dict[str, Any] = values,
                kind: str = kind,
                scope: str = scope,
                retire: bool = status == ExceptionRule.Status.RETIRED,
            ) -> None:
                fields = {"params": {}, **values}
                created = rules_service.rule_create(
                    acting_user=user,
                    customer=Customer.objects.get(slug=customer_slug),
                    integration=Integration.objects.get(slug=scope) if scope != ALL else None,
                    kind=kind,
                    **fields,
                )
                update_change_reason(created, reason)  # the service says "Created"; say where from
                if retire:
                    rules_service.rule_retire(rule=created, acting_user=user, reason=reason)  # type: ignore[arg-type]

            plan.changes.append(Change("rule", key, "create", [], create))
            continue

        changed = _differences(rule, values)
        retiring = status == ExceptionRule.Status.RETIRED and rule.status != status
        if rule.status == ExceptionRule.Status.RETIRED:
            if status == ExceptionRule.Status.ACTIVE:
                check.add(rwhere, "is retired here and cannot be made active again; add a new rule instead")
            elif changed:
                check.add(rwhere, "is retired here and cannot be changed: " + "; ".join(changed.values()))
            continue
        if changed:
            probe = ExceptionRule.objects.get(pk=rule.pk)
            for name, value in values.items():
                setattr(probe, name, value)
            _full_clean(check, rwhere, probe, exclude=["params"])

            plan.changes.append(
                Change(
                    "rule",
                    key,
                    "update",
                    list(changed.values()),
                    partial(_rule_update, pk=rule.pk, fields={k: values[k] for k in changed}),
                )
            )
        if retiring:

            def retire(user: AbstractBaseUser | None, reason: str, pk: int = rule.pk) -> None:
                rule = ExceptionRule.objects.get(pk=pk)
                rules_service.rule_retire(rule=rule, acting_user=user, reason=reason)  # type: ignore[arg-type]

            plan.changes.append(Change("rule", key, "retire", [], retire))
    for key in sorted(set(by_key) - seen):
        plan.notes.append(f"rule {key}: not in the document; left as it is")


def _rule_update(user: AbstractBaseUser | None, reason: str, *, pk: int, fields: dict[str, Any]) -> None:
    rule = ExceptionRule.objects.get(pk=pk)
    rules_service.rule_update(rule=rule, acting_user=user, change_reason=reason, **fields)


# --------------------------------------------------------------------------- import


@transaction.atomic
def import_document(doc: Any, *, acting_user: AbstractBaseUser | None, note: str = "", dry_run: bool = False) -> Plan:
    """Check the whole document, then write every change in this one transaction (or none with
    ``dry_run``). Raises ``ConfigRefused`` listing every problem; nothing is written then.
    Side effects: history rows with ``acting_user`` and "Config import: <note>"; new mapping
    versions for changed specs."""
    plan = plan_import(doc, note=note)
    if plan.problems:
        raise ConfigRefused(plan.problems)
    if dry_run:
        return plan
    note = (note or str(doc.get("note") or "")).strip()
    reason = f"Config import: {note}" if note else "Config import"
    for change in plan.changes:
        assert change.apply is not None
        try:
            change.apply(acting_user, note if change.what == "mapping" else reason)
        except (ValidationError, mappings.MappingRefused, ValueError) as exc:
            # A check above missed something: the transaction rolls back every earlier write.
            text = "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
            raise ConfigRefused([f"{change.what} {change.key}: {text}"]) from exc
    return plan
