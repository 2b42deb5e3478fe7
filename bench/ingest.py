"""How fast the signed webhook accepts records under gunicorn on PostgreSQL.

    .venv/bin/python bench/ingest.py [--requests N] [--threads N] [--seconds S] [--workers N]

Starts gunicorn (2 sync workers unless --workers, persistent database connections: CONN_MAX_AGE=600) on a fresh
database ``syncdesk_bench_ingest`` and Redis db 11 (flushed), then:

1. baseline, in the same run: single-row ``INSERT`` + commit of a row shaped like a stored record
   (same columns, JSONB payload, the same unique key) into a scratch table, one psycopg
   connection, one row per transaction — what one record per request can at best approach;
   and, as a second reference, ``GET /healthz`` (a Django view with no database work) under the
   same gunicorn and client — the most any request can do here;
2. one record per request: signed webhooks (generic kind, HMAC-SHA256) from a few client threads
   over plain sockets (a new connection per request, as gunicorn's sync workers close it): records/s,
   p50/p99 latency, and the ratio to the baseline (target >= 0.6, p99 < 50 ms);
3. 1,000 records per request (``{"records": [...]}``): records/s (target >= 25,000).

Nothing is asserted about speed. It exits non-zero only if a request is refused or the database
does not hold exactly the records that were accepted. The last line is the summary.
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import CONTACT_SPEC, contact, machine, make_integration, percentile, processes, setup_stack


def build_request(port: int, slug: str, secret: str, body: bytes, event_id: str | None = None) -> bytes:
    from integrations.sources.generic import sign

    ts = int(time.time())
    head = [
        f"POST /hooks/{slug}/ HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        f"X-Syncdesk-Timestamp: {ts}",
        f"X-Syncdesk-Signature: {sign(secret, ts, body)}",
        "Connection: close",
    ]
    if event_id:
        head.append(f"X-Syncdesk-Event-Id: {event_id}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def send(port: int, raw: bytes) -> tuple[int, float]:
    """One request on a new connection; (status, seconds from connect to the last byte)."""
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(raw)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    elapsed = time.perf_counter() - started
    answer = b"".join(chunks)
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0
    return status, elapsed


def run_load(port: int, requests: list[bytes], threads: int, seconds: float) -> tuple[int, float, list[float], dict]:
    """Send ``requests`` from ``threads`` threads until done or ``seconds`` passed.
    Returns (requests sent, wall seconds, latencies, status counts)."""
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    position = [0]
    deadline = time.monotonic() + seconds

    def client() -> None:
        mine: list[float] = []
        seen: dict[int, int] = {}
        while time.monotonic() < deadline:
            with lock:
                index = position[0]
                if index >= len(requests):
                    break
                position[0] += 1
            try:
                status, elapsed = send(port, requests[index])
            except OSError:
                status, elapsed = 0, 0.0
            mine.append(elapsed)
            seen[status] = seen.get(status, 0) + 1
        with lock:
            latencies.extend(mine)
            for status, count in seen.items():
                statuses[status] = statuses.get(status, 0) + count

    workers = [threading.Thread(target=client) for _ in range(threads)]
    started = time.perf_counter()
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    wall = time.perf_counter() - started
    return len(latencies), wall, latencies, statuses


def insert_baseline(url: str, rows: int, seconds: float) -> float:
    """Single-row INSERT + commit rate of a record-shaped row, one connection."""
    import psycopg
    from psycopg.types.json import Jsonb

    with psycopg.connect(url, autocommit=False) as conn:
        conn.execute(
            """
            CREATE TABLE bench_scratch (
                id bigserial PRIMARY KEY, integration_id bigint NOT NULL, source_id varchar(255) NOT NULL,
                event_id varchar(255) NOT NULL, event_type varchar(100) NOT NULL, dedupe_key varchar(255) NOT NULL,
                payload jsonb NOT NULL, received_at timestamptz NOT NULL, source_updated_at timestamptz,
                status varchar(20) NOT NULL, next_attempt_at timestamptz, attempt_count integer NOT NULL,
                failure_count integer NOT NULL, lease_token varchar(64) NOT NULL, last_reason text NOT NULL,
                updated_at timestamptz NOT NULL, UNIQUE (integration_id, dedupe_key)
            )
            """
        )
        conn.commit()
        sql = (
            "INSERT INTO bench_scratch (integration_id, source_id, event_id, event_type, dedupe_key, payload, "
            "received_at, source_updated_at, status, next_attempt_at, attempt_count, failure_count, lease_token, "
            "last_reason, updated_at) VALUES (%s, %s, '', '', %s, %s, now(), now(), 'pending', now(), 0, 0, '', '', "
            "now()) ON CONFLICT (integration_id, dedupe_key) DO NOTHING RETURNING id"
        )
        done = 0
        deadline = time.monotonic() + seconds
        started = time.perf_counter()
        with conn.cursor() as cur:
            while done < rows and time.monotonic() < deadline:
                record = contact(done, "base")
                cur.execute(sql, (1, record["id"], f"rec:{record['id']}:{uuid.uuid4().hex}", Jsonb(record)))
                cur.fetchone()
                conn.commit()
                done += 1
        elapsed = time.perf_counter() - started
        conn.execute("DROP TABLE bench_scratch")
        conn.commit()
    return done / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=10_000, help="one-record requests (at most)")
    parser.add_argument("--threads", type=int, default=4, help="concurrent client threads")
    parser.add_argument("--seconds", type=float, default=20.0, help="time limit per measured phase")
    parser.add_argument("--batches", type=int, default=60, help="1,000-record requests (at most)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    args = parser.parse_args()

    print(f"machine: {machine()}")
    env = setup_stack("ingest")
    from django.conf import settings

    from integrations.engine import exactjson
    from integrations.models import SyncRecord

    run = uuid.uuid4().hex[:6]
    failures: list[str] = []
    with processes(env) as procs:
        base = procs.gunicorn(workers=args.workers)
        port = int(base.rsplit(":", 1)[1])
        hook = make_integration("bench-ingest", "http://127.0.0.1:9", CONTACT_SPEC)
        print(f"gunicorn: {args.workers} sync workers at {base}, CONN_MAX_AGE={settings.CONN_MAX_AGE}")

        baseline = insert_baseline(env["DATABASE_URL"], args.requests, 5.0)
        print(f"baseline: single-row INSERT + commit, 1 connection: {baseline:,.0f} rows/s")

        # Warm up: each gunicorn worker imports views, opens its connection, compiles the spec.
        warm = [
            build_request(port, hook.slug, hook.webhook_secret, exactjson.dumps(contact(i, "warm")).encode())
            for i in range(200)
        ]
        run_load(port, warm, args.threads, 30)

        # Reference, same gunicorn and client: a Django view with no database work at all. One
        # record per request cannot go faster than this, whatever the INSERT baseline says.
        bare = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode()
        run_load(port, [bare] * 200, args.threads, 10)
        hsent, hwall, hlat, hstatuses = run_load(port, [bare] * args.requests, args.threads, min(args.seconds, 10.0))
        bare_rate = hsent / hwall
        print(
            f"reference: GET /healthz (no database), {args.threads} client threads: {bare_rate:,.0f} requests/s, "
            f"p99 {percentile(hlat, 0.99) * 1000:.1f} ms; statuses {hstatuses}"
        )

        singles = [
            build_request(port, hook.slug, hook.webhook_secret, exactjson.dumps(contact(i, run)).encode())
            for i in range(args.requests)
        ]
        sent, wall, latencies, statuses = run_load(port, singles, args.threads, args.seconds)
        single_rate = sent / wall
        p50 = percentile(latencies, 0.50) * 1000
        p99 = percentile(latencies, 0.99) * 1000
        if set(statuses) != {202}:
            failures.append(f"one-record requests answered {statuses}")
        ratio = single_rate / baseline
        print(
            f"webhook, 1 record/request, {args.threads} client threads: {sent:,} requests in {wall:.1f} s = "
            f"{single_rate:,.0f} records/s; p50 {p50:.1f} ms, p99 {p99:.1f} ms; statuses {statuses}"
        )
        print(
            f"ratio to the INSERT baseline: {ratio:.2f} (target >= 0.6); p99 target < 50 ms; "
            f"{single_rate / bare_rate:.2f} of the /healthz rate"
        )

        batch_requests = []
        for b in range(args.batches):
            records = [contact(b * 1000 + i, f"{run}b") for i in range(1000)]
            body = exactjson.dumps({"records": records}).encode()
            batch_requests.append(build_request(port, hook.slug, hook.webhook_secret, body))
        size_kb = len(batch_requests[0]) / 1024
        bsent, bwall, blat, bstatuses = run_load(port, batch_requests, 2, args.seconds * 3)
        batch_rate = bsent * 1000 / bwall
        if set(bstatuses) != {202}:
            failures.append(f"1,000-record requests answered {bstatuses}")
        print(
            f"webhook, 1,000 records/request ({size_kb:.0f} KiB), 2 client threads: {bsent} requests in "
            f"{bwall:.1f} s = "
            f"{batch_rate:,.0f} records/s; p50 {percentile(blat, 0.5) * 1000:.0f} ms, "
            f"p99 {percentile(blat, 0.99) * 1000:.0f} ms (target >= 25,000 records/s)"
        )

        expected = 200 + statuses.get(202, 0) + bstatuses.get(202, 0) * 1000
        stored = SyncRecord.objects.filter(integration=hook).count()
        print(f"records stored: {stored:,} (expected {expected:,})")
        if stored != expected:
            failures.append(f"stored {stored} records, expected {expected}")

    for failure in failures:
        print(f"FAILED: {failure}")
    print(
        f"SUMMARY ingest: 1 record/request {single_rate:,.0f} records/s (p50 {p50:.1f} ms, p99 {p99:.1f} ms), "
        f"INSERT+commit baseline {baseline:,.0f} rows/s, ratio {ratio:.2f} (target >= 0.6, p99 < 50 ms), "
        f"bare Django view {bare_rate:,.0f} req/s; "
        f"1,000 records/request {batch_rate:,.0f} records/s (target >= 25,000)"
        + ("" if not failures else f"; {len(failures)} CORRECTNESS FAILURE(S)")
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
