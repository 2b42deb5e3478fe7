"""A drained chunk is decided record by record but written in batches: each record still ends
with its own state, attempt, link and review item, and a decision that reads another record of
the same chunk (a duplicate, a parent) sees what was delivered before it."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from integrations.engine import exactjson
from integrations.models import RecordLink, ReviewItem, SyncAttempt, SyncRecord
from integrations.services import processing, sweeper
from integrations.services.ingest import ingest_items
from integrations.sources.base import InboundItem
from tests.pipeline.conftest import live_database_url
from tests.pipeline.helpers import CONTACT_SPEC, contact, make_integration

pytestmark = pytest.mark.django_db  # the partner fixture: tests/pipeline/conftest.py


def ingest(hook, *records):
    return [stored.id for stored in ingest_items(hook, [InboundItem(body=r) for r in records])]


def test_a_mixed_chunk_leaves_each_record_with_its_own_outcome(partner):
    spec = {
        **CONTACT_SPEC,
        "fields": [
            *CONTACT_SPEC["fields"],
            {"name": "tier", "source": "tier", "value_map": {"gold": "G", "silver": "S"}, "on_invalid": "review"},
            {"name": "zip", "source": "zip", "convert": ["integer"], "on_invalid": "reject"},
        ],
    }
    hook = make_integration(slug="mixed", partner_url=partner.url, spec=spec)
    partner.configure(reject_fields={"first_name": "invalid"}, reject_status=422)
    ingest(
        hook,
        contact(1, tier="gold", zip="4101"),
        contact(2, tier="bronze", zip="4101"),  # unmapped value → review
        contact(3, tier="gold", zip="not a number"),  # invalid → rejected
        contact(4, tier="silver", zip="4101", first_name="invalid name"),  # the partner refuses it
    )
    done = processing.drain_integration(hook.pk, max_seconds=30)
    assert done == 4

    by_source = {r.source_id: r for r in SyncRecord.objects.filter(integration=hook)}
    assert {s: r.status for s, r in by_source.items()} == {
        "c-1": "delivered",
        "c-2": "review",
        "c-3": "rejected",
        "c-4": "review",  # the partner refused it (422): a permanent failure goes to a person
    }
    assert all(r.attempt_count == 1 and r.lease_token == "" and r.lease_until is None for r in by_source.values())
    delivered = by_source["c-1"]
    assert delivered.destination_id
    assert delivered.delivered_at
    assert delivered.idempotency_key
    assert by_source["c-4"].destination_id == ""
    assert by_source["c-4"].delivered_at is None
    assert "bronze" in by_source["c-2"].last_reason
    assert by_source["c-3"].last_error_class == "mapping_rejected"

    attempts = {a.record.source_id: a for a in SyncAttempt.objects.filter(record__integration=hook)}
    assert {s: (a.number, a.outcome) for s, a in attempts.items()} == {
        "c-1": (1, "delivered"),
        "c-2": (1, "review"),
        "c-3": (1, "rejected"),
        "c-4": (1, "review"),
    }
    assert attempts["c-1"].response_status == 201
    assert attempts["c-4"].response_status == 422
    assert attempts["c-1"].idempotency_key == delivered.idempotency_key

    links = {link.source_id: link for link in RecordLink.objects.filter(integration=hook)}
    assert links["c-1"].destination_id == delivered.destination_id
    assert links["c-1"].last_record_id == delivered.pk
    assert all(link.lease_token == "" and link.lease_until is None for link in links.values())
    assert all(links[s].destination_id == "" for s in ("c-2", "c-3", "c-4"))
    assert set(ReviewItem.objects.filter(status="open").values_list("record__source_id", flat=True)) == {"c-2", "c-4"}


DUPLICATES_SPEC = {
    "record": {"source_id": "id", "duplicates": {"email": "email"}},
    "fields": [
        {"name": "external_id", "source": "id", "required": True},
        {"name": "email", "source": "email", "convert": ["email"]},
    ],
}


def test_a_duplicate_delivered_earlier_in_the_same_chunk_is_found(partner):
    hook = make_integration(slug="people", partner_url=partner.url, spec=DUPLICATES_SPEC)
    ingest(hook, {"id": "crm-1", "email": "p.okafor@example.org"}, {"id": "shop-9", "email": "P.Okafor@example.org"})
    assert processing.drain_integration(hook.pk, max_seconds=30) == 2
    assert (partner.stats()["accepted"], partner.stats()["updates"]) == (1, 1)
    first, second = (RecordLink.objects.get(integration=hook, source_id=s) for s in ("crm-1", "shop-9"))
    assert first.destination_id == second.destination_id != ""


def test_a_parent_delivered_earlier_in_the_same_chunk_is_found_without_waiting(partner):
    spec = {
        "record": {"source_id": "id", "parent": {"path": "manager", "output_field": "manager_id"}},
        "fields": [{"name": "external_id", "source": "id", "required": True}],
    }
    hook = make_integration(slug="staff", partner_url=partner.url, spec=spec)
    ingest(hook, {"id": "boss"}, {"id": "clerk", "manager": "boss"})
    assert processing.drain_integration(hook.pk, max_seconds=30) == 2
    boss, clerk = (SyncRecord.objects.get(integration=hook, source_id=s) for s in ("boss", "clerk"))
    assert (boss.status, clerk.status, clerk.attempt_count) == ("delivered", "delivered", 1)
    sent = partner.state.records_snapshot("contacts")["contacts"]
    assert {r["external_id"]: r.get("manager_id") for r in sent} == {"boss": None, "clerk": boss.destination_id}


def test_a_record_whose_lease_was_taken_mid_chunk_keeps_its_attempt_but_not_our_state(partner):
    hook = make_integration(slug="leases", partner_url=partner.url, spec=CONTACT_SPEC)
    ingest(hook, contact(1), contact(2))
    ids = processing.claim_due(hook.pk, limit=10, token="ours")
    batch = processing._Batch(hook, "ours", processing._load_leased(ids, "ours", hook))
    first, second = batch.records
    batch.step(first, processing._LOOK_UP)
    # Our lease on the second record expires and another worker claims it while we deliver.
    SyncRecord.objects.filter(pk=second.pk).update(lease_token="theirs", lease_until=timezone.now() + timedelta(60))
    batch.step(second, processing._LOOK_UP)
    batch.flush()

    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.attempt_count) == ("delivered", 1)
    assert (second.status, second.lease_token, second.attempt_count) == ("processing", "theirs", 0)
    assert list(SyncAttempt.objects.filter(record=second).values_list("number", "outcome")) == [(1, "delivered")]


def test_update_rows_gives_each_row_its_own_values():
    hook = make_integration(slug="rows", partner_url="http://127.0.0.1:9", spec=CONTACT_SPEC)
    a, b, c = ingest(hook, contact(1), contact(2), contact(3))
    SyncRecord.objects.filter(pk=b).update(attempt_count=4, last_reason="kept")
    changed = processing._update_rows(
        SyncRecord,
        "id",
        {
            a: {"status": "delivered", "attempt_count": processing._Add(1), "destination_id": "d-1"},
            b: {"status": "delivered", "attempt_count": processing._Add(1), "destination_id": "d-2"},
            c: {"status": "review", "last_reason": 'it\'s "quoted"; DROP TABLE x', "prepared_rules": [{"id": 1}]},
        },
        integration_id=hook.pk,
    )
    assert changed == 3
    rows = {r.pk: r for r in SyncRecord.objects.filter(pk__in=(a, b, c))}
    assert (rows[a].status, rows[a].attempt_count, rows[a].destination_id) == ("delivered", 1, "d-1")
    assert (rows[b].status, rows[b].attempt_count, rows[b].destination_id, rows[b].last_reason) == (
        "delivered",
        5,
        "d-2",
        "kept",
    )
    assert (rows[c].status, rows[c].attempt_count, rows[c].destination_id) == ("review", 0, "")
    assert rows[c].last_reason == 'it\'s "quoted"; DROP TABLE x'
    assert rows[c].prepared_rules == [{"id": 1}]
    other = make_integration(slug="rows-other", partner_url="http://127.0.0.1:9", spec=CONTACT_SPEC)
    assert processing._update_rows(SyncRecord, "id", {a: {"status": "pending"}}, integration_id=other.pk) == 0


def test_attempt_rows_keep_exact_numbers_text_and_nulls(partner):
    spec = {
        **CONTACT_SPEC,
        "fields": [*CONTACT_SPEC["fields"], {"name": "score", "source": "score"}, {"name": "total", "source": "total"}],
    }
    hook = make_integration(slug="exact", partner_url=partner.url, spec=spec)
    body = exactjson.loads(
        '{"id": "x-1", "score": 123456789012345678901234567890, "total": 49.00, "first_name": "Zoë\\t\\\\N"}'
    )
    ingest(hook, body, contact(2, email="not an email"))
    assert processing.drain_integration(hook.pk, max_seconds=30) == 2
    delivered = SyncAttempt.objects.get(record__source_id="x-1")
    assert delivered.output["score"] == 123456789012345678901234567890
    assert exactjson.dumps(delivered.output["total"]) == "49.00"
    assert delivered.output["first_name"] == "Zoë\t\\N"
    assert delivered.request["headers"]["Idempotency-Key"] == delivered.idempotency_key
    assert delivered.response_status == 201
    review = SyncAttempt.objects.get(record__source_id="c-2")
    assert (review.output is None, review.response_status, review.operation) == (False, None, "")
    assert review.problems
    assert review.problems[0]["field"] == "email"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="cuts a PostgreSQL connection")
def test_a_batch_is_written_after_its_database_connection_dropped(transactional_db, partner):
    """The partner has the batch's calls already: a connection lost just before they are written
    (a PostgreSQL restart, a proxy timeout) is reopened and the batch written, not dropped."""
    hook = make_integration(slug="cut", partner_url=partner.url, spec=CONTACT_SPEC)
    ingest(hook, contact(1), contact(2), contact(3))
    ids = processing.claim_due(hook.pk, limit=10, token="ours")
    batch = processing._Batch(hook, "ours", processing._load_leased(ids, "ours", hook))
    for record in batch.records:
        batch.step(record, processing._LOOK_UP)
    assert len(batch.pending) == 3
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    with psycopg.connect(live_database_url()) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
    batch.flush()
    assert list(SyncRecord.objects.filter(integration=hook).values_list("status", flat=True)) == ["delivered"] * 3
    assert SyncAttempt.objects.filter(record__integration=hook).count() == 3
    assert partner.stats()["accepted"] == 3


def test_the_sweeper_lists_each_due_integration_once():
    one = make_integration(slug="due-one", partner_url="http://127.0.0.1:9", spec=CONTACT_SPEC)
    two = make_integration(slug="due-two", partner_url="http://127.0.0.1:9", spec=CONTACT_SPEC)
    ingest(one, *(contact(n) for n in range(5)))
    ingest(two, contact(9))
    assert sorted(sweeper.due_integrations()) == sorted([one.pk, two.pk])
