"""`manage.py fake_partner --port 8765`: run the partner simulator (integrations/partner_sim.py)
until Ctrl-C or SIGTERM. Prints one line with the URL first, so a script can start it on port 0
and read where it listens."""

from __future__ import annotations

import signal
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from integrations.partner_sim import PartnerSim


class Command(BaseCommand):
    help = "Run a fake REST JSON partner with injectable faults (see docs/destinations.md)."
    # It uses neither the database nor the URL conf; checking them only slows start-up.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8765, help="0 picks a free port (printed)")
        parser.add_argument("--seed", type=int, default=None, help="seed for the fault dice")
        parser.add_argument("--latency-ms", type=float, default=0.0)
        parser.add_argument("--fail-rate", type=float, default=0.0, help="share of requests answered 5xx")
        parser.add_argument("--fail-status", type=int, default=503)
        parser.add_argument("--lost-rate", type=float, default=0.0, help="share stored, then dropped unanswered")
        parser.add_argument("--timeout-rate", type=float, default=0.0, help="share stored, then answered late")
        parser.add_argument("--timeout-seconds", type=float, default=35.0, help="how late a late answer is")
        parser.add_argument("--rate-limit-burst", type=int, default=0, help="answer the first N requests 429")
        parser.add_argument("--rate-limit-every", type=int, default=0, help="and again after every N more")
        parser.add_argument("--retry-after", type=float, default=2.0, help="seconds, sent with a 429")
        parser.add_argument("--retry-after-date", action="store_true", help="send Retry-After as an HTTP-date")
        parser.add_argument(
            "--reject-field",
            action="append",
            default=[],
            metavar="NAME[:always]",
            help="answer 400 '<NAME> is invalid' when the field looks invalid (blank, contains 'invalid', "
            "an email without @), or whenever present with :always; repeatable",
        )
        parser.add_argument("--reject-status", type=int, default=400)
        parser.add_argument("--no-conflict", action="store_true", help="a repeated external id creates again")
        parser.add_argument("--no-idempotency", action="store_true", help="ignore Idempotency-Key")
        parser.add_argument("--auth", choices=["none", "bearer", "basic"], default="none")
        parser.add_argument("--token", default="", help="bearer token or basic password to require")
        parser.add_argument("--username", default="", help="basic-auth user name to require")
        parser.add_argument("--external-id-field", default="external_id")
        parser.add_argument("--log-limit", type=int, default=10_000, help="requests kept in the /_stats log")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            sim = PartnerSim(
                host=options["host"],
                port=options["port"],
                seed=options["seed"],
                log_limit=options["log_limit"],
                latency_ms=options["latency_ms"],
                fail_rate=options["fail_rate"],
                fail_status=options["fail_status"],
                lost_rate=options["lost_rate"],
                timeout_rate=options["timeout_rate"],
                timeout_seconds=options["timeout_seconds"],
                rate_limit_burst=options["rate_limit_burst"],
                rate_limit_every=options["rate_limit_every"],
                retry_after=options["retry_after"],
                retry_after_form="date" if options["retry_after_date"] else "seconds",
                reject_field=options["reject_field"],
                reject_status=options["reject_status"],
                conflict_on_duplicate=not options["no_conflict"],
                idempotency=not options["no_idempotency"],
                auth=options["auth"],
                token=options["token"],
                username=options["username"],
                external_id_field=options["external_id_field"],
            )
            sim.bind()
        except (ValueError, OSError) as exc:
            raise CommandError(str(exc)) from exc

        def stop(signum: int, frame: object) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, stop)
        self.stdout.write(f"fake_partner listening on {sim.url}")
        self.stdout.flush()
        sys.stdout.flush()
        try:
            sim.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            sim.stop()
        self.stdout.write("fake_partner stopped")
