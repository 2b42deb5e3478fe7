"""Writes to customers. Every change goes through here so history records who and why."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from customers.models import Customer

EDITABLE = {"name", "slug", "status", "account_manager", "time_zone", "notes"}


def audited_save(obj: Any, *, acting_user: AbstractBaseUser | None, reason: str) -> None:
    """full_clean + save with the history row's user and change reason set."""
    obj.full_clean()
    obj._history_user = acting_user
    obj._change_reason = reason
    obj.save()


@transaction.atomic
def customer_create(*, acting_user: AbstractBaseUser | None, reason: str = "Created", **fields: Any) -> Customer:
    unknown = set(fields) - EDITABLE
    if unknown:
        raise ValueError(f"unknown customer fields: {', '.join(sorted(unknown))}")
    customer = Customer(**fields)
    audited_save(customer, acting_user=acting_user, reason=reason)
    return customer


@transaction.atomic
def customer_update(
    *, customer: Customer, acting_user: AbstractBaseUser | None, reason: str, **fields: Any
) -> Customer:
    unknown = set(fields) - EDITABLE
    if unknown:
        raise ValueError(f"unknown customer fields: {', '.join(sorted(unknown))}")
    if not reason.strip():
        raise ValueError("a reason is required for every configuration change")
    for key, value in fields.items():
        setattr(customer, key, value)
    audited_save(customer, acting_user=acting_user, reason=reason)
    return customer
