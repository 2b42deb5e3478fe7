"""The chaos run: every record ends delivered or in review, none created twice at the partner.

    .venv/bin/python bench/chaos.py [--records N] [--deadline S] [--flushall] [--no-pg-restart]

On a fresh database ``syncdesk_bench_chaos`` and Redis db 11, with a short lease
(SYNCDESK_LEASE_SECONDS=10) and workers sweeping every 2 s:

* ``fake_partner`` answers 10% of requests 5xx, drops 5% of answers after storing the record,
  and answers bursts of 429 (Retry-After 1 s): 20 in a row at the start and after every 500 requests;
* the records (default 10,000) arrive as signed webhooks through gunicorn, 100 per request: half
  before the workers start, half spread evenly until 20 s after the kills stop, so that every
  fault meets records in flight (a refused request is sent again, as a platform would; the
  dedupe key makes that harmless);
* 2 ``syncworker`` processes; for the first minute (``--chaos-seconds``) one of them is SIGKILLed
  every 10 s and started again (a worker takes a few seconds to start, much longer on a busy
  machine: killing on for the whole drain would measure start-up, not recovery);
* Redis is emptied once (``FLUSHDB`` of db 11 — ``--flushall`` for a literal ``FLUSHALL``, which
  also empties every other Redis database on this server, so only on a machine of its own);
* PostgreSQL is restarted once, 10 s after the kills stop, so the same worker processes live
  through it (``pg_ctlcluster ... main restart``; needs root); the script waits until it accepts
  connections, checks that workers and gunicorn still run and that records settle again (a worker
  that exited, or 90 s without progress, is restarted and reported);
* then the queue is left to drain, with a deadline (``--deadline``, 900 s from the workers' start).

lost = records not delivered and not in review (plus records never stored);
duplicated = external ids the partner holds more than once. It prints ``lost=0 duplicated=0`` and
the time to drain, and exits non-zero otherwise. The last line is the summary.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    CONTACT_SPEC,
    REDIS_URL,
    contact,
    database_url,
    machine,
    make_integration,
    processes,
    setup_stack,
    wait_for,
)

RETRIES = {"max_attempts": 10, "schedule": [0, 1, 2, 2, 3], "jitter": 0, "cap_seconds": 5, "hard_limit": 60}
TERMINAL = ("delivered", "review", "skipped", "rejected")


def post_batch(url: str, secret: str, records: list[dict]) -> int:
    """POST one signed batch until the web process takes it; returns the tries it took."""
    import httpx

    from integrations.engine import exactjson
    from integrations.sources.generic import sign

    body = exactjson.dumps({"records": records}).encode()
    tries = 0
    while True:
        tries += 1
        ts = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "X-Syncdesk-Timestamp": str(ts),
            "X-Syncdesk-Signature": sign(secret, ts, body),
        }
        try:
            status = httpx.post(url, content=body, headers=headers, timeout=30).status_code
        except httpx.HTTPError:
            status = 0
        if status in (200, 202):
            return tries
        if tries > 200:
            raise RuntimeError(f"the web process refused a batch {tries} times (last status {status})")
        time.sleep(0.5)  # a platform's retry delay, not synchronisation


def restart_postgres() -> float:
    """Restart the cluster; returns seconds until it accepts connections again."""
    import psycopg

    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]
    started = time.monotonic()
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"], check=True, capture_output=True
    )

    def accepts() -> bool:
        with psycopg.connect(database_url("postgres"), connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return True

    wait_for(accepts, timeout=120, what="PostgreSQL to accept connections after the restart", every=0.2)
    return time.monotonic() - started


def partner_stats(url: str) -> dict:
    import httpx

    return httpx.get(f"{url}/_stats", params={"log": "0"}, timeout=30).json()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--deadline", type=float, default=900.0, help="seconds, from the workers' start")
    parser.add_argument("--kill-every", type=float, default=10.0)
    parser.add_argument("--chaos-seconds", type=float, default=60.0, help="how long workers are killed")
    parser.add_argument("--flushall", action="store_true", help="FLUSHALL instead of FLUSHDB (every database!)")
    parser.add_argument("--no-pg-restart", action="store_true")
    args = parser.parse_args()

    print(f"machine: {machine()}")
    env = setup_stack(
        "chaos",
        SYNCDESK_LEASE_SECONDS="10",
        SYNCDESK_HTTP_CONNECT_TIMEOUT="2",
        SYNCDESK_HTTP_READ_TIMEOUT="5",
        SYNCDESK_CHUNK_SIZE="50",
    )
    import redis
    from django.db import close_old_connections

    from integrations.models import Alert, SyncRecord

    run = uuid.uuid4().hex[:6]
    events: list[str] = []
    t0 = time.monotonic()

    def note(text: str) -> None:
        line = f"[{time.monotonic() - t0:6.1f} s] {text}"
        events.append(line)
        print(line, flush=True)

    with processes(env) as procs:
        partner = procs.partner(
            "partner",
            "--seed", "1",
            "--fail-rate", "0.10",
            "--lost-rate", "0.05",
            "--rate-limit-burst", "20",
            "--rate-limit-every", "500",
            "--retry-after", "1",
        )  # fmt: skip
        web = procs.gunicorn(workers=2)
        hook = make_integration("bench-chaos", partner, CONTACT_SPEC, retry_policy=RETRIES)
        url = f"{web}/hooks/{hook.slug}/"
        batches = [
            [contact(n, run) for n in range(start, min(args.records, start + 100))]
            for start in range(0, args.records, 100)
        ]
        half = len(batches) // 2
        resent = 0
        for batch in batches[:half]:
            resent += post_batch(url, hook.webhook_secret, batch) - 1
        note(f"{half * 100:,} records posted through gunicorn before the workers start")

        t0 = time.monotonic()
        workers = ["worker-a", "worker-b"]
        for name in workers:
            procs.worker(name, "--sweep-interval", "2")
        note("2 workers started (lease 10 s, sweep every 2 s)")

        feed_errors: list[BaseException] = []
        feed_tries = Counter[str]()

        # The second half arrives evenly until 20 s after the kills stop, so every fault (kills,
        # the Redis flush, the PostgreSQL restart at chaos + 10 s) meets records in flight, however
        # fast the workers drain.
        spread = (args.chaos_seconds + 20) / max(1, len(batches) - half)

        fed_at: list[float] = []

        def feed() -> None:
            try:
                for batch in batches[half:]:
                    feed_tries["tries"] += post_batch(url, hook.webhook_secret, batch)
                    time.sleep(spread)  # a platform's sending pace, not synchronisation
                fed_at.append(time.monotonic())
            except BaseException as exc:  # reported below, as a failure
                feed_errors.append(exc)

        feeder = threading.Thread(target=feed, name="feeder")
        feeder.start()

        records = SyncRecord.objects.filter(integration=hook)
        flushed = restarted = stuck_after_restart = False
        after_restart: tuple[float, int] | None = None

        def settled_count() -> int:
            try:
                close_old_connections()
                return records.filter(status__in=TERMINAL).count()
            except Exception:  # the database is restarting
                close_old_connections()
                return -1

        kills = 0
        next_kill = args.kill_every
        pg_seconds = None

        def settled() -> bool:
            try:
                close_old_connections()
                return (
                    not feeder.is_alive()
                    and records.count() == args.records
                    and not records.exclude(status__in=TERMINAL).exists()
                )
            except Exception:  # the database is restarting
                close_old_connections()
                return False

        while True:
            elapsed = time.monotonic() - t0
            if elapsed > args.deadline:
                note("deadline reached before the queue drained")
                break
            if not flushed and elapsed >= 15:
                conn = redis.Redis.from_url(REDIS_URL)
                if args.flushall:
                    conn.flushall()
                else:
                    conn.flushdb()
                flushed = True
                note(f"Redis {'FLUSHALL' if args.flushall else 'FLUSHDB (db 11)'}: every queued job and wake key gone")
            if not restarted and elapsed >= args.chaos_seconds + 10 and not args.no_pg_restart:
                restarted = True
                note("PostgreSQL restart begins")
                pg_seconds = restart_postgres()
                close_old_connections()
                note(f"PostgreSQL accepts connections again after {pg_seconds:.1f} s")
                for name in [*workers, "gunicorn"]:
                    alive = procs.procs[name].poll() is None
                    note(f"  {name}: {'still running' if alive else 'EXITED — restarting'}")
                    if not alive and name == "gunicorn":
                        raise RuntimeError("gunicorn exited during the PostgreSQL restart")
                    if not alive:
                        procs.worker(name, "--sweep-interval", "2")
                # The web process after the restart: the first batch again must come back as
                # a duplicate (200), which needs the database.
                tries = post_batch(url, hook.webhook_secret, batches[0])
                note(f"  gunicorn answers a webhook again ({tries} tries)")
                after_restart = (time.monotonic(), settled_count())
            if after_restart is not None:
                since, before = after_restart
                now_count = settled_count()
                if now_count > before:
                    note(f"workers settle records again {time.monotonic() - since:.1f} s after the restart")
                    after_restart = None
                elif time.monotonic() - since > 90:
                    note("NO progress 90 s after the PostgreSQL restart: workers stuck; restarting them")
                    stuck_after_restart = True
                    for name in workers:
                        procs.kill(name)
                        procs.worker(name, "--sweep-interval", "2")
                    after_restart = None
            if elapsed >= next_kill and elapsed < args.chaos_seconds:
                victim = workers[kills % 2]
                procs.kill(victim)
                procs.worker(victim, "--sweep-interval", "2")
                kills += 1
                next_kill += args.kill_every
                try:
                    done = records.filter(status__in=TERMINAL).count()
                except Exception:  # the database may be restarting for someone else
                    close_old_connections()
                    done = -1
                note(f"SIGKILL {victim} and start it again ({done:,} records settled)")
            if elapsed >= 30 and settled():
                break
            time.sleep(0.5)  # the chaos schedule's tick, not synchronisation
        drained = time.monotonic() - t0
        tail = f" ({time.monotonic() - fed_at[0]:.1f} s after the last webhook)" if fed_at else ""
        note(f"drain finished after {drained:.1f} s{tail}")
        feeder.join(timeout=60)

        close_old_connections()
        statuses = Counter(records.values_list("status", flat=True))
        stats = partner_stats(partner)
        per_id = stats["records_per_external_id"]
        stored = sum(statuses.values())
        lost = (args.records - stored) + sum(n for s, n in statuses.items() if s not in ("delivered", "review"))
        duplicated = sum(1 for n in per_id.values() if n > 1)
        delivered_ids = set(records.filter(status="delivered").values_list("source_id", flat=True))
        missing_at_partner = len(delivered_ids - set(per_id))
        print(f"records stored: {stored:,} of {args.records:,}; statuses: {dict(statuses)}")
        print(
            f"partner: {stats['requests']:,} requests, {stats['accepted']:,} created, "
            f"{stats['injected_failures']:,} injected 5xx, {stats['lost_responses']:,} lost answers, "
            f"{stats['rate_limited']:,} answered 429, {stats['duplicates_refused']:,} duplicate creates refused, "
            f"{stats['idempotent_replays']:,} idempotent replays; holds {len(per_id):,} distinct external ids"
        )
        print(f"delivered records the partner does not hold: {missing_at_partner}")
        alerts = Counter(Alert.objects.filter(integration=hook).values_list("kind", flat=True))
        print(f"alerts raised for the integration: {dict(alerts) or 'none'}")
        again = resent + feed_tries["tries"] - (len(batches) - half)
        print(f"worker kills: {kills}; webhook batches sent again after a refusal: {again}")
        if feed_errors:
            print(f"FAILED: feeding webhooks: {feed_errors[0]}")
            lost = max(lost, 1)
        if stuck_after_restart:
            print(
                "NOTE: the workers did not recover from the PostgreSQL restart by themselves (restarted by this script)"
            )
        if pg_seconds is None and not args.no_pg_restart:
            print("FAILED: PostgreSQL was not restarted")
    pg_missed = pg_seconds is None and not args.no_pg_restart
    ok = lost == 0 and duplicated == 0 and missing_at_partner == 0 and not feed_errors and not pg_missed
    print(f"lost={lost} duplicated={duplicated}")
    print(
        f"SUMMARY chaos: lost={lost} duplicated={duplicated}; {args.records:,} records drained in {drained:.0f} s"
        f"{tail} "
        f"through 10% 5xx, 5% lost answers, 429 bursts, {kills} worker SIGKILLs, a Redis flush"
        + ("" if args.no_pg_restart else f" and a PostgreSQL restart ({pg_seconds or 0:.0f} s)")
        + ("" if ok else " — FAILED")
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
