"""UI latency at scale: 1,000,000 records and 3,000,000 attempts (generated with COPY), then the
p50/p95 latency and query count of the dashboard, record search, record page and review queue.

Targets: p95 ≤ 150 ms and ≤ 12 queries per page. Speed is measured here, never asserted in tests.

    .venv/bin/python bench/ui.py [--records 1000000] [--requests 40] [--reuse] [--only review]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import machine, percentile, setup_stack

STATUSES = [("delivered", 85), ("review", 5), ("retrying", 3), ("pending", 2), ("skipped", 3), ("rejected", 2)]
CAUSES = [
    ("unmapped_value", "unmapped value 'awaiting-pickup' for field status"),
    ("invalid_value", "'4101' is not a valid US postal code for field postal_code"),
    ("client_error", "Partner answered 422: email is invalid"),
    ("missing_parent", "Missing parent customer cus_Q1fake: not delivered within the retry budget"),
    ("possible_duplicate", "possible duplicate of crm-1: same phone, similar name"),
]


def weighted_statuses(rng: random.Random, n: int) -> list[str]:
    names = [s for s, _ in STATUSES]
    weights = [w for _, w in STATUSES]
    return rng.choices(names, weights, k=n)


def generate(records: int) -> dict[str, object]:
    from django.contrib.auth.models import Group, User
    from django.db import connection
    from django.utils import timezone

    from customers.models import Customer
    from integrations.models import Integration, MappingVersion, ReviewItem, SyncAttempt, SyncRecord

    rng = random.Random(42)
    integrations = []
    for c in range(5):
        customer = Customer.objects.create(slug=f"bench-customer-{c}", name=f"Bench customer {c}")
        for i in range(2):
            integration = Integration.objects.create(
                customer=customer,
                name=f"Flow {c}.{i}",
                slug=f"bench-{c}-{i}",
                destination_config={"base_url": "http://127.0.0.1:9", "create_path": "/c", "update_path": "/c/{id}"},
            )
            version = MappingVersion.objects.create(
                integration=integration,
                number=1,
                status="published",
                spec={"record": {"source_id": "id"}, "fields": [{"name": "external_id", "source": "id"}]},
                note="bench",
                published_at=timezone.now(),
            )
            integrations.append((integration.pk, version.pk))
    user = User.objects.create_user("bench.support", password="bench-support-password-1")
    user.groups.add(Group.objects.get(name="support"))

    now = datetime.now(UTC)
    record_fields = [f for f in SyncRecord._meta.concrete_fields if f.attname != "id"]
    attempt_fields = [f for f in SyncAttempt._meta.concrete_fields if f.attname != "id"]
    statuses = weighted_statuses(rng, records)
    started = time.monotonic()
    with connection.cursor() as cursor:
        raw = cursor.connection
        columns = ",".join(f'"{f.column}"' for f in record_fields)
        with raw.cursor() as cur, cur.copy(f"COPY integrations_syncrecord ({columns}) FROM STDIN") as copy:
            for n in range(records):
                integration_id, version_id = integrations[n % len(integrations)]
                received = now - timedelta(seconds=(records - n) * 90 * 86400 / records)
                status = statuses[n]
                error = {"review": "mapping_review", "retrying": "server_error", "rejected": "mapping_rejected"}.get(
                    status, ""
                )
                values = {
                    "integration_id": integration_id,
                    "source_id": f"src-{n}",
                    "event_id": "",
                    "event_type": "",
                    "dedupe_key": f"rec:src-{n}",
                    "payload": json.dumps({"id": f"src-{n}", "email": f"p{n}@example.com", "name": "Inès Varga"}),
                    "original_payload": None,
                    "received_at": received,
                    "source_updated_at": received,
                    "batch_id": None,
                    "status": status,
                    "next_attempt_at": received + timedelta(minutes=5) if status in ("retrying", "pending") else None,
                    "attempt_count": 3,
                    "failure_count": 1 if error else 0,
                    "lease_until": None,
                    "lease_token": "",
                    "last_error_class": error,
                    "last_reason": "Partner server error (5xx): retry in 300 s" if error else "Delivered (create, 201)",
                    "pinned_version_id": None,
                    "prepared_body": "",
                    "prepared_operation": "",
                    "prepared_version_id": None,
                    "prepared_rules": "[]",
                    "idempotency_key": f"sd-{integration_id}-{n:012d}",
                    "requested_by_id": None,
                    "parent_source_id": "",
                    "group_key": "",
                    "destination_id": f"dst-{n}" if status == "delivered" else "",
                    "delivered_at": received + timedelta(seconds=2) if status == "delivered" else None,
                    "window_override": False,
                    "payload_pruned_at": None,
                    "updated_at": received,
                }
                copy.write_row([values[f.attname] for f in record_fields])
        cursor.execute("SELECT min(id), max(id) FROM integrations_syncrecord")
        first_id, last_id = cursor.fetchone()
        print(f"COPY {records:,} records: {time.monotonic() - started:.1f} s")

        started = time.monotonic()
        columns = ",".join(f'"{f.column}"' for f in attempt_fields)
        outcomes = {
            "delivered": "delivered",
            "review": "review",
            "retrying": "retry",
            "pending": "retry",
            "skipped": "skipped",
            "rejected": "rejected",
        }
        with raw.cursor() as cur, cur.copy(f"COPY integrations_syncattempt ({columns}) FROM STDIN") as copy:
            for n in range(records):
                record_id = first_id + n
                integration_id, version_id = integrations[n % len(integrations)]
                received = now - timedelta(seconds=(records - n) * 90 * 86400 / records)
                for number in (1, 2, 3):
                    last = number == 3
                    outcome = outcomes[statuses[n]] if last else "retry"
                    values = {
                        "record_id": record_id,
                        "number": number,
                        "mapping_version_id": version_id,
                        "rules_applied": "[]",
                        "started_at": received + timedelta(seconds=number * 5),
                        "duration_ms": rng.randint(5, 400),
                        "operation": "create",
                        "request": '{"method": "POST", "url": "http://127.0.0.1:9/c"}',
                        "response_status": 201 if outcome == "delivered" else 503,
                        "response_body": '{"id": "dst"}' if outcome == "delivered" else "Service Unavailable",
                        "error_class": "" if outcome == "delivered" else "server_error",
                        "reason": "Delivered (create, 201)" if outcome == "delivered" else "Partner server error",
                        "outcome": outcome,
                        "idempotency_key": f"sd-{integration_id}-{n:012d}",
                        "output": None,
                        "trace": "[]",
                        "problems": "[]",
                        "acting_user_id": None,
                    }
                    copy.write_row([values[f.attname] for f in attempt_fields])
        print(f"COPY {3 * records:,} attempts: {time.monotonic() - started:.1f} s")

        started = time.monotonic()
        review_fields = [f for f in ReviewItem._meta.concrete_fields if f.attname != "id"]
        columns = ",".join(f'"{f.column}"' for f in review_fields)
        opened = 0
        with raw.cursor() as cur, cur.copy(f"COPY integrations_reviewitem ({columns}) FROM STDIN") as copy:
            for n in range(records):
                if statuses[n] != "review":
                    continue
                integration_id, version_id = integrations[n % len(integrations)]
                code, text = CAUSES[n % len(CAUSES)]
                values = {
                    "record_id": first_id + n,
                    "integration_id": integration_id,
                    "reason_code": code,
                    "reason_text": text,
                    "group_key": f"{code}:{version_id}",
                    "mapping_version_id": version_id,
                    "rule_id": None,
                    "details": "{}",
                    "opened_at": now - timedelta(seconds=(records - n) * 90 * 86400 / records),
                    "assignee_id": None,
                    "notes": "",
                    "status": "open",
                    "resolution_note": "",
                    "resolved_by_id": None,
                    "resolved_at": None,
                }
                copy.write_row([values[f.attname] for f in review_fields])
                opened += 1
        print(f"COPY {opened:,} open review items: {time.monotonic() - started:.1f} s")
        started = time.monotonic()
        cursor.execute("ANALYZE")
        print(f"ANALYZE: {time.monotonic() - started:.1f} s")
    return {"first_id": first_id, "last_id": last_id, "user": user}


def measure(pages: dict[str, str], requests: int) -> list[tuple[str, float, float, float, int]]:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    assert client.login(username="bench.support", password="bench-support-password-1")
    rows = []
    for name, url in pages.items():
        for _ in range(3):  # warm-up: caches, plans, the first connection
            response = client.get(url)
            if response.status_code != 200:
                raise SystemExit(f"{name}: {url} answered {response.status_code}")
        times = []
        queries = 0
        for _ in range(requests):
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                client.get(url)
                times.append((time.perf_counter() - started) * 1000)
            queries = max(queries, len(captured))
        rows.append((name, percentile(times, 0.5), percentile(times, 0.95), max(times), queries))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument(
        "--reuse", action="store_true", help="Measure the data a previous run generated (migrated first)."
    )
    parser.add_argument("--only", default="", help="Measure only the pages whose name contains this, e.g. review.")
    args = parser.parse_args()
    print(machine())
    if args.reuse:
        import os

        from bench._common import bench_env

        os.environ.update(bench_env("syncdesk_bench_ui"))
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        import django

        django.setup()
        from django.core.management import call_command

        from integrations.models import SyncRecord

        # The data may predate a migration of the code measured (0013 backfills every review item).
        started = time.monotonic()
        call_command("migrate", interactive=False, verbosity=0)
        print(f"migrate (what is pending only): {time.monotonic() - started:.1f} s")

        first_id = SyncRecord.objects.order_by("id").values_list("id", flat=True).first()
        args.records = SyncRecord.objects.count()
        print(f"reusing {args.records:,} records")
    else:
        setup_stack("ui")
        first_id = generate(args.records)["first_id"]
    from django.conf import settings

    settings.ALLOWED_HOSTS = ["testserver"]
    settings.SESSION_COOKIE_SECURE = False
    settings.DEBUG = False
    middle = first_id + args.records // 2
    from integrations.selectors import refresh_dashboard_snapshot

    started = time.monotonic()
    refresh_dashboard_snapshot()  # what a worker's periodic task does every minute
    print(f"dashboard snapshot (worker side, every minute): {time.monotonic() - started:.1f} s")
    pages = {
        "dashboard": "/",
        "search (newest)": "/records/",
        "search (status=review)": "/records/?status=review",
        "search (source id)": f"/records/?source_id=src-{args.records // 3}",
        "search (error class)": "/records/?error_class=server_error",
        "record page": f"/records/{middle}/",
        "review queue": "/review/",
        # A filter the grouping and the item page both apply (one customer: 1/5 of the items).
        "review (customer)": "/review/?customer=bench-customer-2",
        "review (integration)": "/review/?integration=bench-2-1",
    }
    pages = {name: url for name, url in pages.items() if args.only in name}
    rows = measure(pages, args.requests)
    print(f"\n{'page':<26} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'queries':>8}")
    for name, p50, p95, worst, queries in rows:
        print(f"{name:<26} {p50:>8.1f} {p95:>8.1f} {worst:>8.1f} {queries:>8}")
    worst_p95 = max(r[2] for r in rows)
    most_queries = max(r[4] for r in rows)
    print(
        f"SUMMARY ui: over {args.records:,} records / {3 * args.records:,} attempts: worst p95 {worst_p95:.0f} ms "
        f"(target ≤ 150), most queries {most_queries} (target ≤ 12)"
    )


if __name__ == "__main__":
    main()
