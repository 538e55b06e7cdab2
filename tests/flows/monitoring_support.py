"""What the monitoring tests share: a champion trained by the real training flow (MLflow on
SQLite under a temporary ``MLOPS_HOME``) and traffic it scored, written to the serving log by
the serving log's own writer.

A plain module (not a conftest): ``tests/flows`` tests import it by name, tests elsewhere put
this folder on ``sys.path`` first.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from helpers import churn_config, write_frame

from prefect_mlops.data.demo import CATEGORICAL_FEATURES, NUMERIC_FEATURES, generate_churn

#: The demo churn table's features (what the trained model scores).
FEATURES = [*NUMERIC_FEATURES, *CATEGORICAL_FEATURES]


@dataclass
class Trained:
    """A trained champion (v1 of ``model_name``) and where its state lives."""

    model_name: str
    home: Path
    log_dir: Path
    model: Any
    csv: Path


@contextmanager
def trained_champion(root: Path, model_name: str, rows: int = 4000) -> Iterator[Trained]:
    """v1 of ``model_name`` trained by the real training flow on ``rows`` demo rows, with
    ``MLOPS_HOME`` and ``MLOPS_SERVING_LOG_DIR`` under ``root`` while the context lasts
    (needs a Prefect API: the ``prefect_api`` fixture)."""
    from prefect_mlops.flows.training import continuous_training
    from prefect_mlops.registry.tracking import load_model

    with pytest.MonkeyPatch.context() as mp:
        home = root / "mlops-home"
        mp.setenv("MLOPS_HOME", str(home))
        for key in ("MLOPS_TRACKING_URI", "MLOPS_REGISTRY_URI", "MLOPS_SNAPSHOT_DIR"):
            mp.delenv(key, raising=False)
        log_dir = root / "serving_log"
        mp.setenv("MLOPS_SERVING_LOG_DIR", str(log_dir))
        csv = write_frame(generate_churn(rows, seed=3), root / "data" / "churn.csv")
        outcome = continuous_training(churn_config(csv, model_name=model_name))
        assert outcome.version == "1" and outcome.status == "blessed", outcome
        model = load_model(f"models:/{model_name}/1")
        yield Trained(model_name=model_name, home=home, log_dir=log_dir, model=model, csv=csv)


def serve(
    trained: Trained,
    frame: pd.DataFrame,
    *,
    start: datetime,
    version: str = "1",
    rows_per_request: int = 20,
    latency_ms: float = 8.0,
    logged: pd.DataFrame | None = None,
) -> list[str]:
    """Score ``frame`` with the champion in requests of ``rows_per_request`` rows, one second
    apart from ``start``, and write them with the serving log's writer; returns request ids.

    ``logged``: the features written to the log instead of the scored ones (same rows, other
    columns: what a client sent that the service passed on, or a column it left out).
    """
    from prefect_mlops.serving.log import RequestRecord, ServingLogWriter

    writer = ServingLogWriter(trained.log_dir, flush_seconds=0.1)
    ids: list[str] = []
    model = trained.model
    classes = list(model.classes_)
    written = (frame[FEATURES] if logged is None else logged).reset_index(drop=True)
    scored = frame[FEATURES].reset_index(drop=True)
    try:
        for i, begin in enumerate(range(0, len(scored), rows_per_request)):
            part = scored.iloc[begin : begin + rows_per_request]
            request_id = uuid.uuid4().hex
            ids.append(request_id)
            writer.log(
                [
                    RequestRecord(
                        request_id=request_id,
                        timestamp=start + timedelta(seconds=i),
                        model_name=trained.model_name,
                        model_version=version,
                        variant="champion",
                        latency_ms=latency_ms,
                        features=written.iloc[begin : begin + rows_per_request].reset_index(
                            drop=True
                        ),
                        predictions=model.predict(part).tolist(),
                        probabilities=model.predict_proba(part).tolist(),
                        classes=classes,
                    )
                ]
            )
        writer.flush()
    finally:
        writer.close()
    return ids


def day_slot(day: int) -> datetime:
    """Midnight UTC of a day of its own (from 2026-06-01), so scenarios never share a window
    or a serving-log day partition."""
    return datetime(2026, 6, 1, tzinfo=UTC) + timedelta(days=day)
