"""Serving core without a server: request parsing against a real MLflow signature, routing,
micro-batching, hot swap and the serving-log writer."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from prefect_mlops.errors import MLOpsError, ModelLoadError, RequestValidationError
from prefect_mlops.registry import Rollout
from prefect_mlops.registry.tracking import quiet_mlflow_hints
from prefect_mlops.serving.log import (
    COLUMNS,
    RequestRecord,
    ServingLogWriter,
    read_serving_log,
)
from prefect_mlops.serving.runtime import (
    InputSchema,
    LoadedModel,
    MicroBatcher,
    Prediction,
    ServingRuntime,
    choose_variant,
    token_ok,
)
from prefect_mlops.settings import Settings

ROW = {"tenure": 3, "charges": 70.5, "contract": "one-year", "calls": 2}


@pytest.fixture(scope="module")
def schema() -> InputSchema:
    from mlflow.models import infer_signature

    frame = pd.DataFrame(
        {
            "tenure": [1.0, 2.0, 3.0],
            "charges": [10.0, np.nan, 30.5],
            "contract": ["one-year", "two-year", "one-year"],
            "calls": np.array([1, 2, 3], dtype="int64"),
        }
    )
    with quiet_mlflow_hints():  # the integer column is on purpose
        signature = infer_signature(frame, np.array([0, 1, 0]))
    return InputSchema.from_signature(signature)


def _error(schema: InputSchema, payload: Any, max_rows: int = 100) -> RequestValidationError:
    with pytest.raises(RequestValidationError) as info:
        if isinstance(payload, bytes):
            schema.parse_body(payload, max_rows)
        else:
            schema.parse(payload, max_rows)
    assert isinstance(info.value, MLOpsError)
    return info.value


def test_signature_columns(schema: InputSchema) -> None:
    kinds = {c.name: (c.type, c.required) for c in schema.columns}
    assert kinds == {
        "tenure": ("double", True),
        "charges": ("double", False),
        "contract": ("string", True),
        "calls": ("long", True),
    }


def test_records_columns_and_bare_list_parse_alike(schema: InputSchema) -> None:
    rows = [ROW, {**ROW, "charges": None, "extra": "ignored"}]
    a = schema.parse({"records": rows}, 100)
    b = schema.parse(rows, 100)
    c = schema.parse({"columns": {k: [r.get(k) for r in rows] for k in ROW}}, 100)
    d = schema.parse_body(json.dumps({"records": rows}).encode(), 100)
    for frame in (b, c, d):
        pd.testing.assert_frame_equal(a, frame)
    assert list(a.columns) == ["tenure", "charges", "contract", "calls"]
    assert a["tenure"].dtype == "float64"  # an integer for a double column is fine
    assert np.isnan(a.loc[1, "charges"])  # null = missing value
    assert a["calls"].dtype == "int64"


def test_optional_field_may_be_absent(schema: InputSchema) -> None:
    frame = schema.parse([{k: v for k, v in ROW.items() if k != "charges"}], 10)
    assert np.isnan(frame.loc[0, "charges"])


@pytest.mark.parametrize(
    ("payload", "field", "problem"),
    [
        ([{**ROW, "tenure": "3"}], "records[0].tenure", "expected a number"),
        ([ROW, {**ROW, "contract": 5}], "records[1].contract", "expected a string"),
        ([ROW, {k: v for k, v in ROW.items() if k != "tenure"}], "records[1].tenure", "missing"),
        ([{**ROW, "contract": None}], "records[0].contract", "null is not allowed"),
        ([{**ROW, "calls": 2.5}], "records[0].calls", "expected an integer"),
        ([{**ROW, "tenure": True}], "records[0].tenure", "expected a number"),
        ([ROW, 7], "records[1]", "expected an object"),
        ({"records": []}, "records", "empty"),
        ([], "records", "empty"),
        ({"columns": {}}, "columns", "empty"),
        ({"records": {"a": 1}}, "records", "expected a list"),
        ({"columns": {"tenure": [1, 2], "charges": [1]}}, "columns.charges", "has 1 values"),
        ({"columns": {"tenure": [1], "charges": [1], "calls": [1]}}, "columns.contract", "missing"),
        ({"rows": []}, "body", "'records'"),
        ("text", "body", "got a string"),
    ],
)
def test_bad_requests_name_the_field(
    schema: InputSchema, payload: Any, field: str, problem: str
) -> None:
    err = _error(schema, payload)
    assert err.field == field
    assert problem in err.problem
    assert err.status == 422
    assert field in str(err) and err.to_dict()["field"] == field


def test_unparseable_body_and_oversized_batch(schema: InputSchema) -> None:
    err = _error(schema, b'{"records": [')
    assert (err.field, err.status) == ("body", 400)
    assert "malformed JSON" in err.problem
    assert _error(schema, b"  ").status == 400
    big = _error(schema, [ROW] * 11, max_rows=10)
    assert (big.field, big.status) == ("records", 413)
    assert "limit of 10" in big.problem


def test_canary_share_is_deterministic_and_close_to_the_share() -> None:
    canary = Rollout("canary", "2", 0.3, "t", "me", "test")
    ids = [f"req-{i}" for i in range(4000)]
    picks = [choose_variant(i, canary) for i in ids]
    share = picks.count("challenger") / len(ids)
    assert 0.27 < share < 0.33
    assert picks == [choose_variant(i, canary) for i in ids]  # reproducible per request id
    shadow = Rollout("shadow", "2", 0.0, "t", "me", "test")
    assert {choose_variant(i, shadow) for i in ids} == {"champion"}
    assert {choose_variant(i, None) for i in ids} == {"champion"}


def test_token_check() -> None:
    assert token_ok(None, None)
    assert token_ok("Bearer s3cret", "s3cret")
    assert not token_ok(None, "s3cret")
    assert not token_ok("Bearer wrong", "s3cret")
    assert not token_ok("Basic s3cret", "s3cret")


# ------------------------------------------------------------------------------------------
# micro-batching and hot swap with a fake model
# ------------------------------------------------------------------------------------------


class _Doubler:
    """predict = 2 * tenure; records each call's size."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        self.calls.append(len(frame))
        if (frame["tenure"] < 0).any():
            raise ValueError("negative tenure")
        return frame["tenure"].to_numpy() * 2


def _loaded(schema: InputSchema, version: str, model: Any) -> LoadedModel:
    return LoadedModel("m", version, model, schema, {}, {"mlops.x": "y"}, None, "src")


def _predict(m: LoadedModel, frame: pd.DataFrame) -> Prediction:
    return Prediction(m.model.predict(frame).tolist(), None, None)


def test_micro_batcher_merges_and_isolates_failures(schema: InputSchema) -> None:
    model = _Doubler()
    loaded = _loaded(schema, "1", model)
    batcher = MicroBatcher(predict=_predict)

    async def run() -> list[Any]:
        frames = [schema.parse([{**ROW, "tenure": t}], 10) for t in range(20)]
        frames[5] = schema.parse([{**ROW, "tenure": -1}], 10)  # valid, but predict fails
        return await asyncio.gather(
            *(batcher.submit(loaded, f) for f in frames), return_exceptions=True
        )

    results = asyncio.run(run())
    batcher.close()
    assert isinstance(results[5], ValueError)
    for t, r in enumerate(results):
        if t != 5:
            assert r.predictions == [2 * t]
    assert max(model.calls) > 1  # requests were merged into one predict call


def _settings(tmp_path: Path, **kw: Any) -> Settings:
    return Settings(
        home=tmp_path / "home",
        serve_model_name="m",
        serve_reload_seconds=0,
        serving_log_dir=tmp_path / "log",
        **kw,
    )


def test_runtime_hot_swap_and_registry_outage(
    schema: InputSchema, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect_mlops import registry

    champion = {"version": "1"}
    outage = {"on": False}

    class _MV:
        def __init__(self, v: str) -> None:
            self.version = v

    def alias(client: Any, name: str, alias: str) -> Any:
        if outage["on"]:
            raise ConnectionError("registry unreachable")
        return _MV(champion["version"])

    monkeypatch.setattr(registry, "get_alias_version", alias)
    monkeypatch.setattr(registry, "get_rollout", lambda c, n: None)
    monkeypatch.setattr(registry, "configure_mlflow", lambda s: None)
    models = {"1": _Doubler(), "2": _Doubler()}
    runtime = ServingRuntime(
        _settings(tmp_path),
        client=object(),
        loader=lambda c, n, v: _loaded(schema, v, models[v]),
    )
    runtime.batcher._predict = _predict
    runtime.start()
    body = json.dumps([ROW]).encode()

    async def ask() -> Any:
        return await runtime.predict(body)

    first = asyncio.run(ask())
    assert (first.status, first.body["model_version"]) == (200, "1")
    champion["version"] = "2"
    assert runtime.reload() is True
    assert asyncio.run(ask()).body["model_version"] == "2"
    outage["on"] = True
    with pytest.raises(ModelLoadError, match="registry unreachable"):
        runtime.reload()
    reply = asyncio.run(ask())  # still serving the loaded model
    assert (reply.status, reply.body["model_version"]) == (200, "2")
    meta = runtime.metadata()
    assert meta["reload"]["failures"] == 1 and "unreachable" in meta["reload"]["last_error"]
    bad = asyncio.run(runtime.predict(b'{"records": [{"tenure": "x"}]}'))
    assert bad.status == 422 and bad.body["field"] == "records[0].tenure"
    runtime.close()
    log = read_serving_log(tmp_path / "log")
    assert list(log["status"]) == ["ok", "ok", "ok", "422"]
    assert list(log["model_version"]) == ["1", "2", "2", "2"]


def test_contract_models_describe_the_replies(
    schema: InputSchema, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/docs.json documents the answers with these models: every key the runtime answers
    with must be there."""
    from prefect_mlops import registry
    from prefect_mlops.serving.runtime import (
        ErrorResponse,
        PredictResponse,
        ReloadResponse,
        predict_body_schema,
    )

    class _MV:
        version = "1"

    monkeypatch.setattr(registry, "get_alias_version", lambda c, n, a: _MV())
    monkeypatch.setattr(registry, "get_rollout", lambda c, n: None)
    monkeypatch.setattr(registry, "configure_mlflow", lambda s: None)
    runtime = ServingRuntime(
        _settings(tmp_path), client=object(), loader=lambda c, n, v: _loaded(schema, v, _Doubler())
    )
    runtime.batcher._predict = _predict
    runtime.start()
    try:
        ok = asyncio.run(runtime.predict(json.dumps([ROW]).encode()))
        bad = asyncio.run(runtime.predict(b'{"records": [{"tenure": "x"}]}'))
        reload = runtime.reload_summary(runtime.reload())
    finally:
        runtime.close()
    assert set(ok.body) == set(PredictResponse.model_fields)
    assert PredictResponse.model_validate(ok.body).predictions == [6]
    assert set(bad.body) == set(ErrorResponse.model_fields)
    assert ErrorResponse.model_validate(bad.body).field == "records[0].tenure"
    assert set(reload) == set(ReloadResponse.model_fields)
    assert ReloadResponse.model_validate(reload).changed is False
    records, columns, bare = predict_body_schema()["anyOf"]
    assert (records["required"], columns["required"], bare["type"]) == (
        ["records"],
        ["columns"],
        "array",
    )


def test_challenger_that_cannot_load_leaves_the_champion_serving(
    schema: InputSchema,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from prefect_mlops import registry

    class _MV:
        version = "1"

    canary = Rollout("canary", "2", 1.0, "t", "me", "test")  # every request to the challenger
    monkeypatch.setattr(registry, "get_alias_version", lambda c, n, a: _MV())
    monkeypatch.setattr(registry, "get_rollout", lambda c, n: canary)
    monkeypatch.setattr(registry, "configure_mlflow", lambda s: None)
    broken = {"2"}

    def loader(client: Any, name: str, version: str) -> LoadedModel:
        if version in broken:
            raise ModelLoadError(f"cannot load models:/m/{version}: BadZipFile: not a zip file")
        return _loaded(schema, version, _Doubler())

    runtime = ServingRuntime(_settings(tmp_path), client=object(), loader=loader)
    runtime.batcher._predict = _predict
    with caplog.at_level("ERROR", logger="prefect_mlops.serving.runtime"):
        state = runtime.start()  # the champion starts although the challenger cannot load
    assert (state.champion.version, state.challenger) == ("1", None)
    assert "models:/m/2" in caplog.text and "champion answers every request" in caplog.text
    meta = runtime.metadata()
    assert meta["challenger"] is None and "models:/m/2" in meta["challenger_error"]
    reply = asyncio.run(runtime.predict(json.dumps([ROW]).encode()))
    assert (reply.status, reply.body["variant"], reply.body["model_version"]) == (
        200,
        "champion",
        "1",
    )
    caplog.clear()
    with caplog.at_level("ERROR", logger="prefect_mlops.serving.runtime"):
        assert runtime.reload() is False  # still broken: nothing to swap, nothing re-logged
    assert not caplog.records
    broken.clear()
    assert runtime.reload() is True  # repaired: the canary starts
    reply = asyncio.run(runtime.predict(json.dumps([ROW]).encode()))
    assert (reply.body["variant"], reply.body["model_version"]) == ("challenger", "2")
    assert runtime.metadata()["challenger_error"] is None
    runtime.close()


# ------------------------------------------------------------------------------------------
# serving log
# ------------------------------------------------------------------------------------------


def _record(rid: str, n: int, status: str = "ok") -> RequestRecord:
    frame = pd.DataFrame({"tenure": [float(i) for i in range(n)], "contract": ["a"] * n})
    frame.loc[0, "tenure"] = np.nan
    return RequestRecord(
        rid,
        datetime.now(UTC),
        "m",
        "3",
        "champion",
        4.5,
        status,
        features=frame,
        predictions=list(range(n)),
        probabilities=[[0.25, 0.75]] * n,
    )


def test_writer_partitions_parquet_and_survives_a_new_writer(tmp_path: Path) -> None:
    directory = tmp_path / "serving_log"
    writer = ServingLogWriter(directory, flush_rows=3, flush_seconds=0.2)
    writer.log([_record("a", 2), _record("b", 3)])
    writer.log([RequestRecord("c", datetime.now(UTC), "m", "3", "champion", 1.0, "422", "bad")])
    writer.close()
    files = list(directory.glob("date=*/part-*.parquet"))
    assert files and all(f.parent.name.startswith("date=20") for f in files)
    assert not list(directory.rglob("*.tmp"))

    again = ServingLogWriter(directory)  # a restarted server appends, never overwrites
    again.log([_record("d", 1)])
    again.close()
    log = read_serving_log(directory)
    assert list(log.columns) == list(COLUMNS)
    assert len(log) == 2 + 3 + 1 + 1
    assert list(log["request_id"]) == ["a", "a", "b", "b", "b", "c", "d"]
    assert list(log["row_index"]) == [0, 1, 0, 1, 2, 0, 0]
    assert str(log["timestamp"].dt.tz) == "UTC"
    first = log.iloc[0]
    assert json.loads(first["features"]) == {"tenure": None, "contract": "a"}
    assert json.loads(first["prediction"]) == 0
    assert json.loads(first["probabilities"]) == [0.25, 0.75]
    refused = log[log["request_id"] == "c"].iloc[0]
    assert (refused["status"], refused["error"]) == ("422", "bad")
    assert refused["features"] is None and refused["prediction"] is None


def test_writer_appends_to_a_sql_table(tmp_path: Path) -> None:
    from sqlalchemy import create_engine

    url = f"sqlite:///{tmp_path / 'log.db'}"
    writer = ServingLogWriter(tmp_path / "pq", url)
    writer.log([_record("a", 2)])
    writer.flush()
    writer.log([_record("b", 1)])
    writer.close()
    table = pd.read_sql(
        "SELECT * FROM serving_log ORDER BY request_id, row_index", create_engine(url)
    )
    assert list(table.columns) == list(COLUMNS)
    assert list(table["request_id"]) == ["a", "a", "b"]
    assert writer.stats.sql_rows == 3 and writer.stats.failures == 0


def test_failing_sink_never_raises(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the log folder should be")
    writer = ServingLogWriter(blocker / "log", "sqlite:////nonexistent/dir/log.db")
    writer.log([_record("a", 2)])  # must not raise
    writer.close()
    assert writer.stats.failures == 2
    assert writer.stats.written_rows == 0
    assert "sql" in (writer.stats.last_error or "")
