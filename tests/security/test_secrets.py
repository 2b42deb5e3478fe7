"""Destination credentials and webhook secrets: encrypted at rest with keys from the environment
(rotation re-encrypts every row), shown only masked, and never in attempts, exports, API answers
or error pages."""

from __future__ import annotations

import io
import sys
from types import SimpleNamespace

import pytest
from cryptography.fernet import Fernet
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection
from django.urls import path
from django.views.debug import ExceptionReporter

from config.urls import urlpatterns as project_urls
from integrations import fields
from integrations.masking import mask_secret
from integrations.models import Integration
from tests.security.conftest import DESTINATION_SECRET, PREVIOUS_SECRET, WEBHOOK_SECRET

pytestmark = pytest.mark.django_db
SECRETS = (DESTINATION_SECRET, WEBHOOK_SECRET, PREVIOUS_SECRET)


def raw_row(pk: int) -> tuple[str, str, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT destination_secret, webhook_secret, webhook_secret_previous FROM integrations_integration "
            "WHERE id = %s",
            [pk],
        )
        return cursor.fetchone()


def test_secrets_are_stored_encrypted_and_read_back_in_plain_text(world):
    stored = raw_row(world.integration.pk)
    for value, secret in zip(stored, SECRETS, strict=True):
        assert value.startswith("enc:v1:")
        assert secret not in value
    fresh = Integration.objects.get(pk=world.integration.pk)
    assert (fresh.destination_secret, fresh.webhook_secret, fresh.webhook_secret_previous) == SECRETS


def test_an_empty_secret_stays_empty(world):
    Integration.objects.filter(pk=world.integration.pk).update(webhook_secret_previous="")
    assert raw_row(world.integration.pk)[2] == ""


def test_a_key_rotation_re_encrypts_every_row_with_the_new_key(world, settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    # The fixture's rows were written with the key derived from SECRET_KEY: adopt a real key.
    settings.SYNCDESK_ENCRYPTION_KEYS = [old, fields.derived_key(settings.SECRET_KEY)]
    call_command("rotate_encryption_key", stdout=io.StringIO())
    settings.SYNCDESK_ENCRYPTION_KEYS = [old]
    assert fields.is_encrypted_with_current_key(raw_row(world.integration.pk)[0])
    settings.SYNCDESK_ENCRYPTION_KEYS = [new]
    with pytest.raises(ImproperlyConfigured, match="cannot be decrypted"):
        Integration.objects.get(pk=world.integration.pk)
    settings.SYNCDESK_ENCRYPTION_KEYS = [new, old]  # new first: encrypts; old still decrypts
    assert Integration.objects.get(pk=world.integration.pk).webhook_secret == WEBHOOK_SECRET
    out = io.StringIO()
    call_command("rotate_encryption_key", stdout=out)
    assert "1 integration" in out.getvalue()
    settings.SYNCDESK_ENCRYPTION_KEYS = [new]  # the old key can go now
    assert Integration.objects.get(pk=world.integration.pk).destination_secret == DESTINATION_SECRET


def test_without_keys_the_key_is_derived_from_secret_key_and_survives_a_secret_key_rotation(world, settings):
    settings.SYNCDESK_ENCRYPTION_KEYS = []
    call_command("rotate_encryption_key", stdout=io.StringIO(), stderr=io.StringIO())
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-brand-new-secret-key-for-this-test"
    assert Integration.objects.get(pk=world.integration.pk).webhook_secret == WEBHOOK_SECRET


def test_the_migration_encrypts_plain_text_rows_and_its_reverse_decrypts_them(world):
    from importlib import import_module

    migration = import_module("integrations.migrations.0010_secrets_encrypted_at_rest")
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE integrations_integration SET destination_secret = %s, webhook_secret = %s, "
            "webhook_secret_previous = '' WHERE id = %s",
            ["legacy-plain-token", "sdk_legacy-plain-webhook-secret", world.integration.pk],
        )
    editor = SimpleNamespace(connection=connection)
    migration.encrypt_existing(apps, editor)
    stored = raw_row(world.integration.pk)
    assert stored[0].startswith("enc:v1:")
    assert "legacy" not in stored[0] + stored[1]
    assert stored[2] == ""
    migration.encrypt_existing(apps, editor)  # running it twice changes nothing readable
    assert Integration.objects.get(pk=world.integration.pk).destination_secret == "legacy-plain-token"
    migration.decrypt_existing(apps, editor)
    assert raw_row(world.integration.pk) == ("legacy-plain-token", "sdk_legacy-plain-webhook-secret", "")


def test_a_masked_secret_shows_its_prefix_and_last_four_characters_only():
    assert mask_secret("sdk_abcdefghijklmnopqrstuvwxyz9f2c") == "sdk_…9f2c"
    assert mask_secret("whsec_abcdefghijklmnopqrstuvwxyz1234") == "whsec_…1234"
    assert mask_secret("short") == "••••"
    assert mask_secret("") == ""


def test_the_admin_shows_secrets_masked_and_never_in_full(world, clients):
    page = clients["admin"].get(f"/admin/integrations/integration/{world.integration.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "sdk_…9f2c" in html
    for secret in SECRETS:
        assert secret not in html
    assert 'type="password"' in html


def test_pages_and_api_answers_never_carry_a_secret(world, clients):
    urls = [
        "/",
        "/records/",
        f"/records/{world.record.pk}/",
        f"/records/{world.delivered.pk}/",
        "/review/",
        f"/api/records/{world.delivered.pk}/",
        f"/api/integrations/{world.integration.slug}/mappings/",
        "/api/me/",
        f"/admin/integrations/integration/{world.integration.pk}/history/",
    ]
    for url in urls:
        body = clients["admin"].get(url).content.decode()
        for secret in SECRETS:
            assert secret not in body, url


def test_the_config_export_leaves_secrets_out(world):
    out = io.StringIO()
    call_command("config_export", stdout=out)
    text = out.getvalue()
    assert world.integration.slug in text
    for secret in SECRETS:
        assert secret not in text
    assert "enc:v1:" not in text


def test_history_rows_do_not_hold_secrets(world):
    world.integration.name = "Renamed"
    world.integration.save()
    historical = world.integration.history.model
    names = {f.name for f in historical._meta.get_fields()}
    assert not names & {"destination_secret", "webhook_secret", "webhook_secret_previous"}


# --- error pages ---------------------------------------------------------------------------------


def boom(request, slug):  # type: ignore[no-untyped-def]
    integration = Integration.objects.get(slug=slug)
    webhook_secret = integration.webhook_secret
    secrets = [integration.webhook_secret, integration.webhook_secret_previous]
    token = integration.destination_secret
    note = f"failed with {webhook_secret}"
    raise RuntimeError(f"bug while verifying ({len(secrets)} secrets, {len(token)}, {len(note)})")


urlpatterns = [path("boom/<slug:slug>/", boom), *project_urls]


@pytest.mark.urls("tests.security.test_secrets")
def test_an_error_page_with_debug_off_shows_no_secret(world, clients, settings):
    settings.DEBUG = False
    client = clients["admin"]
    client.raise_request_exception = False
    response = client.get(f"/boom/{world.integration.slug}/")
    assert response.status_code == 500
    body = response.content.decode()
    for secret in SECRETS:
        assert secret not in body


@pytest.mark.urls("tests.security.test_secrets")
def test_the_technical_error_report_hides_secret_variables_and_settings(world, clients, settings):
    settings.DEBUG = True  # the page a developer (or the admins' error mail) would see
    settings.SYNCDESK_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), fields.derived_key(settings.SECRET_KEY)]
    call_command("rotate_encryption_key", stdout=io.StringIO())
    client = clients["admin"]
    client.raise_request_exception = False
    response = client.get(f"/boom/{world.integration.slug}/", HTTP_AUTHORIZATION="Bearer sekrit-api-token")
    assert response.status_code == 500
    body = response.content.decode()
    assert "RuntimeError" in body  # it is the technical page
    hidden = [*SECRETS, settings.SYNCDESK_ENCRYPTION_KEYS[0], "sekrit-api-token"]
    if len(settings.SECRET_KEY) > 8:  # the test run's SECRET_KEY may be a single letter
        hidden.append(settings.SECRET_KEY)
    for secret in hidden:
        assert secret not in body, secret
    # The same report as mailed to admins (plain text).
    try:
        boom(SimpleNamespace(), world.integration.slug)
    except RuntimeError:
        reporter = ExceptionReporter(None, *sys.exc_info())
        text = reporter.get_traceback_text()
    for secret in SECRETS:
        assert secret not in text
