"""Every URL is checked: anonymous visitors reach no data, each role reaches exactly what its
permissions allow (a matrix built from the URL patterns, so a new view without an entry fails),
and ids of objects that do not exist answer 404, never 500.

All staff roles see all customers and records (Syncdesk has no per-customer scoping: support
works every customer's queue), so object ids cannot reach anything a role may not see; what
varies by role is the action and the masking of sensitive fields (test_masking.py)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from tests.conftest import ROLES

pytestmark = pytest.mark.django_db

# URLs anyone may call: the login page, health checks, the API's OpenAPI description (no data),
# and webhooks (authenticated by signature; see test_webhooks.py).
PUBLIC = {"login", "logout", "healthz", "readyz", "api_openapi", "webhook"}

VIEW_RECORD = "integrations.view_syncrecord"
VIEW_REVIEW = "integrations.view_reviewitem"
VIEW_RULE = "integrations.view_exceptionrule"
VIEW_MAPPING = "integrations.view_mappingversion"
RESEND = "integrations.resend_syncrecord"
EDIT = "integrations.edit_payload_syncrecord"
WORK = "integrations.work_reviewitem"
ADD_RULE = "integrations.add_exceptionrule"
REVIEW_RULE = "integrations.review_exceptionrule"
CHANGE_MAPPING = "integrations.change_mappingversion"
PUBLISH = "integrations.publish_mappingversion"
ANY = "authenticated"

# url name -> {method: permissions needed}. POST bodies are minimal: an allowed role may get a
# form error (400) or a redirect, never 401/403/5xx; a refused role gets 403 and nothing changes.
MATRIX: dict[str, dict[str, tuple[str, ...]]] = {
    "home": {"GET": (VIEW_RECORD,)},
    "records": {"GET": (VIEW_RECORD,)},
    "record": {"GET": (VIEW_RECORD,)},
    "record_status": {"GET": (VIEW_RECORD,)},
    "record_preview": {"GET": (VIEW_RECORD, RESEND)},
    "record_resend": {"POST": (RESEND,)},
    "record_edit": {"POST": (EDIT,)},
    "record_resolve": {"POST": (WORK,)},
    "review": {"GET": (VIEW_REVIEW,)},
    "review_group_action": {"POST": (WORK,)},
    "review_bulk": {"POST": (WORK,)},
    "review_note": {"POST": (WORK,)},
    "review_job": {"GET": (VIEW_REVIEW,)},
    "rules:register": {"GET": (VIEW_RULE,)},
    "rules:create": {"GET": (VIEW_RULE, ADD_RULE), "POST": (VIEW_RULE, ADD_RULE)},
    "rules:detail": {"GET": (VIEW_RULE,)},
    "rules:edit": {
        "GET": (VIEW_RULE, "integrations.change_exceptionrule"),
        "POST": (VIEW_RULE, "integrations.change_exceptionrule"),
    },
    "rules:review": {"POST": (VIEW_RULE, REVIEW_RULE)},
    "rules:retire": {"POST": (VIEW_RULE, REVIEW_RULE)},
    "rules:special": {"GET": (VIEW_RULE, "customers.view_customer")},
    "rules:complexity": {"GET": (VIEW_RULE, "integrations.view_integration")},
    "mappings:index": {"GET": (VIEW_MAPPING,)},
    "mappings:detail": {"GET": (VIEW_MAPPING,)},
    "mappings:draft": {"POST": (VIEW_MAPPING, CHANGE_MAPPING)},
    "mappings:draft_text": {"POST": (VIEW_MAPPING, CHANGE_MAPPING)},
    "mappings:preview": {"GET": (VIEW_MAPPING, VIEW_RECORD)},
    "mappings:publish": {"POST": (VIEW_MAPPING, PUBLISH)},
    "mappings:discard": {"POST": (VIEW_MAPPING, CHANGE_MAPPING)},
    "mappings:versions": {"GET": (VIEW_MAPPING,)},
    "mappings:diff": {"GET": (VIEW_MAPPING,)},
    "mappings:rollback": {"POST": (VIEW_MAPPING, PUBLISH)},
    "imports": {
        "GET": ("integrations.view_importbatch",),
        "POST": ("integrations.view_importbatch", "integrations.add_importbatch"),
    },
    "import_detail": {"GET": ("integrations.view_importbatch",)},
    "backfill_start": {"POST": (RESEND,)},
    "backfill_detail": {"GET": (VIEW_RECORD,)},
    "api_me": {"GET": (ANY,)},
    "api_records": {"GET": (VIEW_RECORD,)},
    "api_records_resend": {"POST": (RESEND,)},
    "api_record": {"GET": (VIEW_RECORD,)},
    "api_record_resend": {"POST": (RESEND,)},
    "api_review_items": {"GET": (VIEW_REVIEW,)},
    "api_review_bulk": {"POST": (VIEW_REVIEW,)},
    "api_review_resolve": {"POST": (WORK,)},
    "api_review_dismiss": {"POST": (WORK,)},
    "api_review_groups": {"GET": (VIEW_REVIEW,)},
    "api_job": {"GET": (VIEW_REVIEW,)},
    "api_mapping_versions": {"GET": (VIEW_MAPPING,)},
    "api_mapping_version": {"GET": (VIEW_MAPPING,)},
}
# Path parameters that do not mean what their name says.
PARAM_OVERRIDES = {"rules:special": {"slug": "customer_slug"}}


def url_patterns() -> list[tuple[str, str]]:
    """(name with namespace, route) for every named pattern outside the admin."""
    found: list[tuple[str, str]] = []

    def walk(patterns: list[Any], prefix: str, namespace: str) -> None:
        for p in patterns:
            if isinstance(p, URLResolver):
                if p.app_name == "admin":
                    continue
                ns = f"{namespace}{p.namespace}:" if p.namespace else namespace
                walk(p.url_patterns, prefix + str(p.pattern), ns)
            elif isinstance(p, URLPattern) and p.name:
                found.append((namespace + p.name, prefix + str(p.pattern)))

    walk(get_resolver().url_patterns, "", "")
    return found


def fill(name: str, route: str, ids: dict[str, Any]) -> str:
    overrides = PARAM_OVERRIDES.get(name, {})

    def value(match: re.Match[str]) -> str:
        param = match.group(2)
        return str(ids[overrides.get(param, param)])

    return "/" + re.sub(r"<(?:(\w+):)?(\w+)>", value, route)


def test_every_url_pattern_has_a_matrix_entry_or_is_public():
    names = {name for name, _ in url_patterns()}
    missing = names - set(MATRIX) - PUBLIC
    assert not missing, f"Add these views to the access matrix in {__file__}: {sorted(missing)}"
    assert not set(MATRIX) - names, f"Matrix entries for views that no longer exist: {sorted(set(MATRIX) - names)}"


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_an_anonymous_crawl_of_every_url_reaches_no_data(world, method):
    client = Client(enforce_csrf_checks=False)
    ids = world.ids()
    for name, route in url_patterns():
        if name in PUBLIC:
            continue
        url = fill(name, route, ids)
        response = getattr(client, method.lower())(url)
        where = f"{method} {url} ({name})"
        assert response.status_code in (302, 401, 403, 404, 405), f"{where} answered {response.status_code}"
        if response.status_code == 302:
            assert response["Location"].startswith("/login/"), f"{where} redirected to {response['Location']}"
        body = response.content.decode(errors="replace")
        for secret in (world.record.source_id, world.integration.slug, "example.org"):
            if response.status_code != 404:
                assert secret not in body, f"{where} leaked {secret!r}"


def test_the_public_urls_give_away_no_data(world):
    client = Client()
    for url in ("/healthz", "/readyz", "/api/openapi.json", "/login/"):
        body = client.get(url).content.decode()
        assert world.record.source_id not in body
        assert "example.org" not in body
    assert client.get(f"/hooks/{world.integration.slug}/").status_code == 405  # GET: no such method
    unsigned = client.post(f"/hooks/{world.integration.slug}/", data=b"{}", content_type="application/json")
    assert unsigned.status_code == 401


def test_the_admin_is_only_for_staff_and_every_model_page_refuses_the_others(world, clients):
    anonymous = Client()
    for model in admin.site._registry:
        meta = model._meta
        url = f"/admin/{meta.app_label}/{meta.model_name}/"
        response = anonymous.get(url)
        assert response.status_code == 302, url
        assert "login/" in response["Location"], url
        for role in ROLES:
            response = clients[role].get(url)
            if role == "admin":
                assert response.status_code == 200, url
            else:  # not staff: sent to the admin login, which refuses them
                assert response.status_code == 302, (role, url)
                assert "/admin/login/" in response["Location"], (role, url)


def _allowed(user: Any, perms: tuple[str, ...]) -> bool:
    return all(p == ANY or user.has_perm(p) for p in perms)


CASES = [(name, method) for name, methods in MATRIX.items() for method in methods]


@pytest.mark.parametrize(("name", "method"), CASES, ids=[f"{m} {n}" for n, m in CASES])
def test_each_role_may_do_exactly_what_its_permissions_allow(world, users, clients, name, method):
    routes = dict(url_patterns())
    if name not in routes:
        pytest.skip(f"{name} is not routed in this checkout")
    url = fill(name, routes[name], world.ids())
    perms = MATRIX[name][method]
    for role in ROLES:
        user = type(users[role]).objects.get(pk=users[role].pk)
        response = clients[role].generic(method, url, data=b"", content_type="application/x-www-form-urlencoded")
        where = f"{role}: {method} {url}"
        assert response.status_code < 500, f"{where} answered {response.status_code}"
        if _allowed(user, perms):
            assert response.status_code not in (401, 403), f"{where} was refused but {role} has {perms}"
            if response.status_code == 302:
                assert not response["Location"].startswith("/login/"), where
        else:
            assert response.status_code == 403, f"{where} answered {response.status_code}; {role} lacks {perms}"


NONEXISTENT = {"record_id": 987654321, "item_id": 987654321, "job_id": 987654321, "pk": 987654321}
NONEXISTENT.update(
    {"batch_id": 987654321, "version_id": 987654321, "slug": "no-such-thing", "customer_slug": "no-such-customer"}
)


@pytest.mark.parametrize(("name", "method"), CASES, ids=[f"{m} {n}" for n, m in CASES])
def test_ids_of_objects_that_do_not_exist_answer_404_not_500(world, clients, name, method):
    routes = dict(url_patterns())
    if name not in routes or "<" not in routes[name]:
        pytest.skip("no object in the URL")
    url = fill(name, routes[name], NONEXISTENT)
    response = clients["admin"].generic(method, url, data=b"", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 404, f"{method} {url} answered {response.status_code}"


def test_webhook_for_an_unknown_integration_is_404(db):
    assert Client().post("/hooks/nope/", data=b"{}", content_type="application/json").status_code == 404
