"""The review queue's groups and counts: the same as a plain grouping of the open items, for every
grouping and filter, in a bounded number of queries."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Count, Max, Min, Q
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from integrations import selectors
from integrations.models import ExceptionRule, ReviewItem
from tests.ui.factories import make_records, make_world

# What bench/ui.py asks of the page (≤ 12 queries), here for every grouping and filter.
MAX_QUERIES = 12


def reference_open_items(filters: selectors.ReviewFilters):
    """The open items a filter selects, found through each item's record (as the queue did before
    review items carried their integration): the tests comparing against it also prove that an
    item's own integration agrees with its record's."""
    items = ReviewItem.objects.filter(status=ReviewItem.Status.OPEN)
    if filters.customer:
        items = items.filter(record__integration__customer__slug=filters.customer)
    if filters.integration:
        items = items.filter(record__integration__slug=filters.integration)
    if filters.reason_code:
        items = items.filter(reason_code=filters.reason_code)
    if filters.assignee == "none":
        items = items.filter(assignee__isnull=True)
    elif filters.assignee:
        items = items.filter(assignee__username=filters.assignee)
    return items


def reference_groups(filters: selectors.ReviewFilters, group_by: str) -> list[dict]:
    """The grouping as one plain ORM aggregate over the open items (what the page showed before
    it was split into an inner and an outer query)."""
    name = {"cause": "group_key", "version": "mapping_version_id", "rule": "rule_id"}[group_by]
    return list(
        reference_open_items(filters)
        .values(name)
        .annotate(
            n=Count("id"),
            first=Min("opened_at"),
            code=Min("reason_code"),
            sample=Min("reason_text"),
            version_id=Max("mapping_version_id"),
            rule_ref=Max("rule_id"),
            integration_id=Min("mapping_version__integration_id"),
            integrations=Count("mapping_version__integration_id", distinct=True),
            unassigned=Count("id", filter=Q(assignee__isnull=True)),
        )
        .order_by("-n", name)
    )


def reference_counts(filters: selectors.ReviewFilters, user_id: int) -> dict[str, int]:
    return _open_counts(reference_open_items(filters), user_id)


def _open_counts(items, user_id: int) -> dict[str, int]:
    return items.aggregate(
        open=Count("id"),
        unassigned=Count("id", filter=Q(assignee__isnull=True)),
        mine=Count("id", filter=Q(assignee_id=user_id)),
    )


@pytest.fixture
def queue(db, users):
    """Two customers; a cause shared by both integrations; items with no mapping version, held by
    rules, assigned to two people, with different reason texts in one group; closed items."""
    shop, shop_v1, shop_v2 = make_world()
    bee, bee_v1, _ = make_world(slug="b-orders", customer_slug="bee")
    rule = ExceptionRule.objects.create(customer=shop.customer, kind="hold_if", reason="test", owner=users["support"])
    other_rule = ExceptionRule.objects.create(customer=bee.customer, kind="skip_if", reason="t", owner=users["support"])
    shop_items = make_records(shop, shop_v1, 12)
    more_shop = make_records(shop, shop_v2, 6, start=100)
    bee_items = make_records(bee, bee_v1, 9, start=200)
    now = timezone.now()

    def change(records, **fields):
        ReviewItem.objects.filter(record_id__in=[r.pk for r in records]).update(**fields)

    # One cause across both integrations, with reason texts that sort differently by case.
    change(shop_items[:3] + bee_items[:4], group_key="server_error", reason_code="server_error")
    for n, record in enumerate(shop_items[:3] + bee_items[:4]):
        text = ["partner answered 503", "Partner answered 502", "Partner server error", "ärger 500"][n % 4]
        ReviewItem.objects.filter(record=record).update(reason_text=text, opened_at=now - timedelta(hours=n))
    change(shop_items[3:5], group_key="config", reason_code="config", mapping_version=None)
    change(bee_items[4:5], group_key="config", reason_code="config", mapping_version=None)
    change(shop_items[5:7], group_key=f"rule_hold:{rule.pk}", reason_code="rule_hold", rule=rule)
    change(bee_items[5:6], group_key=f"rule_hold:{other_rule.pk}", reason_code="rule_hold", rule=other_rule)
    change(shop_items[7:9] + bee_items[6:7], assignee=users["support"])
    change(more_shop[:2], assignee=users["engineer"])
    change(shop_items[9:10] + more_shop[2:3] + bee_items[7:8], status=ReviewItem.Status.RESOLVED)
    return {"users": users, "shop": shop, "shop_v1": shop_v1}


FILTERS = [
    selectors.ReviewFilters(),
    selectors.ReviewFilters(customer="shop"),
    selectors.ReviewFilters(customer="bee"),
    selectors.ReviewFilters(integration="b-orders"),
    selectors.ReviewFilters(integration="shop-contacts"),
    selectors.ReviewFilters(customer="shop", integration="shop-contacts", assignee="none"),
    selectors.ReviewFilters(customer="shop", integration="b-orders"),
    selectors.ReviewFilters(reason_code="server_error"),
    selectors.ReviewFilters(assignee="support-user"),
    selectors.ReviewFilters(assignee="none"),
    selectors.ReviewFilters(customer="nobody"),
    selectors.ReviewFilters(integration="nothing"),
]


@pytest.mark.parametrize("group_by", ["cause", "version", "rule"])
@pytest.mark.parametrize(
    "filters", FILTERS, ids=lambda f: ",".join(f"{k}={v}" for k, v in vars(f).items() if v) or "all"
)
def test_groups_and_counts_are_those_of_a_plain_grouping_of_the_open_items(queue, group_by, filters):
    user = queue["users"]["support"]
    groups, counts = selectors.review_overview(filters, group_by=group_by, user_id=user.pk)
    expected = reference_groups(filters, group_by)
    name = {"cause": "group_key", "version": "mapping_version_id", "rule": "rule_id"}[group_by]
    assert [g["key"] for g in groups] == ["none" if r[name] is None else str(r[name]) for r in expected]
    for group, row in zip(groups, expected, strict=True):
        assert group["count"] == row["n"]
        assert group["first"] == row["first"]
        assert group["reason_code"] == row["code"]
        assert group["sample"] == row["sample"]
        assert group["unassigned"] == row["unassigned"]
        assert group["integration_count"] == row["integrations"]
        assert (group["integration"].pk if group["integration"] else None) == row["integration_id"]
        assert (group["version"].pk if group["version"] else None) == row["version_id"]
        assert (group["rule"].pk if group["rule"] else None) == row["rule_ref"]
    assert counts == reference_counts(filters, user.pk)
    assert selectors.review_groups(filters, group_by=group_by) == groups


@pytest.mark.parametrize(
    "filters", FILTERS, ids=lambda f: ",".join(f"{k}={v}" for k, v in vars(f).items() if v) or "all"
)
def test_the_item_list_shows_the_items_a_filter_selects_through_their_records(queue, filters):
    expected = list(
        reference_open_items(filters).order_by("-opened_at", "-id").values_list("id", "record__integration")
    )
    items, _ = selectors.review_items_page(filters, limit=100)
    # Each row names its record's integration (the page shows item.record.integration).
    assert [(i.pk, i.record.integration.pk) for i in items] == expected


def test_counts_cover_every_group_even_when_only_the_biggest_groups_are_listed(queue, monkeypatch):
    monkeypatch.setattr(selectors, "GROUP_LIMIT", 2)
    user = queue["users"]["support"]
    everything = selectors.ReviewFilters()
    groups, counts = selectors.review_overview(everything, group_by="cause", user_id=user.pk)
    assert [g["key"] for g in groups] == [r["group_key"] for r in reference_groups(everything, "cause")[:2]]
    assert counts == reference_counts(everything, user.pk) == {"open": 24, "unassigned": 19, "mine": 3}


def test_the_page_shows_the_counts_and_a_cause_shared_by_two_integrations(queue, clients):
    page = clients["support"].get("/review/").content.decode()
    counts = _open_counts(ReviewItem.objects.filter(status="open"), queue["users"]["support"].pk)
    assert counts == {"open": 24, "unassigned": 19, "mine": 3}
    assert "<strong>24</strong> open" in page
    assert "19 unassigned</a>" in page
    assert "3 assigned to me</a>" in page
    assert "partner kept failing (server errors) × 7" in page
    assert "2 integrations" in page
    mine = clients["support"].get("/review/?assignee=me").content.decode()
    assert "<strong>3</strong> open" in mine
    assert "0 unassigned</a>" in mine


def test_an_empty_queue_shows_zero_counts(db, clients):
    page = clients["support"].get("/review/").content.decode()
    assert "<strong>0</strong> open" in page
    assert "0 unassigned</a>" in page
    assert "Nothing open" in page


@pytest.mark.parametrize(
    "url",
    [
        "/review/",
        "/review/?group_by=version",
        "/review/?group_by=rule",
        "/review/?group=server_error",
        "/review/?customer=shop&assignee=me",
        "/review/?group_by=rule&group=none",
        "/review/?customer=shop",
        "/review/?customer=bee&group_by=rule",
        "/review/?integration=b-orders",
        "/review/?integration=shop-contacts&group_by=version",
        "/review/?customer=shop&group=server_error",
        "/review/?integration=b-orders&group_by=rule&group=none",
    ],
)
def test_review_pages_stay_within_the_query_target(queue, clients, url, django_assert_max_num_queries):
    client = clients["support"]
    with CaptureQueriesContext(connection) as few:
        assert client.get(url).status_code == 200
    make_records(queue["shop"], queue["shop_v1"], 40, start=500)
    with django_assert_max_num_queries(MAX_QUERIES):
        assert client.get(url).status_code == 200
    with CaptureQueriesContext(connection) as many:
        client.get(url)
    assert len(few) == len(many)


def test_the_pager_names_the_page_size_it_moves_by(queue, clients):
    make_records(queue["shop"], queue["shop_v1"], 40, start=500)  # 24 + 40 open: more than a page
    page = clients["support"].get("/review/").content.decode()
    assert "Next 50 »" in page
    assert "Next 100" not in page
