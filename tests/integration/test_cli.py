"""The prefect-mlops command line: help, light imports, init → train → models, registry errors."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from helpers import write_frame
from typer.main import get_command
from typer.testing import CliRunner

from prefect_mlops.cli.app import app
from prefect_mlops.config import TrainingConfig
from prefect_mlops.data.demo import generate_churn

WIDE = {"COLUMNS": "200", "NO_COLOR": "1"}
HEAVY = ("great_expectations", "evidently", "bentoml", "mlflow")
EXPECTED_OPTIONS = {
    "demo": ["--rows", "--seed"],
    "train": ["--config", "-c"],
    "models": ["name"],
    "promote": ["name", "version", "--reason"],
    "rollback": ["name", "--reason"],
    "init": [
        "directory",
        "--data",
        "--target",
        "--model-name",
        "--id-column",
        "--timestamp-column",
        "--force",
    ],
}


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env=WIDE)
    return result.exit_code, result.output


# --- help -----------------------------------------------------------------------------------


def test_app_help_lists_every_command() -> None:
    code, output = _invoke("--help")
    assert code == 0, output
    assert "Usage: prefect-mlops" in output
    for command in EXPECTED_OPTIONS:
        assert command in output
    assert "MLOPS_HOME" in output


def test_no_arguments_shows_the_help() -> None:
    code, output = _invoke()
    assert code in (0, 2)  # click's no_args_is_help exits with the usage code on newer versions
    assert "Usage: prefect-mlops" in output


@pytest.mark.parametrize("command", list(EXPECTED_OPTIONS))
def test_command_help_mentions_its_options(command: str) -> None:
    code, output = _invoke(command, "--help")
    assert code == 0, output
    assert f"Usage: prefect-mlops {command}" in output
    for option in EXPECTED_OPTIONS[command]:
        assert option in output, option


@pytest.mark.parametrize("command", list(get_command(app).commands))
def test_every_registered_command_documents_its_parameters(command: str) -> None:
    click_command = get_command(app).commands[command]
    code, output = _invoke(command, "--help")
    assert code == 0, output
    assert click_command.help and click_command.help.split("\n")[0][:40] in output
    for param in click_command.params:
        shown = param.opts[0] if param.opts[0].startswith("-") else param.name
        assert shown in output, (command, shown)


def test_console_script_help_is_fast_and_light(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "prefect-mlops"
    done = subprocess.run(
        [str(script), "--help"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200", "HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    assert "Usage: prefect-mlops" in done.stdout
    assert "train" in done.stdout and "init" in done.stdout
    # No heavy library is imported by the CLI module or by any command's --help.
    commands = list(get_command(app).commands)
    probe = (
        "import sys\n"
        "from prefect_mlops.cli.app import app\n"
        f"for args in [['--help'], *[[c, '--help'] for c in {commands!r}]]:\n"
        "    try:\n"
        "        app(args, prog_name='prefect-mlops')\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code == 0, (args, exc.code)\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


# --- init -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def churn_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli-data")
    return write_frame(generate_churn(800, seed=21), folder / "data" / "churn.csv")


def _init(directory: Path, data: Path, *extra: str) -> tuple[int, str]:
    return _invoke("init", str(directory), "--data", str(data), "--target", "churned", *extra)


def test_init_writes_a_loadable_project(
    churn_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.flows import load_flow_from_entrypoint

    project = tmp_path / "churn-model"
    code, output = _init(project, churn_file, "--id-column", "customer_id")
    assert code == 0, output
    assert f"wrote {project / 'train.yaml'}" in output
    assert "prefect-mlops train --config" in output

    raw = yaml.safe_load((project / "train.yaml").read_text())
    assert not Path(raw["data"]["path"]).is_absolute()  # relative: the project can move
    config = TrainingConfig.from_yaml(project / "train.yaml")
    assert Path(config.data.path) == churn_file.resolve()
    assert config.model_name == "churn-model"  # default: the folder name
    assert (config.target, config.task, config.id_column) == (
        "churned",
        "classification",
        "customer_id",
    )
    assert config.split.method == "random"

    deployment_file = yaml.safe_load((project / "prefect.yaml").read_text())
    by_name = {d["name"]: d for d in deployment_file["deployments"]}
    deployment = by_name["churn-model-continuous-training"]
    rollout = by_name["churn-model-model-deployment"]
    monitoring = by_name["churn-model-monitoring"]
    assert deployment["name"] == "churn-model-continuous-training"
    assert deployment["work_pool"]["name"] and deployment["tags"]
    assert all(s["active"] is False for s in deployment["schedules"])
    pull_dir = deployment_file["pull"][0]["prefect.deployments.steps.set_working_directory"]
    assert Path(pull_dir["directory"]) == project.resolve()
    monkeypatch.chdir(pull_dir["directory"])  # where a worker runs it
    flow = load_flow_from_entrypoint(deployment["entrypoint"], use_placeholder_flow=False)
    params = flow.validate_parameters(deployment["parameters"])
    assert TrainingConfig.from_yaml(params["config_path"]) == config
    # ... and the model-deployment flow for the challenger that training blesses.
    assert rollout["name"] == "churn-model-model-deployment"
    assert rollout["schedules"] and all(s["active"] is False for s in rollout["schedules"])
    assert deployment_file["build"] is None and deployment_file["push"] is None
    deploy_flow = load_flow_from_entrypoint(rollout["entrypoint"], use_placeholder_flow=False)
    deploy_params = deploy_flow.validate_parameters(rollout["parameters"])
    assert deploy_params["config"].model_name == config.model_name
    assert deploy_params["config"].strategy == "canary"  # triggered by mlops.model.blessed
    # ... and hourly monitoring of its champion, thresholds from train.yaml's monitoring section.
    assert monitoring["name"] == "churn-model-monitoring"
    assert [s["interval"] for s in monitoring["schedules"]] == [3600]
    assert all(s["active"] is False for s in monitoring["schedules"])
    monitor_flow = load_flow_from_entrypoint(monitoring["entrypoint"], use_placeholder_flow=False)
    assert monitor_flow.validate_parameters(monitoring["parameters"])["model_name"] == "churn-model"
    assert raw["monitoring"]["drift_share"] == 0.5 and config.monitoring.min_rows == 50


def test_init_with_a_timestamp_column_uses_a_time_split(churn_file: Path, tmp_path: Path) -> None:
    code, output = _init(
        tmp_path / "p", churn_file, "--timestamp-column", "event_ts", "--model-name", "named"
    )
    assert code == 0, output
    config = TrainingConfig.from_yaml(tmp_path / "p" / "train.yaml")
    assert config.model_name == "named"
    assert (config.split.method, config.data.timestamp_column) == ("time", "event_ts")


@pytest.mark.parametrize(
    ("option", "column"),
    [("--target", "will_churn"), ("--id-column", "cust_no"), ("--timestamp-column", "when")],
)
def test_init_with_a_missing_column_names_it(
    churn_file: Path, tmp_path: Path, option: str, column: str
) -> None:
    args = ["init", str(tmp_path / "p"), "--data", str(churn_file), "--target", "churned"]
    if option == "--target":
        args[-1] = column
    else:
        args += [option, column]
    code, output = _invoke(*args)
    assert code == 1
    assert "error:" in output and repr(column) in output
    assert not (tmp_path / "p").exists()


def test_init_with_a_missing_data_file_fails(tmp_path: Path) -> None:
    code, output = _init(tmp_path / "p", tmp_path / "nowhere.csv")
    assert code == 1
    assert "nowhere.csv" in output
    assert not (tmp_path / "p" / "train.yaml").exists()


def test_init_does_not_overwrite_without_force(churn_file: Path, tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "prefect.yaml").write_text("# mine\n")
    code, output = _init(project, churn_file)
    assert code == 1
    assert "--force" in output and "prefect.yaml" in output
    assert (project / "prefect.yaml").read_text() == "# mine\n"
    assert not (project / "train.yaml").exists()
    code, output = _init(project, churn_file, "--force")
    assert code == 0, output
    assert "deployments" in yaml.safe_load((project / "prefect.yaml").read_text())


# --- train → models → promote / rollback ----------------------------------------------------


@pytest.fixture(scope="module")
def trained(
    prefect_api: None, churn_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, str]]:
    """``init`` + ``train`` once: (MLOPS_HOME, train output) with model ``cli-churn`` v1."""
    folder = tmp_path_factory.mktemp("cli-train")
    home = folder / "mlops-home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_HOME", str(home))
        for key in ("MLOPS_TRACKING_URI", "MLOPS_REGISTRY_URI", "MLOPS_SNAPSHOT_DIR"):
            mp.delenv(key, raising=False)
        code, output = _init(
            folder / "cli-churn",
            churn_file,
            "--id-column",
            "customer_id",
            "--timestamp-column",
            "event_ts",
        )
        assert code == 0, output
        config = folder / "cli-churn" / "train.yaml"
        raw = yaml.safe_load(config.read_text())
        raw["estimator"]["params"] = {"max_iter": 40}  # keep the run fast
        config.write_text(yaml.safe_dump(raw))
        code, output = _invoke("train", "--config", str(config))
        assert code == 0, output
        yield home, output


@pytest.fixture
def in_trained_home(trained: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MLOPS_HOME", str(trained[0]))
    return trained[1]


def test_train_reports_the_blessed_version(in_trained_home: str) -> None:
    output = in_trained_home
    assert "cli-churn version 1: blessed" in output
    assert "aliases:  challenger, champion" in output
    assert "champion before this run: none" in output
    assert "roc_auc=" in output


def test_models_lists_the_version_with_its_aliases(in_trained_home: str) -> None:
    code, output = _invoke("models", "cli-churn")
    assert code == 0, output
    row = next(line for line in output.splitlines() if line.strip("│ ").startswith("1 "))
    assert "champion" in row and "challenger" in row and "true" in row
    assert "roc_auc=" in output


def test_models_without_a_name_lists_the_model(in_trained_home: str) -> None:
    code, output = _invoke("models")
    assert code == 0, output
    row = next(line for line in output.splitlines() if "cli-churn" in line)
    assert "champion→v1" in row and "challenger→v1" in row


def test_promote_to_a_missing_version_fails_and_keeps_the_champion(in_trained_home: str) -> None:
    code, output = _invoke("promote", "cli-churn", "9")
    assert code == 1
    assert "cli-churn" in output and "'9'" in output
    code, output = _invoke("rollback", "cli-churn")
    assert code == 1
    assert "no previous champion" in output
    _, listing = _invoke("models")
    assert "champion→v1" in listing


@pytest.mark.parametrize("command", [["promote", "ghost-model", "1"], ["rollback", "ghost-model"]])
def test_promote_and_rollback_of_an_unknown_model_fail(
    in_trained_home: str, command: list[str]
) -> None:
    code, output = _invoke(*command)
    assert code == 1
    assert "error:" in output and "ghost-model" in output


def test_models_of_an_unknown_model_fails(in_trained_home: str) -> None:
    code, output = _invoke("models", "ghost-model")
    assert code == 1
    assert "ghost-model" in output


def test_train_again_on_the_same_data_and_config_exits_4_unchanged(
    trained: tuple[Path, str], in_trained_home: str
) -> None:
    home, _ = trained
    code, output = _invoke("train", "--config", str(home.parent / "cli-churn" / "train.yaml"))
    assert code == 4, output
    assert "unchanged" in output
    _, listing = _invoke("models")
    row = next(line for line in listing.splitlines() if "cli-churn" in line)
    assert "champion→v1" in row and " 1 " in row  # nothing new registered


def test_a_configured_local_api_that_does_not_answer_is_one_line(tmp_path: Path) -> None:
    """The error boundary: a library error is `error: ...` on stderr and exit 1, no traceback."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLOPS_"))}
    env |= {"PREFECT_API_URL": f"http://127.0.0.1:{_free_port()}/api", "HOME": str(tmp_path)}
    done = subprocess.run(
        [str(Path(sys.executable).with_name("prefect-mlops")), "train", "-c", "any.yaml"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: the Prefect API at http://127.0.0.1:") and "make server" in line


def _free_port() -> int:
    from prefect_mlops.processes import free_port

    return free_port()


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--labels", "labels.csv"], "canary strategy only"),
        (["--strategy", "canary", "--quality-metric", "auc"], "quality_metric 'auc'"),
        (["--strategy", "canary", "--max-quality-drop", "-1"], "max_quality_drop"),
        (["--strategy", "canary", "--service-url", "localhost:3000"], "service_urls"),
    ],
    ids=["labels-without-canary", "unknown-metric", "negative-drop", "service-url-no-scheme"],
)
def test_deploy_refuses_bad_quality_options_before_anything_runs(
    in_trained_home: str, options: list[str], named: str
) -> None:
    _, before = _invoke("models")
    code, output = _invoke("deploy", "cli-churn", *options)
    assert code == 1
    assert named in output
    assert _invoke("models")[1] == before


# --- serve ------------------------------------------------------------------------------------


def test_serve_with_a_relative_home_reads_that_registry(
    trained: tuple[Path, str], churn_file: Path, tmp_path: Path
) -> None:
    """The README's `prefect-mlops serve NAME` after `make demo`: MLOPS_HOME is relative (the
    default ./.mlops), while the server runs from a neutral folder; it must still serve the
    registry of the folder the command was started in."""
    import os

    import httpx
    import pandas as pd

    from prefect_mlops.processes import free_port, start_server, stop_process
    from prefect_mlops.serving.process import RunningService, wait_ready

    home, _ = trained
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    env["MLOPS_HOME"] = home.name  # relative to the working directory, like ./.mlops
    env["MLOPS_SERVE_RELOAD_SECONDS"] = "0"
    port = free_port()
    cli = str(Path(sys.executable).with_name("prefect-mlops"))
    server = start_server(
        [cli, "serve", "cli-churn", "--port", str(port)],
        env=env,
        cwd=home.parent,
        log_path=tmp_path / "serve.log",
    )
    process = server.process
    service = RunningService(url=f"http://127.0.0.1:{port}", server=server)
    try:
        wait_ready(service, "/readyz", 240)
        row = pd.read_csv(churn_file).drop(columns=["churned"]).head(2)
        reply = httpx.post(
            service.url + "/predict", content=row.to_json(orient="records"), timeout=60
        )
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["model_version"] == "1" and len(body["predictions"]) == 2
    finally:
        stop_process(process)
    # The request was logged under that home too (written at shutdown at the latest).
    assert list((home / "serving_log").rglob("*.parquet")), service.log_tail()
