"""Every mapping page makes a bounded number of queries, the same for few or many records,
versions and integrations."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from customers.models import Customer
from integrations.models import Integration
from integrations.services import mappings

from .conftest import SPEC_V1, SPEC_V2, add_records

pytestmark = pytest.mark.django_db

SLUG = "test-shop-contacts"
MAX_QUERIES = 14
PAGES = [
    reverse("mappings:index"),
    reverse("mappings:detail", args=[SLUG]),
    reverse("mappings:detail", args=[SLUG]) + "?version=1",
    reverse("mappings:draft", args=[SLUG]),
    reverse("mappings:draft_text", args=[SLUG]),
    reverse("mappings:preview", args=[SLUG]),
    reverse("mappings:versions", args=[SLUG]),
    reverse("mappings:diff", args=[SLUG]) + "?a=1&b=draft",
]


def _count(client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(ctx.captured_queries)


def _grow(world, users) -> None:
    """Many more versions, records and integrations (each with a published version and a draft)."""
    engineer = users["engineer"]
    for n in range(10):
        spec = SPEC_V1 if n % 2 else SPEC_V2
        mappings.publish_spec(integration=world, spec=spec, acting_user=engineer, note=f"churn {n}")
    add_records(world, 60, start=500)
    customer = Customer.objects.create(name="Other", slug="other")
    for n in range(8):
        other = Integration.objects.create(customer=customer, name=f"Other {n}", slug=f"other-{n}")
        mappings.publish_spec(integration=other, spec=SPEC_V2, acting_user=engineer, note="first")
        mappings.draft_save(integration=other, spec=SPEC_V1, acting_user=engineer)


@pytest.mark.parametrize("url", PAGES)
def test_page_queries_are_bounded_and_do_not_grow_with_rows(world, clients, users, url, django_assert_max_num_queries):
    mappings.draft_save(integration=world, spec=SPEC_V1, acting_user=users["engineer"])
    client = clients["engineer"]
    client.get(url)  # warm caches (content types, permissions)
    with django_assert_max_num_queries(MAX_QUERIES):
        few = _count(client, url)
    _grow(world, users)
    with django_assert_max_num_queries(MAX_QUERIES):
        many = _count(client, url)
    assert many == few
