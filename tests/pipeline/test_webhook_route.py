"""Webhooks are answered by WebhookRouteMiddleware, without the middlewares after it (sessions,
users, CSRF, messages, static files, htmx, history): what must still hold for them does, and
every other request goes down the whole chain."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import got_request_exception
from django.test import Client, override_settings
from django.urls import get_resolver, path, reverse

from integrations import hook_urls, webhooks
from integrations.middleware import WebhookRouteMiddleware
from integrations.models import SyncRecord
from integrations.sources import woocommerce
from tests.pipeline.helpers import CONTACT_SPEC, as_json, contact, make_integration, post_webhook, signed_headers

pytestmark = pytest.mark.django_db


class Recorder:
    """A middleware at the end of the chain that notes every path it sees."""

    seen: list[str] = []

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        Recorder.seen.append(request.path)
        return self.get_response(request)


@pytest.fixture
def hook(db):
    return make_integration(slug="route-contacts", partner_url="http://127.0.0.1:9", spec=CONTACT_SPEC)


@pytest.fixture
def recorded():
    Recorder.seen = []
    with override_settings(MIDDLEWARE=[*settings.MIDDLEWARE, f"{__name__}.Recorder"]):
        yield Recorder.seen


def test_a_webhook_is_answered_without_the_rest_of_the_chain_and_other_requests_are_not(hook, recorded):
    client = Client()
    response = post_webhook(client, hook, contact(1))
    assert response.status_code == 202
    assert SyncRecord.objects.count() == 1
    assert recorded == []
    assert client.get("/healthz").status_code == 200
    assert recorded == ["/healthz"]
    # Not the webhook's pattern (no trailing slash, an extra segment): the whole chain, as before.
    body = b"{}"
    client.post(f"/hooks/{hook.slug}", data=body, content_type="application/json")
    client.post(f"/hooks/{hook.slug}/extra/", data=body, content_type="application/json")
    assert recorded == ["/healthz", f"/hooks/{hook.slug}", f"/hooks/{hook.slug}/extra/"]


def test_a_webhook_answer_carries_the_security_headers_its_length_and_request_id_and_no_cookie(hook):
    body = b'{"id": "c-2", "email": "two@example.com", "updated_at": "2024-01-25T10:00:00Z"}'
    response = Client().post(
        f"/hooks/{hook.slug}/",
        data=body,
        content_type="application/json",
        headers={**signed_headers(hook.webhook_secret, body), "X-Request-ID": "partner-req-0001"},
        secure=True,
    )
    assert response.status_code == 202
    assert "default-src 'self'" in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert "max-age=31536000" in response["Strict-Transport-Security"]
    assert response["X-Request-ID"] == "partner-req-0001"
    assert int(response["Content-Length"]) == len(response.content)
    assert as_json(response)["records"][0]["source_id"] == "c-2"
    assert not response.cookies
    assert "Vary" not in response


def test_a_webhook_for_a_host_not_allowed_is_refused_before_anything_is_answered(db, caplog):
    # WooCommerce's ping is answered before any signature check (which would itself read the host).
    make_integration(slug="route-shop", partner_url="http://127.0.0.1:9", spec=CONTACT_SPEC, source_kind="woocommerce")
    headers, body = woocommerce.ping_request(12)
    client = Client()
    allowed = client.post("/hooks/route-shop/", data=body, content_type=headers["Content-Type"])
    assert allowed.status_code == 200
    with caplog.at_level(logging.INFO):
        refused = client.post(
            "/hooks/route-shop/", data=body, content_type=headers["Content-Type"], headers={"Host": "evil.example"}
        )
    assert refused.status_code == 400
    # Django's security log says it once; no second "Bad Request" line for the JSON body.
    assert [r.name for r in caplog.records if r.name.startswith("django.")] == ["django.security.DisallowedHost"]
    # Django's own refusal, given a JSON body like every webhook answer, with its length.
    assert as_json(refused)["error"] == "bad_request"
    assert int(refused["Content-Length"]) == len(refused.content)


def test_the_route_and_the_url_table_agree_on_the_webhook():
    url = reverse("webhook", kwargs={"slug": "x"})
    assert url.startswith(hook_urls.PREFIX)
    assert get_resolver().resolve(url).func is webhooks.receive
    assert get_resolver(hook_urls.__name__).resolve(url).func is webhooks.receive


def test_a_view_that_needs_csrf_or_a_login_in_the_route_stops_the_process(monkeypatch):
    def staff_page(request: Any) -> Any:
        raise AssertionError("never called")

    monkeypatch.setattr(
        hook_urls, "urlpatterns", [*hook_urls.urlpatterns, path("hooks/<slug:slug>/status/", staff_page)]
    )
    with pytest.raises(ImproperlyConfigured, match="would skip CSRF and login checks"):
        WebhookRouteMiddleware(lambda request: None)


def test_a_crash_in_the_webhook_is_a_logged_500_with_its_request_id_and_length(hook, monkeypatch, caplog):
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(webhooks, "ingest_items", boom)
    crashed: list[str] = []

    def note(**kwargs: Any) -> None:
        crashed.append(kwargs["request"].path)

    got_request_exception.connect(note)
    try:
        with caplog.at_level(logging.ERROR, logger="django.request"):
            response = post_webhook(
                Client(raise_request_exception=False), hook, contact(1), **{"X-Request-ID": "partner-req-boom1"}
            )
    finally:
        got_request_exception.disconnect(note)
    assert response.status_code == 500
    assert crashed == [f"/hooks/{hook.slug}/"]
    # Logged once, with its traceback (the JSON body that replaces Django's page is not logged again).
    errors = [r for r in caplog.records if r.name == "django.request" and r.levelname == "ERROR"]
    assert len(errors) == 1
    assert errors[0].exc_info
    assert response["X-Request-ID"] == "partner-req-boom1"
    assert int(response["Content-Length"]) == len(response.content)
    assert as_json(response)["error"] == "server_error"
    assert SyncRecord.objects.count() == 0
