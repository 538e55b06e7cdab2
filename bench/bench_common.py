"""Shared bits of the benchmark: the training config, the timers and process memory readings."""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MODEL_NAME = "bench-churn"


def bench_config(data_path: str | Path):
    """The benchmark's TrainingConfig: the churn table, HistGradientBoosting, no search."""
    from prefect_mlops.config import TrainingConfig

    return TrainingConfig.model_validate(
        {
            "model_name": MODEL_NAME,
            "data": {"path": str(data_path), "timestamp_column": "event_ts"},
            "target": "churned",
            "task": "classification",
            "id_column": "customer_id",
            "split": {"method": "random", "test_size": 0.2, "validation_size": 0.1, "seed": 42},
            "estimator": {
                "class_path": "sklearn.ensemble.HistGradientBoostingClassifier",
                "params": {"max_iter": 50},
            },
            "slices": ["contract"],
        }
    )


def served_model_config(model_name: str, data_path: str | Path):
    """The model the serving and batch-scoring benches use: HistGradientBoosting(max_iter=100)
    on the churn table at ``data_path``, data validation off (not what they measure)."""
    from prefect_mlops.config import TrainingConfig

    return TrainingConfig.model_validate(
        {
            "model_name": model_name,
            "data": {"path": str(data_path), "timestamp_column": "event_ts"},
            "target": "churned",
            "id_column": "customer_id",
            "estimator": {
                "class_path": "sklearn.ensemble.HistGradientBoostingClassifier",
                "params": {"max_iter": 100},
            },
            "validation": {"enabled": False},
        }
    )


def rss_now_bytes() -> int:
    """The current resident set size of this process (VmRSS)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def reset_peak_rss() -> None:
    """Reset this process's peak RSS to its current RSS (Linux ``clear_refs`` 5), so the peak
    read after the pipeline is the pipeline's own, not an earlier transient peak of the imports
    or of the MLflow store's schema migrations."""
    import gc

    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")


def peak_rss_bytes() -> int:
    """The peak resident set size of this process since the last reset (VmHWM).

    ``ru_maxrss`` is recorded as well, but in one full run it stayed at the set-up's peak after
    the reset (+260 MiB at every table size), so the reported figure is VmHWM.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def ru_maxrss_bytes() -> int:
    """``getrusage(RUSAGE_SELF).ru_maxrss`` (KiB on Linux), for the record."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class Steps:
    """Wall time per named step."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


def quiet_env() -> dict[str, str]:
    """Telemetry off (PINS.md) plus one OpenMP thread for every variant."""
    from prefect_mlops.processes import TELEMETRY_OFF

    return {**TELEMETRY_OFF, "OMP_NUM_THREADS": "1"}


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment with the benchmark's settings and ``extra`` on top."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLOPS_"))}
    env.update(quiet_env())
    env.update(extra)
    return env
