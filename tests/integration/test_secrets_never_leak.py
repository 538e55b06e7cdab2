"""Secrets never leak: training, a failing training, deployment and serving run with a
password-bearing data URL (userinfo and ``?password=``, through references), an MLflow store on
PostgreSQL whose URI holds the password, and a serving token; then every place the package
stores, logs, raises or answers is searched for the password and the token.

The places: every row of every table of MLflow's database (params, tags, dataset inputs,
versions, aliases), every file under MLOPS_HOME (artifacts, snapshot sidecars, serving log),
Prefect's flow runs (parameters, states and their messages and data), task runs, logs,
artifacts and events, every log record of this process, the services' own logs, the CLI's output
and every HTTP answer.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from prefect_mlops.config import TrainingConfig
from prefect_mlops.data.demo import generate_churn
from prefect_mlops.errors import ConfigError, DataIngestError

PASSWORD = "pw-5f2a9c-SENTINEL"
TOKEN = "tok-8d31e7-SENTINEL"
SECRETS = (PASSWORD, TOKEN)
MODEL = "secrets-churn"
PG = "127.0.0.1:5432"

pytestmark = pytest.mark.usefixtures("prefect_api")


# --- PostgreSQL ----------------------------------------------------------------------------


def _psql(sql: str, db: str = "postgres") -> str:
    done = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-tAq", "-c", sql],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode:
        raise RuntimeError(done.stderr)
    return done.stdout


def _postgres_up() -> None:
    try:
        _psql("SELECT 1")
        return
    except (RuntimeError, OSError):
        pass
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", "15", "main", "start"],
        capture_output=True,
        timeout=60,
    )
    try:
        _psql("SELECT 1")
    except (RuntimeError, OSError) as exc:
        pytest.skip(f"PostgreSQL at {PG} does not answer and cannot be started: {exc}")


@pytest.fixture(scope="module")
def databases() -> Iterator[tuple[str, str]]:
    """(data database, MLflow database), created for this module and dropped after it."""
    _postgres_up()
    suffix = uuid.uuid4().hex[:8]
    names = (f"secrets_data_{suffix}", f"secrets_mlflow_{suffix}")
    for name in names:
        _psql(f"CREATE DATABASE {name}")
    try:
        yield names
    finally:
        for name in names:
            _psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# --- what the run shows --------------------------------------------------------------------


@dataclass
class Seen:
    """Everything searched, by place."""

    places: dict[str, list[str]] = field(default_factory=dict)

    def add(self, place: str, *texts: Any) -> None:
        self.places.setdefault(place, []).extend(
            t if isinstance(t, str) else json.dumps(t, default=str) for t in texts
        )


def _recording(lines: list[str]) -> Any:
    """A ``Logger.handle`` that keeps every record any logger of this process handles
    (Prefect, MLflow and BentoML reconfigure handlers; every record passes through it)."""
    handle = logging.Logger.handle
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")

    def recording(logger: logging.Logger, record: logging.LogRecord) -> None:
        lines.append(formatter.format(record))
        handle(logger, record)

    return recording


def _http(seen: Seen, response: httpx.Response) -> httpx.Response:
    seen.add("http answers", f"{response.status_code} {dict(response.headers)} {response.text}")
    return response


@pytest.fixture(scope="module")
def seen(databases: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seen]:
    """Run the scenario once and collect every place it may have written to."""
    data_db, mlflow_db = databases
    folder = tmp_path_factory.mktemp("secrets")
    home = folder / "mlops-home"
    store = f"postgresql+psycopg://postgres:{PASSWORD}@{PG}/{mlflow_db}"
    data_url = f"postgresql+psycopg://postgres@{PG}/{data_db}"
    started = time.time()
    records: list[str] = []
    result = Seen()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(logging.Logger, "handle", _recording(records))
        mp.chdir(folder)
        mp.setenv("MLOPS_HOME", str(home))
        mp.setenv("MLOPS_TRACKING_URI", store)
        mp.setenv("MLOPS_REGISTRY_URI", store)
        mp.setenv("MLOPS_SERVE_TOKEN", TOKEN)
        mp.delenv("MLOPS_SNAPSHOT_DIR", raising=False)
        mp.setenv("SECRETS_TEST_PASSWORD", PASSWORD)  # the userinfo form, by reference
        mp.setenv("SECRETS_TEST_URL", f"{data_url}?password={PASSWORD}")  # the query form
        _scenario(result, folder, data_url)
        result.add("log records of this process", *records)
        _collect_mlflow(result, mlflow_db)
        _collect_prefect(result)
    _collect_files(result, home, started)
    yield result


def _training_raw(data: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "model_name": MODEL,
        "data": {"query": "SELECT * FROM churn ORDER BY customer_id", **data},
        "target": "churned",
        "id_column": "customer_id",
        "estimator": {
            "class_path": "sklearn.ensemble.HistGradientBoostingClassifier",
            "params": {"max_iter": 30},
        },
        **extra,
    }


def _scenario(seen: Seen, folder: Path, data_url: str) -> None:
    from sqlalchemy import create_engine

    from prefect_mlops import registry
    from prefect_mlops.cli.app import app
    from prefect_mlops.deployment.rollout import DeploymentConfig
    from prefect_mlops.flows.deployment import model_deployment
    from prefect_mlops.flows.training import continuous_training
    from prefect_mlops.serving.process import run_service
    from prefect_mlops.settings import get_settings

    engine = create_engine(f"{data_url}?password={PASSWORD}")
    generate_churn(600, seed=11).to_sql("churn", engine, index=False)
    engine.dispose()

    # 1. training: the whole URL (with ?password=) from an environment variable → v1 champion
    by_url = TrainingConfig.from_mapping(_training_raw({"sql_url_env": "SECRETS_TEST_URL"}))
    first = continuous_training(by_url)
    seen.add("flow results", first.model_dump())
    # 2. training: the URL without password, the password from an environment variable → v2
    by_password = TrainingConfig.from_mapping(
        _training_raw({"sql_url": data_url, "password_env": "SECRETS_TEST_PASSWORD"}, promote=False)
    )
    second = continuous_training(by_password)
    seen.add("flow results", second.model_dump())
    assert (first.version, second.version) == ("1", "2"), (first, second)
    # 2b. training: the password from a Prefect Secret block, resolved where the query runs → v3
    from prefect.blocks.system import Secret

    Secret(value=PASSWORD).save("secrets-test-db-password", overwrite=True)
    by_block = TrainingConfig.from_mapping(
        _training_raw(
            {"sql_url": data_url, "password_secret": "secrets-test-db-password"}, promote=False
        )
    )
    assert by_block.data.connection_url() != data_url  # the block's value is in the URL used
    third = continuous_training(by_block)
    seen.add("flow results", third.model_dump())
    assert third.version == "3", third

    # 3. the literal forms are refused, masked
    for literal in (
        data_url.replace("postgres@", f"postgres:{PASSWORD}@"),
        f"{data_url}?password={PASSWORD}",
    ):
        with pytest.raises(ConfigError) as refused:
            TrainingConfig.from_mapping(_training_raw({"sql_url": literal}), source="x.yaml")
        seen.add("raised errors", str(refused.value), repr(refused.value))

    # 4. a failing training: a query on a missing table
    failing = _training_raw({"sql_url_env": "SECRETS_TEST_URL"})
    failing["data"]["query"] = "SELECT * FROM missing_table"
    with pytest.raises(DataIngestError, match=r"missing_table") as failed:
        continuous_training(TrainingConfig.from_mapping(failing))
    assert "password=***" in str(failed.value), failed.value
    seen.add("raised errors", str(failed.value), repr(failed.value))

    # 5. the CLI: the failing training, a literal password in a config, `score --sql-url`
    failing_yaml = folder / "failing.yaml"
    failing_yaml.write_text(yaml.safe_dump(failing))
    literal_yaml = folder / "literal.yaml"
    literal_yaml.write_text(
        yaml.safe_dump(_training_raw({"sql_url": f"{data_url}?password={PASSWORD}"}))
    )
    runner = CliRunner()
    for args in (
        ["train", "--config", str(failing_yaml)],
        ["train", "--config", str(literal_yaml)],
        [
            *["score", "-m", MODEL, "-o", str(folder / "scored"), "--query", "SELECT 1"],
            *["--sql-url", data_url.replace("postgres@", f"postgres:{PASSWORD}@")],
        ],
    ):
        done = runner.invoke(app, args, env={"COLUMNS": "200", "NO_COLOR": "1"})
        assert done.exit_code == 1, (args, done.output)
        assert "error:" in done.output, done.output
        seen.add("cli output", done.output)

    # 6. deployment: infra-validation in a real server, then blue-green promotion of v2
    deployed = model_deployment(DeploymentConfig(model_name=MODEL, version="2", validation_rows=20))
    seen.add("flow results", deployed.model_dump())
    assert deployed.result == "promoted", deployed

    # 7. serving with the token; a reload that fails names the (masked) registry
    rows = generate_churn(5, seed=3).drop(columns=["churned"])
    records = json.loads(rows.to_json(orient="records", date_format="iso"))
    env = {"MLOPS_SERVE_MODEL_NAME": MODEL, "MLOPS_SERVE_TOKEN": TOKEN}
    auth = {"Authorization": f"Bearer {TOKEN}"}
    client = registry.mlflow_client(get_settings())
    with run_service(env) as service, httpx.Client(base_url=service.url, timeout=60) as http:
        assert _http(seen, http.post("/predict", json={"records": records})).status_code == 401
        wrong = {"Authorization": "Bearer not-the-token"}
        _http(seen, http.post("/predict", json={"records": records}, headers=wrong))
        answer = _http(seen, http.post("/predict", json={"records": records}, headers=auth))
        assert answer.status_code == 200, answer.text
        _http(seen, http.get("/metadata", headers=auth))
        _http(seen, http.post("/reload", headers=auth))
        client.delete_registered_model_alias(MODEL, "champion")
        try:
            broken = _http(seen, http.post("/reload", headers=auth))
            assert broken.status_code == 503, broken.text
            assert "***@" in broken.text, broken.text  # the registry is named, masked
            meta = _http(seen, http.get("/metadata", headers=auth))
            assert "***@" in json.dumps(meta.json()["reload"]), meta.text
        finally:
            client.set_registered_model_alias(MODEL, "champion", "2")
        _http(seen, http.get("/docs.json"))
        seen.add("service logs", service.log_tail(100_000))


def _collect_mlflow(seen: Seen, mlflow_db: str) -> None:
    """Every row of every table of MLflow's database, as JSON."""
    tables = _psql(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
        mlflow_db,
    ).split()
    assert "params" in tables and "model_versions" in tables, tables
    for table in tables:
        rows = _psql(f'SELECT row_to_json(t)::text FROM "{table}" t', mlflow_db)
        seen.add("mlflow database", f"{table}: {rows}")
    params = _psql("SELECT value FROM params WHERE key = 'data.source'", mlflow_db)
    assert "password=***" in params, params  # the URL is shown, masked


def _every(read: Any) -> list[Any]:
    """Every record a paged Prefect read gives (200 a page, the API's most)."""
    out: list[Any] = []
    while page := read(limit=200, offset=len(out)):
        out.extend(page)
        if len(page) < 200:
            break
    return out


def _collect_prefect(seen: Seen) -> None:
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter

    with get_client(sync_client=True) as client:
        runs = _every(client.read_flow_runs)
        assert any(r.state and r.state.is_failed() for r in runs), "no failed flow run"
        for run in runs:
            seen.add("prefect flow runs", run.model_dump_json())
            for state in client.read_flow_run_states(run.id):
                seen.add("prefect flow-run states", state.model_dump_json())
        for task_run in _every(client.read_task_runs):
            seen.add("prefect task runs", task_run.model_dump_json())
        logs = _every(client.read_logs)
        assert logs, "no Prefect log read back"
        seen.add("prefect logs", *(log.model_dump_json() for log in logs))
        for artifact in _every(client.read_artifacts):
            seen.add("prefect artifacts", artifact.model_dump_json())
        page = client.read_events(filter=EventFilter(), limit=50)  # the API's most
        assert page.events, "no Prefect event read back"
        while page is not None:
            seen.add("prefect events", *(e.model_dump_json() for e in page.events))
            page = client.read_events_page(str(page.next_page)) if page.next_page else None


def _collect_files(seen: Seen, home: Path, started: float) -> None:
    """Every file under MLOPS_HOME (artifacts, snapshots and sidecars, serving log), the
    services' log files and Prefect's stored results written since the scenario started."""
    from prefect.settings import PREFECT_LOCAL_STORAGE_PATH

    sidecars = list((home / "snapshots").glob("*.json"))
    assert sidecars, "no snapshot sidecar written"
    roots = [home, Path(PREFECT_LOCAL_STORAGE_PATH.value()).expanduser()]
    files = [p for root in roots if root.exists() for p in root.rglob("*") if p.is_file()]
    files += list(Path("/tmp").glob("mlops-service-*.log"))
    for path in files:
        if path.stat().st_mtime >= started - 1:
            seen.add("files", f"{path}: {path.read_bytes().decode('utf-8', 'replace')}")


@pytest.mark.parametrize(
    "place",
    [
        "flow results",
        "raised errors",
        "cli output",
        "http answers",
        "service logs",
        "log records of this process",
        "mlflow database",
        "prefect flow runs",
        "prefect flow-run states",
        "prefect task runs",
        "prefect logs",
        "prefect artifacts",
        "prefect events",
        "files",
    ],
)
def test_no_secret_anywhere(seen: Seen, place: str) -> None:
    texts = seen.places.get(place)
    assert texts, f"nothing collected from {place}: the search would prove nothing"
    for secret in SECRETS:
        hits = [t for t in texts if secret in t]
        assert not hits, f"{secret} found in {place}: {hits[0][:2000]}"
