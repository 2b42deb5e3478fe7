"""Forms of the exception-rule pages: register filters, review, retire, a new rule."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib.auth import get_user_model

from customers.models import Customer
from integrations.engine import exactjson
from integrations.engine import rules as engine_rules
from integrations.models import Integration

UNUSED_CHOICES = [("", "Any"), ("30", "Not fired in 30 days"), ("90", "Not fired in 90 days")]
STATUS_CHOICES = [("active", "Active"), ("retired", "Retired"), ("all", "All")]


def kind_choices(blank: str | None = "All kinds") -> list[tuple[str, str]]:
    choices = [(k.name, f"{k.label} ({k.name})") for k in engine_rules.KINDS.values()]
    return [("", blank), *choices] if blank is not None else choices


class RegisterFilterForm(forms.Form):
    customer = forms.ChoiceField(required=False, label="Customer")
    kind = forms.ChoiceField(required=False, label="Kind")
    owner = forms.ChoiceField(required=False, label="Owner")
    status = forms.ChoiceField(required=False, label="Status", choices=STATUS_CHOICES)
    overdue = forms.BooleanField(required=False, label="Overdue for review only")
    unused = forms.ChoiceField(required=False, label="Unused", choices=UNUSED_CHOICES)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["customer"].choices = [("", "All customers"), *Customer.objects.values_list("slug", "name")]
        self.fields["kind"].choices = kind_choices()
        owners = (
            get_user_model()
            .objects.filter(owned_rules__isnull=False)
            .distinct()
            .order_by("username")
            .values_list("username", "username")
        )
        self.fields["owner"].choices = [("", "Anyone"), *owners]

    def filters(self) -> dict[str, Any]:
        if not self.is_valid():
            return {"status": "active"}
        data = self.cleaned_data
        return {
            "customer": data["customer"],
            "kind": data["kind"],
            "owner": data["owner"],
            "status": data["status"] or "active",
            "overdue": data["overdue"],
            "unused_days": int(data["unused"]) if data["unused"] else None,
        }


class ReviewForm(forms.Form):
    note = forms.CharField(
        label="Review note", widget=forms.Textarea(attrs={"rows": 2}), help_text="What you checked, and with whom."
    )


class RetireForm(forms.Form):
    reason = forms.CharField(label="Why retire it", widget=forms.Textarea(attrs={"rows": 2}))


class RuleForm(forms.Form):
    customer = forms.ModelChoiceField(queryset=Customer.objects.order_by("name"), to_field_name="slug")
    integration = forms.ModelChoiceField(
        queryset=Integration.objects.select_related("customer").order_by("customer__name", "name"),
        to_field_name="slug",
        required=False,
        help_text="Blank: the rule applies to all of the customer's integrations.",
    )
    kind = forms.ChoiceField()
    params = forms.CharField(
        label="Parameters (JSON)",
        widget=forms.Textarea(attrs={"rows": 5, "spellcheck": "false"}),
        help_text='e.g. {"condition": {"field": "status", "op": "eq", "value": "cancelled"}}',
    )
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), help_text="Why this customer needs it.")
    owner = forms.ModelChoiceField(queryset=get_user_model().objects.order_by("username"), to_field_name="username")
    approver = forms.ModelChoiceField(
        queryset=get_user_model().objects.order_by("username"), to_field_name="username", required=False
    )
    review_interval_days = forms.IntegerField(min_value=1, max_value=3650, initial=90)
    expires_at = forms.DateTimeField(
        required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["kind"].choices = kind_choices(blank=None)

    def clean_params(self) -> dict[str, Any]:
        text = self.cleaned_data["params"]
        try:
            value = exactjson.loads(text, storable=True)
        except (ValueError, json.JSONDecodeError) as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise forms.ValidationError("Parameters must be a JSON object.")
        return value  # type: ignore[no-any-return]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        kind, params = data.get("kind"), data.get("params")
        if kind and isinstance(params, dict):
            for problem in engine_rules.validate_params(kind, params):
                self.add_error("params", problem)
        integration, customer = data.get("integration"), data.get("customer")
        if integration is not None and customer is not None and integration.customer_id != customer.pk:
            self.add_error("integration", "This integration belongs to another customer.")
        return data


class RuleEditForm(RuleForm):
    """Change a rule: everything but its customer, with a reason kept in history."""

    change_reason = forms.CharField(
        label="Why this change", widget=forms.Textarea(attrs={"rows": 2}), help_text="Kept in the rule's history."
    )

    def __init__(self, *args: Any, rule: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rule = rule
        self.fields["customer"].disabled = True
        self.fields["integration"].queryset = self.fields["integration"].queryset.filter(  # type: ignore[attr-defined]
            customer_id=rule.customer_id
        )
