"""Fixtures for mapping versions, the mapping commands and the configuration document."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import make_user

CONTACT_SPEC: dict[str, Any] = {
    "record": {"source_id": "id"},
    "fields": [
        {"name": "email", "source": "email", "convert": ["email"], "required": True},
        {"name": "status", "source": "state", "value_map": {"enabled": "active", "disabled": "inactive"}},
    ],
}


def spec_with(**extra_map: str) -> dict[str, Any]:
    """CONTACT_SPEC with more status-map entries (a different, valid spec)."""
    spec = {"record": dict(CONTACT_SPEC["record"]), "fields": [dict(f) for f in CONTACT_SPEC["fields"]]}
    spec["fields"][1]["value_map"] = {**CONTACT_SPEC["fields"][1]["value_map"], **extra_map}
    return spec


@pytest.fixture
def engineer(db):
    return make_user("engineer", "erin")


@pytest.fixture
def contact_spec() -> dict[str, Any]:
    return spec_with()
