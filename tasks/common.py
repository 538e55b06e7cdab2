"""Shared task options: which failures are worth a retry."""

from __future__ import annotations

from typing import Any

from prefect_mlops.errors import MLOpsError


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry unless the failure is one of ours (bad data or config never fixes itself)."""
    try:
        state.result()
    except MLOpsError:
        return False
    except Exception:  # any other failure (I/O, database, network) may be transient
        return True
    return False
