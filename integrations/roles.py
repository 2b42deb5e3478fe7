"""Roles as groups with permissions. Code checks permissions, never group names.

Used by migration 0002 (with historical models) and by ``ensure_roles`` at run time (tests
that flush the database, the demo)."""

from __future__ import annotations

from typing import Any

VIEW_ALL = [
    "customers.view_customer",
    "integrations.view_integration",
    "integrations.view_mappingversion",
    "integrations.view_exceptionrule",
    "integrations.view_syncrecord",
    "integrations.view_syncattempt",
    "integrations.view_reviewitem",
    "integrations.view_recordlink",
    "integrations.view_importbatch",
    "integrations.view_actionlog",
    "integrations.view_alert",
]
SUPPORT = [
    *VIEW_ALL,
    "integrations.resend_syncrecord",
    "integrations.edit_payload_syncrecord",
    "integrations.work_reviewitem",
    "integrations.change_reviewitem",
    "integrations.add_importbatch",
]
ACCOUNT_MANAGER = [
    *SUPPORT,
    "integrations.add_exceptionrule",
    "integrations.change_exceptionrule",
    "integrations.review_exceptionrule",
    "customers.change_customer",
]
# Payload fields an integration marks sensitive (emails, phones …) are masked for support and
# account managers; engineers debug mappings with real values; admin has every permission.
# Grant ``integrations.view_sensitive_payload`` to one support user in the admin when needed.
ENGINEER = [
    *SUPPORT,
    "integrations.view_sensitive_payload",
    "integrations.add_mappingversion",
    "integrations.change_mappingversion",
    "integrations.publish_mappingversion",
    "integrations.add_integration",
    "integrations.change_integration",
    "customers.add_customer",
    "customers.change_customer",
]
ROLES = {"support": SUPPORT, "account_manager": ACCOUNT_MANAGER, "engineer": ENGINEER}
ADMIN = "admin"


def apply_roles(group_model: Any, permission_model: Any) -> None:
    """Create or update the role groups. ``admin`` gets every permission."""
    for name, codes in ROLES.items():
        group, _ = group_model.objects.get_or_create(name=name)
        perms = []
        for code in codes:
            app_label, codename = code.split(".")
            # A permission of a model that a later migration creates is not there yet in an
            # earlier one: that later migration re-applies the roles (see 0007).
            perms.extend(permission_model.objects.filter(content_type__app_label=app_label, codename=codename))
        group.permissions.set(perms)
    admin, _ = group_model.objects.get_or_create(name=ADMIN)
    admin.permissions.set(permission_model.objects.all())


def ensure_roles() -> None:
    """At run time, after a database flush: permissions exist again via post_migrate/flush."""
    from django.apps import apps
    from django.contrib.auth.management import create_permissions
    from django.contrib.auth.models import Group, Permission

    for app_config in apps.get_app_configs():
        create_permissions(app_config, verbosity=0)
    apply_roles(Group, Permission)
