"""The inbound webhook endpoint: verify, store raw, wake a worker after commit, answer fast.

Every refusal is a JSON body ``{"error": code, "message": plain words}`` with the status the
sender's platform understands; nothing is half-stored (one transaction per request)."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from time import monotonic  # not time.monotonic: tests stand in for the module `time` (the clock)

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from integrations.engine import exactjson
from integrations.models import Integration, MappingVersion
from integrations.services import specs
from integrations.services.ingest import StaleIntegration, ingest_items
from integrations.sources import registry as sources
from integrations.sources.base import SourceError, handshake

log = logging.getLogger(__name__)

# The integration behind a slug — with its customer, decrypted secrets and published version —
# is kept per process, so a webhook does not read it on every request (two ORM queries, a third
# of a one-record request). It never decides what is stored on its own: on PostgreSQL the
# insert runs only if the integration's updated_at and status and its published version are
# still the cached ones (ingest_items(guard=True)), and a refused signature is checked again
# against a fresh read before it is answered 401. Either way a stale entry is read again and the
# request handled from the database, so a rotated or removed secret, a pause or a publish applies
# to the next request in every process. What the guard does not compare (the customer's time
# zone, for scheduled windows) is at most HOOK_CACHE_SECONDS old; so are answers that store
# nothing after a valid signature (a platform's ping, an empty or malformed body). SQLite (the
# embedded mode) reads on every request.
HOOK_CACHE_SECONDS = 5.0
_HOOKS_MAX = 512


@dataclass(frozen=True)
class _Hook:
    integration: Integration
    secrets: list[str]
    published: MappingVersion | None
    loaded_at: float


_hooks: dict[str, _Hook] = {}


def _hook(slug: str, *, fresh: bool) -> _Hook | None:
    now = monotonic()
    if not fresh:
        cached = _hooks.get(slug)
        if cached is not None and now - cached.loaded_at < HOOK_CACHE_SECONDS:
            return cached
    integration = Integration.objects.select_related("customer").filter(slug=slug).first()
    if integration is None:
        _hooks.pop(slug, None)
        return None
    hook = _Hook(
        integration=integration,
        secrets=[s for s in (integration.webhook_secret, integration.webhook_secret_previous) if s],
        published=specs.published_version(integration.pk),
        loaded_at=now,
    )
    if len(_hooks) >= _HOOKS_MAX:
        _hooks.clear()
    _hooks[slug] = hook
    return hook


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": code, "message": message}, status=status)


def _read_body(request: HttpRequest, limit: int) -> bytes | None:
    """The raw body, or None if it is larger than ``limit`` (checked before reading it all)."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        return None
    body = request.read(limit + 1)
    return None if len(body) > limit else body


# In the JSON text, the only ways to a NUL or an unpaired surrogate in a parsed string: strict
# parsing refuses raw control characters in strings, and a strict UTF-8 decode yields no
# surrogates. (A preceding backslash, as in "\\u0000", only makes this match more often.)
_SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")
_SCALARS = frozenset({str, int, Decimal, float, bool, type(None)})


def _within_depth(value: object, max_depth: int) -> bool:
    """No node of ``value`` (scalars included, the value itself at depth 1) is deeper than
    ``max_depth`` — counted as exactjson.storage_problem counts, without visiting scalars one by one."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children: Iterable[object]
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if not children:
            continue
        if depth >= max_depth:
            return False
        if not _SCALARS.issuperset(map(type, children)):
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return True


def _storage_problem(text: str, payload: object) -> str | None:
    """``exactjson.storage_problem(payload)``, without walking every string of a large body when
    its text cannot hold a NUL or a lone surrogate and it is shallow; else the full check. (Numbers
    that cannot be stored never get here: ``exactjson.loads(storable=True)`` refuses them.)"""
    if not _SUSPECT_ESCAPE.search(text) and _within_depth(payload, exactjson.MAX_DEPTH):
        return None
    return exactjson.storage_problem(payload)


def _decode(body: bytes) -> object:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SourceError(400, "invalid_encoding", f"The body is not UTF-8 (bad byte at offset {exc.start}).") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        payload = exactjson.loads(text, storable=True)
    except json.JSONDecodeError as exc:
        raise SourceError(
            400, "invalid_json", f"Invalid JSON at line {exc.lineno} column {exc.colno} (char {exc.pos}): {exc.msg}."
        ) from None
    except exactjson.NumberOutOfRange as exc:
        raise SourceError(400, "unstorable_json", f"The JSON cannot be stored: {exc}.") from None
    except (ValueError, RecursionError) as exc:
        raise SourceError(400, "invalid_json", f"Invalid JSON: {exc}.") from None
    problem = _storage_problem(text, payload)
    if problem:
        # Refuse clearly now rather than fail later (PostgreSQL, recursion): nothing is stored.
        code = "nul_character" if "NUL" in problem else "unstorable_json"
        raise SourceError(400, code, f"The JSON cannot be stored: {problem}.")
    return payload


@csrf_exempt
@login_not_required
def receive(request: HttpRequest, slug: str) -> JsonResponse:
    if request.method != "POST":
        response = _error(405, "method_not_allowed", "Send webhooks with POST.")
        response["Allow"] = "POST"
        return response
    cached = connection.vendor == "postgresql"
    hook = _hook(slug, fresh=not cached)
    if hook is None:
        return _error(404, "unknown_integration", f"No integration is called {slug[:100]!r}.")
    if request.META.get("HTTP_TRANSFER_ENCODING") and not request.META.get("CONTENT_LENGTH"):
        # A WSGI server hands Django no length for a chunked body, and Django then reads it as
        # empty: refuse it plainly rather than fail its signature.
        return _error(411, "length_required", "Send the body with a Content-Length header, not chunked.")
    limit = settings.SYNCDESK_WEBHOOK_MAX_BYTES
    body = _read_body(request, limit)
    if body is None:
        return _error(413, "body_too_large", f"The body is larger than {limit} bytes; send smaller batches.")
    now = time.time()  # one clock reading for the request, however often it is verified
    if cached:
        try:
            return _handle(request, hook, body, now=now, cached=True)
        except StaleIntegration:
            hook = _hook(slug, fresh=True)  # changed since it was cached: as if there were no cache
            if hook is None:
                return _error(404, "unknown_integration", f"No integration is called {slug[:100]!r}.")
    return _handle(request, hook, body, now=now, cached=False)


def _handle(request: HttpRequest, hook: _Hook, body: bytes, *, now: float, cached: bool) -> JsonResponse:
    """Verify, parse and store. With ``cached``, raises StaleIntegration instead of refusing a
    signature, and ingest_items raises it if the integration changed: nothing is stored then."""
    integration = hook.integration
    try:
        kind = sources.get(integration.source_kind)
    except KeyError:
        return _error(500, "misconfigured", "This integration's source kind is not installed.")
    try:
        greeting = handshake(kind, method=request.method or "POST", headers=request.headers, body=body)
        if greeting is not None and greeting.reply is not None:
            status, reply = greeting.reply
            return JsonResponse(reply, status=status)
        try:
            kind.verify(
                method=request.method or "POST",
                url=request.build_absolute_uri(),
                headers=request.headers,
                body=body,
                secrets=hook.secrets,
                now=now,
                tolerance=settings.SYNCDESK_WEBHOOK_TOLERANCE_SECONDS,
            )
        except SourceError:
            if cached:
                raise StaleIntegration from None  # a secret may have changed since: check again
            raise
        parsed = kind.parse(headers=request.headers, payload=_decode(body))
    except SourceError as exc:
        return _error(exc.status, exc.code, exc.message)
    if parsed.reply is not None:
        status, reply = parsed.reply
        return JsonResponse(reply, status=status)
    if not parsed.items:
        return JsonResponse({"status": "empty", "records": []}, status=200)
    stored = ingest_items(integration, parsed.items, published=hook.published, guard=cached)
    created = any(s.created for s in stored)
    held = integration.is_paused
    return JsonResponse(
        {
            "status": ("held" if held else "accepted") if created else "duplicate",
            "records": [
                {"id": s.id, "source_id": s.source_id, "duplicate": not s.created, "status": s.status} for s in stored
            ],
        },
        status=202 if created else 200,
    )
