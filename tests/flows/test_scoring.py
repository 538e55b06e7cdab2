"""Batch scoring end to end: a real Prefect API, a real MLflow registry filled by the real
training flow, the default runner and a local Dask cluster."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from helpers import churn_config, write_frame

from prefect_mlops.data.demo import generate_churn
from prefect_mlops.errors import DataIngestError, ScoringError
from prefect_mlops.scoring import runner
from prefect_mlops.scoring.chunks import ChunkTable
from prefect_mlops.scoring.config import ScoringConfig
from prefect_mlops.scoring.model import ResolvedModel, resolve_model
from prefect_mlops.scoring.summary import SUMMARY_FILE

pytestmark = pytest.mark.usefixtures("prefect_api")

MODEL = "churn-score"
ROWS = 3000


@dataclass
class Trained:
    home: Path
    data_dir: Path
    csv: Path
    parquet: Path
    frame: pd.DataFrame
    champion: Any  # the champion (v1) loaded in-process
    dummy: Any  # v2: a DummyClassifier, registered but not blessed


@pytest.fixture(scope="module")
def trained(prefect_api: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    """v1 (champion) and v2 (not blessed) of ``churn-score``, trained by the real flow."""
    import mlflow

    from prefect_mlops.flows.training import continuous_training

    root = tmp_path_factory.mktemp("scoring")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_HOME", str(root / "mlops-home"))
        for key in ("MLOPS_TRACKING_URI", "MLOPS_REGISTRY_URI", "MLOPS_SNAPSHOT_DIR"):
            mp.delenv(key, raising=False)
        frame = generate_churn(ROWS, seed=11)
        csv = write_frame(frame, root / "data" / "churn.csv")
        parquet = write_frame(frame, root / "data" / "churn.parquet")
        first = continuous_training(churn_config(csv, model_name=MODEL))
        assert first.version == "1" and first.status == "blessed"
        dummy = {"class_path": "sklearn.dummy.DummyClassifier", "params": {}}
        second = continuous_training(churn_config(csv, model_name=MODEL, estimator=dummy))
        assert second.version == "2" and second.status == "not_blessed"
        yield Trained(
            home=root / "mlops-home",
            data_dir=root / "data",
            csv=csv,
            parquet=parquet,
            frame=pd.read_csv(csv),
            champion=mlflow.sklearn.load_model(f"models:/{MODEL}/1"),
            dummy=mlflow.sklearn.load_model(f"models:/{MODEL}/2"),
        )
        if mlflow.active_run() is not None:
            mlflow.end_run()


def _config(out: Path, data: dict[str, Any], **overrides: Any) -> ScoringConfig:
    raw: dict[str, Any] = {
        "model_name": MODEL,
        "data": data,
        "output_dir": str(out),
        "id_column": "customer_id",
        "chunk_size": 700,
    }
    raw.update(overrides)
    return ScoringConfig.model_validate(raw)


def _read_output(out: Path) -> pd.DataFrame:
    parts = sorted(out.glob("part-*.parquet"))
    assert parts, f"no part files in {out}"
    return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)


def _features(model: Any) -> list[str]:
    return list(model.feature_names_in_)


def _assert_matches(out: Path, trained: Trained, model: Any, version: str) -> pd.DataFrame:
    scored = _read_output(out)
    expected = model.predict(trained.frame[_features(model)])
    assert len(scored) == len(trained.frame)
    assert scored["customer_id"].tolist() == trained.frame["customer_id"].tolist()
    assert (scored["prediction"].to_numpy() == expected).all()
    assert set(scored["model_version"]) == {version}
    assert set(scored["model_name"]) == {MODEL}
    assert scored["request_id"].is_unique
    # Part files read back as a pandas-built frame would: strings as object columns.
    assert all(scored[c].dtype == object for c in ("customer_id", "request_id", "model_name"))
    return scored


# --------------------------------------------------------------------------- flows


def test_default_runner_csv_in_chunks_matches_predict(trained: Trained, tmp_path: Path) -> None:
    from prefect_mlops.flows.scoring import run_batch_scoring

    out = tmp_path / "out"
    config = _config(
        out,
        {"path": str(trained.csv)},
        include_probabilities=True,
        keep_staging=True,
        job_id="job42",
    )
    summary = run_batch_scoring(config)
    scored = _assert_matches(out, trained, trained.champion, "1")
    # Champion by alias → v1; 3000 rows in chunks of 700 → 5 part files.
    assert summary.model_version == "1" and summary.requested == f"{MODEL}@champion"
    assert summary.rows == ROWS and summary.chunks == 5 == len(list(out.glob("part-*.parquet")))
    assert summary.max_chunk_rows <= 700 and summary.runner == "default"
    # The default runner scores in memory: nothing staged, even with keep_staging.
    assert not list(out.glob(".staging-*"))
    # Probabilities agree with the model; request ids are <job>-<chunk>-<row>.
    expected_proba = trained.champion.predict_proba(trained.frame[_features(trained.champion)])
    assert abs(scored["proba_1"].to_numpy() - expected_proba[:, 1]).max() < 1e-12
    assert scored["request_id"].iloc[0] == "job42-00000-0000000"
    assert scored["request_id"].iloc[700] == "job42-00001-0000000"
    assert scored["request_id"].iloc[-1].rsplit("-", 2) == ["job42", "00004", "0000199"]
    assert list(scored.columns[:3]) == ["customer_id", "request_id", "prediction"]
    assert (out / SUMMARY_FILE).exists()


def test_chunks_stream_through_a_bounded_window(
    trained: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One task run scores every chunk; writing starts before the input is fully read, at most
    two chunks are in flight (read, not yet written), and each chunk is predicted in
    ``parallelism`` row slices, by at most that many threads at once."""
    import threading

    from prefect_mlops.flows.scoring import run_batch_scoring

    events: list[tuple[str, int]] = []
    running: list[int] = [0, 0]  # now, most at once
    sliced: list[int] = []
    lock = threading.Lock()
    read, predict, write = runner.iter_scoring_tables, runner.predict_table, runner.write_part

    def recording_read(*args: Any, **kwargs: Any) -> Iterator[ChunkTable]:
        for chunk in read(*args, **kwargs):
            with lock:
                events.append(("read", chunk.index))
            yield chunk

    def recording_predict(estimator: Any, table: Any, *args: Any, **kwargs: Any) -> Any:
        with lock:
            running[0] += 1
            running[1] = max(running)
            sliced.append(table.num_rows)
        try:
            return predict(estimator, table, *args, **kwargs)
        finally:
            with lock:
                running[0] -= 1

    def recording_write(scored: Any, output_dir: str, index: int, started: float) -> Any:
        with lock:
            events.append(("written", index))
        return write(scored, output_dir, index, started)

    monkeypatch.setattr(runner, "iter_scoring_tables", recording_read)
    monkeypatch.setattr(runner, "predict_table", recording_predict)
    monkeypatch.setattr(runner, "write_part", recording_write)
    out = tmp_path / "out"
    summary = run_batch_scoring(_config(out, {"path": str(trained.parquet)}, chunk_size=300))
    _assert_matches(out, trained, trained.champion, "1")
    assert summary.chunks == 10 and running[1] <= 2
    assert sliced == [150] * 20  # 10 chunks of 300 rows, 2 slices each
    # Bounded memory: chunk i + 2 is read only after chunk i is written.
    for position, (kind, index) in enumerate(events):
        if kind == "read" and index >= 2:
            assert ("written", index - 2) in events[:position], events
    assert events.index(("written", 0)) < events.index(("read", 9))
    assert not list(out.glob(".staging-*"))


def test_parquet_input_with_pinned_version(trained: Trained, tmp_path: Path) -> None:
    from prefect_mlops.flows.scoring import batch_scoring

    out = tmp_path / "out"
    summary = batch_scoring(_config(out, {"path": str(trained.parquet)}, version="2"))
    _assert_matches(out, trained, trained.dummy, "2")
    assert summary.model_version == "2" and summary.requested == f"{MODEL}/2"
    assert not list(out.glob(".staging-*"))  # nothing staged
    # Per-chunk visibility in the UI: a Parquet input's row count is known, so the one
    # scoring task run keeps a progress artifact, which ends at 100 %.
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["batch-scoring-progress"]))
        )
    mine = [a for a in artifacts if str(a.flow_run_id) == summary.job_id]
    assert [a.data for a in mine] == [100.0]


def test_sql_query_input(trained: Trained, tmp_path: Path) -> None:
    from sqlalchemy import create_engine

    from prefect_mlops.flows.scoring import run_batch_scoring

    db = tmp_path / "churn.db"
    engine = create_engine(f"sqlite:///{db}")
    trained.frame.to_sql("customers", engine, index=False)
    engine.dispose()
    out = tmp_path / "out"
    data = {"sql_url": f"sqlite:///{db}", "query": "SELECT * FROM customers ORDER BY rowid"}
    summary = run_batch_scoring(_config(out, data, chunk_size=1000))
    _assert_matches(out, trained, trained.champion, "1")
    assert summary.chunks == 3


DASK_TEST_TIMEOUT = 480  # seconds; ~80 s alone, a few minutes with cold imports under load


@pytest.fixture
def hang_backstop() -> Iterator[None]:
    """Behind the test's own timeout (pytest-timeout, which fails the test and lets the suite go
    on): should the test still not have returned 2 minutes later — say its cleanup waits on a
    stuck worker — print every thread's stack and end the run, rather than hang CI."""
    import faulthandler

    faulthandler.dump_traceback_later(DASK_TEST_TIMEOUT + 120, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


# A spawned worker imports prefect_mlops afresh with this process's sys.path. When the
# repository root is on it (Prefect's flow loader puts it there), the worker imports the source
# folder prefect_mlops/, which must import like the installed package (its __init__ extends
# __path__); before that fix the worker failed with "No module named 'prefect_mlops.tasks'" and
# the flow waited forever for the chunk. The root is put first here to prove that.
@pytest.mark.timeout(DASK_TEST_TIMEOUT, method="signal")
def test_dask_local_cluster_matches_predict(
    hang_backstop: None, trained: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import multiprocessing
    import os
    import sys

    from prefect_mlops.flows.scoring import run_batch_scoring

    monkeypatch.setattr(sys, "path", [str(Path(__file__).resolve().parents[2]), *sys.path])
    out = tmp_path / "out"
    config = _config(out, {"path": str(trained.parquet)}, runner="dask", dask_workers=2)
    summary = run_batch_scoring(config)
    _assert_matches(out, trained, trained.champion, "1")
    assert summary.runner == "dask" and summary.chunks == 5
    # Every chunk ran in a worker process, not in this one.
    assert summary.worker_processes
    assert all(not w.endswith(f":{os.getpid()}") for w in summary.worker_processes)
    # The flow run closed its local cluster: no worker process outlives it.
    assert not [p for p in multiprocessing.active_children() if "Dask" in p.name]


def test_dask_runner_is_built_from_config() -> None:
    from prefect_dask import DaskTaskRunner

    from prefect_mlops.flows.scoring import dask_task_runner

    base = {"model_name": MODEL, "data": {"path": "x.csv"}, "output_dir": "out"}
    local = dask_task_runner(ScoringConfig.model_validate({**base, "runner": "dask"}))
    assert isinstance(local, DaskTaskRunner) and local.address is None
    kwargs = local.cluster_kwargs
    assert kwargs["n_workers"] == 2 and kwargs["threads_per_worker"] == 1 and kwargs["processes"]
    assert kwargs["env"]["OMP_NUM_THREADS"] == "1"
    remote = dask_task_runner(
        ScoringConfig.model_validate({**base, "runner": "dask", "dask_address": "tcp://h:8786"})
    )
    assert remote.address == "tcp://h:8786" and not remote.cluster_kwargs
    with pytest.raises(ValueError, match="runner: dask"):
        ScoringConfig.model_validate({**base, "dask_address": "tcp://h:8786"})


# --------------------------------------------------------------------------- bad input


def test_missing_feature_column_names_it_and_writes_nothing(
    trained: Trained, tmp_path: Path
) -> None:
    from prefect_mlops.flows.scoring import batch_scoring

    bad = write_frame(trained.frame.drop(columns=["monthly_charges"]), tmp_path / "bad.csv")
    out = tmp_path / "out"
    with pytest.raises(ScoringError, match="monthly_charges"):
        batch_scoring(_config(out, {"path": str(bad)}))
    assert not out.exists()


def test_unknown_model_is_named(trained: Trained, tmp_path: Path) -> None:
    from prefect_mlops.flows.scoring import batch_scoring

    out = tmp_path / "out"
    with pytest.raises(ScoringError, match="no-such-model"):
        batch_scoring(_config(out, {"path": str(trained.csv)}, model_name="no-such-model"))
    with pytest.raises(ScoringError, match="no version '99'"):
        batch_scoring(_config(out, {"path": str(trained.csv)}, version="99"))
    assert not out.exists()


def test_missing_file_is_named(trained: Trained, tmp_path: Path) -> None:
    from prefect_mlops.flows.scoring import batch_scoring

    missing = tmp_path / "nope.csv"
    out = tmp_path / "out"
    with pytest.raises(DataIngestError, match=r"nope\.csv"):
        batch_scoring(_config(out, {"path": str(missing)}))
    assert not out.exists()


def test_existing_output_needs_overwrite(trained: Trained, tmp_path: Path) -> None:
    from prefect_mlops.flows.scoring import batch_scoring

    out = tmp_path / "out"
    batch_scoring(_config(out, {"path": str(trained.parquet)}, chunk_size=2000))
    with pytest.raises(ScoringError, match="overwrite"):
        batch_scoring(_config(out, {"path": str(trained.parquet)}, chunk_size=2000))
    batch_scoring(_config(out, {"path": str(trained.parquet)}, chunk_size=5000, overwrite=True))
    assert [p.name for p in out.glob("part-*.parquet")] == ["part-00000.parquet"]


def test_cli_score_and_bad_input(trained: Trained, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from prefect_mlops.cli.app import app

    runner = CliRunner()
    out = tmp_path / "out"
    ok = runner.invoke(
        app,
        [
            "score",
            "--model",
            MODEL,
            "--data",
            str(trained.csv),
            "--output",
            str(out),
            "--chunk-size",
            "1500",
            "--id-column",
            "customer_id",
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert "3,000 rows" in ok.output or "3000 rows" in ok.output
    assert len(list(out.glob("part-*.parquet"))) == 2
    bad = runner.invoke(
        app,
        [
            "score",
            "--model",
            MODEL,
            "--data",
            str(tmp_path / "x.csv"),
            "--output",
            str(tmp_path / "o2"),
        ],
    )
    assert bad.exit_code == 1
    assert "x.csv" in bad.output and "error:" in bad.output


# --------------------------------------------------------------------------- core, with a registry


def _resolved(trained: Trained, version: str = "1") -> ResolvedModel:
    from prefect_mlops.settings import get_settings

    settings = get_settings()
    config = _config(Path("unused"), {"path": "x.csv"}, version=version)
    return resolve_model(config, settings.resolved_tracking_uri, settings.resolved_registry_uri)


@pytest.mark.parametrize("parallelism", [1, 2, 3])
def test_score_in_process_slices_match_predict(
    trained: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parallelism: int
) -> None:
    """Chunks cut in row slices and predicted by several threads give, row for row, what one
    in-process ``predict`` gives; results come in chunk order; each chunk is reported."""
    monkeypatch.setenv("MLOPS_HOME", str(trained.home))
    model = _resolved(trained)
    out = tmp_path / "out"
    config = _config(
        out,
        {"path": str(trained.parquet)},
        chunk_size=1100,
        parallelism=parallelism,
        include_probabilities=True,
    )
    reported: list[int] = []
    results, read_seconds = runner.score_in_process(
        config, model, "core", on_chunk=lambda r: reported.append(r.index)
    )
    assert [r.index for r in results] == reported == [0, 1, 2]
    assert [r.rows for r in results] == [1100, 1100, 800] and read_seconds >= 0
    scored = _assert_matches(out, trained, trained.champion, "1")
    expected = trained.champion.predict_proba(trained.frame[_features(trained.champion)])
    assert abs(scored["proba_1"].to_numpy() - expected[:, 1]).max() < 1e-12
    assert scored["request_id"].iloc[1100] == "core-00001-0000000"


def test_score_in_process_bad_input_leaves_output_untouched(
    trained: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A missing feature column fails before the old part files (overwrite on) are removed or
    anything is written; an input with no rows is named."""
    monkeypatch.setenv("MLOPS_HOME", str(trained.home))
    model = _resolved(trained)
    out = tmp_path / "out"
    out.mkdir()
    old = out / "part-00000.parquet"
    old.write_bytes(b"old")
    bad = write_frame(trained.frame.drop(columns=["age"]), tmp_path / "bad.parquet")
    config = _config(out, {"path": str(bad)}, overwrite=True)
    with pytest.raises(ScoringError, match="age"):
        runner.score_in_process(config, model, "bad")
    assert sorted(p.name for p in out.iterdir()) == ["part-00000.parquet"]
    assert old.read_bytes() == b"old"
    empty = write_frame(trained.frame.head(0), tmp_path / "empty.parquet")
    with pytest.raises(DataIngestError, match="no rows"):
        runner.score_in_process(_config(out, {"path": str(empty)}, overwrite=True), model, "e")


def test_prefect_yaml_deployment_parameters_validate() -> None:
    import yaml

    root = Path(__file__).resolve().parents[2]
    deployments = yaml.safe_load((root / "prefect.yaml").read_text())["deployments"]
    (dep,) = [d for d in deployments if d["name"] == "batch-scoring"]
    assert dep["entrypoint"] == "flows/scoring.py:batch_scoring"
    ScoringConfig.model_validate(dep["parameters"]["config"])
