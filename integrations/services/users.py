"""Writes to users' roles and access. Every change goes through here so it leaves a RoleChange
row (who, when, why, before → after); the admin's user pages use these services."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import Group
from django.contrib.sessions.models import Session
from django.db import transaction
from django.utils import timezone

from integrations.models import RoleChange

ACCESS_FLAGS = ("is_active", "is_staff", "is_superuser")


def _roles(user: Any) -> list[str]:
    return sorted(user.groups.values_list("name", flat=True))


def end_sessions(user: Any) -> int:
    """Delete every live session of ``user`` (database sessions): they are logged out at once."""
    ended = 0
    for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator():
        if str(session.get_decoded().get("_auth_user_id")) == str(user.pk):
            session.delete()
            ended += 1
    return ended


def record_change(*, user: Any, acting_user: Any, reason: str, changes: dict[str, list[Any]]) -> RoleChange | None:
    if not changes:
        return None
    if not reason.strip():
        raise ValueError("a reason is required for every change to a user's roles or access")
    return RoleChange.objects.create(user=user, acting_user=acting_user, reason=reason.strip(), changes=changes)


@transaction.atomic
def user_set_roles(*, user: Any, roles: Iterable[str], acting_user: Any, reason: str) -> RoleChange | None:
    """Make ``roles`` (group names) exactly the user's roles. Writes a RoleChange when anything
    changed. Raises ValueError on an unknown role or a blank reason."""
    wanted = sorted(set(roles))
    groups = list(Group.objects.filter(name__in=wanted))
    missing = set(wanted) - {g.name for g in groups}
    if missing:
        raise ValueError(f"unknown roles: {', '.join(sorted(missing))}")
    before = _roles(user)
    if before == wanted:
        return None
    if not reason.strip():
        raise ValueError("a reason is required for every change to a user's roles or access")
    user.groups.set(groups)
    return record_change(user=user, acting_user=acting_user, reason=reason, changes={"roles": [before, wanted]})


@transaction.atomic
def user_set_active(*, user: Any, active: bool, acting_user: Any, reason: str) -> RoleChange | None:
    """Activate or deactivate a user. Deactivating ends their sessions at once (after commit)
    and revokes their API tokens (a token's fingerprint includes the active flag)."""
    if user.is_active == active:
        return None
    if not reason.strip():
        raise ValueError("a reason is required for every change to a user's roles or access")
    change = record_change(
        user=user, acting_user=acting_user, reason=reason, changes={"is_active": [user.is_active, active]}
    )
    user.is_active = active
    user.save(update_fields=["is_active"])
    if not active:
        transaction.on_commit(lambda: end_sessions(user))
    return change
