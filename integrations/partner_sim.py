"""A fake partner: a real HTTP server that behaves like a REST JSON destination, with faults on tap.

It stores what it accepts (in memory), honours ``Idempotency-Key``, and misbehaves on request —
by start-up flags (``manage.py fake_partner``) and at run time through ``POST /_control`` — with
latency, 5xx answers, late answers (after the client's read timeout, the record already stored),
lost answers (record stored, connection dropped without a word), 429 bursts with ``Retry-After``,
409 on a repeated external id and 400 for named fields. ``GET /_stats`` tells a test what really
happened at the partner. See docs/destinations.md for every knob.

Used two ways: in-process from tests (``with PartnerSim(seed=1) as sim: sim.url``), and as a
process (``manage.py fake_partner --port 8765``).

Data endpoints (any collection name, ``contacts`` is only an example):

- ``POST /<collection>``: create → 201 ``{"id": ..., **body}``;
- ``PATCH|PUT /<collection>/<id>``: update (merge / replace) → 200 with the record, 404 when unknown;
- ``GET /<collection>?external_id=X``: lookup → 200 ``{"results": [...], "count": n}`` (any field
  can be a filter); ``GET /<collection>/<id>`` → the record or 404; ``DELETE`` → 204.

Idempotency (when on): the same key with the same method, path and body replays the stored answer
(the original 201, header ``Idempotent-Replayed: true``) and creates nothing; the same key with other
data answers 422 ``{"error": "idempotency_key_mismatch"}``. Only 2xx answers are stored under a key,
so a request refused for its data can be fixed and sent again with the same key.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import random
import socket
import sys
import threading
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field, fields
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from integrations.engine import exactjson

WRITE_METHODS = frozenset({"POST", "PATCH", "PUT"})
LOG_BODY_BYTES = 2048
MAX_BODY_BYTES = 8 * 1024 * 1024


@dataclass
class Knobs:
    """Everything a test or an operator can turn. ``POST /_control`` takes the same names."""

    latency_ms: float = 0.0  # added to every data request
    fail_rate: float = 0.0  # share of data requests answered ``fail_status`` (nothing stored)
    fail_status: int = 503
    lost_rate: float = 0.0  # share whose record is stored, then the connection dropped unanswered
    timeout_rate: float = 0.0  # share whose record is stored, then answered after ``timeout_seconds``
    timeout_seconds: float = 35.0  # past the default 30 s read timeout
    rate_limit_burst: int = 0  # the next N data requests are answered 429 (re-armed by each /_control)
    rate_limit_every: int = 0  # and again after every N further data requests (0: only once)
    retry_after: float = 2.0  # seconds, sent in Retry-After with a 429
    retry_after_form: str = "seconds"  # or "date": an HTTP-date retry_after seconds ahead
    fail_next: int = 0  # the next N writes (POST/PATCH/PUT) fail with fail_status
    lost_next: int = 0  # the next N writes are stored, then the connection is dropped
    timeout_next: int = 0  # the next N writes are stored, then answered late
    reject_fields: dict[str, str] = field(default_factory=dict)  # field -> "invalid" | "always"
    reject_status: int = 400
    conflict_on_duplicate: bool = True  # 409 when a create repeats a stored external id
    idempotency: bool = True  # honour Idempotency-Key
    auth: str = "none"  # none | bearer | basic
    token: str = ""  # the bearer token, or the basic-auth password
    username: str = ""  # the basic-auth user name
    external_id_field: str = "external_id"
    # Canned answers for the next data requests, in order: {"status", "body", "headers"}.
    responses: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_KNOB_TYPES: dict[str, type | tuple[type, ...]] = {
    "latency_ms": (int, float),
    "fail_rate": (int, float),
    "fail_status": int,
    "lost_rate": (int, float),
    "timeout_rate": (int, float),
    "timeout_seconds": (int, float),
    "rate_limit_burst": int,
    "rate_limit_every": int,
    "retry_after": (int, float),
    "retry_after_form": str,
    "fail_next": int,
    "lost_next": int,
    "timeout_next": int,
    "reject_fields": dict,
    "reject_status": int,
    "conflict_on_duplicate": bool,
    "idempotency": bool,
    "auth": str,
    "token": str,
    "username": str,
    "external_id_field": str,
    "responses": list,
}
assert set(_KNOB_TYPES) == {f.name for f in fields(Knobs)}


def parse_reject_fields(values: list[str] | dict[str, str] | None) -> dict[str, str]:
    """``["email", "phone:always"]`` → ``{"email": "invalid", "phone": "always"}``."""
    if values is None:
        return {}
    if isinstance(values, dict):
        pairs = list(values.items())
    else:
        pairs = [(v.split(":", 1)[0], v.split(":", 1)[1] if ":" in v else "invalid") for v in values]
    out: dict[str, str] = {}
    for name, mode in pairs:
        if mode not in ("invalid", "always"):
            raise ValueError(f"reject mode for {name!r} must be invalid or always, not {mode!r}")
        out[name] = mode
    return out


def validate_knobs(changes: dict[str, Any]) -> dict[str, Any]:
    """Checked knob changes; raises ValueError naming the bad one."""
    if not isinstance(changes, dict):
        raise ValueError("control body must be a JSON object")
    out: dict[str, Any] = {}
    for name, value in changes.items():
        raw: object = value
        if name == "reject_field":  # the CLI spelling, as a list or one name
            out["reject_fields"] = parse_reject_fields([value] if isinstance(value, str) else value)
            continue
        expected = _KNOB_TYPES.get(name)
        if expected is None:
            raise ValueError(f"unknown knob {name!r}; known: {', '.join(sorted(_KNOB_TYPES))}")
        if isinstance(value, bool) and expected is not bool:
            raise ValueError(f"{name} must be a number, not {value!r}")
        if not isinstance(raw, expected):
            raise ValueError(f"{name} has the wrong type: {value!r}")
        if isinstance(value, int | float) and value < 0:
            raise ValueError(f"{name} must not be negative")
        if name.endswith("_rate") and not 0 <= value <= 1:
            raise ValueError(f"{name} must be between 0 and 1")
        if name == "retry_after_form" and value not in ("seconds", "date"):
            raise ValueError("retry_after_form must be seconds or date")
        if name == "auth" and value not in ("none", "bearer", "basic"):
            raise ValueError("auth must be none, bearer or basic")
        if name == "reject_fields":
            value = parse_reject_fields(value)
        if name == "responses":
            for item in value:
                if not isinstance(item, dict) or not isinstance(item.get("status"), int):
                    raise ValueError("each canned response needs an integer status")
        out[name] = value
    return out


@dataclass
class _Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def _json_answer(status: int, payload: Any, headers: dict[str, str] | None = None) -> _Answer:
    # exactjson: "49.00" stays 49.00 and 64-bit ids stay exact, as a careful partner would keep them.
    return _Answer(status, exactjson.dumps(payload).encode(), dict(headers or {}))


@dataclass
class _Stored:
    fingerprint: str
    answer: _Answer


@dataclass
class _Plan:
    """What the simulator decided to do with one data request, before doing it."""

    canned: _Answer | None = None
    refuse: _Answer | None = None
    latency: float = 0.0
    fault: str | None = None  # "lost" | "timeout"


class PartnerState:
    """Records, idempotency keys, counters and the request log, all behind one lock.

    The lock is held only for in-memory work (never while sleeping or writing to a socket), so a
    create and its key are stored together: two tries with the same key can never both create.
    """

    def __init__(self, knobs: Knobs, seed: int | None, log_limit: int) -> None:
        self.lock = threading.Lock()
        self.initial = Knobs(**json.loads(json.dumps(knobs.to_dict())))
        self.seed = seed
        self.log_limit = log_limit
        self._reset_locked()

    def _reset_locked(self) -> None:
        self.knobs = Knobs(**json.loads(json.dumps(self.initial.to_dict())))
        self.rng = random.Random(self.seed)
        self.records: dict[str, dict[str, dict[str, Any]]] = {}
        self.by_external: dict[tuple[str, str], list[str]] = {}
        self.keys: dict[str, _Stored] = {}
        self.counts: Counter[str] = Counter()
        self.log: deque[dict[str, Any]] = deque(maxlen=self.log_limit)
        self.seq = 0
        self.next_id = 0
        self.burst_left = self.knobs.rate_limit_burst
        self.since_burst = 0

    def reset(self) -> None:
        with self.lock:
            self._reset_locked()

    def configure(self, changes: dict[str, Any]) -> dict[str, Any]:
        checked = validate_knobs(changes)
        with self.lock:
            for name, value in checked.items():
                setattr(self.knobs, name, value)
            if "rate_limit_burst" in checked:
                self.burst_left = self.knobs.rate_limit_burst
                self.since_burst = 0
            return self.knobs.to_dict()

    # --- per request ----------------------------------------------------------------------------

    def begin(self, method: str, path: str, headers: Any, body: bytes) -> dict[str, Any]:
        with self.lock:
            self.seq += 1
            self.counts["requests"] += 1
            entry: dict[str, Any] = {
                "seq": self.seq,
                "at": time.time(),
                "method": method,
                "path": path,
                "idempotency_key": headers.get("Idempotency-Key"),
                # What arrived, for tests to check; credentials shown by scheme only.
                "headers": {
                    name: (value.split(" ", 1)[0] + " ***" if name.lower() == "authorization" else value)
                    for name, value in headers.items()
                },
                "external_id": None,
                "body_sha256": hashlib.sha256(body).hexdigest() if body else None,
                "body": body[:LOG_BODY_BYTES].decode("utf-8", errors="replace"),
                "status": None,
                "outcome": None,
                "fault": None,
            }
            self.log.append(entry)
            return entry

    def plan(self, method: str, headers: Any) -> _Plan:
        with self.lock:
            k = self.knobs
            plan = _Plan(latency=k.latency_ms / 1000.0)
            if k.responses:
                spec = k.responses.pop(0)
                body = spec.get("body", "")
                raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                plan.canned = _Answer(
                    int(spec["status"]), raw, {str(a): str(b) for a, b in spec.get("headers", {}).items()}
                )
                self.counts["canned"] += 1
                return plan
            if not self._authorised(headers.get("Authorization")):
                self.counts["unauthorized"] += 1
                plan.refuse = _json_answer(
                    401, {"error": "unauthorized", "message": "invalid credentials"}, {"WWW-Authenticate": "Bearer"}
                )
                return plan
            if k.rate_limit_every and self.burst_left == 0:
                self.since_burst += 1
                if self.since_burst > k.rate_limit_every:
                    self.burst_left = k.rate_limit_burst
                    self.since_burst = 0
            if self.burst_left > 0:
                self.burst_left -= 1
                self.counts["rate_limited"] += 1
                plan.refuse = _json_answer(
                    429, {"error": "rate_limited", "message": "slow down"}, {"Retry-After": self._retry_after()}
                )
                return plan
            write = method in WRITE_METHODS
            if (write and k.fail_next > 0) or (k.fail_rate and self.rng.random() < k.fail_rate):
                if write and k.fail_next > 0:
                    k.fail_next -= 1
                self.counts["injected_failures"] += 1
                plan.refuse = _json_answer(k.fail_status, {"error": "server_error", "message": "injected failure"})
                return plan
            if (write and k.lost_next > 0) or (k.lost_rate and self.rng.random() < k.lost_rate):
                if write and k.lost_next > 0:
                    k.lost_next -= 1
                plan.fault = "lost"
            elif (write and k.timeout_next > 0) or (k.timeout_rate and self.rng.random() < k.timeout_rate):
                if write and k.timeout_next > 0:
                    k.timeout_next -= 1
                plan.fault = "timeout"
            return plan

    def _authorised(self, header: str | None) -> bool:
        k = self.knobs
        if k.auth == "bearer":
            return header == f"Bearer {k.token}"
        if k.auth == "basic":
            expected = base64.b64encode(f"{k.username}:{k.token}".encode()).decode()
            return header == f"Basic {expected}"
        return True

    def _retry_after(self) -> str:
        k = self.knobs
        if k.retry_after_form == "date":
            return formatdate(time.time() + k.retry_after, usegmt=True)
        return str(int(k.retry_after)) if float(k.retry_after).is_integer() else str(k.retry_after)

    def handle(
        self, method: str, path: str, query: str, key: str | None, body: bytes, entry: dict[str, Any]
    ) -> _Answer:
        """The partner's real work for one data request; returns its answer."""
        parts = [unquote(p) for p in path.strip("/").split("/") if p]
        if not parts or len(parts) > 2:
            return _json_answer(404, {"error": "not_found", "message": f"no route for {path}"})
        collection = parts[0]
        record_id = parts[1] if len(parts) == 2 else None
        if method == "GET":
            with self.lock:
                return self._read(collection, record_id, query, entry)
        if method == "DELETE" and record_id is not None:
            with self.lock:
                return self._delete(collection, record_id, entry)
        if method not in WRITE_METHODS or (method == "POST") != (record_id is None):
            return _json_answer(405, {"error": "method_not_allowed", "message": f"{method} {path} is not supported"})
        try:
            data = exactjson.loads(body) if body else None
        except (ValueError, UnicodeDecodeError) as exc:
            return _json_answer(400, {"error": "invalid_json", "message": f"body is not JSON: {exc}"})
        if not isinstance(data, dict):
            return _json_answer(400, {"error": "invalid_body", "message": "body must be a JSON object"})
        fingerprint = hashlib.sha256(f"{method} {path}\n".encode() + body).hexdigest()
        with self.lock:
            external = data.get(self.knobs.external_id_field)
            entry["external_id"] = None if external is None else str(external)
            use_key = bool(key) and self.knobs.idempotency
            if use_key and key is not None:
                stored = self.keys.get(key)
                if stored is not None:
                    if stored.fingerprint == fingerprint:
                        self.counts["idempotent_replays"] += 1
                        entry["outcome"] = "replayed"
                        return _Answer(
                            stored.answer.status,
                            stored.answer.body,
                            {**stored.answer.headers, "Idempotent-Replayed": "true"},
                        )
                    self.counts["idempotency_mismatches"] += 1
                    entry["outcome"] = "idempotency_mismatch"
                    return _json_answer(
                        422,
                        {
                            "error": "idempotency_key_mismatch",
                            "message": "this Idempotency-Key was already used with a different request",
                        },
                    )
            problem = self._rejected_field(data)
            if problem:
                self.counts["rejected"] += 1
                entry["outcome"] = "rejected"
                return _json_answer(
                    self.knobs.reject_status,
                    {"error": "validation_failed", "message": f"{problem} is invalid", "field": problem},
                )
            if record_id is None:
                answer = self._create(collection, data, entry)
            else:
                answer = self._update(method, collection, record_id, data, entry)
            if use_key and key is not None and 200 <= answer.status < 300:
                self.keys[key] = _Stored(fingerprint, answer)
            return answer

    def _rejected_field(self, data: dict[str, Any]) -> str | None:
        for name, mode in self.knobs.reject_fields.items():
            if name not in data:
                continue
            if mode == "always" or _looks_invalid(name, data[name]):
                return name
        return None

    def _create(self, collection: str, data: dict[str, Any], entry: dict[str, Any]) -> _Answer:
        external = entry["external_id"]
        existing = self.by_external.get((collection, external), []) if external is not None else []
        if existing and self.knobs.conflict_on_duplicate:
            self.counts["duplicates_refused"] += 1
            entry["outcome"] = "duplicate_refused"
            return _json_answer(
                409,
                {
                    "error": "duplicate",
                    "message": f"a record with {self.knobs.external_id_field} {external} already exists",
                    "existing_id": existing[0],
                },
            )
        self.next_id += 1
        record_id = f"{collection[:3]}_{self.next_id:06d}"
        record = {"id": record_id, **{k: v for k, v in data.items() if k != "id"}}
        self.records.setdefault(collection, {})[record_id] = record
        if external is not None:
            self.by_external.setdefault((collection, external), []).append(record_id)
        self.counts["accepted"] += 1
        entry["outcome"] = "created"
        return _json_answer(201, record, {"Location": f"/{collection}/{record_id}"})

    def _update(
        self, method: str, collection: str, record_id: str, data: dict[str, Any], entry: dict[str, Any]
    ) -> _Answer:
        record = self.records.get(collection, {}).get(record_id)
        if record is None:
            entry["outcome"] = "not_found"
            return _json_answer(404, {"error": "not_found", "message": f"no {collection} record {record_id}"})
        field_name = self.knobs.external_id_field
        before = record.get(field_name)
        fresh = {k: v for k, v in data.items() if k != "id"}
        if method == "PUT":
            record.clear()
            record["id"] = record_id
        record.update(fresh)
        after = record.get(field_name)
        if before != after:
            if before is not None:
                ids = self.by_external.get((collection, str(before)), [])
                if record_id in ids:
                    ids.remove(record_id)
            if after is not None:
                self.by_external.setdefault((collection, str(after)), []).append(record_id)
        self.counts["updates"] += 1
        entry["outcome"] = "updated"
        return _json_answer(200, record)

    def _read(self, collection: str, record_id: str | None, query: str, entry: dict[str, Any]) -> _Answer:
        rows = self.records.get(collection, {})
        if record_id is not None:
            entry["outcome"] = "read"
            record = rows.get(record_id)
            if record is None:
                return _json_answer(404, {"error": "not_found", "message": f"no {collection} record {record_id}"})
            return _json_answer(200, record)
        filters = parse_qsl(query, keep_blank_values=True)
        if len(filters) == 1 and filters[0][0] == self.knobs.external_id_field:
            # The common lookup, by index.
            ids = self.by_external.get((collection, filters[0][1]), [])
            found = [rows[i] for i in ids if i in rows]
        else:
            found = [r for r in rows.values() if all(str(r.get(k)) == v for k, v in filters)]
        self.counts["lookups"] += 1
        entry["outcome"] = "lookup"
        return _json_answer(200, {"results": found, "count": len(found)})

    def _delete(self, collection: str, record_id: str, entry: dict[str, Any]) -> _Answer:
        record = self.records.get(collection, {}).pop(record_id, None)
        if record is None:
            entry["outcome"] = "not_found"
            return _json_answer(404, {"error": "not_found", "message": f"no {collection} record {record_id}"})
        external = record.get(self.knobs.external_id_field)
        if external is not None:
            ids = self.by_external.get((collection, str(external)), [])
            if record_id in ids:
                ids.remove(record_id)
        self.counts["deletes"] += 1
        entry["outcome"] = "deleted"
        return _Answer(204)

    def stats(self, *, log: bool = True, since: int = 0) -> dict[str, Any]:
        with self.lock:
            per_external: Counter[str] = Counter()
            for (_, external), ids in self.by_external.items():
                if ids:
                    per_external[external] += len(ids)
            out: dict[str, Any] = {
                name: self.counts[name]
                for name in (
                    "requests",
                    "accepted",
                    "updates",
                    "duplicates_refused",
                    "idempotent_replays",
                    "idempotency_mismatches",
                    "rejected",
                    "lookups",
                    "deletes",
                    "injected_failures",
                    "lost_responses",
                    "late_responses",
                    "rate_limited",
                    "unauthorized",
                    "canned",
                )
            }
            out["records"] = sum(len(rows) for rows in self.records.values())
            out["records_per_external_id"] = dict(per_external)
            out["knobs"] = self.knobs.to_dict()
            if log:
                out["log"] = [dict(e) for e in self.log if e["seq"] > since]
            return out

    def records_snapshot(self, collection: str | None = None) -> dict[str, list[dict[str, Any]]]:
        with self.lock:
            names = [collection] if collection else sorted(self.records)
            return {n: [dict(r) for r in self.records.get(n, {}).values()] for n in names}

    def note(self, entry: dict[str, Any], status: int | None, fault: str | None = None) -> None:
        with self.lock:
            entry["status"] = status
            entry["fault"] = fault
            if entry["outcome"] is None:
                entry["outcome"] = {401: "unauthorized", 429: "rate_limited"}.get(status or 0, "answered")
            if fault == "lost":
                self.counts["lost_responses"] += 1
            elif fault == "timeout":
                self.counts["late_responses"] += 1


def _looks_invalid(name: str, value: Any) -> bool:
    """What ``--reject-field NAME`` refuses (mode "invalid")."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return True
    text = str(value)
    if "invalid" in text.lower():
        return True
    return "email" in name.lower() and ("@" not in text or " " in text.strip())


# --- the HTTP side ------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a pooled client reuses its connections
    server_version = "FakePartner/1.0"
    sys_version = ""
    disable_nagle_algorithm = True  # headers and body go out as two writes
    timeout = 120  # an idle keep-alive connection is closed after this long
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _read_body(self) -> bytes | None:
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        try:
            size = int(length)
        except ValueError:
            return None
        if size < 0 or size > MAX_BODY_BYTES:
            return None
        return self.rfile.read(size)

    def _send(self, answer: _Answer) -> None:
        self.send_response(answer.status)
        if answer.status != 204:
            self.send_header("Content-Type", answer.headers.get("Content-Type", "application/json"))
            self.send_header("Content-Length", str(len(answer.body)))
        for name, value in answer.headers.items():
            if name.lower() not in ("content-type", "content-length"):
                self.send_header(name, value)
        self.end_headers()
        if answer.body and answer.status != 204:
            self.wfile.write(answer.body)

    def _serve(self, method: str) -> None:
        sim = self.server.sim
        url = urlsplit(self.path)
        body = self._read_body()
        if body is None:
            self.close_connection = True
            self._send(_json_answer(413, {"error": "bad_length", "message": "missing, bad or too large body"}))
            return
        if url.path.startswith("/_"):
            self._send(sim.control(method, url.path, url.query, body))
            return
        state = sim.state
        entry = state.begin(method, url.path, self.headers, body)
        plan = state.plan(method, self.headers)
        if plan.latency:
            sim.stopping.wait(plan.latency)
        if plan.canned is not None or plan.refuse is not None:
            answer = plan.canned or plan.refuse
            assert answer is not None
            state.note(entry, answer.status)
            self._send(answer)
            return
        answer = state.handle(method, url.path, url.query, self.headers.get("Idempotency-Key"), body, entry)
        if plan.fault == "lost":
            # Stored, then gone: close without a byte, as a partner that crashed after its commit.
            state.note(entry, None, "lost")
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        if plan.fault == "timeout":
            state.note(entry, answer.status, "timeout")
            self.close_connection = True
            # Wait past the client's read timeout (or until the simulator stops), then answer anyway.
            if sim.stopping.wait(sim.state.knobs.timeout_seconds):
                return
            self._send(answer)
            return
        state.note(entry, answer.status)
        self._send(answer)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], sim: PartnerSim) -> None:
        self.sim = sim
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up (it timed out, or we dropped it on purpose) is business as usual.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class PartnerSim:
    """The simulator: ``start()`` on a port (0 picks a free one), ``url``, ``stop()``.

    ``configure(**knobs)``, ``reset()``, ``stats()`` and ``records()`` do in-process what
    ``/_control``, ``/_reset``, ``/_stats`` and ``/_records`` do over HTTP.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int | None = None,
        log_limit: int = 10_000,
        **knobs: Any,
    ) -> None:
        self.host = host
        self.port = port
        initial = Knobs()
        for name, value in validate_knobs(knobs).items():
            setattr(initial, name, value)
        self.state = PartnerState(initial, seed, log_limit)
        self.stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- life cycle -----------------------------------------------------------------------------

    def bind(self) -> _Server:
        if self._server is None:
            self.stopping.clear()
            self._server = _Server((self.host, self.port), self)
            self.port = self._server.server_address[1]
        return self._server

    def start(self) -> PartnerSim:
        """Serve in a background thread; returns at once, ready for requests."""
        server = self.bind()
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.name = f"fake-partner-{self.port}"
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until ``stop()`` (from elsewhere) or KeyboardInterrupt."""
        try:
            self.bind().serve_forever(poll_interval=0.2)
        finally:
            self._close()

    def stop(self) -> None:
        self.stopping.set()
        server = self._server
        if server is None:
            return
        if self._thread is not None:
            server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._close()

    def _close(self) -> None:
        server = self._server
        if server is None:
            return
        self.stopping.set()
        # Keep-alive connections have their own threads: end them, or they serve on after stop.
        with server.sockets_lock:
            open_sockets = list(server.open_sockets)
        for sock in open_sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        server.server_close()
        self._server = None

    def __enter__(self) -> PartnerSim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # --- in-process control ---------------------------------------------------------------------

    def configure(self, **knobs: Any) -> dict[str, Any]:
        return self.state.configure(knobs)

    def reset(self) -> None:
        self.state.reset()

    def stats(self, *, log: bool = True, since: int = 0) -> dict[str, Any]:
        return self.state.stats(log=log, since=since)

    def records(self, collection: str | None = None) -> dict[str, list[dict[str, Any]]]:
        return self.state.records_snapshot(collection)

    def control(self, method: str, path: str, query: str, body: bytes) -> _Answer:
        """The ``/_...`` endpoints. No faults and no auth apply to them."""
        params = dict(parse_qsl(query))
        if path == "/_stats" and method == "GET":
            return _json_answer(
                200,
                self.stats(
                    log=params.get("log", "1") not in ("0", "false", "no"),
                    since=int(params.get("since", "0") or 0),
                ),
            )
        if path == "/_control" and method == "GET":
            return _json_answer(200, {"knobs": self.state.knobs.to_dict()})
        if path == "/_control" and method == "POST":
            try:
                changes = json.loads(body) if body else {}
                if not isinstance(changes, dict):
                    raise ValueError("control body must be a JSON object")
                knobs = self.configure(**changes)
            except (ValueError, TypeError) as exc:
                return _json_answer(400, {"error": "bad_control", "message": str(exc)})
            return _json_answer(200, {"knobs": knobs})
        if path == "/_reset" and method == "POST":
            self.reset()
            return _json_answer(200, {"reset": True, "knobs": self.state.knobs.to_dict()})
        if path.startswith("/_records") and method == "GET":
            collection = path[len("/_records") :].strip("/") or None
            return _json_answer(200, self.records(collection))
        if path == "/_health" and method == "GET":
            return _json_answer(200, {"ok": True})
        return _json_answer(404, {"error": "not_found", "message": f"no control endpoint {method} {path}"})
