"""Tables other than the churn demo, end to end: a multiclass string target with real missing
values, and scikit-learn's bundled diabetes regression set. Each is trained by the real flow
into a real MLflow registry, then served by the serving runtime (the code behind the BentoML
service, in-process) and batch-scored, and both must answer exactly what the registered model
predicts in-process."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from helpers import write_frame

from prefect_mlops.config import TrainingConfig

pytestmark = pytest.mark.usefixtures("prefect_api")


def plans_table(n: int = 900, seed: int = 4) -> pd.DataFrame:
    """Three plans (strings) driven by usage and region, with missing values in numeric and
    text columns."""
    rng = np.random.default_rng(seed)
    usage = rng.gamma(2.0, 20.0, n)
    devices = rng.integers(1, 6, n).astype(float)
    region = rng.choice(["north", "south", "east"], n)
    score = usage / 20 + devices / 2 + (region == "east") * 1.5 + rng.normal(0, 0.8, n)
    plan = np.select([score < 2.5, score < 4.0], ["basic", "plus"], "premium")
    frame = pd.DataFrame(
        {
            "account": [f"a{i:05d}" for i in range(n)],
            "usage_gb": usage.round(2),
            "devices": devices,
            "region": region.astype(object),
            "plan": plan,
        }
    )
    frame.loc[rng.random(n) < 0.08, "usage_gb"] = np.nan
    frame.loc[rng.random(n) < 0.05, "region"] = None
    frame.loc[rng.random(n) < 0.05, "devices"] = np.nan
    return frame


def diabetes_table() -> pd.DataFrame:
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True).frame
    frame.insert(0, "patient", [f"p{i:04d}" for i in range(len(frame))])
    return frame


@dataclass
class Case:
    name: str
    frame: pd.DataFrame
    csv: Path
    target: str
    id_column: str
    model: Any  # the registered champion, loaded in-process

    @property
    def home(self) -> Path:
        """The MLOPS_HOME the case was trained in."""
        return self.csv.parent / "mlops"

    @property
    def features(self) -> pd.DataFrame:
        return self.frame[list(self.model.feature_names_in_)]


def _use_home(mp: pytest.MonkeyPatch, home: Path) -> None:
    mp.setenv("MLOPS_HOME", str(home))
    for key in ("MLOPS_TRACKING_URI", "MLOPS_REGISTRY_URI", "MLOPS_SNAPSHOT_DIR"):
        mp.delenv(key, raising=False)


@pytest.fixture(scope="module")
def trained_cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    """Both models trained once per module into their own registry; MLOPS_HOME points there
    only while training (``cases`` sets it again for each test that uses them)."""
    import mlflow

    from prefect_mlops.flows.training import continuous_training

    root = tmp_path_factory.mktemp("other-tables")
    specs = {
        "plans": (plans_table(), "plan", "account", "HistGradientBoostingClassifier"),
        "diabetes": (diabetes_table(), "target", "patient", "HistGradientBoostingRegressor"),
    }
    with pytest.MonkeyPatch.context() as mp:
        _use_home(mp, root / "mlops")
        out: dict[str, Case] = {}
        for name, (frame, target, id_column, estimator) in specs.items():
            csv = write_frame(frame, root / f"{name}.csv")
            config = TrainingConfig.model_validate(
                {
                    "model_name": name,
                    "data": {"path": str(csv)},
                    "target": target,
                    "id_column": id_column,
                    "estimator": {
                        "class_path": f"sklearn.ensemble.{estimator}",
                        "params": {"max_iter": 40},
                    },
                }
            )
            outcome = continuous_training(config)
            assert outcome.status == "blessed" and outcome.version == "1"
            model = mlflow.sklearn.load_model(f"models:/{name}/1")
            out[name] = Case(name, pd.read_csv(csv), csv, target, id_column, model)
    return out


@pytest.fixture
def cases(trained_cases: dict[str, Case], monkeypatch: pytest.MonkeyPatch) -> dict[str, Case]:
    """The trained models, with MLOPS_HOME pointing at their registry for this test only."""
    _use_home(monkeypatch, next(iter(trained_cases.values())).home)
    return trained_cases


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
