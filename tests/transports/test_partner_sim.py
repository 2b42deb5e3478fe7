"""The partner simulator itself, over HTTP: what tests and the pipeline rely on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from integrations.partner_sim import PartnerSim

ROOT = Path(__file__).resolve().parents[2]


def post(client: httpx.Client, url: str, body: dict, key: str | None = None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Idempotency-Key"] = key
    return client.post(url, content=json.dumps(body).encode(), headers=headers)


def test_same_key_and_body_replays_the_original_201(partner):
    with httpx.Client(base_url=partner.url) as c:
        first = post(c, "/contacts", {"external_id": "e1", "email": "a@example.com"}, key="k1")
        again = post(c, "/contacts", {"external_id": "e1", "email": "a@example.com"}, key="k1")

    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert again.headers["Idempotent-Replayed"] == "true"
    stats = partner.stats(log=False)
    assert (stats["accepted"], stats["idempotent_replays"]) == (1, 1)
    assert stats["records_per_external_id"] == {"e1": 1}


def test_same_key_and_other_body_is_refused_with_422(partner):
    with httpx.Client(base_url=partner.url) as c:
        post(c, "/contacts", {"external_id": "e1"}, key="k1")
        other = post(c, "/contacts", {"external_id": "e1", "x": 1}, key="k1")

    assert other.status_code == 422
    assert other.json()["error"] == "idempotency_key_mismatch"


def test_lookup_update_and_duplicate_refusal(partner):
    with httpx.Client(base_url=partner.url) as c:
        created = post(c, "/orders", {"external_id": "o-1", "total": "49.00"}).json()
        duplicate = post(c, "/orders", {"external_id": "o-1"})
        found = c.get("/orders", params={"external_id": "o-1"}).json()
        updated = c.patch(f"/orders/{created['id']}", json={"total": "50.00"})
        missing = c.patch("/orders/nope", json={"total": "1"})

    assert duplicate.status_code == 409
    assert duplicate.json()["existing_id"] == created["id"]
    assert found == {"results": [created], "count": 1}
    assert updated.json()["total"] == "50.00"
    assert missing.status_code == 404
    stats = partner.stats(log=False)
    assert (stats["accepted"], stats["updates"], stats["duplicates_refused"]) == (1, 1, 1)


def test_control_endpoint_changes_knobs_at_run_time_and_reset_restores_them():
    with PartnerSim(seed=3, fail_rate=0.0) as sim, httpx.Client(base_url=sim.url) as c:
        bad = c.post("/_control", json={"fail_rate": 2})
        assert bad.status_code == 400
        assert c.post("/_control", json={"no_such_knob": 1}).status_code == 400

        assert c.post("/_control", json={"fail_next": 1, "fail_status": 502}).status_code == 200
        failed = post(c, "/contacts", {"external_id": "e1"})
        ok = post(c, "/contacts", {"external_id": "e2"})
        assert (failed.status_code, ok.status_code) == (502, 201)

        c.post("/_control", json={"rate_limit_burst": 2, "retry_after": 7})
        limited = [post(c, "/contacts", {"external_id": f"r{i}"}) for i in range(3)]
        assert [r.status_code for r in limited] == [429, 429, 201]
        assert limited[0].headers["Retry-After"] == "7"

        stats = c.get("/_stats").json()
        assert stats["injected_failures"] == 1
        assert stats["rate_limited"] == 2
        assert [e["status"] for e in stats["log"]] == [502, 201, 429, 429, 201]

        assert c.post("/_reset").status_code == 200
        after = c.get("/_stats", params={"log": "0"}).json()
        assert after["requests"] == 0
        assert after["records_per_external_id"] == {}
        assert "log" not in after
        assert after["knobs"]["retry_after"] == 2.0


def test_rejected_fields_invalid_or_always():
    with PartnerSim(reject_field=["email", "phone:always"]) as sim, httpx.Client(base_url=sim.url) as c:
        good = post(c, "/contacts", {"external_id": "a", "email": "a@example.com"})
        bad_email = post(c, "/contacts", {"external_id": "b", "email": "b at example"})
        any_phone = post(c, "/contacts", {"external_id": "c", "phone": "+1 202-555-0143"})

    assert good.status_code == 201
    assert (bad_email.status_code, bad_email.json()["message"]) == (400, "email is invalid")
    assert (any_phone.status_code, any_phone.json()["message"]) == (400, "phone is invalid")


def test_without_conflicts_a_repeated_external_id_is_stored_twice():
    with PartnerSim(conflict_on_duplicate=False, idempotency=False) as sim, httpx.Client(base_url=sim.url) as c:
        post(c, "/contacts", {"external_id": "e1"}, key="k")
        post(c, "/contacts", {"external_id": "e1"}, key="k")

        assert sim.stats(log=False)["records_per_external_id"] == {"e1": 2}


def test_seeded_faults_repeat_from_run_to_run():
    def outcomes() -> list[int]:
        with PartnerSim(seed=42, fail_rate=0.5) as sim, httpx.Client(base_url=sim.url) as c:
            return [post(c, "/contacts", {"external_id": f"e{i}"}).status_code for i in range(20)]

    first = outcomes()
    assert first == outcomes()
    assert {503, 201} == set(first)


def test_fake_partner_runs_as_a_command_and_stops_cleanly_on_sigterm():
    env = {**os.environ, "SECRET_KEY": os.environ.get("SECRET_KEY", "x"), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "fake_partner",
            "--port",
            "0",
            "--seed",
            "1",
            "--reject-field",
            "email",
            "--retry-after-date",
            "--rate-limit-burst",
            "1",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("fake_partner listening on http://127.0.0.1:"), line + proc.stderr.read()
        url = line.split()[-1]
        with httpx.Client(base_url=url) as c:
            limited = post(c, "/contacts", {"external_id": "x", "email": "x@example.com"})
            rejected = post(c, "/contacts", {"external_id": "x", "email": "nope"})
            created = post(c, "/contacts", {"external_id": "x", "email": "x@example.com"})
            stats = c.get("/_stats").json()
        assert limited.status_code == 429
        assert limited.headers["Retry-After"].endswith(" GMT")
        assert (rejected.status_code, created.status_code) == (400, 201)
        assert stats["accepted"] == 1
        assert stats["records_per_external_id"] == {"x": 1}
    finally:
        proc.terminate()
        code = proc.wait(timeout=10)
    assert code == 0


@pytest.mark.parametrize("flag", ["--fail-rate=2", "--reject-field=email:sometimes"])
def test_fake_partner_refuses_bad_flags(flag):
    env = {**os.environ, "SECRET_KEY": os.environ.get("SECRET_KEY", "x")}
    done = subprocess.run(
        [sys.executable, "manage.py", "fake_partner", "--port", "0", flag],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0
    assert "must be" in done.stderr


def test_numbers_are_kept_exactly_as_sent(partner):
    body = b'{"external_id": "o-2", "total": 49.00, "big": 9007199254740993}'
    with httpx.Client(base_url=partner.url) as c:
        created = c.post("/orders", content=body, headers={"Content-Type": "application/json"})

    assert b'"total":49.00' in created.content
    assert b'"big":9007199254740993' in created.content
