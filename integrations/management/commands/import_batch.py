"""`manage.py import_batch <integration> <file>`: stream a CSV / JSON / JSON Lines file into records."""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError

from integrations.models import Integration
from integrations.services import imports


def _fmt_eta(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class Command(BaseCommand):
    help = "Import a CSV, JSON or JSON Lines file as records of an integration."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("integration", help="integration slug")
        parser.add_argument("file")
        parser.add_argument("--format", choices=["csv", "json", "jsonl"], default=None)
        parser.add_argument("--quiet", action="store_true")

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        integration = Integration.objects.filter(slug=options["integration"]).first()
        if integration is None:
            raise CommandError(f"No integration is called {options['integration']!r}.")
        try:
            stream = open(options["file"], "rb")  # noqa: SIM115
        except OSError as exc:
            raise CommandError(f"Cannot open {options['file']}: {exc.strerror}") from None
        tty = sys.stderr.isatty()

        def show(p: imports.Progress) -> None:
            if options["quiet"]:
                return
            pct = f"{100 * p.bytes_read / p.bytes_total:5.1f}%" if p.bytes_total else "     "
            line = (
                f"{pct} {p.rows:>10,} rows  {p.rows_per_second:>9,.0f} rows/s  ETA {_fmt_eta(p.eta_seconds):>7}"
                f"  stored {p.accepted:,}  known {p.duplicates:,}  bad {p.bad:,}"
            )
            sys.stderr.write(("\r" + line) if tty else (line + "\n"))
            sys.stderr.flush()

        with stream:
            batch = imports.start_batch(integration=integration, file_name=options["file"], acting_user=None)
            batch = imports.run_import(batch=batch, stream=stream, file_format=options["format"], on_progress=show)
        if tty and not options["quiet"]:
            sys.stderr.write("\n")
        for error in batch.errors[:50]:
            self.stdout.write(f"line {error['line']}: {error['reason']}")
        if batch.bad_rows > 50:
            self.stdout.write(f"… and {batch.bad_rows - 50} more bad rows (see batch #{batch.pk})")
        self.stdout.write(f"batch #{batch.pk}: {batch.get_status_display()} — {batch.message}")
        if batch.status == batch.Status.FAILED:
            raise CommandError(batch.message)
