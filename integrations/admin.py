from django.contrib import admin
from simple_history.admin import SimpleHistoryAdmin

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
    SyncAttempt,
    SyncRecord,
)


@admin.register(Integration)
class IntegrationAdmin(SimpleHistoryAdmin):
    list_display = ["name", "slug", "customer", "record_type", "delivery_mode", "status"]
    list_filter = ["status", "delivery_mode", "record_type", "source_kind"]
    search_fields = ["name", "slug", "customer__name"]
    exclude = ["destination_secret", "webhook_secret", "webhook_secret_previous"]


@admin.register(MappingVersion)
class MappingVersionAdmin(SimpleHistoryAdmin):
    list_display = ["integration", "number", "status", "published_at", "author"]
    list_filter = ["status"]
    search_fields = ["integration__slug", "note"]

    def get_readonly_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        if obj and obj.status != MappingVersion.Status.DRAFT:
            return [f.name for f in self.model._meta.fields]
        return ["number", "published_at", "published_by"]


@admin.register(ExceptionRule)
class ExceptionRuleAdmin(SimpleHistoryAdmin):
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
