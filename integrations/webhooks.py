"""The inbound webhook endpoint: verify, store raw, wake a worker after commit, answer fast.

Every refusal is a JSON body ``{"error": code, "message": plain words}`` with the status the
sender's platform understands; nothing is half-stored (one transaction per request)."""

from __future__ import annotations

import json
import logging
import time

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from integrations.engine import exactjson
from integrations.models import Integration
from integrations.services.ingest import ingest_items
from integrations.sources import registry as sources
from integrations.sources.base import SourceError, handshake

log = logging.getLogger(__name__)


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


def _decode(body: bytes) -> object:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SourceError(400, "invalid_encoding", f"The body is not UTF-8 (bad byte at offset {exc.start}).") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        payload = exactjson.loads(text)
    except json.JSONDecodeError as exc:
        raise SourceError(
            400, "invalid_json", f"Invalid JSON at line {exc.lineno} column {exc.colno} (char {exc.pos}): {exc.msg}."
        ) from None
    except (ValueError, RecursionError) as exc:
        raise SourceError(400, "invalid_json", f"Invalid JSON: {exc}.") from None
    problem = exactjson.storage_problem(payload)
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
    integration = Integration.objects.select_related("customer").filter(slug=slug).first()
    if integration is None:
        return _error(404, "unknown_integration", f"No integration is called {slug!r}.")
    limit = settings.SYNCDESK_WEBHOOK_MAX_BYTES
    body = _read_body(request, limit)
    if body is None:
        return _error(413, "body_too_large", f"The body is larger than {limit} bytes; send smaller batches.")
    try:
        kind = sources.get(integration.source_kind)
    except KeyError:
        return _error(500, "misconfigured", "This integration's source kind is not installed.")
    try:
        greeting = handshake(kind, method=request.method or "POST", headers=request.headers, body=body)
        if greeting is not None and greeting.reply is not None:
            status, reply = greeting.reply
            return JsonResponse(reply, status=status)
        kind.verify(
            method=request.method or "POST",
            url=request.build_absolute_uri(),
            headers=request.headers,
            body=body,
            secrets=[s for s in (integration.webhook_secret, integration.webhook_secret_previous) if s],
            now=time.time(),
            tolerance=settings.SYNCDESK_WEBHOOK_TOLERANCE_SECONDS,
        )
        parsed = kind.parse(headers=request.headers, payload=_decode(body))
    except SourceError as exc:
        return _error(exc.status, exc.code, exc.message)
    if parsed.reply is not None:
        status, reply = parsed.reply
        return JsonResponse(reply, status=status)
    if not parsed.items:
        return JsonResponse({"status": "empty", "records": []}, status=200)
    stored = ingest_items(integration, parsed.items)
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
