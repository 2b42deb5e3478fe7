"""RQ entry points: take ids, call a service, nothing else."""

from __future__ import annotations

from integrations.services import processing, sweeper


def drain(integration_id: int) -> int:
    return processing.drain_integration(integration_id)


def sweep() -> dict[str, object]:
    return sweeper.sweep()
