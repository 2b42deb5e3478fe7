"""Each page runs a fixed number of queries: the same for 5 rows as for 50, and under a bound."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from integrations.models import ActionLog, ExceptionRule, ReviewItem, SyncAttempt
from tests.ui.factories import make_records, make_world

BOUND = 25


def queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(ctx.captured_queries)


def grow(world, start: int, n: int) -> None:
    """n more records: half in review (with distinct causes), half delivered, in two integrations."""
    for i in range(start, start + n):
        integration, version = world[i % 2]
        (record,) = make_records(integration, version, 1, start=i, status="review" if i % 2 else "delivered")
        if i % 2:
            ReviewItem.objects.filter(record=record).update(group_key=f"unmapped_value:{version.pk}:status:v{i}")


@pytest.fixture
def world(db, users):
    a, a1, _ = make_world()
    b, b1, _ = make_world(slug="b-orders", customer_slug="bee")
    ExceptionRule.objects.create(customer=a.customer, kind="skip_if", reason="test", owner=users["support"])
    ExceptionRule.objects.filter(pk__isnull=False).update(next_review_due=timezone.localdate() - timedelta(days=1))
    return [(a, a1), (b, b1)]


@pytest.mark.parametrize(
    "url",
    [
        "/",
        "/records/",
        "/records/?status=review&reason=awaiting",
        "/review/",
        "/review/?group_by=version",
        "/review/?group_by=rule",
    ],
)
def test_list_pages_cost_the_same_for_5_and_50_rows(clients, world, url, django_assert_max_num_queries):
    client = clients["support"]
    grow(world, 0, 5)
    few = queries(client, url)
    grow(world, 5, 45)
    with django_assert_max_num_queries(BOUND):
        many = queries(client, url)
    assert few == many


def test_the_record_page_costs_the_same_for_5_and_50_attempts(clients, world, users, django_assert_max_num_queries):
    client = clients["support"]
    integration, version = world[0]
    (record,) = make_records(integration, version, 1, start=900)

    def add_attempts(first: int, last: int) -> None:
        for n in range(first, last + 1):
            SyncAttempt.objects.create(
                record=record,
                number=n,
                mapping_version=version,
                outcome="retry",
                reason="again",
                acting_user=users["support"],
            )
            ActionLog.objects.create(actor=users["support"], action="resend", record=record)

    add_attempts(2, 5)
    few = queries(client, f"/records/{record.pk}/")
    add_attempts(6, 50)
    with django_assert_max_num_queries(BOUND):
        many = queries(client, f"/records/{record.pk}/")
    assert few == many
