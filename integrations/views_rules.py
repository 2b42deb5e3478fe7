"""Exception-rule pages: the register, one rule with its history, a new rule, "what's special
about this customer" and the complexity check.

Glue only: a permission, a form, one service call, a message, a redirect. Seeing needs
``view_exceptionrule``; marking reviewed and retiring need ``review_exceptionrule``; creating
needs ``add_exceptionrule``. Every POST checks its permission here, whatever the page showed."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from customers.models import Customer
from integrations.engine import exactjson
from integrations.engine import rules as engine_rules
from integrations.forms_rules import RegisterFilterForm, RetireForm, ReviewForm, RuleEditForm, RuleForm
from integrations.models import ExceptionRule
from integrations.services import rules as rules_service

VIEW = "integrations.view_exceptionrule"
REVIEW = "integrations.review_exceptionrule"
ADD = "integrations.add_exceptionrule"
CHANGE = "integrations.change_exceptionrule"


def _require(request: HttpRequest, *perms: str) -> None:
    if not request.user.has_perms(perms):
        raise PermissionDenied


def _errors(exc: ValidationError) -> str:
    if hasattr(exc, "message_dict"):
        return "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
    return " ".join(exc.messages)


def _rows(rules: list[ExceptionRule]) -> list[dict[str, Any]]:
    today = timezone.localdate()
    return [
        {
            "rule": r,
            "text": rules_service.describe(r),
            "overdue": rules_service.is_overdue(r, today),
            "label": engine_rules.KINDS[r.kind].label if r.kind in engine_rules.KINDS else r.kind,
        }
        for r in rules
    ]


@require_GET
@permission_required(VIEW, raise_exception=True)
def register(request: HttpRequest) -> HttpResponse:
    form = RegisterFilterForm(request.GET or None)
    rules = list(rules_service.register(**form.filters()))
    return render(
        request,
        "rules/register.html",
        {
            "form": form,
            "rows": _rows(rules),
            "can_review": request.user.has_perm(REVIEW),
            "can_add": request.user.has_perm(ADD),
            "review_form": ReviewForm(),
            "retire_form": RetireForm(),
        },
    )


@require_GET
@permission_required(VIEW, raise_exception=True)
def detail(request: HttpRequest, pk: int) -> HttpResponse:
    rule = get_object_or_404(
        ExceptionRule.objects.select_related("customer", "integration", "owner", "approver", "last_reviewed_by"), pk=pk
    )
    history = rule.history.select_related("history_user").order_by("-history_date", "-history_id")  # type: ignore[attr-defined]
    return render(
        request,
        "rules/detail.html",
        {
            "row": _rows([rule])[0],
            "history": history,
            "can_review": request.user.has_perm(REVIEW),
            "review_form": ReviewForm(),
            "retire_form": RetireForm(),
        },
    )


def _back(request: HttpRequest, rule: ExceptionRule) -> HttpResponse:
    target = request.POST.get("next", "")
    if target.startswith("/rules/") and "//" not in target:
        return redirect(target)
    return redirect("rules:detail", pk=rule.pk)


@require_POST
def mark_reviewed(request: HttpRequest, pk: int) -> HttpResponse:
    _require(request, VIEW, REVIEW)
    rule = get_object_or_404(ExceptionRule, pk=pk)
    form = ReviewForm(request.POST)
    if not form.is_valid():
        messages.error(request, "A review needs a note saying what was checked.")
        return _back(request, rule)
    try:
        rule = rules_service.rule_mark_reviewed(rule=rule, acting_user=request.user, note=form.cleaned_data["note"])
    except ValidationError as exc:
        messages.error(request, _errors(exc))
    else:
        messages.success(request, f"Rule #{rule.pk} marked reviewed; next review due {rule.next_review_due:%Y-%m-%d}.")
    return _back(request, rule)


@require_POST
def retire(request: HttpRequest, pk: int) -> HttpResponse:
    _require(request, VIEW, REVIEW)
    rule = get_object_or_404(ExceptionRule, pk=pk)
    form = RetireForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Say why the rule is retired.")
        return _back(request, rule)
    try:
        rule = rules_service.rule_retire(rule=rule, acting_user=request.user, reason=form.cleaned_data["reason"])
    except ValidationError as exc:
        messages.error(request, _errors(exc))
    else:
        messages.success(request, f"Rule #{rule.pk} retired: it no longer applies.")
    return _back(request, rule)


RULE_FIELDS = ("integration", "kind", "params", "reason", "owner", "approver", "review_interval_days", "expires_at")


def _rule_fields(data: dict[str, Any]) -> dict[str, Any]:
    """The rule settings a RuleForm collects, as the rule services take them."""
    return {name: data[name] for name in RULE_FIELDS}


@require_http_methods(["GET", "POST"])
def create(request: HttpRequest) -> HttpResponse:
    _require(request, VIEW, ADD)
    initial = {"customer": request.GET.get("customer", ""), "owner": request.user.get_username()}
    form = RuleForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            rule = rules_service.rule_create(acting_user=request.user, customer=data["customer"], **_rule_fields(data))
        except ValidationError as exc:
            form.add_error(None, _errors(exc))
        else:
            messages.success(request, f"Rule #{rule.pk} created.")
            return redirect("rules:detail", pk=rule.pk)
    return render(request, "rules/form.html", {"form": form, "kinds": list(engine_rules.KINDS.values())})


@require_http_methods(["GET", "POST"])
def edit(request: HttpRequest, pk: int) -> HttpResponse:
    _require(request, VIEW, CHANGE)
    rule = get_object_or_404(ExceptionRule.objects.select_related("customer", "integration", "owner"), pk=pk)
    initial = {
        "customer": rule.customer.slug,
        "integration": rule.integration.slug if rule.integration else "",
        "kind": rule.kind,
        "params": exactjson.dumps(rule.params),
        "reason": rule.reason,
        "owner": rule.owner.get_username(),
        "approver": rule.approver.get_username() if rule.approver else "",
        "review_interval_days": rule.review_interval_days,
        "expires_at": rule.expires_at,
    }
    form = RuleEditForm(request.POST or None, initial=initial, rule=rule)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            rules_service.rule_update(
                rule=rule, acting_user=request.user, change_reason=data["change_reason"], **_rule_fields(data)
            )
        except ValidationError as exc:
            form.add_error(None, _errors(exc))
        else:
            messages.success(request, f"Rule #{rule.pk} changed.")
            return redirect("rules:detail", pk=rule.pk)
    return render(
        request,
        "rules/form.html",
        {"form": form, "kinds": list(engine_rules.KINDS.values()), "editing": rule},
    )


@require_GET
@permission_required([VIEW, "customers.view_customer"], raise_exception=True)
def special(request: HttpRequest, slug: str) -> HttpResponse:
    customer = get_object_or_404(Customer, slug=slug)
    context = rules_service.customer_special(customer)
    context["can_review"] = request.user.has_perm(REVIEW)
    return render(request, "rules/special.html", context)


@require_GET
@permission_required([VIEW, "integrations.view_integration"], raise_exception=True)
def complexity(request: HttpRequest) -> HttpResponse:
    slug = request.GET.get("customer") or None
    return render(
        request,
        "rules/complexity.html",
        {
            "customers": rules_service.complexity(slug),
            "all_customers": Customer.objects.values_list("slug", "name"),
            "chosen": slug or "",
            "columns": rules_service.COUNTS,
        },
    )
