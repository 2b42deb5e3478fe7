"""Secrets encrypted at rest: a text field whose database value is a Fernet token.

Keys come from ``SYNCDESK_ENCRYPTION_KEYS`` (comma-separated Fernet keys): the first encrypts,
every one decrypts, so a key is rotated by putting a new one first, running
``manage.py rotate_encryption_key`` (re-encrypts every row with the first key), then dropping
the old one. Without the variable (the embedded/demo/test mode) the key is derived from
SECRET_KEY — and from each of SECRET_KEY_FALLBACKS, for reading — which a deploy check warns
about: rotating SECRET_KEY without a fallback would make the stored secrets unreadable.

Stored values carry a prefix (``enc:v1:``) so a value written before encryption existed is
recognised and read as plain text (migration 0010 encrypts all of them). The empty string stays
empty: "no secret" is not a secret, and code checks ``if integration.destination_secret``."""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import models

PREFIX = "enc:v1:"


def derived_key(secret_key: str) -> str:
    """A Fernet key made from SECRET_KEY (only when SYNCDESK_ENCRYPTION_KEYS is not set)."""
    digest = hashlib.sha256(b"syncdesk.encrypted-field.v1:" + secret_key.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()


def configured_keys() -> tuple[str, ...]:
    """The keys in use, the encrypting one first."""
    keys = tuple(getattr(settings, "SYNCDESK_ENCRYPTION_KEYS", ()) or ())
    if keys:
        return keys
    fallbacks = tuple(getattr(settings, "SECRET_KEY_FALLBACKS", ()) or ())
    return tuple(derived_key(k) for k in (settings.SECRET_KEY, *fallbacks))


def keys_are_derived() -> bool:
    return not getattr(settings, "SYNCDESK_ENCRYPTION_KEYS", ())


@lru_cache(maxsize=8)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(k.encode()) for k in keys])
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(
            "SYNCDESK_ENCRYPTION_KEYS must be comma-separated Fernet keys "
            "(make one: python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')."
        ) from exc


def fernet() -> MultiFernet:
    return _fernet(configured_keys())


def encrypt(plain: str) -> str:
    if plain == "":
        return ""
    return PREFIX + fernet().encrypt(plain.encode()).decode()


def decrypt(stored: str) -> str:
    """Plain text of a stored value; a value without the prefix is legacy plain text."""
    if not stored.startswith(PREFIX):
        return stored
    try:
        return fernet().decrypt(stored[len(PREFIX) :].encode()).decode()
    except InvalidToken:
        raise ImproperlyConfigured(
            "A stored secret cannot be decrypted with any key in SYNCDESK_ENCRYPTION_KEYS "
            "(was a key removed before running rotate_encryption_key, or SECRET_KEY changed?)."
        ) from None


def is_encrypted_with_current_key(stored: str) -> bool:
    """True when ``stored`` is empty or a token of the first (encrypting) key."""
    if stored == "":
        return True
    if not stored.startswith(PREFIX):
        return False
    try:
        Fernet(configured_keys()[0].encode()).decrypt(stored[len(PREFIX) :].encode())
    except InvalidToken:
        return False
    return True


class EncryptedTextField(models.TextField):  # type: ignore[type-arg]
    """Text encrypted with Fernet in the database, plain text on the model instance.

    Not searchable (each write makes a new token) and never worth indexing."""

    description = "Text encrypted at rest"

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> str | None:
        if value is None:
            return None
        return decrypt(value)

    def to_python(self, value: Any) -> str | None:
        if value is None or not isinstance(value, str):
            return value
        return decrypt(value)

    def get_prep_value(self, value: Any) -> str | None:
        value = super().get_prep_value(value)
        if value is None:
            return None
        text = str(value)
        if text.startswith(PREFIX):  # already a token (e.g. copied row to row): keep it
            return text
        return encrypt(text)


@checks.register(checks.Tags.security, deploy=True)
def check_encryption_keys(app_configs: Any, **kwargs: Any) -> list[checks.CheckMessage]:
    """In production the keys should come from SYNCDESK_ENCRYPTION_KEYS, not from SECRET_KEY."""
    messages: list[checks.CheckMessage] = []
    if keys_are_derived():
        messages.append(
            checks.Warning(
                "SYNCDESK_ENCRYPTION_KEYS is not set: secrets are encrypted with a key derived from SECRET_KEY.",
                hint="Set SYNCDESK_ENCRYPTION_KEYS to one or more Fernet keys (docs/security.md); "
                "then run manage.py rotate_encryption_key.",
                id="syncdesk.W001",
            )
        )
    else:
        try:
            fernet()
        except ImproperlyConfigured as exc:
            messages.append(checks.Error(str(exc), id="syncdesk.E001"))
    return messages
