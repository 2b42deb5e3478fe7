"""Compiled mapping specs, cached (a published version never changes)."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

from integrations.engine import mapping
from integrations.models import MappingVersion


@lru_cache(maxsize=256)
def _compiled(version_id: int, created_at: datetime) -> Any:
    # Keyed by id *and* creation time: SQLite can hand a deleted row's id to a new row, and a
    # cache keyed by id alone would then serve the old spec.
    version = MappingVersion.objects.only("spec").get(pk=version_id)
    return mapping.compile_spec(version.spec)


def compiled_for(version: MappingVersion) -> Any:
    """Published/retired versions are immutable, so caching them is safe; drafts are not cached."""
    if version.status == MappingVersion.Status.DRAFT:
        return mapping.compile_spec(version.spec)
    return _compiled(version.pk, version.created_at)


def published_version(integration_id: int) -> MappingVersion | None:
    return MappingVersion.objects.filter(integration_id=integration_id, status="published").first()
