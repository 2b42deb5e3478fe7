"""Keyset pagination: every record exactly once across pages, in order, ties on time included."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from integrations import selectors
from integrations.models import SyncRecord
from tests.ui.factories import make_world


@pytest.fixture
def records(db):
    integration, _, _ = make_world()
    now = timezone.now().replace(microsecond=0)
    # 130 records, many sharing a received_at second: ordering must fall back on id.
    return SyncRecord.objects.bulk_create(
        SyncRecord(
            integration=integration,
            source_id=f"s-{i}",
            dedupe_key=f"d-{i}",
            payload={},
            received_at=now - timedelta(seconds=i // 7),
            status="review" if i % 3 else "delivered",
        )
        for i in range(130)
    )


@pytest.mark.parametrize("oldest_first", [False, True])
def test_every_record_appears_exactly_once_across_pages(records, oldest_first):
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        rows, cursor = selectors.search_records(
            selectors.RecordFilters(oldest_first=oldest_first), cursor=cursor, limit=20
        )
        seen.extend(r.pk for r in rows)
        pages += 1
        if cursor is None:
            break
    assert pages == 7
    assert sorted(seen) == sorted(r.pk for r in records)
    assert len(seen) == len(set(seen))
    keys = [(r.received_at, r.pk) for r in SyncRecord.objects.filter(pk__in=seen)]
    order = {pk: i for i, pk in enumerate(seen)}
    assert sorted(keys, key=lambda k: order[k[1]]) == sorted(keys, reverse=not oldest_first)


def test_pages_in_the_browser_list_walk_every_filtered_record_once(clients, records):
    url = "/records/?status=review"
    seen: list[str] = []
    while url:
        page = clients["support"].get(url).content.decode()
        seen += re.findall(r'<td class="mono"><a href="/records/\d+/">(s-\d+)</a>', page)
        nxt = re.search(r'<a href="(\?[^"]+)" rel="next">', page)
        url = "/records/" + nxt.group(1).replace("&amp;", "&") if nxt else ""
    expected = {r.source_id for r in records if r.status == "review"}
    assert len(seen) == len(expected)
    assert set(seen) == expected


def test_a_tampered_cursor_is_a_clear_message_not_an_error(clients, records):
    page = clients["support"].get("/records/?after=bm9wZQ").content.decode()
    assert "That page link is not valid" in page
