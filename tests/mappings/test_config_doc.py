"""config_export / config_import: one YAML document, all or nothing, idempotent, with history."""

from __future__ import annotations

import io
from datetime import time

import pytest
import yaml
from django.core.management import CommandError, call_command

from customers.models import Customer
from integrations.models import ExceptionRule, Integration, MappingVersion
from integrations.services import config_doc, mappings
from tests.conftest import make_user
from tests.mappings.conftest import spec_with


def run(*args: str, **options: object) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, **options)
    return out.getvalue()


def history_rows() -> int:
    return sum(
        model.history.count()  # type: ignore[attr-defined]
        for model in (Customer, Integration, MappingVersion, ExceptionRule)
    )


@pytest.fixture
def configured(integration, engineer, contact_spec):
    """A customer with an account manager, a scheduled integration, a published mapping and a rule."""
    manager = make_user("account_manager", "amy")
    customer = integration.customer
    customer.account_manager = manager
    customer.notes = "Ships from Berlin; 0171 is a phone prefix, not a number."
    customer.save()
    integration.delivery_mode = "scheduled"
    integration.window_start, integration.window_end = time(1, 0), time(5, 30)
    integration.destination_secret = "super-secret-token"
    integration.save()
    mappings.publish_spec(integration=integration, spec=contact_spec, acting_user=engineer, note="v1")
    ExceptionRule.objects.create(
        customer=customer,
        integration=integration,
        kind="skip_when",
        params={"condition": {"field": "status", "op": "eq", "value": "cancelled"}},
        reason="They cancel test orders by hand.",
        owner=manager,
    )
    ExceptionRule.objects.create(
        customer=customer,
        kind="hold_for_review",
        params={"condition": {"field": "total", "op": "gt", "value": 10000}},
        reason="VIP",
        owner=manager,
    )
    return integration


def export(tmp_path, **options: str):
    path = tmp_path / "config.yaml"
    path.write_text(run("config_export", **options), encoding="utf-8")
    return path


def test_export_is_readable_yaml_without_secrets(configured, tmp_path):
    text = export(tmp_path).read_text()

    assert "super-secret-token" not in text
    assert "webhook_secret" not in text
    assert "destination_secret" not in text
    doc = yaml.safe_load(text)
    (customer,) = doc["customers"]
    assert customer["account_manager"] == "amy"
    (integration,) = customer["integrations"]
    assert integration["window_start"] == "01:00:00"
    assert integration["mapping"]["version"] == 1
    assert [r["key"] for r in customer["exception_rules"]] == [
        "test-shop/test-shop-contacts/skip_when/1",
        "test-shop/*/hold_for_review/1",
    ]


def test_importing_the_export_again_changes_nothing_and_writes_no_history(configured, tmp_path):
    path = export(tmp_path)
    rows, versions = history_rows(), MappingVersion.objects.count()

    out = run("config_import", str(path), "--note", "no-op")

    assert out.strip() == "No changes: the database already matches the document."
    assert (history_rows(), MappingVersion.objects.count()) == (rows, versions)


def test_a_document_moves_configuration_to_an_empty_environment_and_back_unchanged(configured, tmp_path):
    path = export(tmp_path)
    first_text = path.read_text()
    ExceptionRule.objects.all().delete()
    Integration.objects.all().delete()
    Customer.objects.all().delete()

    out = run("config_import", str(path), "--note", "Copy from staging", "--user", "amy")

    assert "create customer test-shop" in out
    assert "publish mapping test-shop-contacts" in out
    assert "note: integration test-shop-contacts: new here; set its destination secret" in out
    assert run("config_export").replace("note: Copy from staging", "note: v1") == first_text
    integration = Integration.objects.get(slug="test-shop-contacts")
    assert integration.destination_secret == ""
    version = MappingVersion.objects.get(integration=integration)
    assert (version.number, version.note, version.published_by.username) == (1, "Copy from staging", "amy")
    rule = ExceptionRule.objects.get(kind="skip_when")
    assert rule.history.get().history_change_reason == "Config import: Copy from staging"
    assert rule.created_by.username == "amy"

    rows = history_rows()
    assert run("config_import", str(path)).startswith("No changes")
    assert history_rows() == rows


def test_changes_are_written_with_the_acting_user_and_the_note_and_mappings_get_a_new_version(
    configured, tmp_path, engineer
):
    doc = config_doc.load_document(export(tmp_path).read_text())
    customer = doc["customers"][0]
    customer["name"] = "Test Shop GmbH"
    customer["integrations"][0]["mapping"]["spec"] = spec_with(invited="invited")
    customer["exception_rules"][0]["reason"] = "They cancel test orders by hand (confirmed by Amy)."
    customer["exception_rules"].append(
        {
            "key": "test-shop/*/hold_for_review/2",
            "kind": "hold_for_review",
            "params": {"condition": {"field": "total", "op": "gt", "value": 50000}},
            "reason": "Big orders",
            "owner": "amy",
        }
    )
    doc["note"] = "Quarterly clean-up"
    path = tmp_path / "changed.yaml"
    path.write_text(config_doc.dump_document(doc))

    out = run("config_import", str(path), "--user", "erin")

    assert "update customer test-shop: name 'Test Shop' → 'Test Shop GmbH'" in out
    assert "publish mapping test-shop-contacts (replaces v1): Field 'status'" in out
    assert "update rule test-shop/test-shop-contacts/skip_when/1: reason" in out
    assert "create rule test-shop/*/hold_for_review/2" in out
    customer_row = Customer.objects.get(slug="test-shop").history.latest()
    assert (customer_row.history_user, customer_row.history_change_reason) == (
        engineer,
        "Config import: Quarterly clean-up",
    )
    v2 = MappingVersion.objects.get(integration=configured, status="published")
    assert (v2.number, v2.note, v2.published_by) == (2, "Quarterly clean-up", engineer)
    assert ExceptionRule.objects.filter(kind="hold_for_review").count() == 2
    assert run("config_import", str(path), "--user", "erin").startswith("No changes")


def test_a_dry_run_lists_the_changes_and_writes_nothing(configured, tmp_path):
    doc = config_doc.load_document(export(tmp_path).read_text())
    doc["customers"][0]["time_zone"] = "Europe/Vienna"
    path = tmp_path / "changed.yaml"
    path.write_text(config_doc.dump_document(doc))
    rows = history_rows()

    out = run("config_import", str(path), "--dry-run")

    assert "would update customer test-shop: time_zone 'Europe/Berlin' → 'Europe/Vienna'" in out
    assert "Dry run: 1 change(s) checked, nothing written." in out
    assert Customer.objects.get(slug="test-shop").time_zone == "Europe/Berlin"
    assert history_rows() == rows


def test_a_bad_document_names_every_problem_and_changes_nothing(configured, tmp_path):
    doc = config_doc.load_document(export(tmp_path).read_text())
    good_change = doc["customers"][0]
    good_change["name"] = "Renamed"  # valid on its own: must not be written either
    good_change["integrations"][0]["mapping"]["spec"] = {"fields": [{"name": "x", "convert": ["nope"]}]}
    good_change["integrations"][0]["retention_dayz"] = 3
    good_change["exception_rules"][1]["owner"] = "nobody"
    doc["customers"].append({"slug": "second", "name": "Second", "time_zone": "Mars/Olympus"})
    path = tmp_path / "bad.yaml"
    path.write_text(config_doc.dump_document(doc))
    rows, versions = history_rows(), MappingVersion.objects.count()

    with pytest.raises(CommandError) as refused:
        run("config_import", str(path), "--note", "x")

    text = str(refused.value)
    assert "nothing was changed" in text
    assert "integration test-shop-contacts: unknown key(s) retention_dayz" in text
    assert "nope" in text
    assert "no user is called 'nobody'" in text
    assert "customer second.time_zone" in text
    assert Customer.objects.get(slug="test-shop").name == "Test Shop"
    assert not Customer.objects.filter(slug="second").exists()
    assert (history_rows(), MappingVersion.objects.count()) == (rows, versions)


def test_a_changed_mapping_without_any_note_is_refused(configured, tmp_path):
    doc = config_doc.load_document(export(tmp_path).read_text())
    doc["customers"][0]["integrations"][0]["mapping"]["spec"] = spec_with(invited="invited")
    path = tmp_path / "changed.yaml"
    path.write_text(config_doc.dump_document(doc))

    with pytest.raises(CommandError, match="publishing needs a change note"):
        run("config_import", str(path))
    assert MappingVersion.objects.filter(integration=configured).count() == 1


def test_a_new_rule_must_take_the_next_number_of_its_kind(configured, tmp_path):
    doc = config_doc.load_document(export(tmp_path).read_text())
    doc["customers"][0]["exception_rules"].append(
        {
            "key": "test-shop/*/hold_for_review/5",
            "kind": "hold_for_review",
            "params": {"condition": {"field": "total", "op": "gt", "value": 1}},
            "reason": "x",
            "owner": "amy",
        }
    )
    path = tmp_path / "gap.yaml"
    path.write_text(config_doc.dump_document(doc))

    with pytest.raises(CommandError, match=r"a new rule here must be number 2 \(test-shop/\*/hold_for_review/2\)"):
        run("config_import", str(path))


def test_an_integration_slug_owned_by_another_customer_is_refused(configured, tmp_path):
    path = tmp_path / "other.yaml"
    path.write_text(
        "customers:\n- slug: other\n  name: Other\n  integrations:\n  - slug: test-shop-contacts\n    name: Stolen\n"
    )

    with pytest.raises(CommandError, match="belongs to customer test-shop in this environment"):
        run("config_import", str(path))
    assert not Customer.objects.filter(slug="other").exists()


def test_export_of_one_customer_and_of_an_unknown_one(configured, tmp_path):
    assert "slug: test-shop\n" in run("config_export", customer="test-shop")
    with pytest.raises(CommandError, match="no customer is called 'nope'"):
        run("config_export", customer="nope")


def test_rule_parameters_are_checked_against_the_kind_and_the_mapping(configured, tmp_path):
    doc = config_doc.load_document(export(tmp_path).read_text())
    rules = doc["customers"][0]["exception_rules"]
    rules[0]["params"] = {"when": "always"}
    rules.append(
        {
            "key": "test-shop/test-shop-contacts/value_map_override/1",
            "integration": "test-shop-contacts",
            "kind": "value_map_override",
            "params": {"field": "email", "from": "a", "to": "b"},
            "reason": "x",
            "owner": "amy",
        }
    )
    path = tmp_path / "params.yaml"
    path.write_text(config_doc.dump_document(doc))

    with pytest.raises(CommandError) as refused:
        run("config_import", str(path))

    text = str(refused.value)
    assert "rule test-shop/test-shop-contacts/skip_when/1.params: unknown parameters: when" in text
    assert "does not fit the mapping of test-shop-contacts: field 'email' has no value map to override" in text


def test_a_rule_retired_in_the_document_is_retired_with_the_note(configured, tmp_path, engineer):
    doc = config_doc.load_document(export(tmp_path).read_text())
    doc["customers"][0]["exception_rules"][1]["status"] = "retired"
    path = tmp_path / "retire.yaml"
    path.write_text(config_doc.dump_document(doc))

    out = run("config_import", str(path), "--note", "VIP ended", "--user", "erin")

    assert "retire rule test-shop/*/hold_for_review/1" in out
    rule = ExceptionRule.objects.get(kind="hold_for_review")
    assert rule.status == "retired"
    row = rule.history.latest()
    assert (row.history_user, row.history_change_reason) == (engineer, "Retired: Config import: VIP ended")
    assert run("config_import", str(path)).startswith("No changes")

    doc["customers"][0]["exception_rules"][1]["status"] = "active"
    path.write_text(config_doc.dump_document(doc))
    with pytest.raises(CommandError, match="cannot be made active again"):
        run("config_import", str(path))
