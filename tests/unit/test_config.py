"""TrainingConfig: YAML loading, field-named errors, the config hash, DataSource.describe."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from prefect_mlops.config import DataSource, TrainingConfig
from prefect_mlops.errors import ConfigError


def _raw(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "model_name": "cfg-test",
        "data": {"path": "data/table.csv", "timestamp_column": "ts"},
        "target": "label",
    }
    raw.update(overrides)
    return raw


def _write(path: Path, raw: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw))
    return path


# --- from_yaml --------------------------------------------------------------------------------


def test_relative_data_path_resolves_against_the_yaml_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_path = _write(tmp_path / "project" / "conf" / "train.yaml", _raw())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the working directory must not matter
    config = TrainingConfig.from_yaml(config_path)
    assert Path(config.data.path) == tmp_path / "project" / "conf" / "data" / "table.csv"
    assert Path(config.data.path).is_absolute()


def test_parent_relative_data_path_is_normalised(tmp_path: Path) -> None:
    config_path = _write(tmp_path / "conf" / "train.yaml", _raw(data={"path": "../t.parquet"}))
    assert TrainingConfig.from_yaml(config_path).data.path == str(tmp_path / "t.parquet")


@pytest.mark.parametrize("path", ["/abs/table.csv", "s3://bucket/table.parquet"])
def test_absolute_and_uri_data_paths_are_kept(tmp_path: Path, path: str) -> None:
    config_path = _write(tmp_path / "train.yaml", _raw(data={"path": path}))
    assert TrainingConfig.from_yaml(config_path).data.path == path


def test_yaml_round_trip_gives_an_equal_config(tmp_path: Path) -> None:
    original = TrainingConfig.model_validate(
        _raw(
            data={"path": str(tmp_path / "t.csv"), "timestamp_column": "ts"},
            estimator={
                "class_path": "sklearn.ensemble.HistGradientBoostingClassifier",
                "params": {"max_iter": 10},
                "search": {"space": {"max_depth": [3, None]}, "n_iter": 2},
            },
            thresholds=[{"metric": "roc_auc", "min_value": 0.7}],
        )
    )
    path = _write(tmp_path / "train.yaml", original.model_dump(mode="json"))
    loaded = TrainingConfig.from_yaml(path)
    assert loaded == original
    assert loaded.config_hash() == original.config_hash()


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"absent\.yaml") as info:
        TrainingConfig.from_yaml(tmp_path / "absent.yaml")
    assert "does not exist" in str(info.value)


def test_invalid_yaml_is_named(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("model_name: x\ndata: {path: [unclosed\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml") as info:
        TrainingConfig.from_yaml(path)
    assert "not valid YAML" in str(info.value)


@pytest.mark.parametrize(
    ("content", "kind"), [("- a\n- b\n", "list"), ("just a string\n", "str"), ("", "NoneType")]
)
def test_yaml_that_is_not_a_mapping_is_named(tmp_path: Path, content: str, kind: str) -> None:
    path = tmp_path / "odd.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=r"odd\.yaml") as info:
        TrainingConfig.from_yaml(path)
    assert f"got {kind}" in str(info.value)


def test_invalid_field_in_a_file_names_file_and_field(tmp_path: Path) -> None:
    path = _write(tmp_path / "train.yaml", _raw(split={"test_size": 1.5}))
    with pytest.raises(ConfigError) as info:
        TrainingConfig.from_yaml(path)
    message = str(info.value)
    assert str(path) in message
    assert "field split.test_size" in message
    assert "1.5" in message


@pytest.mark.parametrize("kind", ["directory", "binary"])
def test_unreadable_config_path_is_a_config_error(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "train.yaml"
    if kind == "directory":
        path.mkdir()
    else:
        path.write_bytes(b"\xff\xfe\x00model_name: \x81\x82")
    with pytest.raises(ConfigError, match=r"train\.yaml"):
        TrainingConfig.from_yaml(path)


# --- field-named validation errors ------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field", "detail"),
    [
        ({"split": {"test_size": 1.5}}, "split.test_size", "less than 1"),
        ({"split": {"validation_size": -0.1}}, "split.validation_size", "greater than or equal"),
        ({"split": {"test_size": 0.6, "validation_size": 0.5}}, "split", "must be below 1"),
        ({"split": {"method": "shuffle"}}, "split.method", "'random' or 'time'"),
        (
            {"data": {"path": "t.csv", "sql_url": "sqlite:///x.db", "query": "select 1"}},
            "data",
            "exactly one of `path` or `sql_url`",
        ),
        ({"data": {}}, "data", "exactly one of `path` or `sql_url`"),
        ({"data": {"sql_url": "sqlite:///x.db"}}, "data", "`query` is required"),
        ({"data": {"path": "t.csv", "since": "2024-01-01"}}, "data", "need `timestamp_column`"),
        (
            {"thresholds": [{"metric": "roc_auc", "min_value": 0.5}, {"metric": "auc"}]},
            "thresholds.1",
            "unknown metric 'auc'",
        ),
        ({"learning_rate": 0.1}, "learning_rate", "Extra inputs are not permitted"),
        ({"estimator": {"kind": "forest"}}, "estimator.kind", "Extra inputs are not permitted"),
        ({"estimator": {"search": {"space": {}, "cv": 1}}}, "estimator.search.cv", "greater"),
        ({"validation": {"null_tolerance": 2}}, "validation.null_tolerance", "less than or"),
        ({"task": "clustering"}, "task", "'auto', 'classification' or 'regression'"),
        ({"model_name": ""}, "model_name", "at least 1 character"),
        ({"target": "label", "features": ["a", "label"]}, "(root)", "also listed in `features`"),
        ({"id_column": "label"}, "(root)", "`id_column` cannot be the target"),
    ],
)
def test_each_invalid_field_is_named_by_its_dotted_path(
    overrides: dict[str, Any], field: str, detail: str
) -> None:
    with pytest.raises(ConfigError) as info:
        TrainingConfig.from_mapping(_raw(**overrides), source="my.yaml")
    message = str(info.value)
    assert message.startswith("my.yaml: invalid configuration")
    assert f"field {field}:" in message
    assert detail in message


def test_every_bad_field_is_reported_at_once() -> None:
    raw = _raw(split={"test_size": 0}, learning_rate=1, task="clustering")
    del raw["target"]
    with pytest.raises(ConfigError) as info:
        TrainingConfig.from_mapping(raw)
    message = str(info.value)
    for field in ("split.test_size", "learning_rate", "task", "target"):
        assert f"field {field}:" in message
    assert message.count("\n  field ") == 4


def test_valid_mapping_gets_the_documented_defaults() -> None:
    config = TrainingConfig.from_mapping(_raw())
    assert config.task == "auto"
    assert config.split.method == "random" and config.split.seed == 42
    assert config.validation.reference == "champion"
    assert config.promote is True
    assert config.resolved_experiment_name == "cfg-test"
    assert TrainingConfig.from_mapping(_raw(experiment_name="exp")).resolved_experiment_name == (
        "exp"
    )


# --- config_hash --------------------------------------------------------------------------------


def test_config_hash_is_stable_for_equal_configs() -> None:
    a = TrainingConfig.model_validate(_raw(tags={"team": "risk", "env": "dev"}))
    b = TrainingConfig.model_validate(_raw(tags={"env": "dev", "team": "risk"}))  # other order
    c = TrainingConfig.model_validate_json(a.model_dump_json())
    assert a.config_hash() == b.config_hash() == c.config_hash()
    assert len(a.config_hash()) == 64
    int(a.config_hash(), 16)  # hexadecimal SHA-256


@pytest.mark.parametrize(
    "change",
    [
        {"target": "other"},
        {"split": {"seed": 43}},
        {"estimator": {"params": {"max_iter": 10}}},
        {"thresholds": [{"metric": "roc_auc", "min_value": 0.8}]},
        {"tags": {"team": "risk"}},
        {"promote": False},
    ],
)
def test_config_hash_changes_with_any_field(change: dict[str, Any]) -> None:
    base = TrainingConfig.model_validate(_raw())
    changed = TrainingConfig.model_validate(_raw(**change))
    assert changed.config_hash() != base.config_hash()


# --- DataSource.describe --------------------------------------------------------------------------


def test_describe_hides_the_sql_password(monkeypatch: pytest.MonkeyPatch) -> None:
    # A password never sits in sql_url (refused, see tests/unit/test_secrets.py): the whole
    # URL comes from an environment variable, and describe() masks it.
    monkeypatch.setenv(
        "WAREHOUSE_URL", "postgresql://analyst:s3cr3t-pw@db.example.com:5432/warehouse"
    )
    source = DataSource(sql_url_env="WAREHOUSE_URL", query="select * from churn")
    described = source.describe()
    assert "s3cr3t-pw" not in described
    assert "analyst" in described and "db.example.com" in described
    assert "***" in described
    assert described.endswith(":: select * from churn")


def test_describe_of_a_file_is_its_path() -> None:
    assert DataSource(path="/data/churn.csv").describe() == "/data/churn.csv"


# --- settings: locations for a process started elsewhere ---------------------------------------


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("sqlite:///rel/m.db", "sqlite:///{cwd}/rel/m.db"),
        ("sqlite:////abs/m.db", "sqlite:////abs/m.db"),
        ("sqlite:///rel.db?timeout=20", "sqlite:///{cwd}/rel.db?timeout=20"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("file:mlruns", "file://{cwd}/mlruns"),
        ("./mlruns", "{cwd}/mlruns"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("postgresql://mlflow@127.0.0.1/mlflow", "postgresql://mlflow@127.0.0.1/mlflow"),
        ("databricks", "databricks"),
    ],
)
def test_absolute_uri_resolves_only_relative_local_paths(
    uri: str, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect_mlops.settings import absolute_uri

    monkeypatch.chdir(tmp_path)
    assert absolute_uri(uri) == expected.format(cwd=tmp_path.resolve())


def test_location_env_is_absolute_and_read_back_elsewhere_gives_the_same_locations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect_mlops.settings import Settings

    for key in ("MLOPS_TRACKING_URI", "MLOPS_REGISTRY_URI", "MLOPS_SNAPSHOT_DIR"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)
    here = Settings(home=Path(".mlops"), serving_log_dir=Path("logs"))
    env = here.location_env()
    assert env["MLOPS_HOME"] == str(tmp_path.resolve() / ".mlops")
    assert env["MLOPS_TRACKING_URI"] == f"sqlite:///{tmp_path.resolve()}/.mlops/mlflow.db"
    assert env["MLOPS_SERVING_LOG_DIR"] == str(tmp_path.resolve() / "logs")
    # A process in another folder, given these variables, finds the same places.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    there = Settings()
    assert there.location_env() == env
    assert there.resolved_registry_uri == here.resolved_registry_uri
