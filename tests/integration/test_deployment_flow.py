"""The model-deployment flow against a real BentoML server and a real MLflow registry."""

from __future__ import annotations

import itertools
import json
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pandas as pd
import pytest
from helpers import churn_config, registry_state, write_frame

from prefect_mlops import registry
from prefect_mlops.data.demo import generate_churn
from prefect_mlops.deployment.rollout import DeploymentConfig
from prefect_mlops.errors import DataIngestError, InfraValidationError
from prefect_mlops.files import atomic_path
from prefect_mlops.flows.deployment import DeploymentOutcome, model_deployment
from prefect_mlops.flows.training import continuous_training
from prefect_mlops.registry import lineage
from prefect_mlops.serving.process import RunningService, run_service
from prefect_mlops.settings import get_settings

pytestmark = pytest.mark.usefixtures("prefect_api")
MODEL = "churn-test"


@pytest.fixture(scope="module")
def deploy_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Champion v1 and a blessed, unpromoted challenger v2, both from the real training flow."""
    home = tmp_path_factory.mktemp("deploy")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_HOME", str(home / "mlops"))
        data = write_frame(generate_churn(1500, seed=21), home / "churn.csv")
        continuous_training(churn_config(data))
        continuous_training(churn_config(data, promote=False))
        yield home


@pytest.fixture(scope="module")
def live_service(deploy_home: Path) -> Iterator[RunningService]:
    """One live service for every test that deploys under traffic (a start costs ~20 s): it
    serves the champion, takes up alias and rollout changes and writes its serving log (what
    the watchers read) every second."""
    env = {
        "MLOPS_SERVE_MODEL_NAME": MODEL,
        "MLOPS_SERVE_RELOAD_SECONDS": "1",
        "MLOPS_SERVING_LOG_FLUSH_SECONDS": "1",
    }
    with run_service(env) as service:
        yield service


@pytest.fixture
def in_home(deploy_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MLOPS_HOME", str(deploy_home / "mlops"))
    return deploy_home


def _client():
    return registry.mlflow_client(get_settings())


def _reset_champion(version: str) -> None:
    client = _client()
    registry.end_rollout(client, MODEL)
    if registry.alias_state(client, MODEL).get("champion") != version:
        registry.promote_version(client, MODEL, version, reason="test reset")


def test_infra_validation_failure_is_recorded_and_never_promoted(in_home: Path) -> None:
    _reset_champion("1")
    config = DeploymentConfig(model_name=MODEL, version="2", latency_slo_ms=0.001)
    state = model_deployment(config, return_state=True)
    with pytest.raises(InfraValidationError, match="SLO"):
        state.result()
    # The failed run shows the report (and no deployment summary: nothing was deployed).
    artifacts = _artifacts_of(state.state_details.flow_run_id)
    assert "model-deployment" not in artifacts
    assert artifacts["infra-validation"].data.startswith(
        f"# Infra-validation of {MODEL} v2: FAILED"
    )
    assert registry_state(MODEL)[0]["champion"] == "1"
    tags = _client().get_model_version(MODEL, "2").tags
    assert tags[lineage.INFRA_VALIDATION] == "failed"
    assert "SLO" in tags[lineage.INFRA_VALIDATION_REASON]


def _artifacts_of(flow_run_id: Any) -> dict[str, Any]:
    """The Prefect artifacts of one flow run (its tasks' included), by key."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    return {a.key: a for a in artifacts}


def test_blue_green_promotes_after_infra_validation(
    in_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _reset_champion("1")
    monkeypatch.setenv("MLOPS_MLFLOW_UI_URL", "http://mlflow.example:5001/")
    state = model_deployment(DeploymentConfig(model_name=MODEL, version="2"), return_state=True)
    outcome = state.result()
    assert outcome.result == "promoted"
    # The summary, the infra-validation report and the MLflow link are on the run launched.
    artifacts = _artifacts_of(state.state_details.flow_run_id)
    assert set(artifacts) >= {"model-deployment", "infra-validation", "mlflow-model-version"}
    link = f"http://mlflow.example:5001/#/models/{MODEL}/versions/2"
    assert artifacts["mlflow-model-version"].data == f"[MLflow: {MODEL} v2]({link})"
    summary = artifacts["model-deployment"].data
    assert summary.startswith(f"# {MODEL} v2: promoted") and f"]({link})" in summary
    assert "passed" in artifacts["infra-validation"].data
    assert registry_state(MODEL)[0]["champion"] == "2"
    client = _client()
    assert client.get_registered_model(MODEL).tags[lineage.PREVIOUS_CHAMPION] == "1"
    tags = client.get_model_version(MODEL, "2").tags
    assert tags[lineage.INFRA_VALIDATION] == "passed"
    assert "0 mismatches" in tags[lineage.INFRA_VALIDATION_REASON]
    last = registry.alias_history(client, MODEL)[-1]
    assert (last.alias, last.from_version, last.to_version) == ("champion", "1", "2")
    assert "blue-green" in last.reason


def _intact_copy(tmp_path: Path) -> tuple[str, Path]:
    """A copy of v2's model folder registered as a new version (its training run, so its
    offline predictions, are v2's); returns the version and the folder."""
    client = _client()
    original = Path(urlparse(client.get_model_version_download_uri(MODEL, "2")).path)
    folder = tmp_path / "copied-model"
    shutil.copytree(original, folder)
    run_id = client.get_model_version(MODEL, "2").run_id
    version = registry.create_version(
        client, model_name=MODEL, model_uri=str(folder), run_id=run_id, tags={},
        blessed=True, reason="copy of v2 for the test",
    )  # fmt: skip
    return version, folder


def test_corrupt_candidate_is_not_promoted(in_home: Path, tmp_path: Path) -> None:
    _reset_champion("1")
    client = _client()
    # A copy of v2's model folder whose model file is gone, registered as a new version.
    version, broken = _intact_copy(tmp_path)
    for path in broken.glob("model.*"):
        path.unlink()
    # The server cannot load it and exits by itself (long before this timeout).
    config = DeploymentConfig(model_name=MODEL, version=version, startup_timeout_seconds=170)
    with pytest.raises(InfraValidationError, match="did not start") as failed:
        model_deployment(config)
    assert f"models:/{MODEL}/{version}" in str(failed.value)
    assert registry_state(MODEL)[0]["champion"] == "1"
    assert client.get_model_version(MODEL, version).tags[lineage.INFRA_VALIDATION] == "failed"


def _deploy_under_traffic(
    service: RunningService,
    config: DeploymentConfig,
    labels: Path | None = None,
    *,
    service_url: bool = False,
) -> tuple[DeploymentOutcome, list[int]]:
    """Run the deployment flow while a client sends live traffic to the served champion;
    returns the outcome and the failed-request count of each traffic round. With ``labels``,
    the true value of every answered row is written there (request id + row) as it "arrives".
    With ``service_url`` the flow is told the live service's URL (``service_urls``)."""
    if service_url:
        config = config.model_copy(update={"service_urls": [service.url]})
    _wait_until_caught_up(service)
    stop, failures = threading.Event(), []
    sender = threading.Thread(target=_traffic, args=(service.url, stop, failures, labels))
    sender.start()
    try:
        return model_deployment(config), failures
    finally:
        stop.set()
        sender.join(timeout=60)


def _wait_until_caught_up(service: RunningService, timeout: float = 30.0) -> None:
    """Wait until the shared live service serves the registry's champion with no rollout (an
    earlier test's rollout may still be served for a reload interval)."""
    champion = registry_state(MODEL)[0]["champion"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        meta = httpx.get(service.url + "/metadata", timeout=10).json()
        if meta.get("model_version") == champion and meta.get("rollout") is None:
            return
        time.sleep(0.2)
    raise AssertionError(f"the live service did not take up champion v{champion}: {meta}")


# Request ids unique across the module's tests (they share one live service and serving log).
_REQUEST_IDS = itertools.count()


def _traffic(
    url: str, stop: threading.Event, failures: list[int], labels_path: Path | None
) -> None:
    """2-row requests with our own X-Request-IDs, in rounds of 20; after each round the failed
    count is recorded and the labels of the answered rows are (re)written, keyed as a user keys
    them: by the ``request_id`` the service answered (its own id, not the client's)."""
    frame = generate_churn(400, seed=5)
    rows = json.loads(frame.drop(columns=["churned"]).to_json(orient="records"))
    truth = frame["churned"].tolist()
    labels: list[dict[str, Any]] = []
    with httpx.Client(base_url=url, timeout=30) as http:
        while not stop.is_set():
            errors = 0
            for _ in range(20):
                request_id = next(_REQUEST_IDS)
                start = (2 * request_id) % len(rows)
                try:
                    response = http.post(
                        "/predict",
                        json={"records": rows[start : start + 2]},
                        headers={"X-Request-ID": f"t-{request_id}"},
                    )
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if not ok:
                    errors += 1
                    continue
                answered = response.json()["request_id"]
                labels.extend(
                    {"request_id": answered, "row_index": i, "churned": truth[start + i]}
                    for i in range(2)
                )
            failures.append(errors)
            if labels_path is not None:
                with atomic_path(labels_path) as tmp:
                    pd.DataFrame(labels).to_csv(tmp, index=False)


def _empty_labels(tmp_path: Path) -> Path:
    path = tmp_path / "labels.csv"
    path.write_text("request_id,row_index,churned\n")
    return path


@pytest.mark.parametrize(
    ("limits", "expected"),
    [({"max_p99_latency_ms": 5000.0}, "promoted"), ({"max_p99_latency_ms": 0.001}, "rolled_back")],
    ids=["healthy-canary-with-labels-promotes", "breaching-canary-rolls-back"],
)
def test_canary(
    in_home: Path, live_service: RunningService, tmp_path: Path, limits: dict, expected: str
) -> None:
    _reset_champion("1")
    labels = _empty_labels(tmp_path) if expected == "promoted" else None
    quality = {"labels": {"path": str(labels)}, "min_labelled_rows": 30} if labels else {}
    outcome, failures = _deploy_under_traffic(
        live_service,
        DeploymentConfig(
            model_name=MODEL, version="2", strategy="canary", canary_share=0.5,
            min_requests=15, max_minutes=3, poll_seconds=0.5, **limits, **quality,
        ),
        labels,
    )  # fmt: skip
    assert outcome.result == expected, outcome.reason
    assert sum(failures) == 0
    champion = registry_state(MODEL)[0]["champion"]
    assert champion == ("2" if expected == "promoted" else "1")
    assert registry.get_rollout(_client(), MODEL) is None
    tags = _client().get_model_version(MODEL, "2").tags
    assert tags[lineage.ROLLOUT_RESULT] == expected
    assert int(tags[lineage.CANARY_REQUESTS]) >= (15 if expected == "promoted" else 10)
    if labels:
        # v1 and v2 are the same model: the same live accuracy over the same window.
        assert tags[lineage.CANARY_QUALITY_METRIC] == "accuracy"
        assert int(tags[lineage.CANARY_QUALITY_ROWS]) >= 30
        assert tags[lineage.CANARY_QUALITY_BASELINE_SOURCE].startswith("champion live")
        assert float(tags[lineage.CANARY_QUALITY_VALUE]) == pytest.approx(
            float(tags[lineage.CANARY_QUALITY_BASELINE]), abs=0.2
        )


def test_canary_with_unusable_labels_changes_nothing(in_home: Path, tmp_path: Path) -> None:
    _reset_champion("1")
    client = _client()
    before = (registry_state(MODEL), client.get_model_version(MODEL, "2").tags)
    bad = tmp_path / "labels.csv"
    bad.write_text("request_id,label\nt-1,1\n")
    config = DeploymentConfig(
        model_name=MODEL, version="2", strategy="canary", labels={"path": str(bad)}
    )
    with pytest.raises(
        DataIngestError, match=r"labels .*labels\.csv: missing column\(s\) \['churned'\]"
    ):
        model_deployment(config)
    missing = DeploymentConfig(
        model_name=MODEL, version="2", strategy="canary",
        labels={"path": str(tmp_path / "nowhere.csv")},
    )  # fmt: skip
    with pytest.raises(DataIngestError, match=r"nowhere\.csv does not exist"):
        model_deployment(missing)
    assert (registry_state(MODEL), client.get_model_version(MODEL, "2").tags) == before
    assert registry.get_rollout(client, MODEL) is None


def test_shadow_records_agreement(in_home: Path, live_service: RunningService) -> None:
    _reset_champion("1")
    outcome, failures = _deploy_under_traffic(
        live_service,
        DeploymentConfig(
            model_name=MODEL, version="2", strategy="shadow",
            min_requests=10, max_minutes=3, poll_seconds=0.5,
        )
    )  # fmt: skip
    assert outcome.result == "shadowed"
    assert sum(failures) == 0
    assert registry_state(MODEL)[0]["champion"] == "1"
    tags = _client().get_model_version(MODEL, "2").tags
    assert int(tags[lineage.SHADOW_ROWS]) >= 10
    # v1 and v2 were trained on the same rows with the same seed: they agree.
    assert float(tags[lineage.SHADOW_AGREEMENT]) == pytest.approx(1.0)


def _register_challenger(*, fragile: bool = False, inverted: bool = False) -> str:
    """Register a hand-made challenger (with the offline predictions infra-validation needs).

    ``fragile``: it raises on some rows: its encoder never saw region 'west' and refuses it
    (OneHotEncoder(handle_unknown='error')); its test rows hold no 'west', so it passes
    infra-validation and breaks only on live traffic. ``inverted``: trained on the opposite
    label, so it answers fast and error-free, but wrong."""
    import mlflow
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder
    from sklearn.tree import DecisionTreeClassifier

    from prefect_mlops.registry.tracking import log_frame_artifact, log_sklearn_model

    frame = generate_churn(1500, seed=21)
    if fragile:
        frame = frame[frame["region"] != "west"]
    numeric = ["tenure_months", "monthly_charges", "total_charges", "support_calls", "age"]
    categorical = ["contract", "payment_method", "region", "internet_service"]
    features = frame[numeric + categorical]
    encoder = OneHotEncoder(handle_unknown="error" if fragile else "ignore")
    model = Pipeline(
        [
            (
                "pre",
                ColumnTransformer(
                    [("num", SimpleImputer(), numeric), ("cat", encoder, categorical)]
                ),
            ),
            ("model", DecisionTreeClassifier(max_depth=4, random_state=0)),
        ]
    ).fit(features, 1 - frame["churned"] if inverted else frame["churned"])
    client = _client()
    experiment = client.get_experiment_by_name(MODEL).experiment_id
    run_id = client.create_run(experiment, run_name="hand-made-challenger").info.run_id
    model_uri = log_sklearn_model(run_id, model, features)
    predictions = features.head(200).copy()
    predictions["prediction"] = model.predict(features.head(200))
    log_frame_artifact(client, run_id, predictions, "predictions/test.parquet")
    client.set_terminated(run_id)
    assert mlflow.active_run() is None
    return registry.create_version(
        client, model_name=MODEL, model_uri=model_uri, run_id=run_id,
        tags={lineage.TASK: "classification"}, blessed=True, reason="hand-made for the test",
    )  # fmt: skip


def test_canary_with_a_worse_challenger_rolls_back_on_live_quality(
    in_home: Path, live_service: RunningService, tmp_path: Path
) -> None:
    _reset_champion("1")
    inverted = _register_challenger(inverted=True)
    labels = _empty_labels(tmp_path)
    outcome, failures = _deploy_under_traffic(
        live_service,
        DeploymentConfig(
            model_name=MODEL, version=inverted, strategy="canary", canary_share=0.5,
            min_requests=15, max_minutes=3, poll_seconds=0.5, labels={"path": str(labels)},
            label_column="churned", min_labelled_rows=30,
        ),
        labels,
    )  # fmt: skip
    assert outcome.result == "rolled_back", outcome.reason
    assert "live accuracy" in outcome.reason and "champion live" in outcome.reason
    assert sum(failures) == 0  # fast and error-free: only the labels show it is wrong
    assert registry_state(MODEL)[0]["champion"] == "1"
    assert registry.get_rollout(_client(), MODEL) is None
    tags = _client().get_model_version(MODEL, inverted).tags
    assert tags[lineage.ROLLOUT_RESULT] == "rolled_back"
    assert float(tags[lineage.CANARY_QUALITY_VALUE]) < float(tags[lineage.CANARY_QUALITY_BASELINE])


def test_canary_with_a_challenger_that_raises_rolls_back(
    in_home: Path, live_service: RunningService, tmp_path: Path
) -> None:
    _reset_champion("1")
    fragile = _register_challenger(fragile=True)
    outcome, failures = _deploy_under_traffic(
        live_service,
        DeploymentConfig(
            model_name=MODEL, version=fragile, strategy="canary", canary_share=0.5,
            min_requests=40, max_minutes=3, poll_seconds=0.5, max_error_rate=0.05,
        )
    )  # fmt: skip
    assert outcome.result == "rolled_back", outcome.reason
    assert "error rate" in outcome.reason
    assert registry_state(MODEL)[0]["champion"] == "1"
    assert registry.get_rollout(_client(), MODEL) is None
    tags = _client().get_model_version(MODEL, fragile).tags
    assert tags[lineage.ROLLOUT_RESULT] == "rolled_back"
    assert tags[lineage.INFRA_VALIDATION] == "passed"
    # Only challenger requests failed; the champion kept answering.
    assert sum(failures) > 0


@contextmanager
def _corrupted_after_infra_validation(version: str, folder: Path) -> Iterator[threading.Event]:
    """Delete the model file of ``folder`` as soon as ``version`` passed infra-validation, i.e.
    before the rollout starts: the live service then cannot load it. The event is set once done."""
    stop, done = threading.Event(), threading.Event()

    def corrupt() -> None:
        client = _client()
        while not stop.is_set():
            tags = client.get_model_version(MODEL, version).tags
            if tags.get(lineage.INFRA_VALIDATION) == "passed":
                for path in folder.glob("model.*"):
                    path.unlink()
                done.set()
                return
            stop.wait(0.02)

    watcher = threading.Thread(target=corrupt)
    watcher.start()
    try:
        yield done
    finally:
        stop.set()
        watcher.join(timeout=30)


def _deploy_unloadable_challenger(
    live_service: RunningService,
    tmp_path: Path,
    loaded_error: str,
    within: float,
    *,
    service_url: bool = False,
    **limits: Any,
) -> tuple[DeploymentOutcome, list[int], str]:
    """Deploy an intact copy of v2 that is corrupted once it passed infra-validation, under
    live traffic, and check the rollout is rolled back ``within`` seconds of its start
    (max_minutes is 3) naming the version and ``loaded_error``; champion v1 kept; the version's
    tags and the alias history say why. Returns the outcome, failures and the version."""
    _reset_champion("1")
    client = _client()
    registry.move_alias(client, MODEL, "challenger", "2", reason="test reset")
    version, folder = _intact_copy(tmp_path)
    moves_before = len(registry.alias_history(client, MODEL))
    config = DeploymentConfig(
        model_name=MODEL, version=version, max_minutes=3, poll_seconds=0.5, **limits
    )
    with _corrupted_after_infra_validation(version, folder) as corrupted:
        outcome, failures = _deploy_under_traffic(live_service, config, service_url=service_url)
    assert corrupted.is_set()
    assert outcome.result == "rolled_back", outcome.reason
    assert f"v{version}" in outcome.reason and loaded_error in outcome.reason
    assert f"models:/{MODEL}/{version}" in outcome.reason
    assert registry_state(MODEL)[0]["champion"] == "1"
    assert registry.get_rollout(client, MODEL) is None
    tags = client.get_model_version(MODEL, version).tags
    assert tags[lineage.INFRA_VALIDATION] == "passed"
    assert tags[lineage.ROLLOUT_RESULT] == "rolled_back"
    assert loaded_error in tags[lineage.ROLLOUT_REASON]
    assert loaded_error in tags[lineage.ROLLOUT_NOT_SERVED]
    history = registry.alias_history(client, MODEL)
    moves = [(m.alias, m.from_version, m.to_version) for m in history[moves_before:]]
    # The rollout moved 'challenger' onto the version; its end is recorded as champion v1 kept.
    assert moves == [("challenger", "2", version), ("champion", "1", "1")]
    started, ended = history[-2:]
    assert f"v{version}" in ended.reason and loaded_error in ended.reason
    took = datetime.fromisoformat(ended.at) - datetime.fromisoformat(started.at)
    assert took.total_seconds() < within, outcome.reason
    return outcome, failures, version


def test_canary_whose_challenger_the_live_service_cannot_load_rolls_back_at_once(
    in_home: Path, live_service: RunningService, tmp_path: Path
) -> None:
    """The live service's /metadata names the load error at its next registry poll."""
    outcome, failures, _ = _deploy_unloadable_challenger(
        live_service, tmp_path, "cannot load", within=20, service_url=True,
        strategy="canary", canary_share=0.5, min_requests=15,
    )  # fmt: skip
    assert "the live service at http://127.0.0.1:" in outcome.reason
    assert sum(failures) == 0  # the champion answered every request


def test_shadow_whose_challenger_the_live_service_cannot_load_rolls_back_at_once(
    in_home: Path, live_service: RunningService, tmp_path: Path
) -> None:
    """No service URL: the serving log shows only champion answers after the takeover time."""
    outcome, failures, version = _deploy_unloadable_challenger(
        live_service, tmp_path, "loading it fails", within=30,
        strategy="shadow", min_requests=10, takeover_seconds=3,
    )  # fmt: skip
    assert "answered by the champion, none by" in outcome.reason
    assert sum(failures) == 0
    assert _client().get_model_version(MODEL, version).tags[lineage.SHADOW_ROWS] == "0"
