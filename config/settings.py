"""Syncdesk settings: one file, driven by environment variables (see .env.example and the README)."""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("SYNCDESK_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY is required when DEBUG is off (see .env.example).")
    SECRET_KEY = "insecure-development-key-only-used-with-DEBUG-on"  # noqa: S105

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_TZ = True
LANGUAGE_CODE = "en-us"
USE_I18N = False

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "simple_history",
    "customers",
    "integrations",
]

MIDDLEWARE = [
    # First, so every log line of the request (even a redirect's) carries its request id.
    "integrations.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Webhooks are answered here: nothing below applies to a signed machine-to-machine POST.
    "integrations.middleware.WebhookRouteMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.csp",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------
# PostgreSQL when DATABASE_URL is set; otherwise the embedded default, a SQLite file under var/.
# Persistent connections matter: measured 5x more webhook throughput than CONN_MAX_AGE=0.
CONN_MAX_AGE = int(os.environ.get("CONN_MAX_AGE", "600"))
DATABASE_URL = os.environ.get("DATABASE_URL", "")
# WAL, a busy timeout and write transactions that take the lock when they begin (a deferred one
# that reads first and then writes fails at once with "database is locked" when another process
# writes) let the web server and workers share a SQLite file.
SQLITE_OPTIONS = {
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
}
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=CONN_MAX_AGE, conn_health_checks=True)}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # DATABASE_URL=sqlite:///…
        DATABASES["default"]["OPTIONS"] = {**SQLITE_OPTIONS, **DATABASES["default"].get("OPTIONS", {})}
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "syncdesk.sqlite3",
            "OPTIONS": SQLITE_OPTIONS,
            # A file, not memory, so worker subprocesses in tests share the test database.
            "TEST": {"NAME": str(VAR_DIR / "test.sqlite3")},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Queue --------------------------------------------------------------------------------
# With REDIS_URL: RQ workers (manage.py syncworker) woken after each commit.
# Without: the embedded queue; `manage.py syncworker` polls the database instead (see README).
REDIS_URL = os.environ.get("REDIS_URL", "")
SYNCDESK_QUEUE_BACKEND = "rq" if REDIS_URL else "embedded"
if REDIS_URL:
    INSTALLED_APPS.append("django_rq")
    RQ_QUEUES = {
        "default": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 300},
    }
    RQ = {"COMMIT_MODE": "on_db_commit"}

# --- Auth -----------------------------------------------------------------------------------
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
SESSION_COOKIE_AGE = int(os.environ.get("SESSION_COOKIE_AGE", str(8 * 3600)))
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# The login form and the admin's login both go through integrations/login_throttle.py:
# this many failures within the window lock the username (or the client address) for the window.
SYNCDESK_LOGIN_MAX_FAILURES = int(os.environ.get("SYNCDESK_LOGIN_MAX_FAILURES", "5"))
SYNCDESK_LOGIN_MAX_FAILURES_PER_IP = int(os.environ.get("SYNCDESK_LOGIN_MAX_FAILURES_PER_IP", "20"))
SYNCDESK_LOGIN_LOCK_SECONDS = int(os.environ.get("SYNCDESK_LOGIN_LOCK_SECONDS", "900"))
# The request header (META name, e.g. HTTP_X_FORWARDED_FOR) holding the client address when a
# proxy sits in front; its last entry is used (the one our proxy appended). Empty: REMOTE_ADDR.
SYNCDESK_CLIENT_IP_HEADER = os.environ.get("SYNCDESK_CLIENT_IP_HEADER", "")

# --- HTTPS, HSTS, Content-Security-Policy (docs/security.md) ----------------------------------
# Behind a TLS-terminating proxy, name the header it sets, e.g. SECURE_PROXY_SSL_HEADER=
# HTTP_X_FORWARDED_PROTO (value "https" is assumed). HubSpot signatures need it as well.
_proxy_header = os.environ.get("SECURE_PROXY_SSL_HEADER", "")
SECURE_PROXY_SSL_HEADER = (_proxy_header, "https") if _proxy_header else None
# Off by default: the proxy in front redirects http to https (and Django redirecting as well would
# loop unless SECURE_PROXY_SSL_HEADER is set). Turn it on when Django faces clients directly.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]  # load balancers probe over plain HTTP
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "0" if DEBUG else "31536000"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SILENCED_SYSTEM_CHECKS = [
    # W021 (HSTS preload off): "preload" invites anyone to put the domain on browsers' built-in
    # list, which is hard to undo; that is the operator's decision (SECURE_HSTS_PRELOAD=true).
    "security.W021",
]
if not SECURE_SSL_REDIRECT:
    # W008 (no SSL redirect): the proxy in front does it; see SECURE_SSL_REDIRECT above.
    SILENCED_SYSTEM_CHECKS.append("security.W008")
# Only our own origin: htmx and app.js are static files, the chart is inline SVG (no style
# attributes), htmx is told not to inject styles or eval (base.html). The admin needs nothing more.
from django.utils.csp import CSP  # noqa: E402

SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "font-src": [CSP.SELF],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}
# Error reports (admin mails, the DEBUG page) hide settings and frame variables named like secrets.
DEFAULT_EXCEPTION_REPORTER_FILTER = "integrations.masking.SecretsExceptionReporterFilter"

# --- Secrets at rest ----------------------------------------------------------------------------
# Comma-separated Fernet keys: the first encrypts, all decrypt (integrations/fields.py). Unset: a
# key derived from SECRET_KEY (fine for the demo and tests; a deploy check warns in production).
SYNCDESK_ENCRYPTION_KEYS = env_list("SYNCDESK_ENCRYPTION_KEYS", "")

# --- Static files -----------------------------------------------------------------------------
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
MEDIA_ROOT = VAR_DIR / "media"

MAILERS = {
    "default": {"BACKEND": os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")},
}
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "syncdesk@localhost")

# One JSON object per line on stdout, from structlog and the standard library alike, with the
# request id and record id when known and secrets redacted (integrations/logsetup.py).
from integrations import logsetup  # noqa: E402

logsetup.configure_structlog()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": logsetup.json_formatter}},
    "handlers": {"console": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "json"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"httpx": {"level": "WARNING"}, "httpcore": {"level": "WARNING"}},
}

# --- Syncdesk ---------------------------------------------------------------------------------
# Outbound HTTP timeouts (seconds) for every destination call.
SYNCDESK_HTTP_CONNECT_TIMEOUT = float(os.environ.get("SYNCDESK_HTTP_CONNECT_TIMEOUT", "5"))
SYNCDESK_HTTP_READ_TIMEOUT = float(os.environ.get("SYNCDESK_HTTP_READ_TIMEOUT", "30"))
# How long a worker may hold claimed records before the sweeper hands them to another worker.
SYNCDESK_LEASE_SECONDS = int(os.environ.get("SYNCDESK_LEASE_SECONDS", "120"))
# Records claimed per database round trip by a drain job.
SYNCDESK_CHUNK_SIZE = int(os.environ.get("SYNCDESK_CHUNK_SIZE", "100"))
# PostgreSQL prepared statements for the webhook's INSERT (parsed and planned once per
# connection: half of PostgreSQL's CPU for a one-record webhook; every other query is as Django
# sends it). Turn off behind a PgBouncer in transaction mode unless it is 1.22 or newer with
# max_prepared_statements > 0.
SYNCDESK_PREPARED_STATEMENTS = env_bool("DATABASE_PREPARED_STATEMENTS", True)
SYNCDESK_WEBHOOK_MAX_BYTES = 1024 * 1024
SYNCDESK_WEBHOOK_TOLERANCE_SECONDS = 300
# Alerts: who hears when an integration starts failing, recovers, gives up on records or is paused.
SYNCDESK_ALERT_EMAILS = env_list("SYNCDESK_ALERT_EMAILS", "")
SYNCDESK_ALERT_WEBHOOK_URL = os.environ.get("SYNCDESK_ALERT_WEBHOOK_URL", "")
# A destination is "failing" (alert) after this long without a success; one bad call is not.
SYNCDESK_ALERT_FAILING_AFTER_SECONDS = int(os.environ.get("SYNCDESK_ALERT_FAILING_AFTER_SECONDS", "120"))
