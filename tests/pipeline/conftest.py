"""Pipeline fixtures: the live test database URL, real worker subprocesses, waiting with deadlines."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def live_database_url() -> str:
    """The URL of the database this test runs on, for worker subprocesses."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    host = s.get("HOST") or "127.0.0.1"
    port = s.get("PORT") or 5432
    auth = s.get("USER") or "postgres"
    if s.get("PASSWORD"):
        auth += f":{s['PASSWORD']}"
    return f"postgres://{auth}@{host}:{port}/{s['NAME']}"


def wait_until(check: Callable[[], object], *, timeout: float = 60.0, what: str = "condition") -> object:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout`` s.
    Polling a condition with a deadline, not sleeping as synchronisation."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


class Workers:
    """Real `manage.py syncworker` processes against the test database (and Redis if set)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def start(self, **extra_env: str) -> subprocess.Popen[bytes]:
        log = ROOT / "var" / f"test-worker-{len(self.procs)}-{os.getpid()}.log"
        log.parent.mkdir(exist_ok=True)
        handle = log.open("wb")
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "syncworker", "--sweep-interval", "1", "--poll-interval", "0.1"],
            cwd=ROOT,
            env={**self.env, **extra_env},
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: a kill takes anything it started
        )
        self.procs.append(proc)
        self.logs.append(log)
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

    def output(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-4000:] for p in self.logs if p.exists())


@pytest.fixture
def workers(transactional_db, request) -> Iterator[Workers]:
    env = {
        **os.environ,
        "DATABASE_URL": live_database_url(),
        "SECRET_KEY": os.environ.get("SECRET_KEY", "test"),
        "SYNCDESK_LEASE_SECONDS": "4",
        "SYNCDESK_HTTP_READ_TIMEOUT": "2",
        "SYNCDESK_HTTP_CONNECT_TIMEOUT": "2",
        "SYNCDESK_CHUNK_SIZE": "50",
    }
    pool = Workers(env)
    yield pool
    pool.stop_all()
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        print(pool.output())


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):  # type: ignore[no-untyped-def]
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def partner() -> Iterator[object]:
    from integrations.partner_sim import PartnerSim

    sim = PartnerSim(seed=7).start()
    yield sim
    sim.stop()


@pytest.fixture
def clean_redis() -> Iterator[None]:
    """Pipeline tests start with an empty queue (REDIS_URL's database is the tests' own)."""
    if os.environ.get("REDIS_URL"):
        import redis
        from django.conf import settings

        conn = redis.Redis.from_url(settings.REDIS_URL)
        conn.flushdb()
        yield
        conn.flushdb()
    else:
        yield


FAST_RETRIES = {"max_attempts": 6, "schedule": [0, 1, 1, 1, 1], "jitter": 0, "cap_seconds": 5, "hard_limit": 40}
