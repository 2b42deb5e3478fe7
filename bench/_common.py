"""Shared pieces of the stack benchmarks: a fresh PostgreSQL database, Redis db 11, processes.

Every bench script that drives the real stack calls ``setup_stack(name)`` first: it drops and
re-creates the database ``syncdesk_bench_<name>``, migrates it with ``manage.py migrate``, flushes
Redis database 11 and sets up Django in this process against them. Processes (gunicorn, workers,
fake_partner) are started with ``Procs`` on free ports and stopped at the end, whatever happens.

Environment overrides: ``BENCH_PG`` (server URL without a database name, default
``postgres://postgres@127.0.0.1:5432``) and ``BENCH_REDIS`` (default ``redis://127.0.0.1:6379/11``).
"""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
PG_SERVER = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432").rstrip("/")
REDIS_URL = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/11")

sys.path.insert(0, str(ROOT))


def machine() -> str:
    """``2 cores, AMD EPYC`` — what every figure depends on."""
    model = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg()[0]
    return f"{os.cpu_count()} cores, {model}, load average {load:.2f} at start"


def database_url(name: str) -> str:
    return f"{PG_SERVER}/{name}"


def bench_env(db_name: str, **extra: str) -> dict[str, str]:
    """The environment of every process of a bench run (and of this one)."""
    return {
        **os.environ,
        "DATABASE_URL": database_url(db_name),
        "REDIS_URL": REDIS_URL,
        "SECRET_KEY": os.environ.get("SECRET_KEY") or "bench-secret-key-not-for-production",
        "DEBUG": "false",
        "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def recreate_database(db_name: str) -> None:
    import psycopg

    with psycopg.connect(database_url("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{db_name}"')


def flush_redis() -> None:
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()


def setup_stack(name: str, **extra_env: str) -> dict[str, str]:
    """Fresh database ``syncdesk_bench_<name>`` (migrated), empty Redis db 11, Django set up here.
    Returns the environment to start processes with."""
    db_name = f"syncdesk_bench_{name}"
    env = bench_env(db_name, **extra_env)
    os.environ.update(env)
    recreate_database(db_name)
    started = time.monotonic()
    subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "--verbosity", "0"], cwd=ROOT, env=env, check=True)
    print(f"database {db_name}: created and migrated in {time.monotonic() - started:.1f} s")
    flush_redis()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], object], *, timeout: float, what: str, every: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy; raise after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):
            result = check()
            if result:
                return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Procs:
    """Subprocesses of one bench run, each in its own session (so its children go with it),
    with output in a temporary directory that is printed when something goes wrong."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.logdir = Path(tempfile.mkdtemp(prefix="syncdesk-bench-"))
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.count = 0

    def start(self, name: str, args: list[str], **extra_env: str) -> subprocess.Popen[bytes]:
        self.count += 1
        log = (self.logdir / f"{self.count:03d}-{name}.log").open("wb")
        proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env={**self.env, **extra_env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs[name] = proc
        return proc

    def gunicorn(self, *, workers: int = 2) -> str:
        port = free_port()
        self.start(
            "gunicorn",
            [
                str(Path(PYTHON).parent / "gunicorn"),
                "config.wsgi",
                "--workers",
                str(workers),
                "--bind",
                f"127.0.0.1:{port}",
                "--backlog",
                "2048",
            ],
        )
        wait_for(lambda: port_open(port), timeout=30, what="gunicorn to listen")
        return f"http://127.0.0.1:{port}"

    def partner(self, name: str = "partner", *args: str) -> str:
        port = free_port()
        self.start(name, [PYTHON, "manage.py", "fake_partner", "--port", str(port), *args])
        wait_for(lambda: port_open(port), timeout=30, what="fake_partner to listen")
        return f"http://127.0.0.1:{port}"

    def worker(self, name: str, *args: str, **extra_env: str) -> subprocess.Popen[bytes]:
        return self.start(name, [PYTHON, "manage.py", "syncworker", *args], **extra_env)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[name]
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)  # the process's own session: it and its children, nothing else
            proc.wait(timeout=30)

    def stop(self, name: str) -> None:
        proc = self.procs.get(name)
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill(name)
        # gunicorn's or a worker's stray children, if any, share the session.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)

    def tail(self, lines: int = 30) -> str:
        out = []
        for path in sorted(self.logdir.glob("*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(out)


@contextlib.contextmanager
def processes(env: dict[str, str]) -> Iterator[Procs]:
    procs = Procs(env)
    try:
        yield procs
    except BaseException:
        print(procs.tail(), file=sys.stderr)
        raise
    finally:
        procs.stop_all()


def make_integration(slug: str, partner_url: str, spec: dict[str, Any], **fields: Any) -> Any:
    """An integration of a bench customer with ``spec`` published as version 1."""
    from django.utils import timezone

    from customers.models import Customer
    from integrations.models import Integration, MappingVersion

    customer = Customer.objects.get_or_create(slug="bench", defaults={"name": "Bench customer"})[0]
    integration = Integration.objects.create(
        customer=customer,
        name=slug,
        slug=slug,
        destination_config={
            "base_url": partner_url,
            "create_path": "/contacts",
            "update_path": "/contacts/{id}",
            "lookup_path": "/contacts?external_id={external_id}",
        },
        **fields,
    )
    MappingVersion.objects.create(
        integration=integration, number=1, status="published", spec=spec, note="bench", published_at=timezone.now()
    )
    return integration


CONTACT_SPEC: dict[str, Any] = {
    "record": {"source_id": "id", "updated_at": "updated_at"},
    "fields": [
        {"name": "external_id", "source": "id", "convert": ["text"], "required": True},
        {"name": "email", "source": "email", "convert": ["email"], "on_invalid": "review"},
        {"name": "first_name", "source": "first_name", "convert": ["trim"]},
        {"name": "last_name", "source": "last_name", "convert": ["trim"]},
        {"name": "phone", "source": "phone"},
        {"name": "country", "source": "country"},
    ],
}


def contact(n: int, run: str = "") -> dict[str, Any]:
    """A contact record shaped like a webhook from a shop (about 200 bytes of JSON)."""
    return {
        "id": f"c{run}-{n}",
        "email": f"person{n}@example.com",
        "first_name": "Inès",
        "last_name": f"Varga{n}",
        "phone": f"+1 202-555-{n % 10000:04d}",
        "country": "US",
        "updated_at": "2024-01-25T10:00:00Z",
    }


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]
