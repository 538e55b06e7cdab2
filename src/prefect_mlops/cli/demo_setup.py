"""The demo's problem: the generated customer-churn table and its training config (used by the
``demo`` command, its training-only ``--quick`` form and the closed loop)."""

from __future__ import annotations

from pathlib import Path

from prefect_mlops.config import TrainingConfig

DEMO_MODEL_NAME = "churn-demo"


def demo_config(data_path: Path, model_name: str = DEMO_MODEL_NAME) -> TrainingConfig:
    """A training config for the generated churn table at ``data_path``."""
    from prefect_mlops.data.demo import DEMO_ID_COLUMN, DEMO_TARGET, DEMO_TIMESTAMP_COLUMN

    return TrainingConfig.model_validate(
        {
            "model_name": model_name,
            "data": {"path": str(data_path), "timestamp_column": DEMO_TIMESTAMP_COLUMN},
            "target": DEMO_TARGET,
            "task": "classification",
            "id_column": DEMO_ID_COLUMN,
            "split": {"method": "random", "test_size": 0.2, "validation_size": 0.1, "seed": 42},
            "estimator": {
                "class_path": "sklearn.ensemble.HistGradientBoostingClassifier",
                "params": {"max_iter": 100},
                "search": {
                    "kind": "random",
                    "space": {
                        "learning_rate": [0.03, 0.1],
                        "max_leaf_nodes": [15, 31],
                        "l2_regularization": [0.0, 1.0],
                    },
                    "n_iter": 4,
                    "cv": 3,
                },
            },
            "slices": ["contract", "region"],
            "thresholds": [
                {"metric": "roc_auc", "min_value": 0.7, "min_improvement": 0.0},
                {"metric": "log_loss", "max_value": 0.6},
            ],
            "promote": True,
        }
    )


def prepare_demo(home: Path, n_rows: int = 5000, seed: int = 0) -> tuple[TrainingConfig, Path]:
    """Write the demo table (once) and its config YAML under ``home/demo``; return both."""
    import yaml

    from prefect_mlops.data.demo import write_demo_dataset

    folder = home / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    data_path = folder / "churn.csv"
    if not data_path.exists():
        write_demo_dataset(data_path, n_rows=n_rows, seed=seed)
    config = demo_config(data_path.resolve())
    config_path = folder / "train.yaml"
    config_path.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    return config, config_path
