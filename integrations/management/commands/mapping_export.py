"""`manage.py mapping_export <integration> [--version N | --draft] [--format yaml|json]`: a mapping
spec as text on stdout (the published version unless told otherwise)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from integrations.engine import spectext
from integrations.models import Integration, MappingVersion
from integrations.services.mappings import ordered_spec


def find_integration(slug: str) -> Integration:
    integration = Integration.objects.filter(slug=slug).first()
    if integration is None:
        raise CommandError(f"No integration is called {slug!r}.")
    return integration


def find_version(integration: Integration, *, number: int | None, draft: bool) -> MappingVersion:
    """The version asked for: ``number``, the draft, or (neither) the published one."""
    versions = MappingVersion.objects.filter(integration=integration)
    if draft:
        found = versions.filter(status=MappingVersion.Status.DRAFT).first()
        if found is None:
            raise CommandError(f"{integration.slug} has no draft.")
        return found
    if number is not None:
        found = versions.filter(number=number).first()
        if found is None:
            raise CommandError(f"{integration.slug} has no version {number}.")
        return found
    found = versions.filter(status=MappingVersion.Status.PUBLISHED).first()
    if found is None:
        raise CommandError(f"{integration.slug} has no published mapping version yet.")
    return found


class Command(BaseCommand):
    help = "Print an integration's mapping spec as YAML (default) or JSON."

    def add_base_argument(self, parser, *args, **kwargs):  # type: ignore[no-untyped-def]
        # --version means "mapping version N" here, not Django's version.
        if "--version" not in args:
            super().add_base_argument(parser, *args, **kwargs)

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("integration", help="integration slug")
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--version", type=int, help="version number (default: the published one)")
        which.add_argument("--draft", action="store_true", help="the current draft")
        parser.add_argument("--format", choices=["yaml", "json"], default="yaml")

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        integration = find_integration(options["integration"])
        version = find_version(integration, number=options["version"], draft=options["draft"])
        text = spectext.dump_spec_text(ordered_spec(version.spec), options["format"])
        if options["format"] == "yaml":
            label = f"v{version.number} ({version.get_status_display().lower()})" if version.number else "draft"
            header = f"# {integration.slug} mapping {label}"
            if version.note:
                header += "\n# note: " + " ".join(version.note.split())
            text = header + "\n" + text
        self.stdout.write(text, ending="")
