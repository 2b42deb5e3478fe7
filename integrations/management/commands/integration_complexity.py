"""`manage.py integration_complexity [--customer SLUG] [--json]`: the check before the next integration."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from customers.models import Customer
from integrations.services.rules import COUNTS, complexity


class Command(BaseCommand):
    help = (
        "Per customer and integration: field mappings, conversions, value-map entries, exception rules, "
        "retry paths and open review items."
    )

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--customer", help="only this customer (slug)")
        parser.add_argument("--json", action="store_true", help="print JSON")

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        slug = options["customer"]
        if slug and not Customer.objects.filter(slug=slug).exists():
            raise CommandError(f"no customer with slug {slug!r}")
        report = complexity(slug)
        if options["json"]:
            self.stdout.write(json.dumps({"customers": report}, indent=2))
            return
        width = max([len(r["integration"]) + 2 for c in report for r in c["integrations"]] + [24])
        header = f"{'':{width}}  " + "  ".join(f"{name.replace('_', ' '):>17}" for name in COUNTS)
        self.stdout.write(header)
        for customer in report:
            totals = customer["totals"]
            self.stdout.write(f"{customer['name'][:width]:{width}}  " + "  ".join(f"{totals[n]:>17}" for n in COUNTS))
            for row in customer["integrations"]:
                label = f"  {row['integration']}"[:width]
                self.stdout.write(f"{label:{width}}  " + "  ".join(f"{row[n]:>17}" for n in COUNTS))
