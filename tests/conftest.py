"""Shared fixtures. Tests run against the real database named by DATABASE_URL (PostgreSQL in CI,
SQLite when unset) and the real Redis named by REDIS_URL (tests needing it skip when unset)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, User

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"
ROLES = ("support", "account_manager", "engineer", "admin")

requires_redis = pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="REDIS_URL is not set")
requires_postgres = pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith(("postgres", "postgresql")), reason="needs PostgreSQL"
)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # The real hasher costs ~0.3 s per user; tests make many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"corpus not found at {CORPUS}")
    return CORPUS


def make_user(role: str, username: str | None = None) -> User:
    if not Group.objects.filter(name=role).exists():
        from integrations.roles import ensure_roles

        ensure_roles()  # a transactional test before this one flushed the tables
    user = User.objects.create_user(username=username or f"{role}-user", password="correct horse battery 9")
    user.groups.add(Group.objects.get(name=role))
    if role == "admin":
        user.is_staff = True
        user.save()
    return user


@pytest.fixture
def users(db) -> dict[str, User]:
    return {role: make_user(role) for role in ROLES}


@pytest.fixture
def customer(db):
    from customers.services import customer_create

    return customer_create(acting_user=None, name="Test Shop", slug="test-shop", time_zone="Europe/Berlin")


@pytest.fixture
def integration(customer):
    from integrations.models import Integration

    return Integration.objects.create(
        customer=customer,
        name="Contacts to CRM",
        slug="test-shop-contacts",
        destination_config={
            "base_url": "http://127.0.0.1:9",
            "create_path": "/contacts",
            "update_path": "/contacts/{id}",
        },
    )


@pytest.fixture
def redis_conn() -> Iterator[object]:
    if not os.environ.get("REDIS_URL"):
        pytest.skip("REDIS_URL is not set")
    import redis

    conn = redis.Redis.from_url(settings.REDIS_URL)
    conn.flushdb()
    yield conn
    conn.flushdb()


@pytest.fixture
def redis_conn_if_set() -> Iterator[None]:
    """An empty Redis database for the test when REDIS_URL is set; nothing otherwise."""
    if os.environ.get("REDIS_URL"):
        import redis

        conn = redis.Redis.from_url(settings.REDIS_URL)
        conn.flushdb()
        yield
        conn.flushdb()
    else:
        yield
