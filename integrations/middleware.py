"""Request id and access log. The id is taken from ``X-Request-ID`` (when it looks like an id)
or made up, bound to every log line of the request (structlog contextvars) and returned in the
response's ``X-Request-ID``; one JSON line per request says what was answered."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import structlog
from django.core.exceptions import ImproperlyConfigured
from django.core.handlers.exception import convert_exception_to_response
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import Resolver404, get_resolver

HEADER = "X-Request-ID"
log = structlog.get_logger("syncdesk.request")
# A proxy's id is kept only if it is short and plain: it goes into every log line.
_ACCEPTABLE = re.compile(r"[A-Za-z0-9._:\-]{8,128}")


def request_id_from(request: HttpRequest) -> str:
    given = request.headers.get(HEADER, "")
    return given if _ACCEPTABLE.fullmatch(given) else uuid.uuid4().hex


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request_id_from(request)
        request.request_id = request_id  # type: ignore[attr-defined]
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.monotonic()
        try:
            response = self.get_response(request)
            # One access line per request: the path only (a query string may carry anything).
            log.info(
                "request finished",
                method=request.method,
                path=request.path,
                status=response.status_code,
                duration_ms=int((time.monotonic() - started) * 1000),
            )
        finally:
            structlog.contextvars.clear_contextvars()
        response[HEADER] = request_id
        return response

    def process_view(self, request: HttpRequest, view: Any, args: Any, kwargs: Any) -> None:
        # Runs after authentication: who is asking is known from here on.
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            structlog.contextvars.bind_contextvars(user_id=user.pk)


# What a webhook caller reads when Django's own handlers answered (the view itself always answers
# JSON): a refused Host header or another suspicious request, or a crash.
_ROUTE_ERRORS = {
    400: ("bad_request", "The request was refused (for example, its Host header is not one this server answers to)."),
    500: ("server_error", "The webhook could not be processed; it is logged under this answer's X-Request-ID."),
}


class WebhookRouteMiddleware:
    """Answers webhooks (``/hooks/<slug>/``) straight from their view, without the middlewares
    after this one or the rest of the URL table. A webhook is a signed machine-to-machine POST:
    it has no session, user, CSRF token, messages, static file, htmx header or history user, and
    walking those layers cost a quarter of a one-record webhook's CPU (docs/bench.md, "Fourth
    sitting"). What the middlewares before this one do still applies to it: the request id and
    access log, the security headers (HSTS, nosniff, referrer policy, CSP, X-Frame-Options), and
    the host is checked against ALLOWED_HOSTS here, as CommonMiddleware does for other requests.
    Django's own error answers (a refused host, a crash) keep their status and logging but are
    given a JSON body like every other webhook answer.
    Also skipped, on purpose: view middleware (only RequestIdMiddleware's user binding) and
    ATOMIC_REQUESTS (not used: the webhook manages its own transaction). Any other path under
    the prefix (no trailing slash, an extra segment) goes down the whole chain as before.

    Only views that need neither CSRF nor login may be routed here: anything else in
    integrations.hook_urls stops the process at start-up."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        from integrations import hook_urls  # imports the webhook view and so the models

        for pattern in hook_urls.urlpatterns:
            callback = getattr(pattern, "callback", None)
            if not getattr(callback, "csrf_exempt", False) or getattr(callback, "login_required", True) is not False:
                raise ImproperlyConfigured(
                    f"{hook_urls.__name__}: {pattern} would skip CSRF and login checks; only views that are "
                    "csrf_exempt and login_not_required belong there"
                )
        self.get_response = get_response
        self.prefix = hook_urls.PREFIX
        self.resolver = get_resolver(hook_urls.__name__)
        # An exception in the view becomes Django's 500 here (logged, got_request_exception sent),
        # so it too gets its Content-Length below.
        self.answer = convert_exception_to_response(self._call_view)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path_info.startswith(self.prefix):
            return self.get_response(request)
        try:
            match = self.resolver.resolve(request.path_info)
        except Resolver404:
            return self.get_response(request)
        request.resolver_match = match
        response: HttpResponse = self.answer(request)
        if not isinstance(response, JsonResponse):  # Django's HTML 400/500 page: the same status, in JSON
            code, message = _ROUTE_ERRORS.get(response.status_code, ("error", "The webhook was refused."))
            logged = getattr(response, "_has_been_logged", False)
            response = JsonResponse({"error": code, "message": message}, status=response.status_code)
            response._has_been_logged = logged  # type: ignore[attr-defined]  # Django logged it once already
        if not response.has_header("Content-Length"):  # as CommonMiddleware sets it for the others
            response.headers["Content-Length"] = str(len(response.content))
        return response

    @staticmethod
    def _call_view(request: HttpRequest) -> HttpResponse:
        request.get_host()  # DisallowedHost (a 400) for a host not in ALLOWED_HOSTS
        match = request.resolver_match
        assert match is not None
        response: HttpResponse = match.func(request, *match.args, **match.kwargs)
        return response
