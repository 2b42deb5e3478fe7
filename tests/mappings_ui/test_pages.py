"""Mapping editor pages through Django's test client: who sees what, who may do what, and what
each action leaves behind (versions, drafts, notes, diffs)."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from integrations.models import MappingVersion
from integrations.services import mappings
from tests.conftest import ROLES

from .conftest import SPEC_V2, versions
from .helpers import editor_post, row_of

pytestmark = pytest.mark.django_db

SLUG = "test-shop-contacts"


def url(name: str, **query: str) -> str:
    base = reverse(f"mappings:{name}", args=[SLUG]) if name != "index" else reverse("mappings:index")
    if query:
        base += "?" + "&".join(f"{k}={v}" for k, v in query.items())
    return base


def start_draft(world, users, spec=None):
    spec = spec or {
        **SPEC_V2,
        "fields": [*SPEC_V2["fields"], {"name": "source_system", "convert": [{"name": "constant", "value": "shop"}]}],
    }
    return mappings.draft_save(integration=world, spec=spec, acting_user=users["engineer"])


# --------------------------------------------------------------------------- seeing


@pytest.mark.parametrize("role", ROLES)
def test_every_role_sees_the_list_the_field_table_versions_and_diff(world, clients, users, role):
    start_draft(world, users)
    client = clients[role]
    listing = client.get(url("index"))
    assert listing.status_code == 200
    text = listing.content.decode()
    assert "Contacts to CRM" in text
    assert "v2" in text
    assert "map awaiting-pickup" in text
    assert "draft" in text

    page = client.get(url("detail"))
    assert page.status_code == 200
    body = page.content.decode()
    for column in ("Destination", "Source", "Owner", "Conversions", "Blank rule", "Invalid rule", "Value map"):
        assert column in body
    assert "awaiting-pickup" in body
    assert "integer(output: text)" in body
    assert "Record id" in body  # record options

    assert client.get(url("versions")).status_code == 200
    assert client.get(url("diff", a="1", b="2")).status_code == 200
    assert client.get(url("detail", version="draft")).status_code == 200
    assert client.get(url("preview")).status_code == 200


def test_support_sees_no_edit_controls(world, clients, users):
    start_draft(world, users)
    client = clients["support"]
    for page in (url("detail"), url("detail", version="draft"), url("versions"), url("preview"), url("index")):
        body = client.get(page).content.decode()
        main = body.split('<main id="main"', 1)[1]
        # A reader gets no POST form, no note box and no text area; only the GET comparison.
        assert 'method="post"' not in main
        assert "<textarea" not in main
        assert 'name="note"' not in main
        assert "Publish draft" not in body
        assert "Discard draft" not in body
        assert "Save draft" not in body
        assert "Publish v1 again" not in body
    # The editor URLs show the read-only draft instead of a form.
    response = client.get(url("draft"), follow=True)
    assert response.redirect_chain
    assert "version=draft" in response.redirect_chain[-1][0]
    assert 'name="fields-TOTAL_FORMS"' not in response.content.decode()
    assert client.get(url("draft_text")).status_code == 302


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("draft", {"op": "save"}),
        ("draft_text", {"text": "fields: []"}),
        ("publish", {"note": "sneaky"}),
        ("discard", {}),
        ("rollback", {"number": "1", "note": "sneaky"}),
    ],
)
def test_support_posts_are_refused_and_change_nothing(world, clients, users, name, data):
    draft = start_draft(world, users)
    before = versions(world)
    response = clients["support"].post(url(name), data)
    assert response.status_code == 403
    assert versions(world) == before
    draft.refresh_from_db()
    assert draft.status == "draft"


def test_engineer_sees_the_editor_with_a_row_per_field_and_the_publish_form(world, clients, users):
    start_draft(world, users)
    response = clients["engineer"].get(url("draft"))
    assert response.status_code == 200
    body = response.content.decode()
    assert 'name="fields-TOTAL_FORMS" value="5"' in body  # 4 fields + 1 empty row
    assert "Publish draft" in body
    assert "Discard draft" in body
    assert 'aria-label="Destination of field 1"' in body


# --------------------------------------------------------------------------- editing


def test_engineer_saves_a_draft_from_the_field_table(world, clients):
    client = clients["engineer"]
    page = client.get(url("draft"))
    data = editor_post(page)
    status = row_of(data, "status")
    data[f"{status}-vm_key"] = ["completed", "pending", "awaiting-pickup", "on-hold", ""]
    data[f"{status}-vm_value"] = ["fulfilled", "open", "open", "held", ""]
    email = row_of(data, "email")
    data[f"{email}-on_invalid"] = "drop"
    new = int(data["fields-TOTAL_FORMS"]) - 1  # the empty row at the end
    data[f"fields-{new}-name"] = "country"
    data[f"fields-{new}-source"] = "address.country"
    data[f"fields-{new}-convert"] = "trim | country(output: alpha2)"
    data[f"fields-{new}-position"] = "1"  # reorder: first
    response = client.post(url("draft"), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    draft = MappingVersion.objects.get(integration=world, status="draft")
    fields = draft.spec["fields"]
    # Order 1 ties with external_id's 1; the row higher on the page wins the tie.
    assert [f["name"] for f in fields] == ["external_id", "country", "email", "status"]
    by_name = {f["name"]: f for f in fields}
    assert by_name["status"]["value_map"]["on-hold"] == "held"
    assert by_name["email"]["on_invalid"] == "drop"
    assert by_name["country"]["convert"] == ["trim", {"name": "country", "output": "alpha2"}]
    assert by_name["external_id"]["convert"] == [{"name": "integer", "output": "text"}]
    assert draft.spec["record"] == SPEC_V2["record"]
    # The published version did not change.
    assert versions(world) == [(1, "retired"), (2, "published"), (None, "draft")]


def test_an_unchanged_save_keeps_the_spec_exactly(world, clients):
    client = clients["engineer"]
    response = client.post(url("draft"), editor_post(client.get(url("draft"))))
    assert response.status_code == 302
    draft = MappingVersion.objects.get(integration=world, status="draft")
    assert mappings.versions_diff(MappingVersion.objects.get(integration=world, number=2), draft) == []


def test_engineer_removes_a_field(world, clients):
    client = clients["engineer"]
    data = editor_post(client.get(url("draft")))
    data[f"{row_of(data, 'email')}-remove"] = "on"
    assert client.post(url("draft"), data).status_code == 302
    draft = MappingVersion.objects.get(integration=world, status="draft")
    assert [f["name"] for f in draft.spec["fields"]] == ["external_id", "status"]


def test_an_invalid_draft_is_refused_with_problems_next_to_the_field(world, clients):
    client = clients["engineer"]
    data = editor_post(client.get(url("draft")))
    email = row_of(data, "email")
    data[f"{email}-convert"] = "email | no_such_conversion"
    status = row_of(data, "status")
    data[f"{status}-on_blank"] = "default"  # but no default given
    response = client.post(url("draft"), data)
    assert response.status_code == 400
    assert not MappingVersion.objects.filter(integration=world, status="draft").exists()
    rows = {f.prefix: f for f in response.context["formset"].forms}
    assert any("no_such_conversion" in p for p in rows[email].spec_problems)
    assert "convert" in rows[email].problem_columns
    assert any("no default is given" in p for p in rows[status].spec_problems)
    body = response.content.decode()
    assert f'id="problems-{email}"' in body
    assert "unknown conversion" in body
    # What was typed is kept on the page.
    assert "email | no_such_conversion" in body


def test_an_unreadable_cell_is_refused_next_to_its_cell(world, clients):
    client = clients["engineer"]
    data = editor_post(client.get(url("draft")))
    data[f"{row_of(data, 'email')}-convert"] = "split_name(part: [first"
    response = client.post(url("draft"), data)
    assert response.status_code == 400
    assert "cannot be read" in response.content.decode()
    assert not MappingVersion.objects.filter(integration=world, status="draft").exists()


def test_a_save_on_top_of_someone_elses_change_is_refused(world, clients, users):
    client = clients["engineer"]
    data = editor_post(client.get(url("draft")))
    start_draft(world, users)  # someone else saves meanwhile
    response = client.post(url("draft"), data)
    assert response.status_code == 409
    assert "Someone changed this draft" in response.content.decode()
    draft = MappingVersion.objects.get(integration=world, status="draft")
    assert draft.spec["fields"][-1]["name"] == "source_system"


def test_engineer_saves_the_draft_as_yaml_text_and_sees_problems(world, clients):
    client = clients["engineer"]
    page = client.get(url("draft_text"))
    text = page.context["text_form"].initial["text"]
    assert "awaiting-pickup: open" in text
    base = page.context["text_form"].initial["base"]
    typo = re.sub(r"(convert:\n\s*- )email\n", r"\1emial\n", text, count=1)
    assert typo != text
    bad = client.post(url("draft_text"), {"text": typo, "base": base})
    assert bad.status_code == 400
    assert any("unknown conversion 'emial'" in p for p in bad.context["problems"])
    assert "unknown conversion &#x27;emial&#x27;" in bad.content.decode()
    broken = client.post(url("draft_text"), {"text": "fields: [", "base": base})
    assert broken.status_code == 400
    assert "not valid YAML" in broken.content.decode()
    good = client.post(
        url("draft_text"), {"text": text.replace("awaiting-pickup: open", "awaiting-pickup: ready"), "base": base}
    )
    assert good.status_code == 302
    draft = MappingVersion.objects.get(integration=world, status="draft")
    assert draft.spec["fields"][2]["value_map"]["awaiting-pickup"] == "ready"


# --------------------------------------------------------------------------- preview


def test_preview_marks_changed_fields_and_decisions(world, clients, users):
    spec = {
        **SPEC_V2,
        "fields": [
            *SPEC_V2["fields"][:2],
            {
                "name": "status",
                "source": "status",
                "value_map": {"completed": "done", "pending": "open", "awaiting-pickup": "open", "on-hold": "held"},
            },
        ],
    }
    start_draft(world, users, spec)
    response = clients["engineer"].get(url("preview"))
    assert response.status_code == 200
    rows = response.context["rows"]
    assert len(rows) == 8
    assert rows[0]["record"].source_id == "1007"  # newest first
    completed = [r for r in rows if r["record"].payload["status"] == "completed"]
    assert completed
    assert all([f["name"] for f in r["changed"]] == ["status"] for r in completed)
    assert completed[0]["changed"][0]["old"] == '"fulfilled"'
    assert completed[0]["changed"][0]["new"] == '"done"'
    on_hold = [r for r in rows if r["record"].payload["status"] == "on-hold"]
    assert on_hold
    assert all(
        r["decision_changed"] and r["old"]["decision"] == "review" and r["new"]["decision"] == "deliver"
        for r in on_hold
    )
    pending = [r for r in rows if r["record"].payload["status"] == "pending"]
    assert all(not r["changed"] for r in pending)
    body = response.content.decode()
    assert 'class="changed"' in body
    assert "with a changed output" in body
    only = clients["engineer"].get(url("preview", only="changed"))
    assert len(only.context["rows"]) == len(completed) + len(on_hold)


def test_preview_uses_only_the_last_50_records(world, clients, users):
    from .conftest import add_records

    add_records(world, 70, start=100)
    start_draft(world, users)
    response = clients["engineer"].get(url("preview"))
    assert response.context["total"] == 50


# --------------------------------------------------------------------------- publish, diff, rollback


def test_publish_requires_a_note(world, clients, users):
    start_draft(world, users)
    client = clients["engineer"]
    base = client.get(url("draft")).context["base"]
    response = client.post(url("publish"), {"note": "   ", "base": base})
    assert response.status_code == 400
    assert "A note is required" in response.content.decode()
    assert versions(world) == [(1, "retired"), (2, "published"), (None, "draft")]


def test_publish_creates_the_next_version_and_shows_its_diff(world, clients, users):
    start_draft(world, users)
    client = clients["engineer"]
    base = client.get(url("draft")).context["base"]
    response = client.post(url("publish"), {"note": "add source system", "base": base}, follow=True)
    assert response.status_code == 200
    assert versions(world) == [(1, "retired"), (2, "retired"), (3, "published")]
    v3 = MappingVersion.objects.get(integration=world, number=3)
    assert v3.note == "add source system"
    assert v3.published_by == users["engineer"]
    assert response.redirect_chain[-1][0].endswith("?a=2&b=3")
    body = response.content.decode()
    assert "Published v3" in body
    assert "Field &#x27;source_system&#x27; added" in body or "Field 'source_system' added" in body


def test_publishing_a_draft_changed_since_the_page_was_loaded_is_refused(world, clients, users):
    start_draft(world, users)
    client = clients["engineer"]
    base = client.get(url("draft")).context["base"]
    mappings.draft_save(integration=world, spec=SPEC_V2, acting_user=users["admin"])
    response = client.post(url("publish"), {"note": "ok", "base": base})
    assert response.status_code == 400
    assert "Someone changed this draft" in response.content.decode()
    assert versions(world)[-1] == (None, "draft")


def test_discard_removes_the_draft(world, clients, users):
    start_draft(world, users)
    response = clients["engineer"].post(url("discard"))
    assert response.status_code == 302
    assert versions(world) == [(1, "retired"), (2, "published")]


def test_diff_shows_the_changed_value_map_entry(world, clients):
    response = clients["support"].get(url("diff", a="1", b="2"))
    body = response.content.decode()
    assert "Field status" in body
    assert "value map entry" in body
    assert "awaiting-pickup" in body
    assert [d["field"] for d in response.context["lines"]] == ["status"]
    # Without "a": from the version before.
    assert clients["support"].get(url("diff", b="2")).context["a"].number == 1


def test_rollback_publishes_the_old_spec_as_a_new_version_and_needs_a_note(world, clients):
    client = clients["engineer"]
    refused = client.post(url("rollback"), {"number": "1", "note": ""}, follow=True)
    assert "required" in refused.content.decode()
    assert versions(world) == [(1, "retired"), (2, "published")]
    response = client.post(url("rollback"), {"number": "1", "note": "v2 mapped too much"}, follow=True)
    assert versions(world) == [(1, "retired"), (2, "retired"), (3, "published")]
    v3 = MappingVersion.objects.get(integration=world, number=3)
    assert v3.spec == MappingVersion.objects.get(integration=world, number=1).spec
    assert v3.note == "Rollback to v1: v2 mapped too much"
    assert "published again as v3" in response.content.decode()


def test_unknown_integration_or_version_is_404(world, clients):
    assert clients["support"].get(reverse("mappings:detail", args=["nope"])).status_code == 404
    assert clients["support"].get(url("detail", version="9")).status_code == 404
    assert clients["support"].get(url("diff", a="9", b="2")).status_code == 404


def test_add_a_row_keeps_what_was_typed_and_saves_nothing(world, clients):
    client = clients["engineer"]
    data = editor_post(client.get(url("draft")))
    data[f"{row_of(data, 'email')}-on_invalid"] = "drop"
    data["op"] = "add"
    response = client.post(url("draft"), data)
    assert response.status_code == 200
    formset = response.context["formset"]
    assert len(formset.forms) == int(data["fields-TOTAL_FORMS"]) + 1
    assert formset.forms[1]["on_invalid"].value() == "drop"
    assert not MappingVersion.objects.filter(integration=world, status="draft").exists()


def test_diff_page_names_the_published_version_in_its_header(world, clients):
    body = clients["support"].get(url("diff", a="1", b="2")).content.decode()
    assert "Published <strong>v2</strong>" in body
    assert "nothing published" not in body


def test_preview_masks_sensitive_fields_for_support_but_not_for_engineers(world, clients, users):
    world.sensitive_fields = ["email"]
    world.save(update_fields=["sensitive_fields"])
    spec = {**SPEC_V2, "fields": [{**f, "convert": ["trim"]} if f["name"] == "email" else f for f in SPEC_V2["fields"]]}
    start_draft(world, users, spec)
    support = clients["support"].get(url("preview"))
    body = support.content.decode()
    assert "person1@example.com" not in body.lower()
    email = next(f for f in support.context["rows"][0]["fields"] if f["name"] == "email")
    assert email["changed"]  # worked out on the real values
    assert email["old"] == email["new"] == '"[sensitive]"'
    engineer = clients["engineer"].get(url("preview")).content.decode()
    assert "person7@example.com" in engineer.lower()
