"""Delivered records per second end to end: stored records → workers → fake_partner, no faults.

    .venv/bin/python bench/pipeline.py [--records N] [--workers 1,2] [--profile N]

On a fresh database ``syncdesk_bench_pipeline`` and Redis db 11 (flushed), with one
``manage.py fake_partner`` process. For each worker count (default 1, then 2): a new integration,
``--records`` records (default 10,000: ten seconds of work at the target rate, so the workers'
start-up of about a second does not dominate) stored first through the ingest service (as webhooks would),
then that many ``manage.py syncworker`` processes are started and timed until every record is
delivered. Two rates are printed: from the workers' start (includes their start-up, ~1-2 s) and
steady (first to last ``delivered_at``), then the CPU time each role used per delivered record
(workers, fake_partner, every PostgreSQL process on the machine) from the first delivery on. The
baseline in the same run is the partner alone: 2,000 POSTs from one client thread with a pooled
connection, no database.

``--profile N`` then drains N more records in this process under cProfile and prints where the
time goes. Nothing is asserted about speed; it exits non-zero only if a record is not delivered,
or is created twice at the partner. The last line is the summary.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import CONTACT_SPEC, contact, machine, make_integration, processes, setup_stack, wait_for


def store(integration, count: int, run: str) -> None:  # type: ignore[no-untyped-def]
    from integrations.services.ingest import ingest_items
    from integrations.sources.base import InboundItem

    for start in range(0, count, 1000):
        items = [InboundItem(body=contact(n, run)) for n in range(start, min(count, start + 1000))]
        ingest_items(integration, items)


def partner_baseline(url: str, count: int) -> float:
    """POSTs of record-sized bodies straight to the partner: its own ceiling in this run."""
    import httpx

    from integrations.engine import exactjson

    with httpx.Client(base_url=url) as client:
        started = time.perf_counter()
        for n in range(count):
            body = exactjson.dumps(contact(n, "baseline")).encode()
            response = client.post(
                "/baseline", content=body, headers={"Content-Type": "application/json", "Idempotency-Key": f"b{n}"}
            )
            response.raise_for_status()
        return count / (time.perf_counter() - started)


def partner_stats(url: str) -> dict:
    import httpx

    return httpx.get(f"{url}/_stats", params={"log": "0"}, timeout=30).json()


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time these processes have used so far (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def postgres_pids() -> list[int]:
    """Every PostgreSQL server process on this machine (other sessions' work counts too)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def run_workers(procs, integration, count: int, workers: int, deadline: float, partner_name: str) -> dict[str, float]:  # type: ignore[no-untyped-def]
    from django.db.models import Max, Min

    from integrations.models import SyncRecord

    records = SyncRecord.objects.filter(integration=integration)
    started = time.perf_counter()
    names = [f"worker-{workers}-{i}" for i in range(workers)]
    for name in names:
        procs.worker(name)
    roles = {
        "workers": lambda: [procs.procs[n].pid for n in names],
        "partner": lambda: [procs.procs[partner_name].pid],
        "postgres": postgres_pids,
    }
    samples: list[tuple[int, dict[str, float]]] = []

    def delivered() -> bool:
        done = records.filter(status="delivered").count()
        # CPU per role from the first delivery on (the workers' start-up is left out).
        samples.append((done, {role: cpu_seconds(pids()) for role, pids in roles.items()}))
        return done >= count

    wait_for(delivered, timeout=deadline, what=f"{count} records delivered by {workers} worker(s)", every=0.25)
    wall = time.perf_counter() - started
    for name in names:
        procs.stop(name)
    span = records.aggregate(first=Min("delivered_at"), last=Max("delivered_at"))
    steady = (span["last"] - span["first"]).total_seconds()
    result = {"wall": wall, "rate": count / wall, "steady": (count - 1) / steady if steady else float("nan")}
    first = next(((n, cpu) for n, cpu in samples if n > 0), None)
    if first is not None and samples[-1][0] > first[0]:
        last_n, last_cpu = samples[-1]
        for role, seconds in last_cpu.items():
            result[f"cpu_ms_{role}"] = (seconds - first[1][role]) * 1000 / (last_n - first[0])
    return result


def profile_drain(integration, count: int) -> str:  # type: ignore[no-untyped-def]
    from django.conf import settings

    from integrations.services import processing

    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    done = 0
    while done < count:
        got = processing.drain_integration(integration.pk, max_seconds=600)
        if not got:
            break
        done += got
    profiler.disable()
    elapsed = time.perf_counter() - started
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(r"integrations|transaction\.py.*__exit__|query\.py.*(first|update)", 35)
    stats.sort_stats("tottime").print_stats(15)
    head = (
        f"in-process drain_integration under cProfile: {done} records in {elapsed:.1f} s = {done / elapsed:,.0f} "
        f"records/s (one process, chunk {settings.SYNCDESK_CHUNK_SIZE}, profiler overhead included)\n"
    )
    return head + out.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--workers", default="1,2", help="worker counts to run, in order")
    parser.add_argument("--deadline", type=float, default=600.0, help="seconds allowed per run")
    parser.add_argument("--profile", type=int, default=0, help="also profile an in-process drain of N records")
    args = parser.parse_args()

    print(f"machine: {machine()}")
    env = setup_stack("pipeline")
    run = uuid.uuid4().hex[:6]
    failures: list[str] = []
    results: dict[int, dict[str, float]] = {}
    with processes(env) as procs:
        partner = procs.partner()
        baseline = partner_baseline(partner, 2000)
        print(f"baseline: fake_partner alone, 1 client, pooled connection: {baseline:,.0f} POSTs/s")
        for workers in [int(w) for w in args.workers.split(",")]:
            procs.stop("partner")
            partner = procs.partner(f"partner-{workers}")
            hook = make_integration(f"bench-pipeline-{workers}", partner, CONTACT_SPEC)
            stored_at = time.perf_counter()
            store(hook, args.records, f"{run}w{workers}")
            print(
                f"{workers} worker(s): stored {args.records:,} records through the ingest service in "
                f"{time.perf_counter() - stored_at:.1f} s"
            )
            result = run_workers(procs, hook, args.records, workers, args.deadline, f"partner-{workers}")
            results[workers] = result
            stats = partner_stats(partner)
            per_id = stats["records_per_external_id"]
            twice = sum(1 for n in per_id.values() if n > 1)
            print(
                f"{workers} worker(s): {args.records:,} delivered in {result['wall']:.1f} s from worker start = "
                f"{result['rate']:,.0f} records/s; steady (first to last delivery) {result['steady']:,.0f} records/s; "
                f"partner saw {stats['requests']:,} requests, holds {len(per_id):,} records, {twice} twice"
            )
            cpu = {k.removeprefix("cpu_ms_"): v for k, v in result.items() if k.startswith("cpu_ms_")}
            if cpu:
                print(
                    f"{workers} worker(s): CPU per delivered record (from the first delivery): "
                    + ", ".join(f"{role} {ms:.2f} ms" for role, ms in cpu.items())
                    + f"; {sum(cpu.values()):.2f} ms in all on {os.cpu_count()} cores"
                )
            if len(per_id) != args.records or twice:
                failures.append(f"{workers} worker(s): partner holds {len(per_id)} records, {twice} created twice")
        if args.profile:
            # No worker runs now: this process drains the records itself.
            hook = make_integration("bench-pipeline-profile", partner, CONTACT_SPEC)
            store(hook, args.profile, f"{run}p")
            print(profile_drain(hook, args.profile))

    for failure in failures:
        print(f"FAILED: {failure}")
    parts = [
        f"{w} worker(s) {r['rate']:,.0f} records/s from start ({r['steady']:,.0f} steady)" for w, r in results.items()
    ]
    print(
        f"SUMMARY pipeline: {'; '.join(parts)} — {args.records:,} records each, fake_partner without faults "
        f"(alone it takes {baseline:,.0f} POSTs/s from one client); target >= 1,000 records/s with 2 workers"
        + ("" if not failures else f"; {len(failures)} CORRECTNESS FAILURE(S)")
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
