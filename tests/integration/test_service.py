"""The real BentoML service (``bentoml serve`` in a subprocess) over a registry filled by the real
training flow: predictions, validation, auth, batching isolation, hot swap, rollouts, the
serving log across a restart, and a registry that is unreachable."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from helpers import churn_config, write_frame
from other_tables import Case

from prefect_mlops import registry
from prefect_mlops.errors import ServiceStartError
from prefect_mlops.processes import free_port, stop_process
from prefect_mlops.serving.process import RunningService, run_service
from prefect_mlops.settings import Settings

MODEL = "churn-test"
TOKEN = "s3cret-token"
MAX_ROWS = 1000
BENTOML = str(Path(sys.executable).parent / "bentoml")


class Registry:
    """The trained registry the server reads, and what the tests sent to it."""

    def __init__(self, home: Path, offline: pd.DataFrame, workdir: Path) -> None:
        self.home = home
        self.offline = offline
        self.workdir = workdir
        self.sent: dict[str, int] = {}  # request id -> rows, of every 200 answer
        self.shadowed: list[str] = []  # request ids the shadow test sent
        self.refused_ids: list[str] = []  # server ids of answers whose X-Request-ID was refused
        self.client_ids: dict[str, str] = {}  # server id -> the client's X-Request-ID kept
        self.lock = threading.Lock()

    @property
    def client(self) -> Any:
        return registry.mlflow_client(Settings(home=self.home))

    def env(self, home: Path | None = None, **extra: str) -> dict[str, str]:
        """The server's environment: every location of ``home`` (default: this registry's)
        and the serving settings, then ``extra``."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
        env.update(Settings(home=home or self.home).location_env())
        env.update(
            {
                "MLOPS_SERVE_MODEL_NAME": MODEL,
                "MLOPS_SERVE_TOKEN": TOKEN,
                "MLOPS_SERVE_MAX_ROWS": str(MAX_ROWS),
                "MLOPS_SERVE_RELOAD_SECONDS": "2",
                "BENTOML_HOME": str(self.workdir / "bentoml"),
                "BENTOML_DO_NOT_TRACK": "true",
                # Each registry read opens the SQLite file afresh (the outage test swaps it).
                "MLFLOW_SQLALCHEMYSTORE_POOLCLASS": "NullPool",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(extra)
        return env


@pytest.fixture(scope="module")
def reg(tmp_path_factory: pytest.TempPathFactory, prefect_api: None) -> Iterator[Registry]:
    from prefect_mlops.data.demo import generate_churn
    from prefect_mlops.flows.training import continuous_training

    workdir = tmp_path_factory.mktemp("service")
    home = workdir / "mlops-home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_HOME", str(home))
        for key in ("MLOPS_TRACKING_URI", "MLOPS_REGISTRY_URI", "MLOPS_SNAPSHOT_DIR"):
            mp.delenv(key, raising=False)
        data = write_frame(generate_churn(2000, seed=7), workdir / "churn.csv")
        outcome = continuous_training(churn_config(data))
        assert outcome.version == "1"
        client = registry.mlflow_client(Settings(home=home))
        v1 = client.get_model_version(MODEL, "1")
        # Version 2: the same model registered again (a second candidate for swap and rollouts).
        registry.create_version(
            client,
            model_name=MODEL,
            model_uri=v1.source,
            run_id=v1.run_id,
            tags=dict(v1.tags),
            blessed=True,
            reason="second candidate for the serving tests",
        )
        local = client.download_artifacts(outcome.run_id, "predictions/test.parquet", str(workdir))
        yield Registry(home, pd.read_parquet(local), workdir)


@pytest.fixture(scope="module")
def server(reg: Registry) -> Iterator[RunningService]:
    with run_service(reg.env()) as srv:
        yield srv


@pytest.fixture(scope="module")
def corrupt_version(reg: Registry) -> str:
    """A registered version whose model file is cut in half on disk (its MLmodel metadata,
    signature and registry entry are intact: only loading the model fails)."""
    from urllib.parse import urlparse

    client = reg.client
    source = Path(urlparse(client.get_model_version_download_uri(MODEL, "1")).path)
    broken = reg.workdir / "corrupt-model"
    shutil.copytree(source, broken)
    (model_file,) = broken.glob("model.*")
    data = model_file.read_bytes()
    model_file.write_bytes(data[: len(data) // 2])
    return registry.create_version(
        client,
        model_name=MODEL,
        model_uri=str(broken),
        run_id=client.get_model_version(MODEL, "1").run_id,
        tags={},
        blessed=True,
        reason="serving test: truncated model file",
    )


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _post(srv: RunningService, body: Any, reg: Registry | None = None, **kw: Any) -> httpx.Response:
    kw.setdefault("headers", AUTH)
    if isinstance(body, bytes | str):
        resp = httpx.post(f"{srv.url}/predict", content=body, timeout=30, **kw)
    else:
        resp = httpx.post(f"{srv.url}/predict", json=body, timeout=30, **kw)
    if reg is not None and resp.status_code == 200:
        data = resp.json()
        with reg.lock:
            reg.sent[data["request_id"]] = len(data["predictions"])
    return resp


def _records(reg: Registry, n: int | None = None) -> list[dict[str, Any]]:
    features = reg.offline.drop(columns=["prediction"])
    frame = features if n is None else features.head(n)
    return json.loads(frame.to_json(orient="records"))


def _reload(srv: RunningService) -> dict[str, Any]:
    resp = httpx.post(f"{srv.url}/reload", headers=AUTH, timeout=60)
    assert resp.status_code == 200, resp.text
    return resp.json()


def _serving_v2(srv: RunningService, reg: Registry) -> None:
    """v2 is the champion ``srv`` answers with: the hot-swap test promotes it; this lets the
    tests after it run on their own too."""
    if reg.client.get_model_version_by_alias(MODEL, "champion").version != "2":
        registry.promote_version(reg.client, MODEL, "2", reason="serving test: v2 serves")
    assert _reload(srv)["model_version"] == "2"


# ------------------------------------------------------------------------------------------


def test_predictions_equal_the_offline_predictions(server: RunningService, reg: Registry) -> None:
    records = _records(reg)
    assert 0 < len(records) <= MAX_ROWS
    resp = _post(server, {"records": records}, reg)
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert (data["model_name"], data["model_version"], data["alias"]) == (MODEL, "1", "champion")
    assert data["variant"] == "champion" and data["request_id"]
    assert resp.headers["x-request-id"] == data["request_id"]
    assert data["predictions"] == reg.offline["prediction"].tolist()  # row for row
    assert data["classes"] == [0, 1]
    assert len(data["probabilities"]) == len(records)
    assert all(abs(sum(p) - 1) < 1e-9 for p in data["probabilities"])

    # The same rows as columns, and as a bare list, give the same answer.
    columns = {k: [r[k] for r in records] for k in records[0]}
    as_columns = _post(server, {"columns": columns}, reg).json()
    assert as_columns["predictions"] == data["predictions"]
    bare = _post(server, records[:5], reg, headers={**AUTH, "X-Request-ID": "client-id-1"})
    assert bare.json()["predictions"] == data["predictions"][:5]
    assert bare.json()["client_request_id"] == "client-id-1"
    assert bare.json()["request_id"] not in ("client-id-1", data["request_id"])


def test_metadata_names_version_signature_and_lineage(server: RunningService) -> None:
    meta = httpx.get(f"{server.url}/metadata", headers=AUTH, timeout=10).json()
    assert (meta["model_name"], meta["model_version"], meta["alias"]) == (MODEL, "1", "champion")
    names = [c["name"] for c in meta["signature"]["inputs"]]
    assert "tenure_months" in names and "contract" in names
    assert meta["lineage"]["mlops.data.digest"]
    assert meta["lineage"]["mlops.config_hash"]
    assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200


@pytest.mark.parametrize(
    ("mutate", "status", "field", "problem"),
    [
        (lambda r: {**r, "monthly_charges": "lots"}, 422, "records[0].monthly_charges", "number"),
        (
            lambda r: {k: v for k, v in r.items() if k != "contract"},
            422,
            "records[0].contract",
            "missing",
        ),
        (lambda r: {**r, "region": 3}, 422, "records[0].region", "string"),
    ],
)
def test_signature_errors_name_the_field(
    server: RunningService, reg: Registry, mutate: Any, status: int, field: str, problem: str
) -> None:
    row = _records(reg, 1)[0]
    resp = _post(server, {"records": [mutate(row)]})
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["field"] == field and problem in body["problem"]
    assert field in body["error"] and body["request_id"]
    assert _post(server, {"records": [row]}).status_code == 200  # still serving


def test_malformed_empty_and_oversized_requests(server: RunningService, reg: Registry) -> None:
    bad_json = _post(server, b'{"records": [{"age": 3,')
    assert bad_json.status_code == 400
    assert bad_json.json()["field"] == "body" and "malformed JSON" in bad_json.json()["problem"]
    empty = _post(server, [])
    assert empty.status_code == 422 and "empty" in empty.json()["problem"]
    empty_records = _post(server, {"records": []})
    assert empty_records.status_code == 422 and empty_records.json()["field"] == "records"
    row = _records(reg, 1)[0]
    too_big = _post(server, {"records": [row] * (MAX_ROWS + 1)})
    assert too_big.status_code == 413
    assert str(MAX_ROWS) in too_big.json()["problem"]
    assert _post(server, {"records": [row]}).status_code == 200


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"[" * 100_000, "nested too deeply"),
        (b'{"records": [{"age": ' + b"9" * 5000 + b"}]}", "digits"),
        (b'{"records": [{"age": 3}]}\xff', "UTF-8"),
    ],
    ids=["nested", "digits", "not-utf8"],
)
def test_bodies_that_cannot_become_rows_are_400_naming_body(
    server: RunningService, reg: Registry, body: bytes, problem: str
) -> None:
    resp = _post(server, body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["field"] == "body" and problem in resp.json()["problem"]
    assert _post(server, {"records": _records(reg, 1)}).status_code == 200


def test_nan_is_missing_and_infinity_is_refused(server: RunningService, reg: Registry) -> None:
    """``json.dumps`` of a pandas frame writes NaN for a missing value: answered as null is.
    ±Infinity and 1e400 (which overflows) are refused naming the field."""
    rows = _records(reg, 3)
    with_null = [dict(r) for r in rows]
    with_null[1]["monthly_charges"] = None
    with_null[2]["total_charges"] = None
    text = json.dumps({"records": with_null}).replace("null", "NaN")
    as_nan = _post(server, text)
    as_null = _post(server, {"records": with_null})
    assert as_nan.status_code == as_null.status_code == 200, as_nan.text
    assert as_nan.json()["predictions"] == as_null.json()["predictions"]
    assert as_nan.json()["probabilities"] == as_null.json()["probabilities"]
    for value in ("Infinity", "-Infinity", "1e400"):
        for first in ("1.5", "null"):  # a column of numbers, and one with a missing value
            pair = [{**rows[0], "monthly_charges": "@1"}, {**rows[1], "monthly_charges": "@2"}]
            body = json.dumps({"records": pair})
            resp = _post(server, body.replace('"@1"', first).replace('"@2"', value))
            assert resp.status_code == 422, (value, first, resp.text)
            assert resp.json()["field"] == "records[1].monthly_charges"
            assert "finite number" in resp.json()["problem"]


def test_request_ids_are_the_servers_and_the_clients_is_kept_or_refused(
    server: RunningService, reg: Registry
) -> None:
    body = {"records": _records(reg, 1)}
    spaced = _post(server, body, reg, headers={**AUTH, "X-Request-ID": "order 42 / retry 1"})
    assert spaced.json()["client_request_id"] == "order 42 / retry 1"
    assert spaced.headers["x-request-id"] == spaced.json()["request_id"] != "order 42 / retry 1"
    assert "x-request-id-refused" not in spaced.headers
    long_id = "x" * 129
    refused = _post(server, body, reg, headers={**AUTH, "X-Request-ID": long_id})
    assert refused.status_code == 200
    assert refused.json()["client_request_id"] is None
    assert refused.headers["x-request-id"] == refused.json()["request_id"]
    assert "longer than 128 characters" in refused.headers["x-request-id-refused"]
    bad = _post(server, b"{", headers={**AUTH, "X-Request-ID": "caf\u00e9".encode()})
    assert bad.status_code == 400
    assert "not printable ASCII" in bad.headers["x-request-id-refused"]
    with reg.lock:
        reg.refused_ids = [refused.json()["request_id"]]
        reg.client_ids = {spaced.json()["request_id"]: "order 42 / retry 1"}


def test_bearer_token(server: RunningService, reg: Registry) -> None:
    body = {"records": _records(reg, 1)}
    assert _post(server, body, headers={}).status_code == 401
    assert _post(server, body, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert _post(server, body, headers={"Authorization": TOKEN}).status_code == 401
    assert _post(server, body, reg).status_code == 200
    assert httpx.get(f"{server.url}/metadata", timeout=10).status_code == 401
    assert httpx.post(f"{server.url}/reload", timeout=10).status_code == 401
    assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200  # probes stay open


def test_concurrent_good_and_bad_requests(server: RunningService, reg: Registry) -> None:
    rows = _records(reg, 16)
    results: dict[int, httpx.Response] = {}
    barrier = threading.Barrier(16)

    def call(i: int) -> None:
        row = dict(rows[i])
        if i % 2:  # every odd request is bad, each in its own way
            row["age"] = f"bad-{i}"
        barrier.wait()
        results[i] = _post(server, {"records": [row] * (1 + i % 3)}, reg)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(16)]
    for _round in range(3):
        results.clear()
        barrier.reset()
        threads = [threading.Thread(target=call, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for i, resp in results.items():
            if i % 2:
                assert resp.status_code == 422, resp.text
                assert resp.json()["field"] == "records[0].age"
            else:
                assert resp.status_code == 200, resp.text
                expected = reg.offline["prediction"].iloc[i]
                assert resp.json()["predictions"] == [expected] * (1 + i % 3)


def _champion_model(reg: Registry, name: str = MODEL) -> Any:
    """The registered version 1, loaded in this process straight from its artifact."""
    from urllib.parse import urlparse

    import mlflow

    source = urlparse(reg.client.get_model_version_download_uri(name, "1")).path
    return mlflow.sklearn.load_model(source)


def test_bentoml_client_predicts_like_the_model(server: RunningService, reg: Registry) -> None:
    import bentoml
    import numpy as np

    model = _champion_model(reg)
    records = _records(reg, 40)
    features = reg.offline.drop(columns=["prediction"]).head(40)[list(model.feature_names_in_)]
    with bentoml.SyncHTTPClient(server.url, token=TOKEN) as client:
        data = client.predict(records=records)
        as_columns = client.predict(columns={k: [r[k] for r in records] for k in records[0]})
        positional = client.predict(records[:3])  # the first parameter is records
        meta = client.metadata()
        reloaded = client.reload()
    assert (data["model_name"], data["model_version"], data["variant"]) == (MODEL, "1", "champion")
    assert data["request_id"]
    assert data["predictions"] == model.predict(features).tolist()
    assert data["classes"] == model.classes_.tolist()
    np.testing.assert_allclose(data["probabilities"], model.predict_proba(features), rtol=1e-9)
    assert as_columns["predictions"] == data["predictions"]
    assert positional["predictions"] == data["predictions"][:3]
    assert meta["model_version"] == "1" and meta["signature"]["inputs"]
    assert (reloaded["changed"], reloaded["model_version"]) == (False, "1")


def test_bentoml_async_client(server: RunningService, reg: Registry) -> None:
    import asyncio

    import bentoml

    async def ask() -> tuple[dict[str, Any], dict[str, Any]]:
        async with bentoml.AsyncHTTPClient(server.url, token=TOKEN) as client:
            return await client.predict(records=_records(reg, 5)), await client.metadata()

    data, meta = asyncio.run(ask())
    assert data["predictions"] == reg.offline["prediction"].head(5).tolist()
    assert meta["model_version"] == data["model_version"] == "1"


def test_bentoml_client_errors_name_the_field(server: RunningService, reg: Registry) -> None:
    import bentoml
    from bentoml.exceptions import BentoMLException

    row = _records(reg, 1)[0]
    # /schema.json is open (the client reads it first), /predict is not.
    with bentoml.SyncHTTPClient(server.url) as anonymous, pytest.raises(BentoMLException) as denied:
        anonymous.predict(records=[row])
    assert denied.value.error_code == 401 and "Authorization" in str(denied.value)
    with bentoml.SyncHTTPClient(server.url, token=TOKEN) as client:
        with pytest.raises(BentoMLException) as bad:
            client.predict(records=[{**row, "monthly_charges": "lots"}])
        assert bad.value.error_code == 422
        assert json.loads(str(bad.value))["field"] == "records[0].monthly_charges"
        with pytest.raises(BentoMLException) as both:
            client.predict(records=[row], columns={"age": [1]})
        assert both.value.error_code == 422 and "not both" in str(both.value)
        with pytest.raises(BentoMLException) as empty:
            client.predict(records=[])
        assert empty.value.error_code == 422 and '"field":"records"' in str(empty.value)


def test_openapi_documents_predict_metadata_and_reload(server: RunningService) -> None:
    spec = httpx.get(f"{server.url}/docs.json", timeout=30).json()
    predict = spec["paths"]["/predict"]["post"]
    body = predict["requestBody"]["content"]["application/json"]["schema"]["anyOf"]
    assert [b.get("required", b["type"]) for b in body] == [["records"], ["columns"], "array"]
    assert {"200", "400", "401", "413", "422", "503"} <= set(predict["responses"])
    assert predict["responses"]["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorResponse"
    }
    assert predict["security"] == [{"HTTPBearer": []}]
    assert {"get", "post"} <= set(spec["paths"]["/metadata"])
    assert "post" in spec["paths"]["/reload"]
    schemas = spec["components"]["schemas"]
    assert {"predictions", "probabilities", "model_version"} <= set(
        schemas["PredictResponse"]["properties"]
    )
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    # BentoML's client builds its methods from /schema.json; the UI at / reads /docs.json.
    routes = httpx.get(f"{server.url}/schema.json", timeout=10).json()["routes"]
    assert {r["name"]: r["route"] for r in routes} == {
        "predict": "/predict",
        "metadata": "/metadata",
        "reload": "/reload",
    }
    assert httpx.get(f"{server.url}/", timeout=10).status_code == 200
    ui = httpx.get(f"{server.url}/docs", timeout=10, follow_redirects=True)
    assert ui.status_code == 200 and str(ui.url) == f"{server.url}/"


def test_hot_swap_without_failed_requests(server: RunningService, reg: Registry) -> None:
    body = {"records": _records(reg, 2)}
    seen: list[tuple[int, str | None]] = []
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                resp = http.post(f"{server.url}/predict", json=body, headers=AUTH)
                data = resp.json()
                seen.append((resp.status_code, data.get("model_version")))
                if resp.status_code == 200:
                    with reg.lock:
                        reg.sent[data["request_id"]] = len(data["predictions"])

    thread = threading.Thread(target=client)
    thread.start()
    try:
        time.sleep(1)
        registry.promote_version(reg.client, MODEL, "2", reason="serving test: hot swap")
        assert _reload(server)["model_version"] == "2"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (not seen or seen[-1][1] != "2"):
            time.sleep(0.1)
        time.sleep(1)
    finally:
        stop.set()
        thread.join(timeout=30)
    statuses = {s for s, _ in seen}
    versions = [v for _, v in seen]
    assert statuses == {200}, seen[:20]
    assert versions[0] == "1" and versions[-1] == "2"
    first_new = versions.index("2")
    assert set(versions[first_new:]) == {"2"}  # no flapping back


def test_registry_outage_while_serving(server: RunningService, reg: Registry) -> None:
    _serving_v2(server, reg)
    db = reg.home / "mlflow.db"
    backup = reg.home / "mlflow.db.bak"
    shutil.copy2(db, backup)
    try:
        db.write_bytes(b"this is not a database" * 100)
        resp = httpx.post(f"{server.url}/reload", headers=AUTH, timeout=60)
        assert resp.status_code == 503
        assert "still serving" in resp.json()["error"]
        answer = _post(server, {"records": _records(reg, 1)}, reg)
        assert answer.status_code == 200 and answer.json()["model_version"] == "2"
    finally:
        shutil.copy2(backup, db)
    meta = httpx.get(f"{server.url}/metadata", headers=AUTH, timeout=10).json()
    assert meta["reload"]["failures"] >= 1
    assert _reload(server)["model_version"] == "2"


def test_canary_rollout_answers_some_requests_with_the_challenger(
    server: RunningService, reg: Registry
) -> None:
    _serving_v2(server, reg)
    registry.start_rollout(
        reg.client, MODEL, mode="canary", challenger_version="1", share=0.5, reason="test"
    )
    try:
        assert _reload(server)["challenger_version"] == "1"
        answers = [_post(server, {"records": _records(reg, 1)}, reg).json() for _ in range(40)]
        by_variant = {(a["variant"], a["model_version"]) for a in answers}
        assert by_variant == {("champion", "2"), ("challenger", "1")}
        challenger = sum(a["variant"] == "challenger" for a in answers)
        assert 5 <= challenger <= 35
    finally:
        registry.end_rollout(reg.client, MODEL)
    assert _reload(server)["challenger_version"] is None


def test_shadow_rollout_scores_off_the_response_path(server: RunningService, reg: Registry) -> None:
    _serving_v2(server, reg)
    registry.start_rollout(reg.client, MODEL, mode="shadow", challenger_version="1", reason="test")
    try:
        assert _reload(server)["rollout"]["mode"] == "shadow"
        answers = [_post(server, {"records": _records(reg, 3)}, reg).json() for _ in range(10)]
        assert {(a["variant"], a["model_version"]) for a in answers} == {("champion", "2")}
        reg.shadowed = [a["request_id"] for a in answers]
    finally:
        registry.end_rollout(reg.client, MODEL)
    _reload(server)


def test_canary_challenger_that_cannot_load_leaves_the_champion_serving(
    server: RunningService, reg: Registry, corrupt_version: str
) -> None:
    _serving_v2(server, reg)
    registry.start_rollout(
        reg.client, MODEL, mode="canary", challenger_version=corrupt_version, share=0.5,
        reason="test: a challenger whose model file is truncated",
    )  # fmt: skip
    try:
        answer = _reload(server)
        assert answer["challenger_version"] is None
        assert f"models:/{MODEL}/{corrupt_version}" in answer["challenger_error"]
        replies = [_post(server, {"records": _records(reg, 1)}, reg) for _ in range(20)]
        assert {r.status_code for r in replies} == {200}
        assert {(r.json()["variant"], r.json()["model_version"]) for r in replies} == {
            ("champion", "2")
        }
    finally:
        registry.end_rollout(reg.client, MODEL)
    assert _reload(server)["challenger_error"] is None


def test_serving_log_survives_a_restart(server: RunningService, reg: Registry) -> None:
    from prefect_mlops.serving.log import COLUMNS, read_serving_log

    _serving_v2(server, reg)
    row = _records(reg, 1)[0]
    bad = [b"{", [], {"records": [row] * (MAX_ROWS + 1)}]  # logged like the good ones
    assert [_post(server, body).status_code for body in bad] == [400, 422, 413]
    stop_process(server.process)  # flushes the log on shutdown
    with run_service(reg.env()) as restarted:
        after = _post(restarted, {"records": _records(reg, 2)}, reg)
        assert after.status_code == 200 and after.json()["model_version"] == "2"
    log = read_serving_log(reg.home / "serving_log")
    assert list(log.columns[: len(COLUMNS)]) == list(COLUMNS)
    assert [p.name for p in (reg.home / "serving_log").iterdir()] == [f"model={MODEL}"]
    served = log[log["variant"] != "shadow"]
    ok = served[served["status"] == "ok"]
    rows = ok.groupby("request_id").size().to_dict()
    for request_id, n in reg.sent.items():
        assert rows.get(request_id) == n, request_id  # one log row per request row
    assert set(served["status"]) >= {"ok", "422", "400", "413"}
    shadow = log[log["variant"] == "shadow"]
    assert set(shadow["request_id"]) == set(reg.shadowed)
    assert set(shadow["model_version"]) <= {"1"} and (shadow["status"] == "ok").all()
    for request_id in reg.refused_ids:  # the log says why the client's id was not used
        (note,) = served.loc[served["request_id"] == request_id, "error"]
        assert note.startswith("X-Request-ID refused: longer than 128 characters")
    for request_id, client_id in reg.client_ids.items():
        (kept,) = served.loc[served["request_id"] == request_id, "client_request_id"]
        assert kept == client_id
    first = ok.iloc[0]
    assert {"feature.tenure_months", "feature.contract"} <= set(log.columns)
    assert isinstance(first["feature.contract"], str) and first["latency_ms"] > 0
    assert ok["prediction"].isin([0, 1]).all()  # the class, typed
    assert {"proba.0", "proba.1"} <= set(log.columns)
    assert (ok["proba.0"] + ok["proba.1"]).round(6).eq(1).all()


def test_a_package_planted_where_the_server_starts_is_never_imported(
    reg: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A local user's ``bentoml/`` in the old fixed folder (<tmp>/prefect-mlops-serve, which
    was the server's working directory and so first on its sys.path) or in the folder the
    server is started from would run as the server's user. The server starts from a private
    folder of its own (removed when it stops) with the safe path, so neither is imported."""
    import tempfile

    shared_tmp = tmp_path / "tmp"  # stands for /tmp, without touching the machine's
    shared_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(shared_tmp))
    marker = tmp_path / "planted-code-ran"
    planted = f"open({str(marker)!r}, 'a').write(__file__ + '\\n')\n"
    for folder in (shared_tmp / "prefect-mlops-serve", tmp_path / "start-here"):
        (folder / "bentoml").mkdir(parents=True)
        (folder / "bentoml" / "__init__.py").write_text(planted)
    monkeypatch.chdir(tmp_path / "start-here")
    with run_service(reg.env()) as srv:
        assert _post(srv, {"records": _records(reg, 1)}).status_code == 200
        (private,) = shared_tmp.glob("prefect-mlops-serve-*")
        assert private.stat().st_mode & 0o777 == 0o700
    assert not marker.exists(), marker.read_text()
    assert not list(shared_tmp.glob("prefect-mlops-serve-*"))  # removed when it stopped


def test_an_empty_token_stops_the_service_at_start(reg: Registry) -> None:
    """Before, an empty MLOPS_SERVE_TOKEN silently turned the bearer check off."""
    with (
        pytest.raises(ServiceStartError) as failure,
        run_service(reg.env(MLOPS_SERVE_TOKEN=""), startup_timeout=120),
    ):
        pass
    assert failure.value.returncode not in (None, 0)
    first_line = str(failure.value).splitlines()[0]
    assert "prefect-mlops service cannot start: MLOPS_SERVE_TOKEN is set but empty" in first_line


def _stalled_request(srv: RunningService, sent: bytes, length: int) -> Any:
    """A socket whose POST /predict declared ``length`` body bytes and sent only ``sent``: the
    service holds it in flight, waiting for the rest."""
    import socket
    from urllib.parse import urlparse

    url = urlparse(srv.url)
    sock = socket.create_connection((url.hostname, url.port), timeout=30)
    head = (
        f"POST /predict HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
    sock.sendall(head.encode() + sent)
    return sock


def _status_of(sock: Any) -> int:
    answer = b""
    while b"\r\n" not in answer:
        chunk = sock.recv(4096)
        if not chunk:
            break
        answer += chunk
    sock.close()
    return int(answer.split(b" ", 2)[1])


def test_body_size_and_concurrency_limits(reg: Registry) -> None:
    """Bodies over MLOPS_SERVE_MAX_BODY_BYTES are refused (413 naming body) before they are
    parsed, by Content-Length and while a chunked body streams; beyond
    MLOPS_SERVE_MAX_CONCURRENCY requests in flight the next is a 429 at once, probes still
    answer, and the service serves again once they end. Before, neither limit existed."""
    limit = 20_000
    env = reg.env(MLOPS_SERVE_MAX_BODY_BYTES=str(limit), MLOPS_SERVE_MAX_CONCURRENCY="2")
    row = _records(reg, 1)[0]
    body = json.dumps({"records": [row] * 200}).encode()  # under MAX_ROWS, over the byte limit
    assert len(body) > limit and MAX_ROWS >= 200
    with run_service(env) as srv:
        declared = _post(srv, body)
        assert declared.status_code == 413, declared.text
        assert declared.json()["field"] == "body"
        assert "MLOPS_SERVE_MAX_BODY_BYTES" in declared.json()["problem"]

        def chunks() -> Iterator[bytes]:
            for start in range(0, len(body), 4096):
                yield body[start : start + 4096]

        chunked = httpx.post(f"{srv.url}/predict", content=chunks(), headers=AUTH, timeout=30)
        assert chunked.status_code == 413, chunked.text
        assert "more bytes than the limit" in chunked.json()["problem"]

        good = json.dumps({"records": [row]}).encode()
        stalled = [_stalled_request(srv, good[:5], len(good)) for _ in range(2)]
        time.sleep(1)  # both reached the service and wait for their bodies
        over = _post(srv, {"records": [row]})
        assert over.status_code == 429, over.text
        assert httpx.get(f"{srv.url}/readyz", timeout=10).status_code == 200
        for sock in stalled:
            sock.sendall(good[5:])
        assert [_status_of(sock) for sock in stalled] == [200, 200]
        assert _post(srv, {"records": [row]}).status_code == 200


@pytest.mark.parametrize("where", ["http", pytest.param("sqlite", marks=pytest.mark.slow)])
def test_unreachable_registry_at_startup_exits_non_zero(
    reg: Registry, tmp_path: Path, where: str
) -> None:
    uri = (
        f"http://127.0.0.1:{free_port()}"
        if where == "http"
        else f"sqlite:///{tmp_path / 'missing-dir' / 'mlflow.db'}"
    )
    env = reg.env(MLOPS_TRACKING_URI=uri, MLOPS_REGISTRY_URI=uri)
    with pytest.raises(ServiceStartError) as failure, run_service(env, startup_timeout=120):
        pass
    assert failure.value.returncode not in (None, 0)
    first_line = str(failure.value).splitlines()[0]
    assert "prefect-mlops service cannot start" in first_line
    assert MODEL in first_line


def test_model_that_cannot_load_stops_the_server_promptly(
    reg: Registry, corrupt_version: str
) -> None:
    """The registry check passes (metadata is intact), the worker fails to load the model and
    is not respawned, so `bentoml serve` exits 1 and run_service raises long before its
    deadline, with the service's reason first."""
    began = time.monotonic()
    with (
        pytest.raises(ServiceStartError) as failure,
        run_service(reg.env(MLOPS_SERVE_VERSION=corrupt_version), startup_timeout=600),
    ):
        pass
    elapsed = time.monotonic() - began
    assert failure.value.returncode == 1
    assert elapsed < 90, f"took {elapsed:.0f} s to fail"
    uri = f"models:/{MODEL}/{corrupt_version}"
    first_line = str(failure.value).splitlines()[0]
    # The loader's own words after the URI (docs/security.md, "Models and the registry").
    assert "prefect-mlops service cannot start: " in first_line and uri in first_line


def test_bentoml_build_works_offline(tmp_path: Path) -> None:
    import prefect_mlops.deployments

    deployments = Path(prefect_mlops.deployments.__file__).resolve().parent
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "bentoml"), "BENTOML_DO_NOT_TRACK": "true"}
    done = subprocess.run(
        [BENTOML, "build", str(deployments)], env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert list((tmp_path / "bentoml" / "bentos" / "mlops_model_service").iterdir())


@pytest.mark.parametrize("name", ["plans", "diabetes"])
def test_bentoml_client_serves_multiclass_and_regression(
    reg: Registry, request: pytest.FixtureRequest, name: str
) -> None:
    """The models of tests/other_tables.py (a string multiclass target with missing values,
    the diabetes regression, whose null probabilities the client must hand back as they are),
    each served from that registry by a server of its own."""
    import bentoml
    import numpy as np

    case: Case = request.getfixturevalue("cases")[name]
    rows = case.features.head(50)
    records = json.loads(rows.to_json(orient="records"))  # NaN → null
    log_dir = str(reg.workdir / f"serving-log-{name}")  # the churn server's log stays churn's
    # case.home: where the `cases` fixture trained them.
    env = reg.env(case.home, MLOPS_SERVE_MODEL_NAME=name, MLOPS_SERVING_LOG_DIR=log_dir)
    with run_service(env) as srv:
        with bentoml.SyncHTTPClient(srv.url, token=TOKEN) as client:
            data = client.predict(records=records)
        # What json.dumps writes for a pandas frame: NaN for a missing value, text or number.
        as_nan = _post(srv, json.dumps({"records": rows.to_dict("records")}))
    assert (data["model_name"], data["model_version"]) == (name, "1")
    assert as_nan.status_code == 200, as_nan.text
    assert as_nan.json()["predictions"] == data["predictions"]  # NaN is null
    if name == "plans":
        assert "NaN" in json.dumps(rows.to_dict("records"))
        assert rows.isna().any().any()
        assert data["predictions"] == case.model.predict(rows).tolist()
        assert data["classes"] == ["basic", "plus", "premium"]
        np.testing.assert_allclose(data["probabilities"], case.model.predict_proba(rows), rtol=1e-9)
    else:
        np.testing.assert_allclose(data["predictions"], case.model.predict(rows), rtol=1e-9)
        assert data["probabilities"] is None and data["classes"] is None
