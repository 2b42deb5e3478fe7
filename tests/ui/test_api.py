"""Operations API: token auth, the same permissions as the UI, filters, cursors, OpenAPI."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import resolve

from integrations.api_auth import make_token
from integrations.models import ActionLog, ReviewItem, SyncRecord
from integrations.views_api import ROUTES
from tests.ui.factories import make_records, make_world


@pytest.fixture
def world(db):
    integration, v1, v2 = make_world()
    return {
        "integration": integration,
        "v1": v1,
        "v2": v2,
        "review": make_records(integration, v1, 3),
        "delivered": make_records(integration, v2, 4, start=10, status="delivered"),
    }


def api(token: str | None = None) -> Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return Client(enforce_csrf_checks=True, headers=headers)


def body(response) -> dict:
    return json.loads(response.content)


def test_a_token_from_the_command_acts_as_its_user(users):
    out = io.StringIO()
    call_command("api_token", "support-user", stdout=out)
    token = out.getvalue().strip()
    response = api(token).get("/api/me/")
    assert response.status_code == 200
    assert body(response)["username"] == "support-user"
    assert "integrations.resend_syncrecord" in body(response)["permissions"]


def test_no_token_a_bad_token_or_a_revoked_one_is_401(users):
    assert api().get("/api/records/").status_code == 401
    assert api("nonsense").get("/api/records/").status_code == 401
    token = make_token(users["support"])
    assert api(token).get("/api/records/").status_code == 200
    users["support"].set_password("a whole new passphrase 42")
    users["support"].save()
    response = api(token).get("/api/records/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_an_expired_token_is_refused(users, monkeypatch):
    import time

    token = make_token(users["support"], days=1)
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 2 * 86400)
    assert api(token).get("/api/me/").status_code == 401


def test_record_filters_and_cursor(users, world):
    client = api(make_token(users["support"]))
    review = body(client.get("/api/records/", {"status": "review", "integration": "shop-contacts"}))
    assert {r["source_id"] for r in review["results"]} == {"c-0", "c-1", "c-2"}
    assert review["next_cursor"] is None
    one = body(client.get("/api/records/", {"source_id": "c-11"}))["results"]
    assert [r["status"] for r in one] == ["delivered"]
    assert body(client.get("/api/records/", {"destination_id": "d-12"}))["results"][0]["source_id"] == "c-12"
    seen, cursor = [], None
    while True:
        page = body(client.get("/api/records/", {"limit": 2, **({"cursor": cursor} if cursor else {})}))
        seen += [r["id"] for r in page["results"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(SyncRecord.objects.values_list("id", flat=True))
    assert client.get("/api/records/", {"cursor": "garbage"}).status_code == 400
    assert client.get("/api/records/", {"status": "nope"}).status_code == 400


def test_record_detail_has_attempts(users, world):
    record = world["review"][0]
    data = body(api(make_token(users["support"])).get(f"/api/records/{record.pk}/"))
    assert data["payload"]["status"] == "awaiting-pickup"
    assert data["attempts"][0]["outcome"] == "review"
    assert data["attempts"][0]["mapping_version"] == 1
    assert api(make_token(users["support"])).get("/api/records/999999/").status_code == 404


def test_resend_needs_the_permission_and_is_logged(users, viewer, world):
    record = world["review"][0]
    assert (
        api(make_token(viewer))
        .post(f"/api/records/{record.pk}/resend/", {}, content_type="application/json")
        .status_code
        == 403
    )
    response = api(make_token(users["support"])).post(
        f"/api/records/{record.pk}/resend/", {"version": "current", "note": "script"}, content_type="application/json"
    )
    assert response.status_code == 200
    assert body(response) == {"queued": 1}
    log = ActionLog.objects.get(record=record)
    assert (log.actor.username, log.note) == ("support-user", "script")
    bulk = api(make_token(users["support"])).post(
        "/api/records/resend/", {"ids": [r.pk for r in world["review"]]}, content_type="application/json"
    )
    assert body(bulk) == {"queued": 3}
    assert (
        api(make_token(users["support"]))
        .post("/api/records/resend/", {"ids": "x"}, content_type="application/json")
        .status_code
        == 400
    )


def test_a_session_post_needs_csrf_but_a_token_post_does_not(users, world):
    record = world["review"][0]
    session = Client(enforce_csrf_checks=True)
    session.force_login(users["support"])
    assert session.get("/api/records/").status_code == 200
    refused = session.post(f"/api/records/{record.pk}/resend/", {}, content_type="application/json")
    assert refused.status_code == 403
    assert "CSRF" in body(refused)["error"]
    token_post = api(make_token(users["support"])).post(
        f"/api/records/{record.pk}/resend/", {}, content_type="application/json"
    )
    assert token_post.status_code == 200


def test_review_items_list_resolve_dismiss(users, viewer, world):
    client = api(make_token(users["support"]))
    items = body(client.get("/api/review-items/", {"integration": "shop-contacts"}))["results"]
    assert len(items) == 3
    groups = body(client.get("/api/review-groups/"))["results"]
    assert groups[0]["label"] == "unmapped value 'awaiting-pickup' for status × 3"
    in_group = body(client.get("/api/review-items/", {"group": groups[0]["key"]}))["results"]
    assert len(in_group) == 3
    first, second = items[0]["id"], items[1]["id"]
    assert (
        api(make_token(viewer))
        .post(f"/api/review-items/{first}/resolve/", {"note": "x"}, content_type="application/json")
        .status_code
        == 403
    )
    assert client.post(f"/api/review-items/{first}/resolve/", {}, content_type="application/json").status_code == 400
    ok = client.post(f"/api/review-items/{first}/resolve/", {"note": "fixed"}, content_type="application/json")
    assert body(ok) == {"closed": 1, "status": "resolved"}
    assert (
        client.post(
            f"/api/review-items/{first}/resolve/", {"note": "again"}, content_type="application/json"
        ).status_code
        == 409
    )
    assert (
        body(client.post(f"/api/review-items/{second}/dismiss/", {}, content_type="application/json"))["status"]
        == "dismissed"
    )
    assert ReviewItem.objects.filter(status="open").count() == 1
    bulk = client.post(
        "/api/review-items/bulk/",
        {"action": "resolve", "ids": [items[2]["id"]], "note": "n"},
        content_type="application/json",
    )
    assert body(bulk) == {"changed": 1}


def test_mapping_versions_and_spec(users, world):
    client = api(make_token(users["support"]))
    versions = body(client.get("/api/integrations/shop-contacts/mappings/"))["results"]
    assert [(v["number"], v["status"]) for v in versions] == [(2, "published"), (1, "retired")]
    spec = body(client.get(f"/api/mappings/{versions[0]['id']}/"))
    assert spec["spec"]["fields"][2]["value_map"]["awaiting-pickup"] == "open"
    assert client.get("/api/integrations/nope/mappings/").status_code == 404


def test_the_openapi_document_lists_every_route_and_each_exists(db):
    doc = body(Client().get("/api/openapi.json"))
    assert doc["openapi"].startswith("3.")
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    for method, path, *_ in ROUTES:
        assert method in doc["paths"][path]
        match = resolve(path.replace("{id}", "1").replace("{slug}", "x"))
        assert method.upper() in match.func.api_methods
