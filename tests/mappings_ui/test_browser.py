"""The mapping editor in a real browser (Playwright driving Debian's chromium against the live
server): an engineer edits a field of the draft, previews it on real records, publishes it with a
note and reads the diff; support finds the editor read-only. Screenshots of the pages go to
test-output/screenshots/mappings-*.png."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connections

# Playwright's sync API runs an event loop in this thread; the ORM calls in the test body are
# plain blocking calls, so Django's async-safety guard must let them through.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from integrations.models import MappingVersion

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
PASSWORD = "correct horse battery 9"  # tests.conftest.make_user
SLUG = "test-shop-contacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed (apt-get install chromium)"),
]


@pytest.fixture
def page(live_server, settings) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    # The live server speaks plain HTTP: cookies must not be Secure-only here.
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
        )
        context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=live_server.url)
        context.set_default_timeout(15_000)
        page = context.new_page()
        yield page
        context.close()
        browser.close()
        # While Playwright's loop runs, this thread counts as async for Django: the test's ORM
        # calls opened a connection of that context, which the test database teardown (after the
        # loop stops) would not see and which then kept the database from being dropped.
        connections.close_all()


def shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"mappings-{name}.png"), full_page=True)


def log_in(page, user) -> None:
    page.goto("/login/")
    page.get_by_label("User name").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/$"))


def test_engineer_edits_previews_publishes_and_reads_the_diff(page, world, users):
    from playwright.sync_api import expect

    log_in(page, users["engineer"])
    page.get_by_role("link", name="Mappings", exact=True).click()
    expect(page.get_by_role("heading", name="Mappings")).to_be_visible()
    shot(page, "01-list")
    page.get_by_role("link", name="Contacts to CRM").click()
    expect(page.get_by_role("table", name="Field table")).to_contain_text("awaiting-pickup")
    shot(page, "02-field-table")

    # Edit a field of the draft: the status value map sends "done" for completed orders, and
    # e-mail addresses that cannot be read are dropped instead of sent to review.
    page.get_by_role("link", name="Start a draft").first.click()
    expect(page.get_by_role("heading", name=re.compile("Field table"))).to_be_visible()

    # A mistake is refused and named next to its field; nothing is saved.
    page.get_by_label("Conversions of field 2").fill("email | emial")
    page.get_by_role("button", name="Save draft").first.click()
    expect(page.locator("#problems-fields-1")).to_contain_text("unknown conversion 'emial'")
    expect(page.locator("#save-problems")).to_contain_text("Not saved")
    shot(page, "03a-editor-problem")
    assert not MappingVersion.objects.filter(integration__slug=SLUG, status="draft").exists()
    page.get_by_label("Conversions of field 2").fill("email")

    page.locator("#row-fields-2 summary").click()
    entry = page.locator("#row-fields-2 .vm-table tr").filter(has=page.locator('input[value="completed"]'))
    value = entry.get_by_role("textbox", name=re.compile(r"^Value map value"))
    expect(value).to_have_value("fulfilled")
    value.fill("done")
    page.get_by_label("Invalid rule of field 2").select_option("drop")
    shot(page, "03b-editor")
    page.get_by_role("button", name="Save and preview").first.click()

    # The preview runs the draft and v2 on the last records: completed ones change, marked.
    page.wait_for_url(re.compile(r"/draft/preview/$"))
    expect(page.locator(".messages")).to_contain_text("Draft started and saved")
    changed = page.locator(".preview-table .field-diff tr.changed").first
    expect(changed).to_contain_text("status")
    expect(changed.locator("td.old")).to_have_text('"fulfilled"')
    expect(changed.locator("td.new")).to_have_text('"done"')
    expect(page.locator(".preview-summary")).to_contain_text("with a changed output")
    shot(page, "04-preview")

    # Publish with a note, land on the diff.
    page.get_by_label("Publish note").fill("Completed orders are 'done' in the CRM")
    page.get_by_role("button", name="Publish draft").click()
    page.wait_for_url(re.compile(r"/diff/\?a=2&b=3$"))
    expect(page.locator(".messages")).to_contain_text("Published v3")
    diff = page.locator(".diff-card")
    expect(diff).to_contain_text("Changes from v2 to v3")
    expect(diff).to_contain_text("value map entry 'completed' changed from 'fulfilled' to 'done'")
    expect(diff).to_contain_text("Field 'email': invalid rule")
    shot(page, "05-diff")
    v3 = MappingVersion.objects.get(integration__slug=SLUG, number=3)
    assert v3.status == "published"
    assert v3.note == "Completed orders are 'done' in the CRM"

    page.get_by_role("link", name="Spec text").click()
    expect(page.get_by_label("Spec (YAML or JSON)")).to_contain_text("completed: done")
    shot(page, "06-spec-text")

    page.get_by_role("link", name="Versions").click()
    expect(page.locator(".versions-table")).to_contain_text("Completed orders are 'done' in the CRM")
    shot(page, "07-versions")


def test_support_finds_the_mapping_editor_read_only(page, world, users):
    from playwright.sync_api import expect

    from integrations.services import mappings

    mappings.draft_save(integration=world, spec=None, acting_user=users["engineer"])
    log_in(page, users["support"])
    page.goto(f"/mappings/{SLUG}/")
    expect(page.get_by_role("table", name="Field table")).to_be_visible()
    editable = "main input:not([type=hidden]), main textarea, main select, main button"
    expect(page.locator(editable)).to_have_count(0)
    expect(page.get_by_role("link", name=re.compile("Start a draft|Edit the draft|Edit draft"))).to_have_count(0)

    # The editor's address shows the draft, read-only.
    page.goto(f"/mappings/{SLUG}/draft/")
    page.wait_for_url(re.compile(r"\?version=draft$"))
    expect(page.get_by_role("heading", name=re.compile("Draft"))).to_be_visible()
    expect(page.locator(editable)).to_have_count(0)
    expect(page.get_by_role("button", name="Publish draft")).to_have_count(0)
    shot(page, "08-support-read-only")

    # Versions: comparing is allowed, rolling back is not offered.
    page.goto(f"/mappings/{SLUG}/versions/")
    expect(page.get_by_role("button", name=re.compile("again"))).to_have_count(0)
    expect(page.locator("main form[method=post]")).to_have_count(0)
