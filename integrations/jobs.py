"""RQ entry points: take ids, call a service, nothing else."""

from __future__ import annotations

from integrations.services import processing, sweeper


def drain(integration_id: int) -> int:
    return processing.drain_integration(integration_id)


def sweep() -> dict[str, object]:
    return sweeper.sweep()


def run_import(batch_id: int, path: str) -> int:
    """Import an uploaded file into its batch; the file is removed afterwards."""
    import os

    from integrations.models import ImportBatch
    from integrations.services import imports

    batch = ImportBatch.objects.get(pk=batch_id)
    try:
        with open(path, "rb") as stream:
            batch = imports.run_import(batch=batch, stream=stream)
    finally:
        if os.path.exists(path):
            os.remove(path)
    return batch.accepted_rows
