"""Duplicate checks in the pipeline: the same person under another source id updates the record
already at the partner; a likely duplicate goes to review with both records, never merged."""

from __future__ import annotations

import pytest

from integrations.models import RecordLink, ReviewItem, SyncRecord
from integrations.partner_sim import PartnerSim
from integrations.services import processing
from integrations.services.ingest import ingest_items
from integrations.sources.base import InboundItem
from tests.pipeline.helpers import make_integration

pytestmark = pytest.mark.django_db

SPEC = {
    "record": {
        "source_id": "id",
        "duplicates": {"email": "email", "phone": "phone", "name": ["first_name", "last_name"]},
    },
    "default_region": "US",
    "fields": [
        {"name": "external_id", "source": "id", "required": True},
        {"name": "email", "source": "email", "convert": ["email"]},
        {"name": "phone", "source": "phone", "convert": ["phone_e164"], "on_invalid": "drop"},
        {"name": "first_name", "source": "first_name"},
        {"name": "last_name", "source": "last_name"},
    ],
}


@pytest.fixture
def partner():
    sim = PartnerSim(seed=1).start()
    yield sim
    sim.stop()


def send(hook, *records):
    ingest_items(hook, [InboundItem(body=r) for r in records])
    processing.drain_integration(hook.pk, max_seconds=30)


def test_the_same_email_under_another_source_id_updates_the_existing_partner_record(partner):
    hook = make_integration(slug="people", partner_url=partner.url, spec=SPEC)
    send(hook, {"id": "crm-1", "email": "P.Okafor@example.org", "first_name": "Peter", "last_name": "Okafor"})
    send(hook, {"id": "shop-9", "email": "p.okafor@example.org ", "first_name": "Pete", "last_name": "Okafor"})
    assert partner.stats()["accepted"] == 1
    assert partner.stats()["updates"] == 1
    first, second = (RecordLink.objects.get(source_id=s) for s in ("crm-1", "shop-9"))
    assert first.destination_id == second.destination_id
    assert "matched crm-1" in SyncRecord.objects.get(source_id="shop-9").last_reason


def test_a_likely_duplicate_goes_to_review_with_both_records_and_is_not_sent(partner):
    hook = make_integration(slug="people", partner_url=partner.url, spec=SPEC)
    send(
        hook,
        {"id": "crm-1", "email": "a@example.org", "phone": "202-555-0143", "first_name": "Inès", "last_name": "Varga"},
    )
    send(
        hook,
        {
            "id": "crm-2",
            "email": "b@example.org",
            "phone": "(202) 555 0143",
            "first_name": "Ines",
            "last_name": "Vargas",
        },
    )
    record = SyncRecord.objects.get(source_id="crm-2")
    assert record.status == "review"
    item = ReviewItem.objects.get(record=record)
    assert item.reason_code == "possible_duplicate"
    assert "crm-1" in item.reason_text
    assert item.details["other"]["email"] == "a@example.org"
    assert item.details["this"]["email"] == "b@example.org"
    assert partner.stats()["accepted"] == 1


def test_unrelated_people_are_both_created(partner):
    hook = make_integration(slug="people", partner_url=partner.url, spec=SPEC)
    send(
        hook,
        {"id": "1", "email": "a@example.org", "first_name": "Ana", "last_name": "Lima"},
        {"id": "2", "email": "b@example.org", "first_name": "Bo", "last_name": "Berg"},
    )
    assert partner.stats()["accepted"] == 2
