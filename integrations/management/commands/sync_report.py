"""`manage.py sync_report [--customer SLUG] [--json]`."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand

from integrations.selectors import sync_report


class Command(BaseCommand):
    help = "Records per status per integration, oldest pending, review queue, attempts by error class."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--customer")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        report = sync_report(customer_slug=options["customer"])
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2))
            return
        self.stdout.write(f"Queue: {report['queue']}")
        for row in report["integrations"]:
            counts = ", ".join(f"{k} {v}" for k, v in sorted(row["records"].items())) or "no records"
            self.stdout.write(f"\n{row['customer']} / {row['integration']} ({row['status']}): {row['total']} records")
            self.stdout.write(f"  {counts}")
            self.stdout.write(
                f"  oldest pending: {row['oldest_pending'] or '-'}   due now: {row['due_now']}"
                f"   lag: {row['lag_seconds']} s   review queue: {row['review_open']}"
            )
            if row["attempt_errors"]:
                errs = ", ".join(f"{k} {v}" for k, v in sorted(row["attempt_errors"].items()))
                self.stdout.write(f"  attempt errors (7 days): {errs}")
