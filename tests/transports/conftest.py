"""A real partner simulator on 127.0.0.1 for each test, and a destination config pointing at it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from integrations.partner_sim import PartnerSim
from integrations.transports import http

SECRET = "s3cr3t-token-value-4242"


@pytest.fixture
def partner() -> Iterator[PartnerSim]:
    with PartnerSim(seed=7) as sim:
        yield sim


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    c = http.make_client()
    yield c
    c.close()


@pytest.fixture
def config(partner: PartnerSim) -> dict[str, Any]:
    return {
        "base_url": partner.url,
        "create_path": "/contacts",
        "update_path": "/contacts/{id}",
        "lookup_path": "/contacts?external_id={external_id}",
        "auth": "bearer",
    }


def wait_for(condition: Callable[[], bool], *, deadline: float = 5.0) -> None:
    """Poll until ``condition()`` holds; fail after ``deadline`` seconds. Not a fixed sleep."""
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.01)
