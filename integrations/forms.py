"""Forms of the support UI: record search, payload edit, notes, review-queue filters and actions."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib.auth import get_user_model

from integrations import selectors
from integrations.engine import exactjson
from integrations.models import Integration, SyncRecord

DATETIME_WIDGET = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")


def integration_choices() -> tuple[list[tuple[str, str]], list[tuple[str, Any]]]:
    """(customers, integrations grouped by customer) for select boxes, from one query."""
    customers: dict[str, str] = {}
    grouped: dict[str, list[tuple[str, str]]] = {}
    for slug, name, customer_slug, customer_name in Integration.objects.order_by("customer__name", "name").values_list(
        "slug", "name", "customer__slug", "customer__name"
    ):
        customers[customer_slug] = customer_name
        grouped.setdefault(customer_name, []).append((slug, f"{name} ({slug})"))
    return (
        [("", "All customers"), *customers.items()],
        [("", "All integrations"), *grouped.items()],
    )


class RecordSearchForm(forms.Form):
    source_id = forms.CharField(required=False, label="Source id", max_length=255)
    destination_id = forms.CharField(required=False, label="Destination id", max_length=255)
    customer = forms.ChoiceField(required=False, label="Customer")
    integration = forms.ChoiceField(required=False, label="Integration")
    status = forms.MultipleChoiceField(
        required=False, label="Status", choices=SyncRecord.Status.choices, widget=forms.CheckboxSelectMultiple
    )
    error_class = forms.ChoiceField(required=False, label="Error class")
    reason = forms.CharField(required=False, label="Reason contains", max_length=200)
    received_from = forms.DateTimeField(required=False, label="Received from", widget=DATETIME_WIDGET)
    received_to = forms.DateTimeField(required=False, label="Received before", widget=DATETIME_WIDGET)
    order = forms.ChoiceField(
        required=False, label="Order", choices=[("newest", "Newest first"), ("oldest", "Oldest first")]
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        customers, integrations = integration_choices()
        self.fields["customer"].choices = customers
        self.fields["integration"].choices = integrations
        self.fields["error_class"].choices = [("", "Any"), *((c, c) for c in selectors.error_classes())]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        start, end = data.get("received_from"), data.get("received_to")
        if start and end and end <= start:
            self.add_error("received_to", "Must be after “received from”.")
        return data

    def filters(self) -> selectors.RecordFilters:
        d = self.cleaned_data
        return selectors.RecordFilters(
            customer=d.get("customer") or "",
            integration=d.get("integration") or "",
            source_id=(d.get("source_id") or "").strip(),
            destination_id=(d.get("destination_id") or "").strip(),
            statuses=list(d.get("status") or []),
            error_class=d.get("error_class") or "",
            reason=(d.get("reason") or "").strip(),
            received_from=d.get("received_from"),
            received_to=d.get("received_to"),
            oldest_first=d.get("order") == "oldest",
        )


def parse_payload(text: str) -> dict[str, Any]:
    """JSON text → a payload object, keeping every digit (big ids, money). Raises ValidationError."""
    try:
        value = exactjson.loads(text, storable=True)
    except (json.JSONDecodeError, ValueError) as exc:
        raise forms.ValidationError(f"Not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise forms.ValidationError("The payload must be a JSON object ({ … }).")
    return value


class EditPayloadForm(forms.Form):
    label_suffix = ""
    payload = forms.CharField(
        label="Payload (JSON)",
        widget=forms.Textarea(attrs={"rows": 16, "spellcheck": "false", "class": "code"}),
        help_text="The first payload received is kept; this edit is logged with your note.",
    )
    note = forms.CharField(
        label="Why this edit (required)", max_length=1000, widget=forms.TextInput(attrs={"autocomplete": "off"})
    )

    def clean_payload(self) -> dict[str, Any]:
        return parse_payload(self.cleaned_data["payload"])

    def clean_note(self) -> str:
        note = self.cleaned_data["note"].strip()
        if not note:
            raise forms.ValidationError("Say why the payload was edited.")
        return note


class NoteForm(forms.Form):
    label_suffix = ""
    note = forms.CharField(
        label="Note (required)", max_length=2000, widget=forms.TextInput(attrs={"autocomplete": "off"})
    )

    def clean_note(self) -> str:
        note = self.cleaned_data["note"].strip()
        if not note:
            raise forms.ValidationError("A note is required.")
        return note


class ReviewFilterForm(forms.Form):
    customer = forms.ChoiceField(required=False, label="Customer")
    integration = forms.ChoiceField(required=False, label="Integration")
    reason_code = forms.ChoiceField(required=False, label="Reason")
    assignee = forms.ChoiceField(required=False, label="Assignee")
    group_by = forms.ChoiceField(
        required=False,
        label="Group by",
        choices=[("cause", "Cause"), ("version", "Mapping version"), ("rule", "Customer rule")],
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        customers, integrations = integration_choices()
        self.fields["customer"].choices = customers
        self.fields["integration"].choices = integrations
        self.fields["reason_code"].choices = [
            ("", "Any"),
            *((c, c.replace("_", " ")) for c in selectors.review_reason_codes()),
        ]
        self.fields["assignee"].choices = [("", "Anyone"), ("me", "Me"), ("none", "Unassigned"), *assignee_choices()]

    def filters(self, user: Any) -> selectors.ReviewFilters:
        """A value the form does not know (a customer since renamed, a typo in a bookmark) filters
        by what was asked, so it matches nothing: never quietly the whole queue."""
        self.is_valid()
        d = {**{name: self.data.get(name, "") for name in self.errors}, **self.cleaned_data}
        assignee = d.get("assignee") or ""
        if assignee == "me":
            assignee = user.get_username()
        return selectors.ReviewFilters(
            customer=d.get("customer") or "",
            integration=d.get("integration") or "",
            reason_code=d.get("reason_code") or "",
            assignee=assignee,
        )

    def grouping(self) -> str:
        self.is_valid()
        value = self.cleaned_data.get("group_by") or ""
        return value if value in selectors.GROUP_BY else "cause"


def assignee_choices() -> list[tuple[str, str]]:
    """People who may work the queue (by permission, not by group name)."""
    User = get_user_model()
    from django.contrib.auth.models import Permission
    from django.db.models import Q

    perm = Permission.objects.filter(codename="work_reviewitem", content_type__app_label="integrations").first()
    users = User.objects.filter(is_active=True)
    if perm is not None:
        users = users.filter(Q(groups__permissions=perm) | Q(user_permissions=perm) | Q(is_superuser=True))
    return [(u, u) for u in users.order_by("username").values_list("username", flat=True).distinct()[:200]]
