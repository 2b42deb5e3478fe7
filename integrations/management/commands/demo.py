"""`make demo` / `make demo-check`: the two-customer story, end to end.

Starts a fake partner (with modest failure injection), a worker and the web server; sends the
shop's Shopify-signed webhooks through the web server; imports the industrial customer's nightly
CSV and JSON Lines files; releases the nightly batch now; waits for every record to settle; prints
what happened. ``--check`` runs the same story headless and exits non-zero unless every record
ends as the story says."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections

from integrations import demo_data
from integrations.engine import exactjson
from integrations.models import ReviewItem, SyncRecord
from integrations.services import imports, records
from integrations.sources.shopify import sign_request

ROOT = Path(settings.BASE_DIR)
TERMINAL = ("delivered", "review", "skipped", "rejected")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Command(BaseCommand):
    help = "Run the two-customer demo story (or check it with --check)."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--check", action="store_true", help="Run headless; exit non-zero on a wrong outcome.")
        parser.add_argument("--deadline", type=float, default=240.0, help="Seconds to wait for the queue to drain.")

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logdir = Path(settings.VAR_DIR) / "demo"
        self.logdir.mkdir(parents=True, exist_ok=True)
        try:
            self._run(options)
        finally:
            if options["check"]:
                self._stop()

    # ---------------------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.logdir / f"{name}.log").open("wb")
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def _stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def _wait_http(self, url: str, what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                httpx.get(url, timeout=1.0)
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise CommandError(f"{what} did not start; see {self.logdir}")

    def _run(self, options: dict[str, Any]) -> None:
        check = options["check"]
        out = self.stdout
        call_command("migrate", verbosity=0)
        logins = demo_data.ensure_role_users()
        env = {**os.environ, "DEBUG": os.environ.get("DEBUG", "1"), "SECURE_COOKIES": "false"}
        python = sys.executable

        partner_port = free_port()
        partner_url = f"http://127.0.0.1:{partner_port}"
        self._spawn(
            "partner",
            [
                python,
                "manage.py",
                "fake_partner",
                "--port",
                str(partner_port),
                "--seed",
                "7",
                "--fail-rate",
                "0.05",
                "--lost-rate",
                "0.02",
                "--auth",
                "bearer",
                "--token",
                "demo-partner-token",
            ],
            env,
        )
        self._wait_http(f"{partner_url}/_stats", "the fake partner")
        made = demo_data.configure(partner_url)
        story = demo_data.story()

        port = free_port() if check else options["port"]
        web = f"http://127.0.0.1:{port}"
        self._spawn(
            "web",
            [
                python,
                "-m",
                "gunicorn",
                "config.wsgi",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "2",
                "--access-logfile",
                "-",
            ],
            env,
        )
        self._spawn("worker", [python, "manage.py", "syncworker", "--sweep-interval", "2"], env)
        self._wait_http(f"{web}/healthz", "the web server")
        out.write(f"Partner at {partner_url}, web at {web}, worker started (logs in {self.logdir}).")

        # Customer A: Shopify-signed webhooks through the real endpoint, in real time.
        contacts, orders = made["shop_contacts"], made["shop_orders"]
        sent = Counter()
        with httpx.Client(base_url=web, timeout=30) as client:
            for order in story.early_orders:
                sent[self._shopify(client, orders, order, "orders/create")] += 1
            for contact in story.shop_contacts:
                sent[self._shopify(client, contacts, contact, "customers/create")] += 1
            for order in story.shop_orders:
                sent[self._shopify(client, orders, order, "orders/create")] += 1
            # Shopify delivers at least once: the same event again is answered 200 and stored once.
            sent[self._shopify(client, contacts, story.shop_contacts[0], "customers/create")] += 1
        out.write(f"Customer A: sent {sum(sent.values())} Shopify webhooks (answers: {dict(sent)}).")

        # Customer B: the nightly files, imported as a batch.
        companies, industrial_orders = made["industrial_companies"], made["industrial_orders"]
        csv_path = self.logdir / f"{companies.slug}.csv"
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(story.company_rows[0]))
        writer.writeheader()
        writer.writerows(story.company_rows)
        buffer.write("\n".join(story.bad_company_lines) + "\n")
        csv_path.write_text(buffer.getvalue(), encoding="utf-8")
        jsonl_path = self.logdir / f"{industrial_orders.slug}.jsonl"
        jsonl_path.write_text("\n".join(exactjson.dumps(o) for o in story.industrial_orders) + "\n", encoding="utf-8")
        for integration, path in ((companies, csv_path), (industrial_orders, jsonl_path)):
            batch = imports.start_batch(integration=integration, file_name=path.name, acting_user=None)
            with path.open("rb") as stream:
                batch = imports.run_import(batch=batch, stream=stream)
            out.write(f"Customer B: imported {path.name}: {batch.message}.")
            for error in batch.errors:
                out.write(f"  line {error['line']}: {error['reason']}")
            released = records.release_scheduled_now(
                integration=integration, acting_user=None, note="Demo: the nightly window is 01:00–04:00 Chicago"
            )
            out.write(f"  {released} records would wait for 01:00 Chicago time; released now for the demo.")

        settled = self._wait_settled(list(made.values()), options["deadline"])
        ok = self._report(made, story, partner_url) and settled
        if check:
            if not ok:
                raise CommandError("demo-check: the story did not end as expected (see above)")
            out.write(self.style.SUCCESS("demo-check: every record ended as the story expects."))
            return
        self._tour(web, logins, partner_url)
        try:
            while all(p.poll() is None for p in self.procs):
                time.sleep(1)
            out.write(self.style.ERROR(f"A demo process stopped; see the logs in {self.logdir}."))
        except KeyboardInterrupt:
            pass
        finally:
            self._stop()

    def _shopify(
        self, client: httpx.Client, integration: Any, payload: dict[str, Any], topic: str, event: str | None = None
    ) -> int:
        body = exactjson.dumps(payload).encode()
        headers = sign_request(
            integration.webhook_secret,
            body,
            topic=topic,
            shop_domain=f"{demo_data.SHOP['slug']}.myshopify.com",
            event_id=event or f"{topic}-{payload['id']}",
        )
        headers["Content-Type"] = "application/json"
        response = client.post(f"/hooks/{integration.slug}/", content=body, headers=headers)
        if response.status_code >= 300:
            raise CommandError(f"webhook refused: {response.status_code} {response.text[:300]}")
        return response.status_code

    def _wait_settled(self, integrations: list[Any], deadline_seconds: float) -> bool:
        deadline = time.monotonic() + deadline_seconds
        last = ""
        while time.monotonic() < deadline:
            close_old_connections()
            left = SyncRecord.objects.filter(integration__in=integrations).exclude(status__in=TERMINAL)
            counts = dict(Counter(left.values_list("status", flat=True)))
            line = f"waiting for {sum(counts.values())} records: {counts}" if counts else ""
            if not counts:
                return True
            if line != last:
                self.stdout.write("  " + line)
                last = line
            time.sleep(1)
        self.stdout.write(self.style.ERROR(f"The queue did not drain within {deadline_seconds:.0f} s."))
        return False

    def _report(self, made: dict[str, Any], story: demo_data.Story, partner_url: str) -> bool:
        ok = True
        self.stdout.write("\nHow every record ended:")
        for role, integration in made.items():
            slug = integration.slug
            actual = Counter(SyncRecord.objects.filter(integration=integration).values_list("status", flat=True))
            expected = +story.expected[role]
            good = actual == expected
            ok &= good
            mark = "ok " if good else "BAD"
            self.stdout.write(f"  {mark} {slug:<20} {dict(actual)}" + ("" if good else f"  expected {dict(expected)}"))
        groups = (
            ReviewItem.objects.filter(status="open", record__integration__in=list(made.values()))
            .values_list("group_key", flat=True)
            .distinct()
        )
        group_count = len(set(groups))
        ok &= group_count >= story.review_groups_at_least
        stats = httpx.get(f"{partner_url}/_stats", params={"log": "0"}, timeout=10).json()
        duplicated = {k: v for k, v in stats["records_per_external_id"].items() if v > 1}
        ok &= not duplicated
        self.stdout.write(
            f"  review queue: {group_count} groups; partner holds {stats['records']} records, "
            f"{len(duplicated)} duplicated; it answered {stats['injected_failures']} injected 5xx and lost "
            f"{stats['lost_responses']} answers, all retried"
        )
        if duplicated:
            self.stdout.write(self.style.ERROR(f"  duplicated at the partner: {json.dumps(duplicated)[:300]}"))
        return ok

    def _tour(self, web: str, logins: dict[str, tuple[str, str]], partner_url: str) -> None:
        w = self.stdout.write
        w(self.style.SUCCESS(f"\nSyncdesk demo is running at {web}/  (Ctrl-C stops everything)\n"))
        w("Logins (new passwords every run):")
        for role, (username, password) in logins.items():
            w(f"  {role:<16} {username:<16} {password}")
        w("\nA short tour:")
        shop, industrial = demo_data.SHOP, demo_data.INDUSTRIAL
        w(f"  1. Log in as sam.support. The dashboard ({web}/) shows both customers.")
        w(f"  2. Open the review queue ({web}/review/): 3+ groups — an unmapped status 'awaiting-pickup',")
        w("     invalid postal codes, a missing parent. Open one, read why, fix the payload and resend.")
        w(f"  3. Find order 5726100000004 in records ({web}/records/): skipped by {shop['name']}'s rule.")
        w(
            f"  4. Log in as alex.accounts and open {industrial['name']}'s 'what's special' page ({web}/rules/"
            f"customers/{industrial['slug']}/special/): cancelled orders are sent as code X; the nightly window."
        )
        w(f"  5. As erin.engineer, open the mapping editor ({web}/mappings/) and compare versions.")
        w(f"  6. What the partner holds: {partner_url}/_stats (counts) and {partner_url}/_records (the records).")
        w(f"Mail (alerts, digests) goes to the console of the worker: {self.logdir}/worker.log.")
