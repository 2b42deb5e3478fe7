"""Support staff flows in a real browser: Playwright driving Debian's chromium against the live
server, a real worker process and the partner simulator over HTTP. Each main page is saved as a
screenshot under test-output/screenshots/."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from django.db import connections
from django.test import Client

# Playwright's sync API runs an event loop in this thread; the ORM calls below are still plain
# blocking calls made from test code, so Django's async-safety guard must let them through.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from integrations.models import MappingVersion, ReviewItem, SyncRecord
from integrations.services import review as review_service
from tests.pipeline.conftest import FAST_RETRIES, wait_until
from tests.pipeline.helpers import CONTACT_SPEC, contact, make_integration, post_webhook

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
PASSWORD = "correct horse battery 9"
TERMINAL = ("delivered", "review", "skipped", "rejected")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed (apt-get install chromium)"),
    pytest.mark.usefixtures("clean_redis"),
]

SPEC = {
    **CONTACT_SPEC,
    "fields": [
        *CONTACT_SPEC["fields"],
        {"name": "status", "source": "status", "value_map": {"completed": "fulfilled", "pending": "open"}},
    ],
}


@pytest.fixture
def browser_page(live_server, settings) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    # The live server speaks plain HTTP: cookies must not be Secure-only for this test.
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
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
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def log_in(page, role: str) -> User:
    from integrations.roles import ensure_roles

    ensure_roles()  # transactional tests flush the tables, groups included
    user = User.objects.create_user(username=f"{role}.person", password=PASSWORD)
    user.groups.add(Group.objects.get(name=role))
    page.goto("/login/")
    page.get_by_label("User name").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/$"))
    return user


def settled(**filters):
    def check():
        qs = SyncRecord.objects.filter(**filters)
        return qs.exists() and not qs.exclude(status__in=TERMINAL).exists()

    return check


@pytest.fixture
def contacts(transactional_db, partner):
    integration = make_integration(slug="acme-contacts", partner_url=partner.url, spec=SPEC, retry_policy=FAST_RETRIES)
    MappingVersion.objects.filter(integration=integration).update(note="status codes from the shop")
    return integration


def test_support_finds_a_failed_record_fixes_the_payload_and_sees_it_delivered(
    browser_page, contacts, partner, workers
):
    from playwright.sync_api import expect

    page = browser_page
    post_webhook(Client(), contacts, contact(1, status="awaiting-pickup"))
    post_webhook(Client(), contacts, contact(2, status="completed"))
    workers.start()
    wait_until(settled(integration=contacts), what="both records to settle")

    log_in(page, "support")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    shot(page, "01-dashboard")

    # Find it by source id from the search box in the top bar ("/" focuses it).
    page.keyboard.press("/")
    page.keyboard.type("c-1")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/records/\?source_id=c-1"))
    expect(page.locator("#record-results tbody tr")).to_have_count(1)
    shot(page, "02-record-search")
    page.get_by_role("link", name="c-1", exact=True).click()

    # Read why it failed.
    why = page.locator("#why")
    expect(why).to_contain_text("unmapped value 'awaiting-pickup'")
    expect(page.locator("#record-status")).to_have_text("In review")
    shot(page, "03-record-in-review")

    # Preview a resend: nothing is sent.
    page.get_by_role("link", name="Preview resend").click()
    expect(page.locator("#preview-card")).to_contain_text("nothing was sent or saved")
    shot(page, "03b-record-preview")
    assert partner.stats()["accepted"] == 1

    # Fix the payload and resend.
    page.get_by_text("Edit the payload and resend").click()
    payload = page.get_by_label("Payload (JSON)")
    payload.fill(payload.input_value().replace('"awaiting-pickup"', '"pending"'))
    page.get_by_label("Why this edit (required)").fill("Shop sent a status the CRM does not know; confirmed 'pending'")
    page.get_by_role("button", name="Save and resend").click()
    expect(page.get_by_text("Payload saved (the original is kept)")).to_be_visible()

    # The page follows the record until it settles, then shows it delivered.
    expect(page.locator("#record-status")).to_have_text("Delivered", timeout=30_000)
    expect(page.get_by_role("heading", name="As first received")).to_be_visible()
    expect(page.locator("table.timeline tbody tr")).to_have_count(2)
    expect(page.locator("table.timeline")).to_contain_text("support.person")
    shot(page, "04-record-delivered")

    delivered = {r["external_id"]: r for r in partner.records()["contacts"]}
    assert delivered["c-1"]["status"] == "open"
    assert partner.stats()["records_per_external_id"]["c-1"] == 1
    assert ReviewItem.objects.get(record__source_id="c-1").status == "resolved"


def test_support_clears_a_review_group_in_one_action_with_a_live_progress_bar(
    browser_page, contacts, partner, workers, monkeypatch
):
    from playwright.sync_api import expect

    page = browser_page
    post_webhook(Client(), contacts, {"records": [contact(n, status="awaiting-pickup") for n in range(1, 7)]})
    post_webhook(Client(), contacts, contact(50, email="not-an-email"))
    workers.start()
    wait_until(settled(integration=contacts), what="records to reach review")
    assert ReviewItem.objects.filter(status="open").count() == 7

    # An engineer publishes the fix (the mapping editor is its own page); support resends the group.
    fixed = {
        **SPEC,
        "fields": [
            *SPEC["fields"][:-1],
            {
                **SPEC["fields"][-1],
                "value_map": {"completed": "fulfilled", "pending": "open", "awaiting-pickup": "open"},
            },
        ],
    }
    MappingVersion.objects.filter(integration=contacts, status="published").update(status="retired")
    MappingVersion.objects.create(
        integration=contacts, number=2, status="published", spec=fixed, note="map awaiting-pickup"
    )
    # Make even this small group go through the job path, to see the progress bar.
    monkeypatch.setattr(review_service, "INLINE_LIMIT", 3)

    log_in(page, "support")
    page.get_by_role("link", name="Review queue").click()
    group = page.get_by_role("row").filter(has_text="unmapped value 'awaiting-pickup' for status × 6")
    expect(group).to_be_visible()
    shot(page, "05-review-queue")

    group.get_by_role("button", name="Resend all").click()
    page.wait_for_url(re.compile(r"/review/jobs/\d+/"))
    expect(page.get_by_role("progressbar")).to_be_visible()
    expect(page.locator("#job-state")).to_have_text(re.compile("done — 6 changed"), timeout=30_000)
    shot(page, "06-bulk-job-progress")

    wait_until(settled(integration=contacts), what="the group to be delivered")
    page.get_by_role("link", name="Back to the review queue").click()
    expect(page.get_by_text("unmapped value 'awaiting-pickup'")).to_have_count(0)
    expect(page.get_by_role("heading", name="Review queue")).to_be_visible()
    shot(page, "07-review-queue-after")
    assert ReviewItem.objects.filter(status="open").count() == 1  # the bad e-mail is still there
    assert SyncRecord.objects.filter(status="delivered").count() == 6
    assert all(n == 1 for n in partner.stats()["records_per_external_id"].values())

    # Group by mapping version: the bad publish shows as one group.
    page.goto("/review/?group_by=version")
    shot(page, "08-review-by-version")
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto("/")
    shot(page, "09-dashboard-laptop")
