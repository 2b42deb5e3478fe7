"""Admin pages. Configuration changes ask for a reason (it goes into history with the user);
secrets are write-only here and shown masked; user role and access changes go through
integrations.services.users (RoleChange rows, sessions ended on deactivation)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db import transaction
from simple_history.admin import SimpleHistoryAdmin

from integrations.masking import mask_secret
from integrations.models import (
    ActionLog,
    Alert,
    ExceptionRule,
    ImportBatch,
    Integration,
    MappingVersion,
    PeriodicRun,
    RecordLink,
    ReviewItem,
    RoleChange,
    SyncAttempt,
    SyncRecord,
)
from integrations.services import users as user_service

REASON_HELP = "Why you are making this change. Kept in the history with your name."


class ReasonAdminMixin:
    """Every save from the admin carries a change reason into django-simple-history."""

    def get_form(self, request: Any, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        base = kwargs.get("form") or self.form  # type: ignore[attr-defined]
        kwargs["form"] = type(
            base.__name__, (base,), {"change_reason": forms.CharField(max_length=300, help_text=REASON_HELP)}
        )
        return super().get_form(request, obj, change=change, **kwargs)  # type: ignore[misc]

    def get_fieldsets(self, request: Any, obj: Any = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)  # type: ignore[misc]
        if not any("change_reason" in (opts.get("fields") or ()) for _, opts in fieldsets):
            fieldsets = [*fieldsets, ("Audit", {"fields": ["change_reason"]})]
        return fieldsets

    def save_model(self, request: Any, obj: Any, form: Any, change: bool) -> None:
        obj._history_user = request.user
        obj._change_reason = form.cleaned_data.get("change_reason", "")
        super().save_model(request, obj, form, change)  # type: ignore[misc]


class IntegrationAdminForm(forms.ModelForm):
    new_destination_secret = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False),
        help_text="Type a new token or password for the destination; leave blank to keep the current one.",
    )
    new_webhook_secret = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False),
        help_text="Paste the secret the platform shows (e.g. Stripe's whsec_…); the current one stays "
        "accepted as the previous secret until you clear it.",
    )
    clear_previous_webhook_secret = forms.BooleanField(
        required=False, help_text="Stop accepting the previous webhook secret (rotation finished)."
    )

    class Meta:
        model = Integration
        exclude = ["destination_secret", "webhook_secret", "webhook_secret_previous"]  # noqa: DJ006 - write-only above


@admin.register(Integration)
class IntegrationAdmin(ReasonAdminMixin, SimpleHistoryAdmin):
    form = IntegrationAdminForm
    list_display = ["name", "slug", "customer", "record_type", "delivery_mode", "status"]
    list_filter = ["status", "delivery_mode", "record_type", "source_kind"]
    search_fields = ["name", "slug", "customer__name"]
    readonly_fields = ["destination_secret_hint", "webhook_secret_hint", "webhook_secret_previous_hint"]

    @admin.display(description="Destination secret")
    def destination_secret_hint(self, obj: Integration) -> str:
        return mask_secret(obj.destination_secret) or "—"

    @admin.display(description="Webhook secret")
    def webhook_secret_hint(self, obj: Integration) -> str:
        return mask_secret(obj.webhook_secret) or "—"

    @admin.display(description="Previous webhook secret")
    def webhook_secret_previous_hint(self, obj: Integration) -> str:
        return mask_secret(obj.webhook_secret_previous) or "—"

    def save_model(self, request: Any, obj: Integration, form: Any, change: bool) -> None:
        data = form.cleaned_data
        if data.get("new_destination_secret"):
            obj.destination_secret = data["new_destination_secret"]
        if data.get("new_webhook_secret"):
            obj.webhook_secret_previous, obj.webhook_secret = obj.webhook_secret, data["new_webhook_secret"]
        # After the rotation above: both at once means "the old one leaked — accept only the new".
        if data.get("clear_previous_webhook_secret"):
            obj.webhook_secret_previous = ""
        super().save_model(request, obj, form, change)


@admin.register(MappingVersion)
class MappingVersionAdmin(ReasonAdminMixin, SimpleHistoryAdmin):
    list_display = ["integration", "number", "status", "published_at", "author"]
    list_filter = ["status"]
    search_fields = ["integration__slug", "note"]

    def get_readonly_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        if obj and obj.status != MappingVersion.Status.DRAFT:
            return [f.name for f in self.model._meta.fields]
        return ["number", "published_at", "published_by"]


@admin.register(ExceptionRule)
class ExceptionRuleAdmin(ReasonAdminMixin, SimpleHistoryAdmin):
    list_display = ["customer", "integration", "kind", "owner", "status", "next_review_due", "fire_count"]
    list_filter = ["status", "kind"]
    search_fields = ["customer__name", "reason"]


class AttemptInline(admin.TabularInline):
    model = SyncAttempt
    extra = 0
    can_delete = False
    fields = ["number", "started_at", "outcome", "error_class", "reason", "response_status", "duration_ms"]
    readonly_fields = fields
    show_change_link = True


@admin.register(SyncRecord)
class SyncRecordAdmin(admin.ModelAdmin):
    list_display = ["source_id", "integration", "status", "attempt_count", "received_at", "last_error_class"]
    list_filter = ["status", "last_error_class"]
    search_fields = ["source_id", "destination_id", "event_id"]
    list_select_related = ["integration"]
    raw_id_fields = ["batch", "pinned_version", "prepared_version"]
    inlines = [AttemptInline]
    show_full_result_count = False


@admin.register(SyncAttempt)
class SyncAttemptAdmin(admin.ModelAdmin):
    list_display = ["record", "number", "outcome", "error_class", "response_status", "started_at"]
    list_filter = ["outcome", "error_class"]
    raw_id_fields = ["record", "mapping_version"]
    list_select_related = ["record__integration"]
    show_full_result_count = False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False  # append-only


@admin.register(ReviewItem)
class ReviewItemAdmin(admin.ModelAdmin):
    list_display = ["record", "reason_code", "status", "assignee", "opened_at"]
    list_filter = ["status", "reason_code"]
    raw_id_fields = ["record", "mapping_version", "rule"]
    list_select_related = ["record__integration"]


@admin.register(RecordLink)
class RecordLinkAdmin(admin.ModelAdmin):
    list_display = ["integration", "source_id", "destination_id", "last_delivered_at"]
    search_fields = ["source_id", "destination_id"]
    raw_id_fields = ["last_record", "last_version"]


@admin.register(ImportBatch)
class ImportBatchAdmin(admin.ModelAdmin):
    list_display = [
        "file_name",
        "integration",
        "status",
        "total_rows",
        "accepted_rows",
        "bad_rows",
        "created_at",
    ]
    list_filter = ["status"]


@admin.register(ActionLog)
class ActionLogAdmin(admin.ModelAdmin):
    list_display = ["created_at", "actor", "action", "record", "review_item"]
    list_filter = ["action"]
    raw_id_fields = ["record", "review_item"]
    list_select_related = ["actor", "record__integration"]

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False  # an audit trail is not edited


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ["created_at", "kind", "integration", "subject", "sent_at"]
    list_filter = ["kind"]
    list_select_related = ["integration__customer"]


@admin.register(PeriodicRun)
class PeriodicRunAdmin(admin.ModelAdmin):
    list_display = ["name", "last_run_at"]


# --------------------------------------------------------------------------------------------
# Users: role and access changes leave a RoleChange row; deactivation ends sessions at once
# --------------------------------------------------------------------------------------------

User = get_user_model()
AUDITED_USER_FIELDS = ("groups", "user_permissions", "is_active", "is_staff", "is_superuser")


def _snapshot(user: Any) -> dict[str, Any]:
    return {
        "roles": sorted(user.groups.values_list("name", flat=True)),
        "permissions": sorted(
            f"{app}.{code}" for app, code in user.user_permissions.values_list("content_type__app_label", "codename")
        ),
        "is_active": user.is_active,
        "is_staff": user.is_staff,
        "is_superuser": user.is_superuser,
    }


class AuditedUserChangeForm(UserAdmin.form):  # type: ignore[name-defined,misc]
    change_reason = forms.CharField(
        max_length=300, required=False, help_text="Required when roles, permissions or access change. " + REASON_HELP
    )

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean()
        if set(self.changed_data) & set(AUDITED_USER_FIELDS) and not cleaned.get("change_reason", "").strip():
            self.add_error("change_reason", "Say why this user's roles or access change.")
        return cleaned


if admin.site.is_registered(User):
    admin.site.unregister(User)


@admin.register(User)
class AuditedUserAdmin(UserAdmin):
    form = AuditedUserChangeForm
    fieldsets = [*UserAdmin.fieldsets, ("Audit", {"fields": ["change_reason"]})]  # type: ignore[misc]

    def save_model(self, request: Any, obj: Any, form: Any, change: bool) -> None:
        if change:
            request._user_before = _snapshot(User.objects.get(pk=obj.pk))
        super().save_model(request, obj, form, change)

    def save_related(self, request: Any, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        before = getattr(request, "_user_before", None)
        if before is None:
            return
        user = form.instance
        after = _snapshot(user)
        changes = {key: [before[key], after[key]] for key in after if before[key] != after[key]}
        user_service.record_change(
            user=user, acting_user=request.user, reason=form.cleaned_data.get("change_reason", ""), changes=changes
        )
        if before["is_active"] and not after["is_active"]:
            transaction.on_commit(lambda: user_service.end_sessions(user))


@admin.register(RoleChange)
class RoleChangeAdmin(admin.ModelAdmin):
    list_display = ["created_at", "user", "acting_user", "reason"]
    list_select_related = ["user", "acting_user"]
    search_fields = ["user__username", "reason"]
    readonly_fields = ["user", "acting_user", "reason", "changes", "created_at"]

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False  # append-only

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False
