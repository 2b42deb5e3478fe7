"""Token auth for scripts using the operations API, without a token table.

A token is ``django.core.signing`` data — the user's id and a fingerprint of their password hash
and active flag, optionally an expiry — signed with SECRET_KEY and a salt of its own. It carries
the user; what it may do is that user's permissions, checked on every request. Changing the
user's password or deactivating them revokes every token they have; rotating SECRET_KEY revokes
all tokens. Create one with ``manage.py api_token <username>``.

Requests with ``Authorization: Bearer <token>`` are exempt from CSRF (no cookie is involved);
requests riding on a browser session are CSRF-checked like any form post."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_not_required
from django.core import signing
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.utils.crypto import constant_time_compare, salted_hmac
from django.views.decorators.csrf import csrf_exempt

from integrations.engine import exactjson

SALT = "syncdesk.api-token.v1"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def _fingerprint(user: Any) -> str:
    return salted_hmac(SALT, f"{user.pk}:{user.password}:{int(user.is_active)}", algorithm="sha256").hexdigest()[:32]


def make_token(user: Any, *, days: int | None = None) -> str:
    """A signed token for ``user``; valid until their password changes (or ``days`` pass)."""
    payload: dict[str, Any] = {"u": user.pk, "f": _fingerprint(user)}
    if days:
        payload["e"] = int(time.time()) + days * 86400
    return signing.dumps(payload, salt=SALT)


def user_from_token(token: str) -> Any | None:
    """The active user the token was made for, or None (bad signature, expired, revoked)."""
    try:
        payload = signing.loads(token, salt=SALT)
    except signing.BadSignature:
        return None
    if not isinstance(payload, dict) or "u" not in payload:
        return None
    if payload.get("e") and int(payload["e"]) < time.time():
        return None
    user = get_user_model().objects.filter(pk=payload["u"], is_active=True).first()
    if user is None or not constant_time_compare(str(payload.get("f", "")), _fingerprint(user)):
        return None
    return user


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> HttpResponse:
    """JSON written with exactjson, so big ids and money keep every digit."""
    response = HttpResponse(exactjson.dumps(data), status=status, content_type="application/json")
    for key, value in (headers or {}).items():
        response[key] = value
    return response


def error(status: int, message: str, **extra: Any) -> HttpResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="syncdesk"'} if status == 401 else None
    return json_response({"error": message, **extra}, status=status, headers=headers)


class _CSRFCheck(CsrfViewMiddleware):
    def _reject(self, request: HttpRequest, reason: str) -> str:  # type: ignore[override]
        return reason


def _csrf_failure(request: HttpRequest) -> str | None:
    check = _CSRFCheck(lambda r: HttpResponse())
    check.process_request(request)
    return check.process_view(request, lambda r: HttpResponse(), (), {})  # type: ignore[return-value]


def request_data(request: HttpRequest) -> dict[str, Any]:
    """A JSON object body, or form fields. Raises ValueError on a body that is not an object."""
    if request.content_type == "application/json":
        if not request.body:
            return {}
        data = exactjson.loads(request.body, storable=True)
        if not isinstance(data, dict):
            raise ValueError("The body must be a JSON object.")
        return data
    return {k: (v if len(v) > 1 else v[0]) for k, v in request.POST.lists()}


def api_view(
    *methods: str, perm: str | None = None
) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Authenticate (bearer token or session), check CSRF for sessions, check ``perm``, answer JSON."""

    def decorate(fn: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @csrf_exempt
        @login_not_required
        @wraps(fn)
        def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in methods:
                return error(405, f"Use {' or '.join(methods)}.")
            header = request.headers.get("Authorization", "")
            if header:
                scheme, _, token = header.partition(" ")
                user = user_from_token(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
                if user is None:
                    return error(401, "The token is not valid (wrong, expired, or revoked by a password change).")
                request.user = user
            elif request.user.is_authenticated:
                if request.method not in SAFE_METHODS:
                    reason = _csrf_failure(request)
                    if reason:
                        return error(403, f"CSRF check failed: {reason}")
            else:
                return error(401, "Authentication required: send 'Authorization: Bearer <token>'.")
            if perm and not request.user.has_perm(perm):
                return error(403, f"You need the permission {perm!r} for this.")
            try:
                return fn(request, *args, **kwargs)
            except (ValueError, json.JSONDecodeError) as exc:
                return error(400, str(exc))

        view.api_methods = methods  # type: ignore[attr-defined]
        view.api_perm = perm  # type: ignore[attr-defined]
        return view

    return decorate
