"""Re-encrypt every stored secret with the first key of SYNCDESK_ENCRYPTION_KEYS.

Key rotation: put the new key first (keep the old one after it), deploy, run this command,
then remove the old key. Safe to run again: rows already under the first key are rewritten
with a fresh token, nothing else changes (no history row, no updated_at change)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from integrations.fields import encrypt, keys_are_derived
from integrations.models import Integration

FIELDS = ("destination_secret", "webhook_secret", "webhook_secret_previous")


class Command(BaseCommand):
    help = "Re-encrypt every integration's secrets with the first key of SYNCDESK_ENCRYPTION_KEYS."

    def handle(self, *args: Any, **options: Any) -> None:
        if keys_are_derived():
            self.stderr.write(
                "SYNCDESK_ENCRYPTION_KEYS is not set: secrets use a key derived from SECRET_KEY "
                "(and SECRET_KEY_FALLBACKS for reading). Re-encrypting with the current SECRET_KEY."
            )
        count = 0
        with transaction.atomic():
            for row in Integration.objects.select_for_update().values("pk", *FIELDS).iterator():
                # values() decrypts with any configured key; update() with raw tokens writes the
                # values encrypted with the first key (the field keeps a token as it is).
                Integration.objects.filter(pk=row["pk"]).update(**{f: encrypt(row[f] or "") for f in FIELDS})
                count += 1
        self.stdout.write(f"Re-encrypted the secrets of {count} integration{'s' if count != 1 else ''}.")
