"""The serving runtime over a real MLflow SQLite registry: hot swap, a registry outage, the
answers against their documented models, a challenger that cannot load, the request id's
header and log note, and a model that fails on valid input."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from serving_cases import ROW, training_frame

from prefect_mlops import registry
from prefect_mlops.errors import ModelLoadError
from prefect_mlops.serving.contract import (
    ErrorResponse,
    PredictResponse,
    ReloadResponse,
    predict_body_schema,
)
from prefect_mlops.serving.log import read_serving_log
from prefect_mlops.serving.request_ids import REFUSED_HEADER
from prefect_mlops.serving.runtime import Reply, ServingRuntime
from prefect_mlops.settings import Settings

BODY = json.dumps([ROW]).encode()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, pipeline: Any) -> Iterator[tuple[Path, str]]:
    """One real MLflow SQLite store with the pipeline logged once: (MLOPS_HOME, model URI)."""
    from prefect_mlops.registry.tracking import log_sklearn_model, start_training_run

    home = tmp_path_factory.mktemp("serving") / "mlops-home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_HOME", str(home))
        for key in ("MLOPS_TRACKING_URI", "MLOPS_REGISTRY_URI"):
            mp.delenv(key, raising=False)
        # Each registry read opens the SQLite file afresh (the outage test swaps it).
        mp.setenv("MLFLOW_SQLALCHEMYSTORE_POOLCLASS", "NullPool")
        settings = Settings(home=home)
        registry.configure_mlflow(settings)
        client = registry.mlflow_client(settings)
        experiment = registry.ensure_experiment(
            client, "serving-test", settings.resolved_artifact_location
        )
        run_id = start_training_run(client, experiment, "unit", {})
        uri = log_sklearn_model(run_id, pipeline, training_frame())
        client.set_terminated(run_id, "FINISHED")
        yield home, uri


class Served:
    """One test's registered model (versions 1 and 2 of the pipeline, v1 champion) and the
    runtime that serves it."""

    def __init__(self, home: Path, uri: str, name: str, log_dir: Path) -> None:
        self.home, self.uri, self.name = home, uri, name
        self.log_dir = log_dir
        self.settings = Settings(
            home=home, serve_model_name=name, serve_reload_seconds=0, serving_log_dir=log_dir
        )
        self.client = registry.mlflow_client(self.settings)
        for _ in range(2):
            self.new_version(uri)
        registry.promote_version(self.client, name, "1", reason="test")
        self.runtime = ServingRuntime(self.settings)

    def new_version(self, uri: str) -> str:
        return registry.create_version(
            self.client, model_name=self.name, model_uri=uri, run_id=None, tags={},
            blessed=True, reason="serving test",
        )  # fmt: skip

    def ask(self, body: bytes = BODY, request_id: str | None = None) -> Reply:
        return asyncio.run(self.runtime.predict(body, request_id))


@pytest.fixture
def served(
    store: tuple[Path, str], tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Served]:
    home, uri = store
    name = "m-" + request.node.name.replace("[", "-").replace("]", "")[:40]
    out = Served(home, uri, name, tmp_path / "log")
    yield out
    out.runtime.close()


def test_hot_swap_and_registry_outage(served: Served) -> None:
    runtime = served.runtime
    runtime.start()
    first = served.ask()
    assert (first.status, first.body["model_version"]) == (200, "1")
    registry.promote_version(served.client, served.name, "2", reason="test: hot swap")
    assert runtime.reload() is True
    assert served.ask().body["model_version"] == "2"
    db = served.home / "mlflow.db"
    backup = served.home / "mlflow.db.bak"
    shutil.copy2(db, backup)
    try:
        db.write_bytes(b"this is not a database" * 100)
        with pytest.raises(ModelLoadError, match=served.name):
            runtime.reload()
        reply = served.ask()  # still serving the loaded model
        assert (reply.status, reply.body["model_version"]) == (200, "2")
    finally:
        shutil.copy2(backup, db)
    meta = runtime.metadata()
    assert meta["reload"]["failures"] == 1 and served.name in meta["reload"]["last_error"]
    assert meta["reload"]["swaps"] == 1
    bad = served.ask(b'{"records": [{"tenure": "x"}]}')
    assert bad.status == 422 and bad.body["field"] == "records[0].tenure"
    assert runtime.reload() is False  # the registry is back; nothing changed
    runtime.close()
    log = read_serving_log(served.log_dir)
    assert list(log["status"]) == ["ok", "ok", "ok", "422"]
    assert list(log["model_version"]) == ["1", "2", "2", "2"]


def test_contract_models_describe_the_replies(served: Served) -> None:
    """/docs.json documents the answers with these models: every key the runtime answers
    with must be there."""
    runtime = served.runtime
    runtime.start()
    ok = served.ask()
    bad = served.ask(b'{"records": [{"tenure": "x"}]}')
    reload = runtime.reload_summary(runtime.reload())
    assert set(ok.body) == set(PredictResponse.model_fields)
    assert runtime.state is not None
    champion = runtime.state.champion
    expected = champion.model.predict(champion.schema.parse_body(BODY, 10)).tolist()
    assert PredictResponse.model_validate(ok.body).predictions == expected
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


def _truncated_version(served: Served) -> tuple[str, Path, bytes]:
    """A new version registered from an intact copy of version 1's model folder, whose model file
    is then cut in half (its MLmodel metadata and signature intact; the digest recorded at
    registration is the intact file's): (the version, the model file, its original bytes)."""
    source = Path(urlparse(served.client.get_model_version_download_uri(served.name, "1")).path)
    copy = served.log_dir.parent / "corrupt-model"
    shutil.copytree(source, copy)
    (model_file,) = copy.glob("model.*")
    version = served.new_version(str(copy))
    data = model_file.read_bytes()
    model_file.write_bytes(data[: len(data) // 2])
    return version, model_file, data


def test_challenger_that_cannot_load_leaves_the_champion_serving(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    broken, model_file, original = _truncated_version(served)
    registry.start_rollout(
        served.client, served.name, mode="canary", challenger_version=broken, share=1.0,
        reason="test: every request to a challenger whose model file is truncated",
    )  # fmt: skip
    runtime = served.runtime
    with caplog.at_level("ERROR", logger="prefect_mlops.serving.runtime"):
        state = runtime.start()  # the champion starts although the challenger cannot load
    assert (state.champion.version, state.challenger) == ("1", None)
    uri = f"models:/{served.name}/{broken}"
    assert uri in caplog.text and "champion answers every request" in caplog.text
    meta = runtime.metadata()
    assert meta["challenger"] is None and uri in meta["challenger_error"]
    reply = served.ask()
    assert (reply.status, reply.body["variant"], reply.body["model_version"]) == (
        200,
        "champion",
        "1",
    )
    caplog.clear()
    with caplog.at_level("ERROR", logger="prefect_mlops.serving.runtime"):
        assert runtime.reload() is False  # still broken: nothing to swap, nothing re-logged
    assert not caplog.records
    model_file.write_bytes(original)
    assert runtime.reload() is True  # repaired: the canary starts
    reply = served.ask()
    assert (reply.body["variant"], reply.body["model_version"]) == ("challenger", broken)
    assert runtime.metadata()["challenger_error"] is None


def test_the_server_makes_the_request_id_and_keeps_the_clients_beside_it(
    served: Served,
) -> None:
    runtime = served.runtime
    runtime.start()
    kept = served.ask(request_id="order 42 / retry 1")
    server_id = kept.body["request_id"]
    assert server_id != "order 42 / retry 1" and len(server_id) == 32
    assert kept.body["client_request_id"] == "order 42 / retry 1"
    assert kept.headers == {"X-Request-ID": server_id}
    long_id = "x" * 129
    refused = served.ask(request_id=long_id)
    assert refused.status == 200 and refused.body["client_request_id"] is None
    assert refused.headers["X-Request-ID"] == refused.body["request_id"]
    assert "longer than 128 characters" in refused.headers[REFUSED_HEADER]
    bad = served.ask(b"[", request_id="caf\u00e9")
    assert bad.status == 400 and "not printable ASCII" in bad.headers[REFUSED_HEADER]
    runtime.close()
    log = read_serving_log(served.log_dir).set_index("request_id")
    assert log.loc[server_id, "client_request_id"] == "order 42 / retry 1"
    assert log.loc[server_id, "error"] is None
    note = log.loc[refused.body["request_id"], "error"]
    assert note.startswith("X-Request-ID refused: longer than 128 characters")
    assert log.loc[refused.body["request_id"], "status"] == "ok"
    error = log.loc[bad.body["request_id"], "error"]
    assert error.startswith("body: malformed JSON") and "X-Request-ID refused" in error


def test_a_client_cannot_choose_the_canary_variant(served: Served) -> None:
    """The split hashes the server's id: one X-Request-ID sent again and again (before, always
    the same variant) lands on both sides, and ids chosen from the split cannot steer it."""
    from prefect_mlops.serving.routing import request_fraction

    registry.start_rollout(
        served.client, served.name, mode="canary", challenger_version="2", share=0.5,
        reason="test: a client steering the canary",
    )  # fmt: skip
    served.runtime.start()
    same = {served.ask(request_id="always-me").body["variant"] for _ in range(40)}
    assert same == {"champion", "challenger"}
    chosen = [f"id-{i}" for i in range(2000) if request_fraction(f"id-{i}") < 0.5][:40]
    variants = [served.ask(request_id=rid).body["variant"] for rid in chosen]
    assert 5 <= variants.count("champion") <= 35  # not all challenger, as chosen


def test_a_model_that_fails_on_valid_input_answers_500_naming_no_exception(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = served.runtime
    runtime.start()
    unseen = json.dumps([ROW, {**ROW, "contract": "weekly"}]).encode()
    with caplog.at_level("ERROR", logger="prefect_mlops.serving.runtime"):
        reply = served.ask(unseen)
    assert reply.status == 500
    assert set(reply.body) == {"error", "request_id", "client_request_id"}
    assert "ValueError" not in reply.body["error"] and "weekly" not in reply.body["error"]
    assert "prediction failed" in reply.body["error"]
    rid = reply.body["request_id"]
    assert rid in caplog.text and "ValueError" in caplog.text  # the operator sees the reason
    assert served.ask().status == 200  # the next request is served
    assert runtime.metadata()["requests"] == {"total": 2, "refused_or_failed": 1}
    runtime.close()
    log = read_serving_log(served.log_dir).set_index("request_id")
    assert log.loc[rid, "status"] == "500"
    assert log.loc[rid, "error"].startswith("prediction failed: ValueError")


async def _chunks(*parts: bytes, then: BaseException | None = None) -> AsyncIterator[bytes]:
    for part in parts:
        yield part
    if then is not None:
        raise then


def test_bodies_over_the_byte_limit_are_413_before_parsing(served: Served) -> None:
    """By Content-Length at once (the stream is never read), and while reading a chunked body;
    logged as 413, the request's fault."""
    served.settings.serve_max_body_bytes = len(BODY)
    runtime = served.runtime
    runtime.start()
    at_limit = asyncio.run(runtime.predict(_chunks(BODY[:5], BODY[5:])))
    assert at_limit.status == 200

    # A stream that fails when read: a 413 (not a 400) shows it never was.
    unread = _chunks(then=AssertionError("a body refused by its Content-Length was read"))
    declared = asyncio.run(runtime.predict(unread, declared_length=str(len(BODY) + 1)))
    assert (declared.status, declared.body["field"]) == (413, "body")
    assert "MLOPS_SERVE_MAX_BODY_BYTES" in declared.body["problem"]
    chunked = asyncio.run(runtime.predict(_chunks(BODY, b" ")))
    assert (chunked.status, chunked.body["field"]) == (413, "body")
    runtime.close()
    log = read_serving_log(served.log_dir)
    assert list(log["status"]) == ["ok", "413", "413"]


def test_every_failure_to_read_or_parse_the_body_is_a_400_not_a_model_error(
    served: Served,
) -> None:
    """What the parser does not foresee (here the body stream failing) is the request's fault:
    a 400 naming ``body``, logged as 400, so a canary watcher never counts it (only 5xx)."""
    runtime = served.runtime
    runtime.start()
    reply = asyncio.run(runtime.predict(_chunks(b"[", then=OSError("client went away"))))
    assert (reply.status, reply.body["field"]) == (400, "body")
    assert "client went away" not in reply.body["error"]
    runtime.close()
    assert list(read_serving_log(served.log_dir)["status"]) == ["400"]
