"""Every platform kind is registered, documented, and states what it answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from integrations.models import Integration
from integrations.sources import registry
from integrations.sources.base import StatusCodes

PLATFORM_KINDS = ["hubspot", "shopify", "standard_webhooks", "stripe", "woocommerce"]
DOCS = Path(__file__).resolve().parents[2] / "docs" / "sources.md"


def test_the_registry_holds_generic_and_the_five_platform_kinds():
    assert registry.names() == sorted(["generic", *PLATFORM_KINDS])


@pytest.mark.parametrize("name", PLATFORM_KINDS)
def test_each_platform_kind_states_its_status_codes(name):
    statuses = registry.get(name).statuses
    assert isinstance(statuses, StatusCodes)
    assert 200 <= statuses.stored < 300
    assert 200 <= statuses.duplicate < 300
    assert (statuses.bad_signature, statuses.unparseable) == (401, 400)
    assert statuses.on_failure


@pytest.mark.parametrize("name", PLATFORM_KINDS)
def test_each_platform_kind_has_a_section_in_the_docs(name):
    assert f"`{name}`" in DOCS.read_text()


def test_unknown_kind_names_the_name():
    with pytest.raises(KeyError, match="'salesforce'"):
        registry.get("salesforce")


def test_every_kind_an_integration_can_choose_is_registered_and_every_registered_kind_can_be_chosen():
    """A kind added to registry._MODULES but not to Integration.SourceKind (or the other way round)
    is either unselectable or a 500 "misconfigured" at the webhook: both lists must agree."""
    assert sorted(Integration.SourceKind.values) == registry.names()
