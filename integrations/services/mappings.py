"""Writes to mapping versions: save a draft, publish it, publish a spec, roll back; plus the
reads that go with them (diff, preview).

Every write goes through here so that each history row (django-simple-history) carries the
acting user and a change reason, and so that the rules of versioning hold in one place:

* an integration has at most one draft and at most one published version (database constraints);
* publishing gives the next number (highest ever + 1, retired versions included), retires the
  version it replaces and freezes the new one (a database trigger refuses any later edit);
* every spec is checked with ``mapping.validate_spec`` before it is stored, and a refusal names
  every problem.

Publishes lock the integration row (``SELECT ... FOR UPDATE``): two people publishing at the
same moment are serialised, the second one sees the first one's result, and the unique
constraints are only a backstop.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from integrations.engine import mapping
from integrations.models import Integration, MappingVersion

__all__ = [
    "MappingRefused",
    "draft_discard",
    "draft_publish",
    "draft_save",
    "ordered_spec",
    "preview",
    "publish_spec",
    "rollback",
    "versions_diff",
]

Status = MappingVersion.Status
EMPTY_SPEC: dict[str, Any] = {"fields": []}


class MappingRefused(ValueError):
    """A mapping change that was not made. ``problems`` lists every reason, one line each."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = list(problems or [])
        text = message
        if self.problems:
            text += ":\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(text)
        self.message = message


def _check_spec(spec: Any, what: str = "The mapping spec") -> None:
    problems = mapping.validate_spec(spec)
    if problems:
        count = f"{len(problems)} problem" + ("s" if len(problems) != 1 else "")
        raise MappingRefused(f"{what} has {count}", problems)


def _require_note(note: str) -> str:
    note = (note or "").strip()
    if not note:
        raise MappingRefused("A change note is required to publish a mapping version (say what changed and why)")
    return note


def _locked(integration: Integration) -> Integration:
    # Serialises every version change of one integration: the second of two concurrent publishes
    # waits here and then sees the first one's draft already published.
    return Integration.objects.select_for_update().get(pk=integration.pk)


def _audited_save(version: MappingVersion, *, acting_user: AbstractBaseUser | None, reason: str) -> None:
    version._history_user = acting_user  # type: ignore[attr-defined]
    version._change_reason = reason  # type: ignore[attr-defined]
    version.save()


def _published(integration: Integration) -> MappingVersion | None:
    return MappingVersion.objects.filter(integration=integration, status=Status.PUBLISHED).first()


def _draft(integration: Integration) -> MappingVersion | None:
    return MappingVersion.objects.filter(integration=integration, status=Status.DRAFT).first()


def _next_number(integration: Integration) -> int:
    highest = MappingVersion.objects.filter(integration=integration).aggregate(n=Max("number"))["n"]
    return (highest or 0) + 1


@transaction.atomic
def draft_save(
    *,
    integration: Integration,
    spec: dict[str, Any] | None,
    acting_user: AbstractBaseUser | None,
    note: str = "",
) -> MappingVersion:
    """Create or update the integration's single draft with ``spec`` (checked first; refused
    with every problem named). ``spec=None`` starts a draft from the published spec (or an
    empty one) and leaves an existing draft as it is. Writes one history row."""
    integration = _locked(integration)
    draft = _draft(integration)
    if spec is None:
        if draft is not None:
            return draft
        published = _published(integration)
        spec = published.spec if published is not None else dict(EMPTY_SPEC)
        reason = f"Draft started from v{published.number}" if published is not None else "Draft started"
    else:
        reason = "Draft created" if draft is None else "Draft edited"
    _check_spec(spec)
    if draft is None:
        draft = MappingVersion(integration=integration, status=Status.DRAFT, author=acting_user)
    draft.spec = spec
    if note:
        draft.note = note
    _audited_save(draft, acting_user=acting_user, reason=reason)
    return draft


@transaction.atomic
def draft_discard(*, integration: Integration, acting_user: AbstractBaseUser | None) -> bool:
    """Delete the integration's draft, if any (history keeps it). Returns whether one existed."""
    integration = _locked(integration)
    draft = _draft(integration)
    if draft is None:
        return False
    draft._history_user = acting_user  # type: ignore[attr-defined]
    draft._change_reason = "Draft discarded"  # type: ignore[attr-defined]
    draft.delete()
    return True


def _publish_locked(
    integration: Integration,
    version: MappingVersion,
    *,
    acting_user: AbstractBaseUser | None,
    note: str,
) -> MappingVersion:
    """Retire the current published version and publish ``version`` as the next number.
    The caller holds the integration lock and has checked the spec and the note."""
    now = timezone.now()
    number = _next_number(integration)
    current = _published(integration)
    if current is not None:
        current.status = Status.RETIRED
        _audited_save(current, acting_user=acting_user, reason=f"Retired by v{number}: {note}")
    version.status = Status.PUBLISHED
    version.number = number
    version.note = note
    version.published_at = now
    version.published_by = acting_user
    if version.author_id is None and acting_user is not None:
        version.author = acting_user
    _audited_save(version, acting_user=acting_user, reason=f"Published v{number}: {note}")
    # No compiled-spec cache to clear: specs.compiled_for caches by version id, a published
    # version never changes, and the pipeline picks up the new one by its new id.
    return version


@transaction.atomic
def draft_publish(*, integration: Integration, acting_user: AbstractBaseUser | None, note: str) -> MappingVersion:
    """Publish the integration's draft as the next version with the required ``note``; the
    version it replaces becomes retired. One transaction, integration row locked; two history
    rows (retired, published). Refused, naming every problem, when there is no draft, no note,
    or the draft's spec is not valid."""
    note = _require_note(note)
    integration = _locked(integration)
    draft = _draft(integration)
    if draft is None:
        raise MappingRefused(f"{integration.slug} has no draft to publish (it may just have been published)")
    _check_spec(draft.spec, "The draft")
    return _publish_locked(integration, draft, acting_user=acting_user, note=note)


@transaction.atomic
def publish_spec(
    *,
    integration: Integration,
    spec: dict[str, Any],
    acting_user: AbstractBaseUser | None,
    note: str,
) -> MappingVersion:
    """Publish ``spec`` as the next version in one go (import, config import, rollback).

    It does not go through the draft row: someone's unpublished draft stays as it was, instead
    of being overwritten by an import. Refused when the spec is invalid or the note is empty.
    """
    note = _require_note(note)
    _check_spec(spec)
    integration = _locked(integration)
    version = MappingVersion(integration=integration, spec=spec, author=acting_user)
    return _publish_locked(integration, version, acting_user=acting_user, note=note)


@transaction.atomic
def rollback(
    *, integration: Integration, number: int, acting_user: AbstractBaseUser | None, note: str
) -> MappingVersion:
    """Publish version ``number``'s spec again, as a new version (old versions never change)."""
    note = _require_note(note)
    integration = _locked(integration)
    old = MappingVersion.objects.filter(integration=integration, number=number).first()
    if old is None:
        raise MappingRefused(f"{integration.slug} has no version {number}")
    if old.status == Status.PUBLISHED:
        raise MappingRefused(f"v{number} is already the published version of {integration.slug}")
    return publish_spec(
        integration=integration, spec=old.spec, acting_user=acting_user, note=f"Rollback to v{number}: {note}"
    )


def versions_diff(a: MappingVersion, b: MappingVersion) -> list[dict[str, Any]]:
    """What changed from ``a`` to ``b``: ``{"field", "area", "change", "key", "old", "new", "text"}`` each."""
    return mapping.diff_specs(a.spec, b.spec)


def preview(
    *,
    records: list[Any],
    spec: dict[str, Any] | None = None,
    version: MappingVersion | None = None,
) -> list[dict[str, Any]]:
    """Map ``records`` with ``spec`` (or ``version``'s spec) without storing anything.

    One ``{"source_id", "decision", "output", "problems", "trace"}`` per record, in order.
    Numbers stay exact (int, Decimal): write the result with ``exactjson.dumps``. A record that
    is not an object gets a ``reject`` with a problem saying so. Raises ``MappingRefused`` when
    the spec is not valid."""
    if (spec is None) == (version is None):
        raise TypeError("preview needs exactly one of spec= or version=")
    raw = version.spec if version is not None else spec
    try:
        compiled = mapping.compile_spec(raw)  # type: ignore[arg-type]
    except mapping.SpecError as exc:
        raise MappingRefused("The mapping spec cannot be used", exc.errors) from None
    return [preview_one(compiled, record) for record in records]


def preview_one(compiled: mapping.CompiledSpec, record: Any) -> dict[str, Any]:
    """The preview line of one record with an already compiled spec (the command streams)."""
    result = mapping.map_record(compiled, record).to_json()
    return {
        "source_id": result["meta"]["source_id"],
        "decision": result["decision"],
        "output": result["output"],
        "problems": result["problems"],
        "trace": result["trace"],
    }


# Key order for readable exports (PostgreSQL's jsonb stores object keys in its own order).
_TOP_ORDER = list(mapping.SCHEMA["properties"])
_FIELD_ORDER = list(mapping.SCHEMA["$defs"]["field"]["properties"])
_RECORD_ORDER = list(mapping.SCHEMA["$defs"]["record"]["properties"])


def _in_order(obj: dict[str, Any], order: list[str]) -> dict[str, Any]:
    known = {k: obj[k] for k in order if k in obj}
    known.update({k: v for k, v in obj.items() if k not in known})
    return known


def ordered_spec(spec: Any) -> Any:
    """The spec with its keys in the documented order (options, record, fields; per field: name,
    source, owner, convert, ...), for export. Same content, only the order of keys changes."""
    if not isinstance(spec, dict):
        return spec
    out = _in_order(spec, _TOP_ORDER)
    if isinstance(out.get("record"), dict):
        out["record"] = _in_order(out["record"], _RECORD_ORDER)
    if isinstance(out.get("fields"), list):
        out["fields"] = [_in_order(f, _FIELD_ORDER) if isinstance(f, dict) else f for f in out["fields"]]
    return out
