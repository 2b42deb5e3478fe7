"""UI test fixtures: one logged-in client per role, and a user who may only look."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from integrations.roles import VIEW_ALL
from tests.conftest import ROLES


@pytest.fixture
def viewer(db) -> User:
    """Sees everything, may do nothing: every action must be hidden and refused."""
    user = User.objects.create_user(username="viewer", password="correct horse battery 9")
    for code in VIEW_ALL:
        app_label, codename = code.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return user


@pytest.fixture
def clients(users, viewer) -> dict[str, Client]:
    out = {}
    for role in ROLES:
        client = Client()
        client.force_login(users[role])
        out[role] = client
    client = Client()
    client.force_login(viewer)
    out["viewer"] = client
    return out


# The pipeline fixtures (real worker processes, the partner simulator, a clean Redis) for the
# browser tests, which drive the real stack end to end.
from tests.pipeline.conftest import clean_redis, partner, workers  # noqa: E402, F401
