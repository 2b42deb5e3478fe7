"""Login throttling: after SYNCDESK_LOGIN_MAX_FAILURES failed logins for one username within
SYNCDESK_LOGIN_LOCK_SECONDS (or SYNCDESK_LOGIN_MAX_FAILURES_PER_IP from one client address),
further logins for it are refused — without checking the password — until the window has passed.

Failures are rows (integrations.models.LoginFailure), so every gunicorn worker sees the same
counts. Attempts refused by the lock are not counted: the lock ends one window after the last
failure that counted, whatever an attacker keeps sending. A successful login clears the
username's failures. Both the login page and the admin's login use the forms below."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest
from django.utils import timezone

from integrations.models import LoginFailure


def client_ip(request: HttpRequest | None) -> str:
    if request is None:
        return ""
    header = settings.SYNCDESK_CLIENT_IP_HEADER
    if header and request.META.get(header):
        return str(request.META[header]).split(",")[-1].strip()[:64]
    return str(request.META.get("REMOTE_ADDR", ""))[:64]


def _window() -> timedelta:
    return timedelta(seconds=settings.SYNCDESK_LOGIN_LOCK_SECONDS)


def locked_for(*, username: str, ip: str) -> int:
    """Seconds until a login for ``username`` from ``ip`` is allowed again (0: allowed now)."""
    now = timezone.now()
    since = now - _window()
    waits = [0.0]
    for field, value, limit in (
        ("username", username.lower(), settings.SYNCDESK_LOGIN_MAX_FAILURES),
        ("ip", ip, settings.SYNCDESK_LOGIN_MAX_FAILURES_PER_IP),
    ):
        if not value or limit <= 0:
            continue
        recent = list(
            LoginFailure.objects.filter(**{field: value}, created_at__gte=since)
            .order_by("-created_at")
            .values_list("created_at", flat=True)[:limit]
        )
        if len(recent) >= limit:
            # Locked until the oldest of the last ``limit`` failures leaves the window.
            waits.append((recent[-1] + _window() - now).total_seconds())
    return max(0, math.ceil(max(waits)))


def record_failure(*, username: str, ip: str) -> None:
    now = timezone.now()
    LoginFailure.objects.create(username=username.lower()[:150], ip=ip, created_at=now)
    # Keep the table small: rows older than a day are of no use to any window.
    LoginFailure.objects.filter(created_at__lt=now - max(_window(), timedelta(days=1))).delete()


def clear_failures(*, username: str) -> None:
    LoginFailure.objects.filter(username=username.lower()).delete()


class ThrottledLoginMixin:
    """For an AuthenticationForm: refuse while locked, count failures, clear on success."""

    request: HttpRequest | None

    def clean(self) -> dict[str, Any]:
        username = str(self.data.get("username", ""))  # type: ignore[attr-defined]
        ip = client_ip(self.request)
        wait = locked_for(username=username, ip=ip)
        if wait:
            minutes = max(1, math.ceil(wait / 60))
            raise forms.ValidationError(
                f"Too many failed logins. Try again in {minutes} minute{'s' if minutes != 1 else ''}.",
                code="throttled",
            )
        try:
            cleaned: dict[str, Any] = super().clean()  # type: ignore[misc]
        except forms.ValidationError:
            if username:
                record_failure(username=username, ip=ip)
            raise
        clear_failures(username=username)
        return cleaned


class ThrottledAuthenticationForm(ThrottledLoginMixin, AuthenticationForm):
    pass


class ThrottledAdminAuthenticationForm(ThrottledLoginMixin, AdminAuthenticationForm):
    pass
