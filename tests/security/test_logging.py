"""Logs are JSON lines with the request id (and the record id while a record is processed) and
carry no secret and no sensitive payload value."""

from __future__ import annotations

import io
import json
import logging
import time

import pytest
import structlog
from django.test import Client

from integrations import logsetup
from integrations.models import Integration, SyncAttempt, SyncRecord
from integrations.services.processing import drain_integration
from integrations.sources import generic
from tests.security.conftest import DESTINATION_SECRET, EMAIL, WEBHOOK_SECRET

pytestmark = pytest.mark.django_db


@pytest.fixture
def log_lines():
    """Everything logged, formatted exactly as the console handler of settings.LOGGING does."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logsetup.json_formatter())
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.INFO)
    lines: list[str] = []
    yield lambda: lines or lines.extend(line for line in stream.getvalue().splitlines() if line.strip()) or lines
    root.removeHandler(handler)
    root.setLevel(old_level)


def test_a_webhook_and_its_delivery_log_json_with_request_and_record_ids_and_no_secrets(world, log_lines):
    Integration.objects.filter(pk=world.integration.pk).update(
        destination_config={**world.integration.destination_config, "auth": "bearer"}
    )
    body = json.dumps({"id": "c-77", "email": EMAIL, "status": "pending", "updated_at": "2025-06-15T10:00:00+00:00"})
    now = int(time.time())
    response = Client().post(
        f"/hooks/{world.integration.slug}/",
        data=body.encode(),
        content_type="application/json",
        HTTP_X_SYNCDESK_TIMESTAMP=str(now),
        HTTP_X_SYNCDESK_SIGNATURE=generic.sign(WEBHOOK_SECRET, now, body.encode()),
        HTTP_X_REQUEST_ID="req-from-the-proxy-123",
    )
    assert response.status_code == 202, response.content
    assert response["X-Request-ID"] == "req-from-the-proxy-123"
    record = SyncRecord.objects.get(integration=world.integration, source_id="c-77")
    drain_integration(world.integration.pk, max_seconds=10)
    attempt = SyncAttempt.objects.get(record=record)
    # The delivery was tried with the bearer token, and the stored request does not hold it.
    assert attempt.request["headers"].get("Authorization") == "***"
    assert DESTINATION_SECRET not in json.dumps(attempt.request) + attempt.response_body + attempt.reason

    lines = log_lines()
    events = [json.loads(line) for line in lines]  # every line is JSON
    hook = [e for e in events if e.get("path") == f"/hooks/{world.integration.slug}/"]
    assert hook, lines
    assert hook[0]["request_id"] == "req-from-the-proxy-123"
    assert hook[0]["status"] == 202
    steps = [e for e in events if e.get("event") == "record step finished"]
    assert steps, lines
    assert steps[0]["record_id"] == record.pk
    assert steps[0]["integration_id"] == world.integration.pk
    text = "\n".join(lines)
    for secret in (DESTINATION_SECRET, WEBHOOK_SECRET, EMAIL):
        assert secret not in text


def test_a_request_without_an_id_gets_one_and_a_hostile_id_is_replaced(clients):
    made = clients["support"].get("/healthz")["X-Request-ID"]
    assert len(made) == 32
    replaced = clients["support"].get("/healthz", HTTP_X_REQUEST_ID='x"\n{evil}')["X-Request-ID"]
    assert replaced != 'x"\n{evil}'
    assert len(replaced) == 32


def test_secret_looking_values_are_redacted_from_any_log_line(log_lines):
    log = structlog.get_logger("test")
    log.info("calling partner with Bearer abc.def.ghi", api_key="k-123", token="t-456", detail=f"{WEBHOOK_SECRET}")
    logging.getLogger("plain").warning("stdlib line with whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    lines = log_lines()
    text = "\n".join(lines)
    for leaked in ("abc.def.ghi", "k-123", "t-456", WEBHOOK_SECRET, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"):
        assert leaked not in text
    assert all(json.loads(line)["level"] for line in lines)
