"""Waking workers. The database says what is due; this only tells a worker to look.

With Redis: one RQ "drain" job per integration, deduplicated with a Redis key so at most one
waits per integration (rq's own ``unique`` would also refuse for 500 s after the job finished).
Embedded (no Redis): nothing to send; ``syncworker`` polls the database every second.
Always call ``wake_after_commit`` inside the transaction that made work due (B17): the job is
sent only once the rows are visible, and never if the transaction rolls back.
"""

from __future__ import annotations

import atexit
import functools
import logging
import threading
import time

from django.conf import settings
from django.db import transaction

log = logging.getLogger(__name__)

WAKE_KEY = "syncdesk:wake:{}"
WAKE_TTL_SECONDS = 300  # if a queued job is lost, the sweeper wakes the integration again anyway


def uses_rq() -> bool:
    return settings.SYNCDESK_QUEUE_BACKEND == "rq"


@functools.cache
def _queue():  # type: ignore[no-untyped-def]
    """One queue (and Redis connection pool) per process: django_rq builds a new client on every
    call, which cost 5–7 ms per webhook (bench/ingest.py)."""
    import django_rq

    return django_rq.get_queue("default")


def wake(integration_id: int) -> bool:
    """Enqueue a drain job for the integration unless one is already waiting. Returns True if sent."""
    if not uses_rq():
        return False
    queue = _queue()
    try:
        if not queue.connection.set(WAKE_KEY.format(integration_id), 1, nx=True, ex=WAKE_TTL_SECONDS):
            return False
        queue.enqueue("integrations.jobs.drain", integration_id, job_timeout=600, result_ttl=0, failure_ttl=86400)
    except Exception:
        # Redis down: the records are safe in the database and the sweeper will wake them.
        log.warning("could not wake integration %s; the sweeper will pick it up", integration_id, exc_info=True)
        return False
    return True


def forget_wake(integration_id: int) -> None:
    """Called by the drain job as it starts, so new work arriving meanwhile can wake another."""
    if uses_rq():
        _queue().connection.delete(WAKE_KEY.format(integration_id))


def hold_drain_lock(integration_id: int, token: str, *, seconds: int) -> bool:
    """One drain at a time for a rate-limited destination (embedded mode has one worker anyway)."""
    if not uses_rq():
        return True
    conn = _queue().connection
    key = f"syncdesk:drain-lock:{integration_id}"
    if conn.set(key, token, nx=True, ex=seconds):
        return True
    current = conn.get(key)
    if current is not None and current.decode() == token:
        conn.expire(key, seconds)
        return True
    return False


# Waking is one Redis round trip per committed write (SET NX, which fails while a drain job
# waits). Under a stream of webhooks for one integration a process sends at most one wake per
# WAKE_COALESCE_SECONDS: a wake asked for sooner is not dropped but sent by a timer at the end
# of that interval — always after the commit that asked for it, so a drain job that started
# and finished in between cannot strand the record. (Skipping it instead would leave the record
# to the sweeper, up to a minute later, when the drain job ran out of work just before.) A
# process killed inside the interval loses that wake; the sweeper sends it (one that exits
# normally sends it as it exits).
WAKE_COALESCE_SECONDS = 0.05
_wake_lock = threading.Lock()
_last_wake: dict[int, float] = {}  # integration id -> when this process last sent a wake
_owed: dict[int, threading.Timer] = {}  # integration id -> the timer that will send one


def wake_soon(integration_id: int) -> None:
    """``wake``, sent now, or at most WAKE_COALESCE_SECONDS later when this process sent one
    for the integration less than that ago."""
    if not uses_rq():
        return
    now = time.monotonic()
    with _wake_lock:
        last = _last_wake.get(integration_id)
        if last is not None and now - last < WAKE_COALESCE_SECONDS:
            if integration_id not in _owed:
                timer = threading.Timer(last + WAKE_COALESCE_SECONDS - now, _send_owed, (integration_id,))
                timer.daemon = True
                _owed[integration_id] = timer
                timer.start()
            return
        _last_wake[integration_id] = now
    wake(integration_id)


def _send_owed(integration_id: int) -> None:
    with _wake_lock:
        _owed.pop(integration_id, None)
        _last_wake[integration_id] = time.monotonic()
    wake(integration_id)


@atexit.register
def _send_all_owed() -> None:
    """A process that exits normally (a gunicorn worker told to stop) sends what it owes now."""
    with _wake_lock:
        owed = list(_owed.items())
    for integration_id, timer in owed:
        timer.cancel()
        _send_owed(integration_id)


def wake_after_commit(*integration_ids: int) -> None:
    for integration_id in set(integration_ids):
        transaction.on_commit(lambda i=integration_id: wake_soon(i))


def enqueue_job(func: str, *args: object, **kwargs: object) -> str | None:
    """Run a long action (bulk resend, import) as a job after commit; inline when embedded."""
    if not uses_rq():
        import importlib

        module, _, name = func.rpartition(".")
        transaction.on_commit(lambda: getattr(importlib.import_module(module), name)(*args, **kwargs))
        return None
    queue = _queue()
    # django-rq's on_db_commit mode: sent when the surrounding transaction commits.
    job = queue.enqueue(func, *args, **kwargs, job_timeout=3600)
    return job.id if job is not None else None
