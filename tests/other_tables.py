"""Tables other than the churn demo, shared by the flow and service tests: a multiclass string
target with real missing values, and scikit-learn's bundled diabetes regression set, each
trained once per module by the real flow into its own registry (fixtures ``trained_cases`` and
``cases``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from helpers import write_frame

from prefect_mlops.config import TrainingConfig


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
