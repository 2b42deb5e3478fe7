"""`manage.py rules_due_reminder [--within-days N]`: email each owner the rules due for review.

Run daily (cron or the scheduler). One email per owner; see services.rules.send_review_reminders."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from integrations.services.rules import DUE_SOON_DAYS, send_review_reminders


class Command(BaseCommand):
    help = "Email each rule owner the exception rules overdue or due for review soon."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--within-days", type=int, default=DUE_SOON_DAYS, help="also list rules due this soon")

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        sent = send_review_reminders(within_days=options["within_days"])
        self.stdout.write(f"Sent {sent} reminder email{'s' if sent != 1 else ''}.")
