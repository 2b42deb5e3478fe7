"""`manage.py map_preview <integration> <file> [--version N | --draft | --spec FILE]`: map every
record of a CSV / JSON / JSON Lines file and print one JSON line per record, storing nothing.

Each line is ``{"line", "source_id", "decision", "output", "problems", "trace"}``; a row that
cannot be read (or is not an object) is ``{"line": N, "error": "..."}``. Numbers stay exact.
"""

from __future__ import annotations

import os
import sys
from typing import Any, BinaryIO

from django.core.management.base import BaseCommand, CommandError

from integrations.engine import exactjson, mapping, spectext
from integrations.engine.readers import ReaderError, RowError, open_records
from integrations.management.commands.mapping_export import find_integration, find_version
from integrations.services.mappings import preview_one


class Command(BaseCommand):
    help = "Map a file of records with a mapping version (default: the published one) and print JSON lines."

    def add_base_argument(self, parser, *args, **kwargs):  # type: ignore[no-untyped-def]
        # --version means "mapping version N" here, not Django's version.
        if "--version" not in args:
            super().add_base_argument(parser, *args, **kwargs)

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("integration", help="integration slug")
        parser.add_argument("file", help="records: .csv, .json or .jsonl")
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--version", type=int, help="mapping version number (default: the published one)")
        which.add_argument("--draft", action="store_true", help="use the current draft")
        which.add_argument("--spec", help="use a spec file (YAML or JSON) instead of a stored version")
        parser.add_argument("--format", choices=["csv", "json", "jsonl"], default=None, help="override detection")

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        integration = find_integration(options["integration"])
        if options["spec"]:
            spec = _spec_file(options["spec"])
        else:
            spec = find_version(integration, number=options["version"], draft=options["draft"]).spec
        try:
            compiled = mapping.compile_spec(spec)
        except mapping.SpecError as exc:
            raise CommandError(
                "The mapping spec cannot be used:\n" + "\n".join(f"  - {e}" for e in exc.errors)
            ) from None
        try:
            stream = open(options["file"], "rb")  # noqa: SIM115
        except OSError as exc:
            raise CommandError(f"Cannot open {options['file']}: {exc.strerror}") from None
        with stream:
            try:
                self._print(stream, compiled, options)
            except BrokenPipeError:
                # `map_preview ... | head`: the reader went away; stop quietly.
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())

    def _print(self, stream: BinaryIO, compiled: mapping.CompiledSpec, options: dict[str, Any]) -> None:
        write = self.stdout.write
        try:
            for item in open_records(stream, name=options["file"], file_format=options["format"]):
                if isinstance(item, RowError):
                    write(exactjson.dumps({"line": item.line, "error": item.reason}))
                else:
                    write(exactjson.dumps({"line": item.line, **preview_one(compiled, item.record)}))
        except ReaderError as exc:
            # The rest of the file cannot be read; the lines already printed stand.
            write(exactjson.dumps({"line": None, "error": str(exc)}))
            raise CommandError(f"{options['file']}: {exc}") from None


def _spec_file(path: str) -> Any:
    try:
        with open(path, encoding="utf-8-sig") as fh:
            return spectext.load_spec_text(fh.read())
    except OSError as exc:
        raise CommandError(f"Cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise CommandError(f"{path} is not UTF-8 text.") from None
    except ValueError as exc:
        raise CommandError(f"{path}: {exc}") from None
