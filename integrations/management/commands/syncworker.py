"""`manage.py syncworker`: run delivery work.

With REDIS_URL: an RQ worker (SimpleWorker: no fork per job, so the database connection and the
compiled-spec cache stay warm; no rq scheduler, nothing is scheduled in Redis) plus a sweeper
thread that every ``--sweep-interval`` seconds hands back records of dead workers and wakes
integrations with due records — so work lost in Redis (a flush, a killed worker) is found again
from the database. Embedded (no Redis): one loop that sweeps and drains due integrations,
polling every second."""

from __future__ import annotations

import logging
import os
import threading
import time

from django.core.management.base import BaseCommand
from django.db import DatabaseError, close_old_connections, connections
from rq import SimpleWorker

from integrations import queue
from integrations.services import processing, sweeper

log = logging.getLogger(__name__)


class FreshConnectionsWorker(SimpleWorker):
    """SimpleWorker that does between jobs what Django does between requests: drop a database
    connection that broke (a PostgreSQL restart) or grew old, so the next job reconnects instead
    of failing on a dead socket for the rest of the worker's life."""

    def execute_job(self, job, queue):  # type: ignore[no-untyped-def]
        close_old_connections()
        try:
            return super().execute_job(job, queue)
        finally:
            close_old_connections()


class Command(BaseCommand):
    help = "Run a Syncdesk worker (RQ with REDIS_URL, a database-polling loop without)."
    # Checks belong to deploys (`manage.py check --deploy`, `migrate`); a worker that is restarted
    # after a kill should be working again as soon as it can.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--sweep-interval", type=float, default=60.0)
        parser.add_argument("--burst", action="store_true", help="Exit when there is nothing left to do.")
        parser.add_argument("--poll-interval", type=float, default=1.0, help="Embedded mode only.")

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        if queue.uses_rq():
            self._run_rq(options)
        else:
            self._run_embedded(options)

    def _run_rq(self, options):  # type: ignore[no-untyped-def]
        import django_rq

        stop = threading.Event()

        def sweep_forever() -> None:
            while not stop.is_set():
                try:
                    sweeper.sweep()
                except Exception:
                    log.exception("sweep failed; will try again")
                finally:
                    close_old_connections()
                stop.wait(options["sweep_interval"])

        sweeper.sweep()
        # No connection may be shared with anything rq forks (it forks nothing for SimpleWorker,
        # but be safe): each thread and process opens its own.
        connections.close_all()
        if not options["burst"]:
            threading.Thread(target=sweep_forever, name="sweeper", daemon=True).start()
        q = django_rq.get_queue("default")
        worker = FreshConnectionsWorker([q], connection=q.connection, name=f"syncdesk-{os.getpid()}")
        try:
            # No rq scheduler: retries and windows are rows in PostgreSQL, re-enqueued by the sweeper.
            worker.work(burst=options["burst"], with_scheduler=False)
        finally:
            stop.set()

    def _run_embedded(self, options):  # type: ignore[no-untyped-def]
        self.stdout.write("Embedded worker: polling the database (no REDIS_URL set).")
        last_sweep = 0.0
        try:
            while True:
                busy = 0
                if time.monotonic() - last_sweep >= min(options["sweep_interval"], 5.0):
                    sweeper.sweep()
                    last_sweep = time.monotonic()
                try:
                    for integration_id in sweeper.due_integrations():
                        busy += processing.drain_integration(integration_id, max_seconds=10)
                except DatabaseError:
                    # The database went away mid-drain: the records are safe in it (leases
                    # expire); drop the broken connection and carry on once it is back.
                    log.exception("drain failed; will try again")
                finally:
                    close_old_connections()
                if options["burst"] and not busy:
                    return
                if not busy:
                    time.sleep(options["poll_interval"])  # polling interval, not synchronisation
        except KeyboardInterrupt:
            return
