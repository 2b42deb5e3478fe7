"""Compiled mapping specs, cached by version id (a published version never changes)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from integrations.engine import mapping
from integrations.models import MappingVersion


@lru_cache(maxsize=256)
def _compiled(version_id: int) -> Any:
    version = MappingVersion.objects.only("spec", "status").get(pk=version_id)
    return mapping.compile_spec(version.spec)


def compiled_for(version: MappingVersion) -> Any:
    """Published/retired versions are immutable, so caching by id is safe; drafts are not cached."""
    if version.status == MappingVersion.Status.DRAFT:
        return mapping.compile_spec(version.spec)
    return _compiled(version.pk)


def published_version(integration_id: int) -> MappingVersion | None:
    return MappingVersion.objects.filter(integration_id=integration_id, status="published").first()
