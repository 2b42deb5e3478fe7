"""Production settings pass ``check --deploy``, and every page carries the security headers:
a Content-Security-Policy allowing only our own origin, no framing, a referrer policy, HSTS."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": "p" + "roduction-like-secret-key-" + "x7Hq2mZ9wL4tR8vB1nC6yK3sD5fG0jQ_-aE",
    "ALLOWED_HOSTS": "syncdesk.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://syncdesk.example.com",
    "SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO",
    "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
}


def run_check(extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # A production environment: nothing the test run itself set (Playwright tests set
    # DJANGO_ALLOW_ASYNC_UNSAFE, which check --deploy rightly refuses).
    unset = ("DEBUG", "SECURE_SSL_REDIRECT", "SYNCDESK_ENCRYPTION_KEYS", "DJANGO_ALLOW_ASYNC_UNSAFE")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(PRODUCTION_ENV, **extra)
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_production_settings():
    # Silenced on purpose (config/settings.py says why): security.W021 (HSTS preload is the
    # operator's decision) and, while SECURE_SSL_REDIRECT is off, security.W008 (the proxy redirects).
    done = run_check({"SYNCDESK_ENCRYPTION_KEYS": Fernet.generate_key().decode()})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout, done.stdout


def test_check_deploy_is_clean_with_ssl_redirect_on_too():
    done = run_check({"SYNCDESK_ENCRYPTION_KEYS": Fernet.generate_key().decode(), "SECURE_SSL_REDIRECT": "true"})
    assert done.returncode == 0, done.stdout + done.stderr


def test_check_deploy_warns_when_secrets_use_a_key_derived_from_secret_key():
    done = run_check({})
    assert done.returncode != 0
    assert "syncdesk.W001" in done.stdout + done.stderr


def test_check_deploy_refuses_a_malformed_encryption_key():
    done = run_check({"SYNCDESK_ENCRYPTION_KEYS": "not-a-fernet-key"})
    assert "syncdesk.E001" in done.stdout + done.stderr


@pytest.mark.django_db
def test_pages_carry_the_security_headers(clients):
    response = clients["support"].get("/", secure=True)
    assert response.status_code == 200
    csp = response["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in csp.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'"
    assert "unsafe" not in csp
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "max-age=31536000" in response["Strict-Transport-Security"]


@pytest.mark.django_db
def test_the_login_page_and_the_admin_carry_the_csp_too():
    for url in ("/login/", "/admin/login/"):
        assert "default-src 'self'" in Client().get(url)["Content-Security-Policy"]


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
INLINE_STYLE = re.compile(r"<style\b|\sstyle\s*=", re.IGNORECASE)
INLINE_HANDLER = re.compile(r"\son[a-z]+\s*=\s*[\"']", re.IGNORECASE)
JS_URL = re.compile(r"(href|src|action)\s*=\s*[\"']\s*javascript:", re.IGNORECASE)


@pytest.mark.parametrize(
    "template", sorted((ROOT / "templates").rglob("*.html")), ids=lambda p: str(p.relative_to(ROOT / "templates"))
)
def test_templates_have_no_inline_script_style_or_handler_the_csp_would_block(template):
    text = template.read_text()
    for name, pattern in (
        ("inline <script>", INLINE_SCRIPT),
        ("inline style", INLINE_STYLE),
        ("inline event handler", INLINE_HANDLER),
        ("javascript: URL", JS_URL),
    ):
        match = pattern.search(text)
        assert match is None, f"{name} at offset {match.start() if match else 0}: move it to static/ (CSP)"


def test_htmx_is_told_not_to_inject_styles_or_eval():
    base = (ROOT / "templates" / "base.html").read_text()
    assert '"includeIndicatorStyles": false' in base
    assert '"allowEval": false' in base
