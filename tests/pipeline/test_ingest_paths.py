"""The fast inbound paths store exactly what the plain ones did.

* the payload text (dedupe hash, jsonb payload) by the C encoder is exactjson's, byte for byte;
* the webhook's per-process cache of the integration never decides on its own: a rotated secret,
  a pause or a publish made anywhere applies to the next request;
* an import through the PostgreSQL staging table stores the same records and counts as
  ingest_items in chunks.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integrations.engine import exactjson
from integrations.models import ImportBatch, Integration, MappingVersion, SyncRecord
from integrations.services import imports, ingest
from integrations.sources.base import InboundItem
from tests.conftest import requires_postgres, requires_redis
from tests.pipeline.helpers import CONTACT_SPEC, as_json, contact, make_integration, post_webhook, signed_headers

# --------------------------------------------------------------------------------------------
# The payload text


json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**200), max_value=2**200),
        st.decimals(allow_nan=False, allow_infinity=False),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=20),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=25,
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_the_payload_text_is_exactjsons_sorted_text_byte_for_byte(value):
    assert ingest.payload_text(value) == exactjson.dumps_reference(value, sort_keys=True)


@pytest.mark.parametrize(
    "value",
    [
        {"total": Decimal("49.00"), "id": 7008123456789012345678},
        {"b": [1, {"z": 1.5, "a": None}], "a": 'Łukasz Żółw \u2028 "quoted" \\ back'},
        {2: "two", 10: "ten", "x": 1},  # not from JSON: exactjson orders keys as text
        {True: 1, None: 2},
        (1, [2, (3,)]),
        {"nested": {"deeper": [{"k": Decimal("1E+3")}]}},
    ],
)
def test_values_the_c_encoder_would_write_differently_go_to_exactjson(value):
    assert ingest.payload_text(value) == exactjson.dumps_reference(value, sort_keys=True)


@pytest.mark.parametrize("value", [{"x": float("nan")}, {"x": object()}])
def test_values_exactjson_refuses_are_still_refused_the_same_way(value):
    with pytest.raises((ValueError, TypeError)) as fast:
        ingest.payload_text(value)
    with pytest.raises((ValueError, TypeError)) as slow:
        exactjson.dumps_reference(value, sort_keys=True)
    assert type(fast.value) is type(slow.value)


def test_the_dedupe_key_is_unchanged():
    """Keys of records stored before stay valid: the same record gets the same key."""
    record = {"id": "c-1", "email": "a@example.com", "total": Decimal("49.00")}
    digest = __import__("hashlib").sha256(exactjson.dumps(record, sort_keys=True).encode()).hexdigest()[:32]
    when = dt.datetime(2024, 1, 25, 10, tzinfo=dt.UTC)
    assert ingest.dedupe_key(event_id=None, source_id="c-1", updated_at=when, payload=record) == (
        f"rec:c-1:2024-01-25T10:00:00+00:00:{digest}"
    )
    assert ingest.dedupe_key(event_id="evt-9", source_id="c-1", updated_at=when, payload=record) == "evt:evt-9"


# --------------------------------------------------------------------------------------------
# Webhooks and the per-process cache


@pytest.fixture
def hook(db):
    return make_integration(slug="cached-contacts", partner_url="http://127.0.0.1:9", spec=CONTACT_SPEC)


def _post(hook, payload, secret):
    body = exactjson.dumps(payload).encode()
    return Client().post(
        f"/hooks/{hook.slug}/", data=body, content_type="application/json", headers=signed_headers(secret, body)
    )


def test_a_rotated_secret_applies_to_the_next_request(hook):
    old = hook.webhook_secret
    assert _post(hook, contact(1), old).status_code == 202  # the integration is now cached
    hook.webhook_secret, hook.webhook_secret_previous = "sdk_rotated-secret", ""
    hook.save()
    refused = _post(hook, contact(2), old)
    assert refused.status_code == 401
    assert as_json(refused)["error"] == "bad_signature"
    assert _post(hook, contact(3), "sdk_rotated-secret").status_code == 202
    assert set(SyncRecord.objects.values_list("source_id", flat=True)) == {"c-1", "c-3"}


def test_a_new_secret_is_accepted_at_once_even_though_the_old_one_was_cached(hook):
    assert _post(hook, contact(1), hook.webhook_secret).status_code == 202
    Integration.objects.filter(pk=hook.pk).update(webhook_secret="")  # what the cache does not know
    hook.refresh_from_db()
    hook.webhook_secret = "sdk_brand-new"
    hook.save()
    assert _post(hook, contact(2), "sdk_brand-new").status_code == 202


def test_a_pause_without_save_still_holds_the_next_record(hook):
    """Auto-pause changes the status with an UPDATE (updated_at stays): the guard compares it."""
    assert _post(hook, contact(1), hook.webhook_secret).status_code == 202
    Integration.objects.filter(pk=hook.pk).update(status=Integration.Status.PAUSED)
    response = _post(hook, contact(2), hook.webhook_secret)
    assert response.status_code == 202
    assert as_json(response)["status"] == "held"
    assert SyncRecord.objects.get(source_id="c-2").status == "held"


def test_a_publish_applies_to_the_next_request(hook):
    assert _post(hook, contact(1), hook.webhook_secret).status_code == 202
    MappingVersion.objects.filter(integration=hook, status="published").update(status="retired")
    spec = {**CONTACT_SPEC, "record": {"source_id": "email", "updated_at": "updated_at"}}
    MappingVersion.objects.create(
        integration=hook, number=2, status="published", spec=spec, note="by email", published_at=timezone.now()
    )
    assert _post(hook, contact(2), hook.webhook_secret).status_code == 202
    assert SyncRecord.objects.get(payload__id="c-2").source_id == "person2@example.com"


def test_a_deleted_integration_is_404_even_when_cached(hook):
    assert _post(hook, contact(1), hook.webhook_secret).status_code == 202
    slug, secret = hook.slug, hook.webhook_secret
    SyncRecord.objects.all().delete()
    hook.delete()
    response = Client().post(
        f"/hooks/{slug}/", data=b"{}", content_type="application/json", headers=signed_headers(secret, b"{}")
    )
    assert response.status_code == 404


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_a_one_record_webhook_is_one_statement():
    """As under gunicorn: no BEGIN/COMMIT around the single statement, no read of the cached
    integration; a duplicate costs one more read (the existing record's id)."""
    hook = make_integration(slug="autocommit", partner_url="http://127.0.0.1:9", spec=CONTACT_SPEC)
    assert _post(hook, contact(1), hook.webhook_secret).status_code == 202  # the integration is now cached
    with CaptureQueriesContext(connection) as queries:
        assert _post(hook, contact(2), hook.webhook_secret).status_code == 202
        assert _post(hook, contact(2), hook.webhook_secret).status_code == 200
    assert len(queries) == 1 + 2, [q["sql"][:80] for q in queries]
    assert SyncRecord.objects.count() == 2


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_one_statement_stores_the_records_and_reports_duplicates():
    hook = make_integration(slug="autocommit", partner_url="http://127.0.0.1:9", spec=CONTACT_SPEC)
    client = Client()
    first = post_webhook(client, hook, {"records": [contact(1), contact(2), contact(1)]})
    assert first.status_code == 202
    assert [r["source_id"] for r in as_json(first)["records"]] == ["c-1", "c-2"]
    again = post_webhook(client, hook, {"records": [contact(2), contact(3)]})
    assert [(r["source_id"], r["duplicate"]) for r in as_json(again)["records"]] == [("c-2", True), ("c-3", False)]
    assert SyncRecord.objects.count() == 3
    assert SyncRecord.objects.get(source_id="c-1").payload == contact(1)


def _prepared_inserts() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%%INSERT INTO%%'")
        return int(cursor.fetchone()[0])


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_the_webhook_insert_is_a_prepared_statement_and_works_without_one(settings):
    """PostgreSQL parses and plans it once per connection, and nothing else is prepared; with
    DATABASE_PREPARED_STATEMENTS=off (a transaction-pooling PgBouncer) the same requests store
    the same records."""
    hook = make_integration(slug="prepared", partner_url="http://127.0.0.1:9", spec=CONTACT_SPEC)
    assert settings.SYNCDESK_PREPARED_STATEMENTS
    for n in (1, 2):
        assert _post(hook, contact(n), hook.webhook_secret).status_code == 202
    assert _prepared_inserts() == 1  # one statement, prepared once, used twice
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements")
        assert cursor.fetchone()[0] == 1  # the ORM's queries are not prepared
    assert connection.connection.prepare_threshold is None  # as Django set it: only the INSERT prepares
    settings.SYNCDESK_PREPARED_STATEMENTS = False
    connection.close()
    assert _post(hook, contact(3), hook.webhook_secret).status_code == 202
    assert _post(hook, contact(3), hook.webhook_secret).status_code == 200  # a duplicate, still found
    assert _prepared_inserts() == 0
    assert sorted(SyncRecord.objects.values_list("source_id", flat=True)) == ["c-1", "c-2", "c-3"]


@requires_postgres
@requires_redis
@pytest.mark.django_db(transaction=True)
def test_a_statement_that_committed_before_its_connection_dropped_still_reports_created(monkeypatch, clean_redis):
    """The answer was lost, not the commit: sent again, the statement finds its own rows. They
    are reported as accepted (not duplicates) and the worker is woken for them."""
    import django_rq
    from django.db import OperationalError

    from tests.pipeline.conftest import wait_until

    hook = make_integration(slug="lost-answer", partner_url="http://127.0.0.1:9", spec=CONTACT_SPEC)
    assert _post(hook, contact(1), hook.webhook_secret).status_code == 202  # a connection to reuse
    real = ingest._execute
    calls = []

    def commit_then_drop(sql, params):
        calls.append(sql)
        rows = real(sql, params)
        if len(calls) == 1:
            connection.connection.close()  # as if the server went away before its answer arrived
            raise OperationalError("server closed the connection unexpectedly")
        return rows

    monkeypatch.setattr(ingest, "_execute", commit_then_drop)
    queue = django_rq.get_queue("default")
    queue.empty()
    from integrations import queue as wakes

    wakes.forget_wake(hook.pk)
    response = _post(hook, contact(2), hook.webhook_secret)
    assert len(calls) == 2
    assert response.status_code == 202, response.content
    assert as_json(response)["records"][0]["duplicate"] is False
    assert SyncRecord.objects.filter(source_id="c-2").count() == 1
    wait_until(lambda: queue.count == 1, timeout=10, what="the wake for the new record")


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_a_webhook_on_a_connection_the_server_dropped_is_stored_once_on_a_new_one():
    """The webhook skips Django's SELECT 1 before its statement; a connection PostgreSQL closed
    since the last request (a restart, an idle timeout) is replaced and the statement sent again."""
    import psycopg

    from tests.pipeline.conftest import wait_until

    hook = make_integration(slug="dropped", partner_url="http://127.0.0.1:9", spec=CONTACT_SPEC)
    assert _post(hook, contact(1), hook.webhook_secret).status_code == 202
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    params = {**connection.get_connection_params(), "autocommit": True}
    params.pop("cursor_factory", None)
    params.pop("context", None)
    with psycopg.connect(**params) as other:
        assert other.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
        wait_until(
            lambda: not other.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone(),
            timeout=10,
            what="the terminated backend to exit",
        )
    response = _post(hook, contact(2), hook.webhook_secret)
    assert response.status_code == 202, response.content
    assert sorted(SyncRecord.objects.values_list("source_id", flat=True)) == ["c-1", "c-2"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != pid


def test_stored_payloads_and_columns_are_the_same_as_the_json_sent(hook):
    payload = {
        "id": 7008123456789012345678,
        "total": Decimal("49.00"),
        "name": 'Zoë \u2028 O\'Connor \\ "q"',
        "nested": {"list": [1, 2.5, None, True]},
        "updated_at": "2024-01-25T10:00:00.123456+02:00",
    }
    assert post_webhook(Client(), hook, payload, **{"X-Syncdesk-Event-Id": "evt-" + "x" * 300}).status_code == 202
    record = SyncRecord.objects.get()
    assert record.payload == payload
    assert str(record.payload["total"]) == "49.00"
    assert record.source_id == "7008123456789012345678"
    assert record.event_id == "evt-" + "x" * 251
    assert record.dedupe_key == "evt:" + ("evt-" + "x" * 300)[:240]
    assert record.source_updated_at == dt.datetime(2024, 1, 25, 8, 0, 0, 123456, tzinfo=dt.UTC)
    assert (record.status, record.attempt_count, record.prepared_rules, record.original_payload) == (
        "pending",
        0,
        [],
        None,
    )


# --------------------------------------------------------------------------------------------
# Imports: the staging path against ingest_items in chunks


def _import(hook, path, *, staging: bool, monkeypatch) -> ImportBatch:
    monkeypatch.setattr(ingest, "uses_staging", lambda: staging)
    batch = imports.start_batch(integration=hook, file_name=path.name, acting_user=None)
    with path.open("rb") as stream:
        return imports.run_import(batch=batch, stream=stream)


def _stored(hook):
    return sorted(
        SyncRecord.objects.filter(integration=hook).values_list(
            "dedupe_key", "source_id", "event_id", "source_updated_at", "status", "payload"
        ),
        key=lambda r: r[0],
    )


@requires_postgres
def test_an_import_through_the_staging_table_stores_what_chunked_ingest_did(db, tmp_path, monkeypatch):
    # Small chunks and flushes so that repeats fall inside one chunk, across chunks and across flushes.
    monkeypatch.setattr(imports, "CHUNK_ROWS", 3)
    monkeypatch.setattr(ingest, "FLUSH_ROWS", 4)
    lines = [
        {"id": "c-1", "email": "a@example.com", "updated_at": "2024-01-25T10:00:00Z"},
        {"id": "c-1", "email": "a@example.com", "updated_at": "2024-01-25T10:00:00Z"},  # same chunk: known
        {"id": "c-2", "total": 49.00, "big": 7008123456789012345678},
        {"id": "c-1", "email": "a@example.com", "updated_at": "2024-01-25T10:00:00Z"},  # next chunk: known
        {"id": "c-3", "note": "line\nbreak \\ \t tab"},
        "not an object",
        {"id": "c-4", "updated_at": "2024-01-25T10:00:00"},  # no offset: not an updated-at
        {"id": "c-2", "total": 49.00, "big": 7008123456789012345678},  # an earlier flush: known
        {"id": "c-5"},
    ]
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(json.dumps(x) if not isinstance(x, str) else x for x in lines) + "\n{broken\n")
    plain = make_integration(slug="plain", partner_url="http://127.0.0.1:9", spec=CONTACT_SPEC)
    staged = make_integration(slug="staged", partner_url="http://127.0.0.1:9", spec=CONTACT_SPEC)
    first = _import(plain, path, staging=False, monkeypatch=monkeypatch)
    second = _import(staged, path, staging=True, monkeypatch=monkeypatch)

    counters = ("status", "total_rows", "accepted_rows", "duplicate_rows", "bad_rows", "errors", "message")
    assert [getattr(first, c) for c in counters] == [getattr(second, c) for c in counters]
    assert (second.accepted_rows, second.duplicate_rows, second.bad_rows) == (5, 3, 2)
    assert second.total_rows == second.accepted_rows + second.duplicate_rows + second.bad_rows  # every row counted
    assert _stored(plain) == _stored(staged)
    assert all(r.batch_id == second.pk for r in SyncRecord.objects.filter(integration=staged))
    # File order: the first row of a key is the one stored, and ids follow the file.
    assert list(SyncRecord.objects.filter(integration=staged).order_by("id").values_list("source_id", flat=True)) == [
        "c-1",
        "c-2",
        "c-3",
        "c-4",
        "c-5",
    ]

    again = _import(staged, path, staging=True, monkeypatch=monkeypatch)
    assert (again.accepted_rows, again.duplicate_rows) == (0, 8)


@requires_postgres
def test_an_import_into_a_paused_integration_is_held_through_the_staging_table(db, tmp_path, monkeypatch):
    hook = make_integration(slug="paused", partner_url="http://127.0.0.1:9", spec=CONTACT_SPEC, status="paused")
    path = tmp_path / "c.csv"
    path.write_text("id,email\nc-1,a@example.com\nc-2,b@example.com\n")
    batch = _import(hook, path, staging=True, monkeypatch=monkeypatch)
    assert batch.accepted_rows == 2
    assert set(SyncRecord.objects.values_list("status", "next_attempt_at")) == {("held", None)}


def test_ingest_items_still_takes_any_number_of_items(hook):
    stored = ingest.ingest_items(hook, [InboundItem(body=contact(n)) for n in range(2500)])
    assert len(stored) == 2500
    assert all(s.created for s in stored)
    assert SyncRecord.objects.count() == 2500


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_an_import_outside_a_transaction_stores_in_the_background_with_the_same_result(tmp_path, monkeypatch):
    """As from manage.py import_batch: flushes run on a background thread, one at a time, in order."""
    monkeypatch.setattr(imports, "CHUNK_ROWS", 10)
    monkeypatch.setattr(ingest, "FLUSH_ROWS", 7)
    rows = [f"c-{n % 40},person{n % 40}@example.com" for n in range(100)] + ["c-x,a,extra", "c-99,z@example.com"]
    path = tmp_path / "c.csv"
    path.write_text("id,email\n" + "\n".join(rows) + "\n")
    plain = make_integration(slug="plain", partner_url="http://127.0.0.1:9", spec=CONTACT_SPEC)
    staged = make_integration(slug="background", partner_url="http://127.0.0.1:9", spec=CONTACT_SPEC)
    first = _import(plain, path, staging=False, monkeypatch=monkeypatch)
    second = _import(staged, path, staging=True, monkeypatch=monkeypatch)
    counters = ("status", "total_rows", "accepted_rows", "duplicate_rows", "bad_rows", "errors", "message")
    assert [getattr(first, c) for c in counters] == [getattr(second, c) for c in counters]
    assert (second.accepted_rows, second.duplicate_rows, second.bad_rows) == (41, 60, 1)
    assert _stored(plain) == _stored(staged)
    ids = SyncRecord.objects.filter(integration=staged).order_by("id").values_list("source_id", flat=True)
    assert list(ids)[:3] == ["c-0", "c-1", "c-2"]


texts = st.text(alphabet=st.characters(codec=None, min_codepoint=0, max_codepoint=0x10FFFF), max_size=6)


@given(st.dictionaries(texts, st.one_of(texts, st.integers(), st.lists(texts, max_size=2)), max_size=5))
def test_the_import_storage_check_says_what_exactjson_says(record):
    assert imports._storage_problem(record) == exactjson.storage_problem(record)


def _nested(value, depth: int):
    for _ in range(depth):
        value = [value] if depth % 2 else {"k": value}
    return value


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    value=st.recursive(
        st.one_of(st.none(), st.integers(), st.booleans(), texts),
        lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(texts, children, max_size=3)),
        max_leaves=12,
    ),
    depth=st.integers(min_value=0, max_value=70),
    ascii_only=st.booleans(),
)
def test_the_webhook_storage_check_says_what_exactjson_says(value, depth, ascii_only):
    from integrations import webhooks

    payload = _nested(value, depth)
    try:
        text = json.dumps(payload, ensure_ascii=ascii_only)
        text.encode("utf-8")  # what arrives is UTF-8: a lone surrogate can only come escaped
    except UnicodeEncodeError:
        text = json.dumps(payload)
    parsed = exactjson.loads(text)
    assert webhooks._storage_problem(text, parsed) == exactjson.storage_problem(parsed)


@requires_redis
def test_a_wake_asked_for_right_after_another_is_sent_a_moment_later_never_dropped(clean_redis):
    """A drain job that starts and runs out of work between two webhooks must still be
    followed by a wake for the second one (coalesced: sent at most 50 ms later)."""
    import django_rq

    from integrations import queue
    from tests.pipeline.conftest import wait_until

    rq_queue = django_rq.get_queue("default")
    integration_id = 987_654_321
    queue.wake_soon(integration_id)
    assert rq_queue.count == 1  # the first is sent at once
    rq_queue.empty()
    queue.forget_wake(integration_id)  # what a drain job does as it starts
    queue.wake_soon(integration_id)  # within the interval: owed, not sent now
    queue.wake_soon(integration_id)  # and asked for again: still one wake
    wait_until(lambda: rq_queue.count == 1, timeout=10, what="the owed wake")
    assert rq_queue.jobs[0].args == (integration_id,)


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_the_background_import_closes_its_own_connection_and_leaves_ours_open(tmp_path, monkeypatch):
    hook = make_integration(slug="closing", partner_url="http://127.0.0.1:9", spec=CONTACT_SPEC)
    path = tmp_path / "c.csv"
    path.write_text("id,email\nc-1,a@example.com\n")

    def backends() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
            return int(cursor.fetchone()[0])

    from tests.pipeline.conftest import wait_until

    before = backends()
    assert _import(hook, path, staging=True, monkeypatch=monkeypatch).accepted_rows == 1
    # Ours still works; the thread's is gone. A closed connection's server process leaves
    # pg_stat_activity a moment after the client hangs up, so wait for it (a connection left
    # open never leaves: this times out and fails).
    wait_until(lambda: backends() == before, timeout=10, what="the import thread's connection to end")
