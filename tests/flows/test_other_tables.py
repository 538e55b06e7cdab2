"""Tables other than the churn demo, end to end: a multiclass string target with real missing
values, and scikit-learn's bundled diabetes regression set. Each is trained by the real flow
into a real MLflow registry, then served by the serving runtime (the code behind the BentoML
service, in-process) and batch-scored, and both must answer exactly what the registered model
predicts in-process."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from helpers import write_frame
from other_tables import Case

pytestmark = pytest.mark.usefixtures("prefect_api")


def _serve(case: Case, tmp_path: Path, rows: pd.DataFrame) -> dict[str, Any]:
    from prefect_mlops.serving.runtime import ServingRuntime
    from prefect_mlops.settings import Settings

    settings = Settings(
        serve_model_name=case.name, serve_reload_seconds=0, serving_log_dir=tmp_path / "log"
    )
    runtime = ServingRuntime(settings)
    runtime.start()
    try:
        body = rows.to_json(orient="records").encode()  # NaN / None → null
        reply = asyncio.run(runtime.predict(json.dumps({"records": json.loads(body)}).encode()))
    finally:
        runtime.close()
    assert reply.status == 200, reply.body
    return reply.body


def test_multiclass_with_missing_values_is_served_like_predict(
    cases: dict[str, Case], tmp_path: Path
) -> None:
    case = cases["plans"]
    rows = case.features.head(60)
    assert rows.isna().any().any()  # missing values are sent as null
    body = _serve(case, tmp_path, rows)
    assert body["predictions"] == case.model.predict(rows).tolist()
    assert body["classes"] == ["basic", "plus", "premium"]
    np.testing.assert_allclose(
        np.array(body["probabilities"]), case.model.predict_proba(rows), rtol=1e-9
    )


def test_regression_is_served_like_predict(cases: dict[str, Case], tmp_path: Path) -> None:
    case = cases["diabetes"]
    rows = case.features.head(40)
    body = _serve(case, tmp_path, rows)
    np.testing.assert_allclose(body["predictions"], case.model.predict(rows), rtol=1e-9)
    assert body["probabilities"] is None and body["classes"] is None


@pytest.mark.parametrize(
    ("name", "fmt"), [("plans", "csv"), ("plans", "parquet"), ("diabetes", "csv")]
)
def test_batch_scoring_matches_predict(
    cases: dict[str, Case], tmp_path: Path, name: str, fmt: str
) -> None:
    """Row for row what the model predicts in-process, missing text included: from CSV, and
    from Parquet, whose text columns are read dictionary-encoded."""
    from prefect_mlops.flows.scoring import run_batch_scoring
    from prefect_mlops.scoring.config import ScoringConfig

    case = cases[name]
    out = tmp_path / "out"
    path = case.csv if fmt == "csv" else write_frame(case.frame, tmp_path / f"{name}.parquet")
    config = ScoringConfig.model_validate(
        {
            "model_name": name,
            "data": {"path": str(path)},
            "output_dir": str(out),
            "id_column": case.id_column,
            "chunk_size": 250,
            "include_probabilities": True,
        }
    )
    summary = run_batch_scoring(config)
    scored = pd.concat(
        [pd.read_parquet(p) for p in sorted(out.glob("part-*.parquet"))], ignore_index=True
    )
    assert summary.rows == len(case.frame) == len(scored)
    assert scored[case.id_column].tolist() == case.frame[case.id_column].tolist()
    expected = case.model.predict(case.features)
    if name == "plans":
        assert scored["prediction"].tolist() == expected.tolist()
        proba = scored[["proba_basic", "proba_plus", "proba_premium"]].to_numpy()
        np.testing.assert_allclose(proba, case.model.predict_proba(case.features), rtol=1e-9)
    else:
        np.testing.assert_allclose(scored["prediction"].to_numpy(), expected, rtol=1e-9)
        assert not any(c.startswith("proba_") for c in scored.columns)
