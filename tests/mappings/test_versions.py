"""Drafts, publishing, rollback, diffs and their history rows (integrations.services.mappings)."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.db import connection, connections

from integrations.models import MappingVersion
from integrations.services import mappings
from tests.conftest import requires_postgres
from tests.mappings.conftest import spec_with


def test_saving_a_draft_creates_one_draft_with_history_by_the_acting_user(integration, engineer, contact_spec):
    draft = mappings.draft_save(integration=integration, spec=contact_spec, acting_user=engineer, note="first cut")

    assert draft.status == "draft"
    assert draft.number is None
    assert draft.author == engineer
    row = draft.history.get()
    assert (row.history_user, row.history_change_reason, row.history_type) == (engineer, "Draft created", "+")


def test_saving_again_updates_the_same_draft(integration, engineer, contact_spec):
    first = mappings.draft_save(integration=integration, spec=contact_spec, acting_user=engineer)
    second = mappings.draft_save(integration=integration, spec=spec_with(invited="invited"), acting_user=engineer)

    assert first.pk == second.pk
    assert MappingVersion.objects.filter(integration=integration).count() == 1
    assert [h.history_change_reason for h in second.history.order_by("history_id")] == ["Draft created", "Draft edited"]


def test_a_new_draft_starts_from_the_published_spec(integration, engineer, contact_spec):
    mappings.publish_spec(integration=integration, spec=contact_spec, acting_user=engineer, note="v1")

    draft = mappings.draft_save(integration=integration, spec=None, acting_user=engineer)

    assert draft.status == "draft"
    assert draft.spec == contact_spec
    assert draft.history.get().history_change_reason == "Draft started from v1"


def test_publishing_numbers_versions_and_retires_the_previous_one(integration, engineer, contact_spec):
    mappings.draft_save(integration=integration, spec=contact_spec, acting_user=engineer)
    v1 = mappings.draft_publish(integration=integration, acting_user=engineer, note="First version")
    mappings.draft_save(integration=integration, spec=spec_with(invited="invited"), acting_user=engineer)
    v2 = mappings.draft_publish(integration=integration, acting_user=engineer, note="Map invited")

    v1.refresh_from_db()
    assert (v1.number, v1.status) == (1, "retired")
    assert (v2.number, v2.status, v2.note, v2.published_by) == (2, "published", "Map invited", engineer)
    assert v2.published_at is not None
    assert not MappingVersion.objects.filter(integration=integration, status="draft").exists()
    assert v1.history.latest().history_change_reason == "Retired by v2: Map invited"
    assert v1.history.latest().history_user == engineer
    assert v2.history.latest().history_change_reason == "Published v2: Map invited"


def test_publishing_needs_a_note(integration, engineer, contact_spec):
    mappings.draft_save(integration=integration, spec=contact_spec, acting_user=engineer)

    with pytest.raises(mappings.MappingRefused, match="change note is required"):
        mappings.draft_publish(integration=integration, acting_user=engineer, note="  ")

    assert MappingVersion.objects.get(integration=integration).status == "draft"


def test_publishing_without_a_draft_is_refused(integration, engineer):
    with pytest.raises(mappings.MappingRefused, match="no draft to publish"):
        mappings.draft_publish(integration=integration, acting_user=engineer, note="x")


def test_an_invalid_spec_is_refused_with_every_problem_named(integration, engineer):
    bad = {
        "fields": [
            {"name": "email", "convert": ["no_such_conversion"]},
            {"name": "status", "source": "state", "on_blank": "explode"},
        ]
    }

    with pytest.raises(mappings.MappingRefused) as refused:
        mappings.publish_spec(integration=integration, spec=bad, acting_user=engineer, note="broken")

    text = str(refused.value)
    assert "no_such_conversion" in text
    assert "explode" in text
    assert len(refused.value.problems) >= 2
    assert not MappingVersion.objects.filter(integration=integration).exists()


def test_a_draft_with_problems_is_not_saved(integration, engineer):
    with pytest.raises(mappings.MappingRefused, match="problem"):
        mappings.draft_save(integration=integration, spec={"fields": "nope"}, acting_user=engineer)

    assert not MappingVersion.objects.filter(integration=integration).exists()


def test_publish_spec_leaves_someone_elses_draft_alone(integration, engineer, contact_spec):
    draft = mappings.draft_save(integration=integration, spec=spec_with(x="y"), acting_user=engineer)

    published = mappings.publish_spec(integration=integration, spec=contact_spec, acting_user=None, note="import")

    draft.refresh_from_db()
    assert draft.status == "draft"
    assert draft.spec == spec_with(x="y")
    assert published.number == 1
    assert published.pk != draft.pk


def test_rollback_publishes_the_old_spec_as_a_new_version(integration, engineer, contact_spec):
    mappings.publish_spec(integration=integration, spec=contact_spec, acting_user=engineer, note="v1")
    mappings.publish_spec(integration=integration, spec=spec_with(invited="invited"), acting_user=engineer, note="v2")

    v3 = mappings.rollback(integration=integration, number=1, acting_user=engineer, note="v2 broke invites")

    assert (v3.number, v3.status, v3.spec) == (3, "published", contact_spec)
    assert v3.note == "Rollback to v1: v2 broke invites"
    statuses = dict(MappingVersion.objects.filter(integration=integration).values_list("number", "status"))
    assert statuses == {1: "retired", 2: "retired", 3: "published"}


def test_rolling_back_to_the_published_version_or_a_missing_one_is_refused(integration, engineer, contact_spec):
    mappings.publish_spec(integration=integration, spec=contact_spec, acting_user=engineer, note="v1")

    with pytest.raises(mappings.MappingRefused, match="already the published"):
        mappings.rollback(integration=integration, number=1, acting_user=engineer, note="again")
    with pytest.raises(mappings.MappingRefused, match="no version 7"):
        mappings.rollback(integration=integration, number=7, acting_user=engineer, note="again")


def test_a_published_version_cannot_be_edited_even_outside_the_service(integration, engineer, contact_spec):
    v1 = mappings.publish_spec(integration=integration, spec=contact_spec, acting_user=engineer, note="v1")

    from django.db import DatabaseError, transaction

    with pytest.raises(DatabaseError), transaction.atomic():
        MappingVersion.objects.filter(pk=v1.pk).update(spec={"fields": []})
    v1.refresh_from_db()
    assert v1.spec == contact_spec


def test_the_diff_between_versions_names_the_changed_value_map_entry(integration, engineer, contact_spec):
    v1 = mappings.publish_spec(integration=integration, spec=contact_spec, acting_user=engineer, note="v1")
    v2 = mappings.publish_spec(integration=integration, spec=spec_with(invited="pending"), acting_user=None, note="v2")

    diff = mappings.versions_diff(v1, v2)

    assert len(diff) == 1
    assert diff[0]["field"] == "status"
    assert "invited" in diff[0]["text"]
    assert "pending" in diff[0]["text"]


def test_preview_gives_one_line_per_record_with_output_problems_and_trace(contact_spec):
    lines = mappings.preview(
        spec=contact_spec,
        records=[
            {"id": 9007199254740993, "email": " Ann@Example.COM ", "state": "Enabled ", "n": Decimal("1.10")},
            {"id": 2, "email": "ann@example.com", "state": "banned"},
            "not a record",
        ],
    )

    assert [line["decision"] for line in lines] == ["deliver", "review", "reject"]
    assert lines[0]["source_id"] == "9007199254740993"
    assert lines[0]["output"] == {"email": "ann@example.com", "status": "active"}
    assert {p["field"] for p in lines[1]["problems"]} == {"status"}
    assert "banned" in lines[1]["problems"][0]["reason"]
    assert lines[2]["problems"]
    assert lines[2]["output"] == {}
    assert all(set(line) == {"source_id", "decision", "output", "problems", "trace"} for line in lines)
    assert lines[0]["trace"]


def test_preview_with_an_invalid_spec_names_the_problems():
    with pytest.raises(mappings.MappingRefused, match="cannot be used"):
        mappings.preview(spec={"fields": [{"nom": "x"}]}, records=[{}])


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_publishes_of_one_draft_make_exactly_one_new_version(integration, engineer, contact_spec):
    mappings.publish_spec(integration=integration, spec=contact_spec, acting_user=engineer, note="v1")
    mappings.draft_save(integration=integration, spec=spec_with(invited="invited"), acting_user=engineer)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def publish() -> None:
        try:
            barrier.wait(timeout=10)
            version = mappings.draft_publish(integration=integration, acting_user=engineer, note="race")
            outcomes.append(f"published v{version.number}")
        except mappings.MappingRefused as exc:
            outcomes.append(f"refused: {exc.message}")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=publish) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(outcomes) == [
        "published v2",
        f"refused: {integration.slug} has no draft to publish (it may just have been published)",
    ]
    statuses = sorted(MappingVersion.objects.filter(integration=integration).values_list("number", "status"))
    assert statuses == [(1, "retired"), (2, "published")]
    assert connection.vendor == "postgresql"
