"""A review item carries its record's integration (the review queue filters by it): the migration
fills it in for existing items, the pipeline sets it on every item it opens, and save() fills it
in for items made from a record alone."""

from __future__ import annotations

from importlib import import_module
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.db import connection
from django.db.models import F

from integrations import selectors
from integrations.models import ReviewItem, SyncRecord
from integrations.partner_sim import PartnerSim
from integrations.services import processing
from integrations.services.ingest import ingest_items
from integrations.sources.base import InboundItem
from tests.pipeline.helpers import CONTACT_SPEC, contact, make_integration
from tests.ui.factories import make_records, make_world

migration = import_module("integrations.migrations.0013_review_item_integration")


def items_whose_integration_disagrees_with_their_record():
    return ReviewItem.objects.filter(integration__isnull=True) | ReviewItem.objects.exclude(
        integration_id=F("record__integration_id")
    )


@pytest.fixture
def two_integrations(db):
    shop, shop_v1, _ = make_world()
    bee, bee_v1, _ = make_world(slug="b-orders", customer_slug="bee")
    make_records(shop, shop_v1, 5)
    make_records(bee, bee_v1, 4, start=100)
    make_records(bee, bee_v1, 2, start=200, status="delivered")
    ReviewItem.objects.filter(record__source_id="c-100").update(status=ReviewItem.Status.RESOLVED)
    return shop, bee


def test_the_migration_gives_every_existing_review_item_its_records_integration(two_integrations):
    shop, bee = two_integrations
    ReviewItem.objects.update(integration=None)  # as the rows stood before the migration
    migration.backfill_integration(apps, SimpleNamespace(connection=connection))
    assert ReviewItem.objects.count() == 9
    assert not items_whose_integration_disagrees_with_their_record().exists()
    assert ReviewItem.objects.filter(integration=shop).count() == 5
    assert ReviewItem.objects.filter(integration=bee).count() == 4  # the resolved one too


@pytest.mark.parametrize("statement", ["BACKFILL_PORTABLE", "BACKFILL_POSTGRESQL"])
def test_each_backfill_statement_fills_only_the_items_without_an_integration(two_integrations, statement):
    if statement == "BACKFILL_POSTGRESQL" and connection.vendor != "postgresql":
        pytest.skip("UPDATE ... FROM in this form is PostgreSQL's")
    shop, bee = two_integrations
    ReviewItem.objects.filter(integration=shop).update(integration=None)
    # An item already set is left alone (so the statement can run twice), even a wrong one.
    marker = ReviewItem.objects.filter(integration=bee).first()
    ReviewItem.objects.filter(pk=marker.pk).update(integration=shop)
    with connection.cursor() as cursor:
        cursor.execute(getattr(migration, statement))
    assert list(items_whose_integration_disagrees_with_their_record()) == [marker]
    assert ReviewItem.objects.filter(integration=shop).count() == 6


@pytest.fixture
def partner():
    sim = PartnerSim(seed=3).start()
    yield sim
    sim.stop()


def test_review_items_opened_by_the_pipeline_carry_their_records_integration(db, partner):
    spec = {
        **CONTACT_SPEC,
        "fields": [*CONTACT_SPEC["fields"], {"name": "tier", "source": "tier", "value_map": {"gold": "G"}}],
    }
    one = make_integration(slug="one-contacts", partner_url=partner.url, spec=spec)
    two = make_integration(slug="two-contacts", partner_url=partner.url, spec=spec)
    partner.configure(reject_fields={"first_name": "invalid"}, reject_status=422)
    ingest_items(one, [InboundItem(body=contact(1, tier="bronze"))])  # unmapped value: review
    ingest_items(two, [InboundItem(body=contact(2, tier="gold", first_name="invalid"))])  # refused by the partner
    ingest_items(two, [InboundItem(body=contact(3, tier="gold"))])  # delivered
    processing.drain_integration(one.pk, max_seconds=30)
    processing.drain_integration(two.pk, max_seconds=30)

    items = {i.record.source_id: i for i in ReviewItem.objects.select_related("record")}
    assert set(items) == {"c-1", "c-2"}
    assert items["c-1"].reason_code == "unmapped_value"
    assert items["c-1"].integration_id == one.pk
    assert items["c-2"].reason_code == "client_error"
    assert items["c-2"].integration_id == two.pk
    assert SyncRecord.objects.get(source_id="c-3").status == "delivered"
    listed, _ = selectors.review_items_page(selectors.ReviewFilters(integration="two-contacts"))
    assert [i.record.source_id for i in listed] == ["c-2"]


def test_saving_an_item_made_from_a_record_alone_sets_its_integration(two_integrations):
    shop, bee = two_integrations
    record = SyncRecord.objects.get(source_id="c-200")  # delivered, no item yet
    item = ReviewItem.objects.create(record=record, reason_code="x", reason_text="x", group_key="x")
    assert ReviewItem.objects.get(pk=item.pk).integration_id == bee.pk
    other = SyncRecord.objects.get(source_id="c-201")
    by_id = ReviewItem.objects.create(record_id=other.pk, reason_code="x", reason_text="x", group_key="x")
    assert ReviewItem.objects.get(pk=by_id.pk).integration_id == bee.pk
    # Moved to a record of another integration (as the admin's form does): the integration follows.
    ReviewItem.objects.filter(record__source_id="c-1").update(status=ReviewItem.Status.RESOLVED)
    item.record = SyncRecord.objects.get(source_id="c-1")
    item.save(update_fields=["record"])
    assert ReviewItem.objects.get(pk=item.pk).integration_id == shop.pk
    assert not items_whose_integration_disagrees_with_their_record().exists()
