"""Syncdesk's data. Configuration models keep full history (django-simple-history); the sync
tables (records, attempts) are append-mostly and are their own audit."""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from simple_history.models import HistoricalRecords

from integrations.engine import exactjson
from integrations.engine import retry_policy as rp
from integrations.fields import EncryptedTextField
from integrations.transports import registry as transports


def new_webhook_secret() -> str:
    return "sdk_" + secrets.token_urlsafe(32)


def exact_json_field(**kwargs):  # type: ignore[no-untyped-def]
    """A JSONField that keeps big integers and decimal digits exactly (see engine.exactjson)."""
    return models.JSONField(encoder=exactjson.ExactJSONEncoder, decoder=exactjson.ExactJSONDecoder, **kwargs)


class Integration(models.Model):
    class RecordType(models.TextChoices):
        CONTACT = "contact", "Contact"
        COMPANY = "company", "Company"
        ORDER = "order", "Order"
        INVOICE = "invoice", "Invoice"
        PRODUCT = "product", "Product"
        SUBSCRIPTION = "subscription", "Subscription"
        OTHER = "other", "Other"

    class SourceKind(models.TextChoices):
        GENERIC = "generic", "Syncdesk signed webhook / batch file"
        STANDARD_WEBHOOKS = "standard_webhooks", "Standard Webhooks (Svix)"
        SHOPIFY = "shopify", "Shopify"
        STRIPE = "stripe", "Stripe"
        WOOCOMMERCE = "woocommerce", "WooCommerce"
        HUBSPOT = "hubspot", "HubSpot"

    class DeliveryMode(models.TextChoices):
        REALTIME = "realtime", "Real time"
        SCHEDULED = "scheduled", "Scheduled window"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"

    customer = models.ForeignKey("customers.Customer", on_delete=models.PROTECT, related_name="integrations")
    name = models.CharField(max_length=200, help_text="What flows where, e.g. 'Shop contacts → CRM'.")
    slug = models.SlugField(
        max_length=80, unique=True, help_text="Used in the webhook URL /hooks/<slug>/ and in commands."
    )
    record_type = models.CharField(max_length=20, choices=RecordType.choices, default=RecordType.CONTACT)
    source_system = models.CharField(
        max_length=100, blank=True, help_text="Where records come from, in words (e.g. 'Shopify store')."
    )
    source_kind = models.CharField(
        max_length=30,
        choices=SourceKind.choices,
        default=SourceKind.GENERIC,
        help_text="How inbound webhooks are signed and shaped.",
    )
    destination_kind = models.CharField(max_length=30, default="rest_json", help_text="Where records go.")
    destination_config = models.JSONField(
        default=dict, blank=True, help_text="Base URL, paths and auth type for the destination (no secrets)."
    )
    # The three secrets are encrypted at rest (integrations/fields.py) and excluded from history.
    destination_secret = EncryptedTextField(
        blank=True, help_text="Token or password for the destination. Never shown in full."
    )
    delivery_mode = models.CharField(
        max_length=20,
        choices=DeliveryMode.choices,
        default=DeliveryMode.REALTIME,
        help_text="Real time delivers at once; scheduled delivers only inside the window.",
    )
    window_start = models.TimeField(
        null=True, blank=True, help_text="Start of the delivery window, customer's local time."
    )
    window_end = models.TimeField(null=True, blank=True, help_text="End of the delivery window, customer's local time.")
    retry_policy = models.JSONField(
        default=rp.default_policy_dict,
        blank=True,
        help_text="max_attempts, schedule (seconds), jitter, cap_seconds, hard_limit.",
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    paused_reason = models.CharField(max_length=300, blank=True)
    webhook_secret = EncryptedTextField(
        default=new_webhook_secret, help_text="Signs inbound webhooks. Never shown in full."
    )
    webhook_secret_previous = EncryptedTextField(
        blank=True, help_text="Still accepted during a secret rotation; clear it when done."
    )
    retention_days = models.PositiveIntegerField(
        default=30, help_text="Payloads and attempt bodies older than this are pruned; counts are kept."
    )
    rate_limit_per_second = models.FloatField(
        null=True, blank=True, help_text="Most deliveries per second to this destination (blank: no limit)."
    )
    sensitive_fields = models.JSONField(
        default=list, blank=True, help_text="Payload fields masked for roles that need not see them."
    )
    auth_failing_since = models.DateTimeField(null=True, blank=True, editable=False)
    # Health of the destination, kept by the pipeline: the start of the current run of failed
    # deliveries (None while it delivers), and the last success. Alerts and auto-pause read these.
    failing_since = models.DateTimeField(null=True, blank=True, editable=False)
    last_success_at = models.DateTimeField(null=True, blank=True, editable=False)
    auto_pause_after_hours = models.PositiveIntegerField(
        default=24, help_text="Pause (and alert) when the destination has failed this long without a success; 0: never."
    )
    alert_webhook_url = models.URLField(blank=True, help_text="Also POST alerts about this integration here.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords(
        excluded_fields=[
            "destination_secret",
            "webhook_secret",
            "webhook_secret_previous",
            "failing_since",
            "last_success_at",
            "auth_failing_since",
        ]
    )

    class Meta:
        ordering = ["customer__name", "name"]
        constraints = [
            models.CheckConstraint(
                name="integration_scheduled_has_window",
                condition=Q(delivery_mode="realtime") | Q(window_start__isnull=False, window_end__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.customer} · {self.name}"

    def clean(self) -> None:
        errors: dict[str, str] = {}
        try:
            kind = transports.get(self.destination_kind)
        except KeyError as exc:
            errors["destination_kind"] = str(exc)
        else:
            problems = kind.validate_config(self.destination_config)
            if problems:
                errors["destination_config"] = "; ".join(problems)
        try:
            rp.policy_from_dict(self.retry_policy)
        except ValueError as exc:
            errors["retry_policy"] = str(exc)
        if self.delivery_mode == self.DeliveryMode.SCHEDULED and (not self.window_start or not self.window_end):
            errors["window_start"] = "A scheduled integration needs a window start and end."
        if errors:
            raise ValidationError(errors)

    @property
    def policy(self) -> rp.RetryPolicy:
        return rp.policy_from_dict(self.retry_policy)

    @property
    def is_paused(self) -> bool:
        return self.status == self.Status.PAUSED


class MappingVersion(models.Model):
    """A mapping spec. Drafts change freely; published and retired versions never change
    (enforced here and by a database trigger, see migration 0003)."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        PUBLISHED = "published", "Published"
        RETIRED = "retired", "Retired"

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="mapping_versions")
    number = models.PositiveIntegerField(null=True, blank=True, help_text="Given when published: 1, 2, 3 …")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DRAFT)
    spec = exact_json_field(default=dict, help_text="The mapping spec (see the README for its format).")
    note = models.TextField(blank=True, help_text="Why this version exists. Required to publish.")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    history = HistoricalRecords()

    class Meta:
        ordering = ["integration", "-number"]
        permissions = [("publish_mappingversion", "Can publish mapping versions")]
        constraints = [
            models.UniqueConstraint(fields=["integration", "number"], name="mapping_version_number_unique"),
            # The pipeline reads "the published version" by this: there can only be one.
            models.UniqueConstraint(
                fields=["integration"], condition=Q(status="published"), name="mapping_one_published"
            ),
            models.UniqueConstraint(fields=["integration"], condition=Q(status="draft"), name="mapping_one_draft"),
            models.CheckConstraint(
                name="mapping_published_has_number", condition=Q(status="draft") | Q(number__isnull=False)
            ),
        ]

    def __str__(self) -> str:
        label = f"v{self.number}" if self.number else "draft"
        return f"{self.integration.slug} {label} ({self.get_status_display()})"

    def save(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if self.pk:
            old = MappingVersion.objects.filter(pk=self.pk).values("status", "spec", "number").first()
            if (
                old
                and old["status"] != self.Status.DRAFT
                and (old["spec"] != self.spec or old["number"] != self.number)
            ):
                raise ValidationError("A published mapping version cannot be edited; publish a new version.")
        super().save(*args, **kwargs)


class ExceptionRule(models.Model):
    """One customer-specific behaviour, as data, with who owns it and when it is reviewed."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        RETIRED = "retired", "Retired"

    customer = models.ForeignKey("customers.Customer", on_delete=models.CASCADE, related_name="exception_rules")
    integration = models.ForeignKey(
        Integration,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="exception_rules",
        help_text="Blank: applies to all of the customer's integrations.",
    )
    kind = models.CharField(max_length=50, help_text="What the rule does (from the rule-kind registry).")
    params = exact_json_field(default=dict, blank=True, help_text="The rule's settings, checked against its kind.")
    reason = models.TextField(help_text="Why this customer needs it, in words an account manager can confirm.")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="owned_rules",
        help_text="Who answers for it.",
    )
    approver = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="approved_rules",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_reviewed_at = models.DateTimeField(null=True, blank=True)
    last_reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    review_interval_days = models.PositiveIntegerField(default=90)
    next_review_due = models.DateField(null=True, blank=True, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="After this the rule stops applying.")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    fire_count = models.PositiveBigIntegerField(default=0, editable=False)
    last_fired_at = models.DateTimeField(null=True, blank=True, editable=False)

    history = HistoricalRecords(excluded_fields=["fire_count", "last_fired_at"])

    class Meta:
        ordering = ["customer__name", "kind", "id"]
        permissions = [("review_exceptionrule", "Can mark exception rules reviewed or retire them")]
        indexes = [
            # Register page and the daily reminder: active rules due for review.
            models.Index(fields=["status", "next_review_due"], name="rule_status_due_idx"),
        ]

    def __str__(self) -> str:
        scope = self.integration.slug if self.integration_id else "all integrations"
        return f"{self.customer} · {self.kind} ({scope})"

    def save(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        base = self.last_reviewed_at or self.created_at or timezone.now()
        self.next_review_due = (base + timedelta(days=self.review_interval_days)).date()
        super().save(*args, **kwargs)


class ImportBatch(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Waiting"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="import_batches")
    file_name = models.CharField(max_length=300)
    file_format = models.CharField(max_length=10, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    total_rows = models.PositiveIntegerField(default=0)
    accepted_rows = models.PositiveIntegerField(default=0)
    duplicate_rows = models.PositiveIntegerField(default=0)
    bad_rows = models.PositiveIntegerField(default=0)
    bytes_total = models.PositiveBigIntegerField(default=0)
    bytes_read = models.PositiveBigIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True, help_text="First bad rows: line number and reason.")
    message = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.file_name} → {self.integration.slug} ({self.get_status_display()})"


class SyncRecord(models.Model):
    """One inbound record. Its row is the truth about where it stands; RQ only runs work."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PROCESSING = "processing", "Processing"
        RETRYING = "retrying", "Retrying"
        WAITING_PARENT = "waiting_parent", "Waiting for parent"
        HELD = "held", "Held"
        DELIVERED = "delivered", "Delivered"
        SKIPPED = "skipped", "Skipped"
        REJECTED = "rejected", "Rejected"
        REVIEW = "review", "In review"

    # Statuses the claim query picks up once next_attempt_at has passed.
    DUE_STATUSES = ("pending", "retrying", "waiting_parent")

    # No index of its own: record_source_idx, record_dedupe_unique and record_integration_recent_idx
    # all start with it. Every index is written again on each status change of every record.
    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="records", db_index=False)
    source_id = models.CharField(max_length=255, help_text="The record's id in the source system.")
    event_id = models.CharField(max_length=255, blank=True, help_text="The source's event or delivery id.")
    event_type = models.CharField(max_length=100, blank=True)
    dedupe_key = models.CharField(max_length=255, help_text="Same key = same inbound event; stored once.")
    payload = exact_json_field(help_text="The record as received (after any audited edit).")
    original_payload = exact_json_field(
        null=True, blank=True, help_text="The payload as first received, kept when support edits it."
    )
    received_at = models.DateTimeField(default=timezone.now)
    source_updated_at = models.DateTimeField(null=True, blank=True)
    batch = models.ForeignKey(
        ImportBatch, null=True, blank=True, on_delete=models.SET_NULL, related_name="records", db_index=False
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    attempt_count = models.PositiveIntegerField(default=0)
    failure_count = models.PositiveIntegerField(default=0, help_text="Attempts that used up the retry budget.")
    lease_until = models.DateTimeField(null=True, blank=True)
    lease_token = models.CharField(max_length=64, blank=True)
    last_error_class = models.CharField(max_length=40, blank=True)
    last_reason = models.TextField(blank=True)
    pinned_version = models.ForeignKey(
        MappingVersion,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Resend with this version instead of the published one.",
        db_index=False,
    )
    # What the first attempt of this record version sent; retries resend it byte for byte.
    prepared_body = models.TextField(blank=True)
    prepared_operation = models.CharField(max_length=10, blank=True)
    prepared_version = models.ForeignKey(
        MappingVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    prepared_rules = exact_json_field(default=list, blank=True)
    idempotency_key = models.CharField(max_length=120, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
        help_text="Who asked for the next attempt (a resend); copied onto that attempt.",
    )
    parent_source_id = models.CharField(max_length=255, blank=True, help_text="The parent this record links to.")
    group_key = models.CharField(
        max_length=255, blank=True, help_text="Related records of one entity (merged by the mapping) share this."
    )
    destination_id = models.CharField(max_length=255, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    window_override = models.BooleanField(
        default=False, help_text="Support released it to go now: its retries do not wait for the window."
    )
    payload_pruned_at = models.DateTimeField(
        null=True, blank=True, help_text="When retention removed the payload (counts and outcomes are kept)."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        permissions = [
            ("resend_syncrecord", "Can resend records"),
            ("edit_payload_syncrecord", "Can edit a record's payload and resend it"),
            # Payload fields listed in Integration.sensitive_fields are masked without it.
            ("view_sensitive_payload", "Can see payload fields marked sensitive"),
        ]
        constraints = [
            # Race-safe dedupe of inbound events: the second insert fails, never a read-then-write.
            models.UniqueConstraint(fields=["integration", "dedupe_key"], name="record_dedupe_unique"),
        ]
        indexes = [
            # Drain job claim: due records of one integration, oldest first.
            models.Index(
                fields=["integration", "next_attempt_at"],
                name="record_due_idx",
                condition=Q(status__in=("pending", "retrying", "waiting_parent")),
            ),
            # Sweeper: records whose worker died while holding the lease.
            models.Index(fields=["lease_until"], name="record_lease_idx", condition=Q(status="processing")),
            # Ordering (newest updated-at wins) and search by source id.
            models.Index(fields=["integration", "source_id", "source_updated_at"], name="record_source_idx"),
            # Record search list and dashboard: newest first, keyset-paginated, by status.
            models.Index(fields=["status", "-received_at", "-id"], name="record_status_recent_idx"),
            models.Index(fields=["-received_at", "-id"], name="record_recent_idx"),
            # Children waiting for a parent that just got delivered.
            models.Index(
                fields=["integration", "parent_source_id"],
                name="record_parent_idx",
                condition=Q(status="waiting_parent"),
            ),
            # Search by destination id.
            models.Index(fields=["destination_id"], name="record_destination_idx", condition=~Q(destination_id="")),
            # Links that are empty when a record arrives and mostly stay so: only the rows that
            # have one are indexed (records of a batch; deleting a version or user checks these).
            models.Index(fields=["batch"], name="record_batch_idx", condition=Q(batch__isnull=False)),
            models.Index(
                fields=["pinned_version"], name="record_pinned_idx", condition=Q(pinned_version__isnull=False)
            ),
            models.Index(
                fields=["prepared_version"], name="record_prepared_idx", condition=Q(prepared_version__isnull=False)
            ),
            models.Index(
                fields=["requested_by"], name="record_requested_by_idx", condition=Q(requested_by__isnull=False)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.integration.slug}:{self.source_id} ({self.get_status_display()})"


class SyncAttempt(models.Model):
    """One try at a record, append-only: what we sent, what came back, and why it ended so."""

    class Outcome(models.TextChoices):
        DELIVERED = "delivered", "Delivered"
        RETRY = "retry", "Will retry"
        WAITING = "waiting", "Waiting for parent"
        REVIEW = "review", "Sent to review"
        REJECTED = "rejected", "Rejected"
        SKIPPED = "skipped", "Skipped"
        HELD = "held", "Held"

    record = models.ForeignKey(SyncRecord, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    mapping_version = models.ForeignKey(
        MappingVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="attempts"
    )
    rules_applied = exact_json_field(default=list, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    duration_ms = models.PositiveIntegerField(default=0)
    operation = models.CharField(max_length=10, blank=True)
    request = exact_json_field(default=dict, blank=True, help_text="Method, URL, headers (secrets redacted), body.")
    response_status = models.PositiveIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True)
    error_class = models.CharField(max_length=40, blank=True)
    reason = models.TextField(blank=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    idempotency_key = models.CharField(max_length=120, blank=True)
    output = exact_json_field(null=True, blank=True)
    trace = exact_json_field(default=list, blank=True)
    problems = exact_json_field(default=list, blank=True)
    acting_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["record", "number"]
        constraints = [
            models.UniqueConstraint(fields=["record", "number"], name="attempt_number_unique"),
        ]
        indexes = [
            # Dashboard and "attempts by error class" report over a time window.
            models.Index(fields=["started_at", "error_class"], name="attempt_time_error_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.record} attempt {self.number}: {self.outcome}"


class ReviewItem(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        RESOLVED = "resolved", "Resolved"
        DISMISSED = "dismissed", "Dismissed"

    record = models.ForeignKey(SyncRecord, on_delete=models.CASCADE, related_name="review_items")
    # The record's integration, copied onto the item so the queue filters by customer and by
    # integration without joining every open item to its record. Always set: by the pipeline's
    # bulk insert, by save() otherwise, by migration 0013 for older rows (NULL is only allowed
    # for that migration). No index of its own: the open-item queries use
    # review_open_integration_idx, and deleting an integration is rare.
    integration = models.ForeignKey(
        Integration,
        null=True,
        editable=False,
        on_delete=models.CASCADE,
        related_name="review_items",
        db_index=False,
    )
    reason_code = models.CharField(max_length=60, help_text="Machine cause, e.g. unmapped_value.")
    reason_text = models.TextField(help_text="Plain-language reason shown to support.")
    group_key = models.CharField(max_length=300, help_text="Items with the same cause share this key.")
    mapping_version = models.ForeignKey(
        MappingVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="review_items"
    )
    rule = models.ForeignKey(
        ExceptionRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="review_items"
    )
    details = exact_json_field(default=dict, blank=True)
    opened_at = models.DateTimeField(default=timezone.now)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="review_items",
    )
    notes = models.TextField(blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN)
    resolution_note = models.TextField(blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at"]
        permissions = [("work_reviewitem", "Can work the review queue")]
        constraints = [
            models.UniqueConstraint(fields=["record"], condition=Q(status="open"), name="review_one_open_per_record"),
        ]
        indexes = [
            # Review queue grouped by cause.
            models.Index(fields=["group_key"], name="review_open_group_idx", condition=Q(status="open")),
            # Review queue filtered by customer or integration: the grouping reads only the open
            # items of those integrations.
            models.Index(fields=["integration"], name="review_open_integration_idx", condition=Q(status="open")),
        ]

    def __str__(self) -> str:
        return f"{self.record}: {self.reason_text[:60]}"

    def save(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        # The pipeline sets integration_id itself (bulk_create skips save()); test factories and
        # the admin create items from a record alone. A record assigned on this instance (the
        # admin's form does that) decides, so the copy never disagrees with the record.
        if self.record_id is not None and (
            self.integration_id is None or ReviewItem._meta.get_field("record").is_cached(self)
        ):
            self.integration_id = self.record.integration_id
            update_fields = kwargs.get("update_fields")
            if update_fields is not None and "integration" not in update_fields:
                kwargs["update_fields"] = [*update_fields, "integration"]
        super().save(*args, **kwargs)


class RecordLink(models.Model):
    """One row per source record id of an integration: its destination id once delivered (later
    changes go as updates), and a lease so only one worker delivers a given source record at a
    time (two workers creating the same record concurrently would duplicate it at the partner)."""

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="links")
    source_id = models.CharField(max_length=255)
    destination_id = models.CharField(max_length=255, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    lease_token = models.CharField(max_length=64, blank=True)
    last_version = models.ForeignKey(MappingVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    last_source_updated_at = models.DateTimeField(null=True, blank=True)
    last_record = models.ForeignKey(SyncRecord, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    last_delivered_at = models.DateTimeField(default=timezone.now)
    match_keys = models.JSONField(default=dict, blank=True, help_text="Normalised email/phone for duplicate checks.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["integration", "source_id"], name="link_source_unique"),
        ]
        indexes = [
            # Search by destination id.
            models.Index(fields=["integration", "destination_id"], name="link_destination_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.integration.slug}:{self.source_id} → {self.destination_id}"


class ActionLog(models.Model):
    """Who did what to records and review items (resends, edits, resolutions, imports)."""

    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    action = models.CharField(max_length=60)
    record = models.ForeignKey(SyncRecord, null=True, blank=True, on_delete=models.CASCADE, related_name="actions")
    review_item = models.ForeignKey(ReviewItem, null=True, blank=True, on_delete=models.CASCADE, related_name="actions")
    note = models.TextField(blank=True)
    details = exact_json_field(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["record", "created_at"], name="action_record_idx")]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor} {self.action}"


class Alert(models.Model):
    """A notification about an integration: started failing, recovered, a record gave up,
    auto-paused, daily digest. Stored first, then sent by mail and webhook (sent_at set)."""

    class Kind(models.TextChoices):
        FAILING = "failing", "Destination started failing"
        RECOVERED = "recovered", "Destination recovered"
        EXHAUSTED = "exhausted", "Records gave up after their retries"
        PAUSED = "paused", "Integration auto-paused"
        DIGEST = "digest", "Review queue digest"

    integration = models.ForeignKey(Integration, null=True, blank=True, on_delete=models.CASCADE, related_name="alerts")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    subject = models.CharField(max_length=300)
    message = models.TextField()
    recipients = models.JSONField(default=list, blank=True)
    details = exact_json_field(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    send_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # Throttling: the last alert of a kind for an integration.
            models.Index(fields=["integration", "kind", "-created_at"], name="alert_throttle_idx"),
            # The sender: alerts not sent yet.
            models.Index(fields=["created_at"], name="alert_unsent_idx", condition=Q(sent_at__isnull=True)),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.kind}: {self.subject}"


class PeriodicRun(models.Model):
    """When each periodic task last ran. Workers claim a run with a guarded UPDATE, so with
    any number of workers each task runs once per interval (no separate scheduler process)."""

    name = models.CharField(max_length=60, unique=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_result = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return f"{self.name} @ {self.last_run_at}"


class LoginFailure(models.Model):
    """One failed login, for throttling (integrations/login_throttle.py). In the database so every
    gunicorn worker sees the same count; old rows are deleted as new ones come in."""

    username = models.CharField(max_length=150)
    ip = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            # Throttle check: recent failures for one username, and for one address.
            models.Index(fields=["username", "created_at"], name="loginfail_user_idx"),
            models.Index(fields=["ip", "created_at"], name="loginfail_ip_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.username} from {self.ip}"


class RoleChange(models.Model):
    """Who changed a user's roles or access, when, why, and from what to what (append-only).
    Written only by integrations.services.users, which the admin uses."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="role_changes")
    acting_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.TextField()
    # {"roles": [before, after], "is_active": [before, after], ...}: only what changed.
    changes = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.acting_user} changed {self.user}: {self.reason[:40]}"
