"""`manage.py api_token <username> [--days N]`: print a token for the operations API."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from integrations.api_auth import make_token


class Command(BaseCommand):
    help = (
        "Print an API token for a user. It acts with that user's permissions; changing the user's "
        "password (or deactivating them) revokes it."
    )

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("username")
        parser.add_argument("--days", type=int, default=None, help="Expire after this many days (default: never).")

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        user = get_user_model().objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"No user {options['username']!r}.")
        if not user.is_active:
            raise CommandError(f"{user.get_username()} is not active.")
        self.stdout.write(make_token(user, days=options["days"]))
