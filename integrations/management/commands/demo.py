"""`make demo`: set up the embedded (or configured) database, demo data and users, then run
the web server and a worker until Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from integrations import demo_data


class Command(BaseCommand):
    help = "Set up demo data and users, then run the web server and a worker."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--setup-only", action="store_true", help="Create data and users, start nothing.")

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        call_command("migrate", verbosity=0)
        logins = demo_data.ensure_role_users()
        demo_data.ensure_customers()
        url = f"http://127.0.0.1:{options['port']}/"
        db = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
        self.stdout.write(self.style.SUCCESS("Syncdesk demo is set up."))
        self.stdout.write(f"  database: {db}   queue: {settings.SYNCDESK_QUEUE_BACKEND}")
        self.stdout.write("  logins (new passwords every run):")
        for role, (username, password) in logins.items():
            self.stdout.write(f"    {role:<16} {username:<16} {password}")
        if options["setup_only"]:
            return
        env = {**os.environ, "DEBUG": os.environ.get("DEBUG", "1"), "SECURE_COOKIES": "false"}
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "config.wsgi",
                    "--bind",
                    f"127.0.0.1:{options['port']}",
                    "--workers",
                    "2",
                    "--access-logfile",
                    "-",
                ],
                env=env,
            ),
        ]
        self.stdout.write(self.style.SUCCESS(f"\n  Open {url} and log in. Ctrl-C stops everything.\n"))
        try:
            while all(p.poll() is None for p in procs):
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            for p in procs:
                p.wait(timeout=10)
