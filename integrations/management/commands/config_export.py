"""`manage.py config_export [--customer SLUG]`: customers, integrations (no secrets), published
mappings and exception rules as one YAML document on stdout (see docs/mapping-versions.md)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from integrations.services import config_doc


class Command(BaseCommand):
    help = "Print the configuration (all customers, or one) as a YAML document for config_import."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--customer", default=None, help="only this customer (slug)")

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        try:
            doc = config_doc.export_document(customer_slug=options["customer"])
        except LookupError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(config_doc.dump_document(doc), ending="")
