"""`manage.py config_import <file> [--dry-run] [--note "..."] [--user NAME]`: apply a configuration
document from config_export. All or nothing, idempotent; see docs/mapping-versions.md."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from integrations.services import config_doc


class Command(BaseCommand):
    help = "Import a configuration document (YAML or JSON): check everything, then write it all or nothing."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("file")
        parser.add_argument("--dry-run", action="store_true", help="show what would change; write nothing")
        parser.add_argument("--note", default="", help="change note (default: the document's note)")
        parser.add_argument("--user", default=None, help="username recorded in history (default: none)")

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        try:
            acting_user = config_doc.find_user(options["user"])
        except LookupError as exc:
            raise CommandError(str(exc)) from None
        try:
            with open(options["file"], encoding="utf-8-sig") as fh:
                doc = config_doc.load_document(fh.read())
        except OSError as exc:
            raise CommandError(f"Cannot read {options['file']}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise CommandError(f"{options['file']} is not UTF-8 text.") from None
        except ValueError as exc:
            raise CommandError(f"{options['file']}: {exc}") from None
        try:
            plan = config_doc.import_document(
                doc, acting_user=acting_user, note=options["note"], dry_run=options["dry_run"]
            )
        except config_doc.ConfigRefused as exc:
            raise CommandError(str(exc)) from None
        prefix = "would " if options["dry_run"] else ""
        for change in plan.changes:
            self.stdout.write(prefix + change.text())
        for note in plan.notes:
            self.stdout.write("note: " + note)
        if not plan.changes:
            self.stdout.write("No changes: the database already matches the document.")
        elif options["dry_run"]:
            self.stdout.write(f"Dry run: {len(plan.changes)} change(s) checked, nothing written.")
        else:
            self.stdout.write(f"Imported: {len(plan.changes)} change(s).")
