"""`manage.py mapping_import <integration> <file> --note "..." [--publish] [--user NAME]`: read a
YAML or JSON spec file into the integration's draft, or publish it as the next version."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from integrations.engine import spectext
from integrations.management.commands.mapping_export import find_integration
from integrations.services import mappings
from integrations.services.config_doc import find_user


class Command(BaseCommand):
    help = "Import a mapping spec (YAML or JSON) as the draft, or publish it with --publish."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("integration", help="integration slug")
        parser.add_argument("file", help="spec file, YAML or JSON")
        parser.add_argument("--note", default="", help="why (required with --publish)")
        parser.add_argument("--publish", action="store_true", help="publish as the next version at once")
        parser.add_argument("--user", default=None, help="username recorded in history (default: none)")

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        integration = find_integration(options["integration"])
        try:
            acting_user = find_user(options["user"])
        except LookupError as exc:
            raise CommandError(str(exc)) from None
        try:
            with open(options["file"], encoding="utf-8-sig") as fh:
                text = fh.read()
        except OSError as exc:
            raise CommandError(f"Cannot read {options['file']}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise CommandError(f"{options['file']} is not UTF-8 text.") from None
        try:
            spec = spectext.load_spec_text(text)
        except ValueError as exc:
            raise CommandError(f"{options['file']}: {exc}") from None
        try:
            if options["publish"]:
                version = mappings.publish_spec(
                    integration=integration, spec=spec, acting_user=acting_user, note=options["note"]
                )
                self.stdout.write(f"{integration.slug}: published v{version.number} — {version.note}")
            else:
                version = mappings.draft_save(
                    integration=integration, spec=spec, acting_user=acting_user, note=options["note"]
                )
                self.stdout.write(
                    f"{integration.slug}: draft saved (publish it with mapping_import --publish or in the editor)"
                )
        except mappings.MappingRefused as exc:
            raise CommandError(f"{options['file']}: {exc}") from None
