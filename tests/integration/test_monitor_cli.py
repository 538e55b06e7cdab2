"""``prefect-mlops monitor NAME`` as users run it: a subprocess of the console script against
the test harness's Prefect API, with the MLflow store and serving log of a champion trained by
the real training flow. Exit 5 on drifted traffic, 0 on clean traffic (the message printed
either way), 1 and one ``error:`` line naming an unknown model."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "flows"))  # monitoring_support

from monitoring_support import Trained, day_slot, serve, trained_champion

from prefect_mlops.data.demo import generate_churn

MODEL = "churn-monitor-cli"
CLI = str(Path(sys.executable).with_name("prefect-mlops"))


@pytest.fixture(scope="module")
def trained(prefect_api: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    """v1 of ``churn-monitor-cli`` (the champion), trained by the real flow on 4,000 rows."""
    with trained_champion(tmp_path_factory.mktemp("monitor-cli"), MODEL) as champion:
        yield champion


def _monitor(trained: Trained, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``prefect-mlops monitor *args`` in a fresh process: this module's MLOPS_HOME and serving
    log, the harness's Prefect API (no ephemeral server), telemetry off."""
    from prefect.settings import PREFECT_API_URL

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLOPS_"))}
    env |= {
        "MLOPS_HOME": str(trained.home),
        "MLOPS_SERVING_LOG_DIR": str(trained.log_dir),
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "COLUMNS": "200",
        "NO_COLOR": "1",
    }
    return subprocess.run(
        [CLI, "monitor", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )


def _window(start: datetime) -> list[str]:
    end = start + timedelta(hours=2)
    return ["--start", f"{start:%Y-%m-%dT%H:%M:%S}", "--end", f"{end:%Y-%m-%dT%H:%M:%S}"]


def test_monitor_exits_5_on_drifted_traffic_and_prints_what_it_found(
    trained: Trained, tmp_path: Path
) -> None:
    start = day_slot(0)
    traffic = generate_churn(3000, seed=22)
    traffic["monthly_charges"] = traffic["monthly_charges"] * 1.6 + 15
    traffic["contract"] = np.where(
        np.arange(len(traffic)) % 3 == 0, "month-to-month", traffic["contract"]
    )
    serve(trained, traffic, start=start)

    done = _monitor(trained, tmp_path, MODEL, *_window(start))

    assert done.returncode == 5, done.stdout + done.stderr
    assert f"{MODEL} v1, 3,000 rows:" in done.stdout
    (message,) = [line for line in done.stdout.splitlines() if line.startswith(f"{MODEL} v1")]
    assert "drift in " in message and "monthly_charges" in message and "contract" in message
    assert "MLflow run: " in done.stdout


def test_monitor_exits_0_on_clean_traffic_and_prints_the_message(
    trained: Trained, tmp_path: Path
) -> None:
    start = day_slot(1)
    serve(trained, generate_churn(3000, seed=21), start=start)

    done = _monitor(trained, tmp_path, MODEL, *_window(start))

    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{MODEL} v1, 3,000 rows: no skew, no drift" in done.stdout


def test_monitor_of_an_unknown_model_exits_1_with_one_line_naming_it(
    trained: Trained, tmp_path: Path
) -> None:
    done = _monitor(trained, tmp_path, "ghost-model")

    assert done.returncode == 1, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    assert errors == ["error: registered model 'ghost-model' not found in the registry"]
    assert done.stdout == ""
    assert "Traceback" not in done.stderr  # refused before any flow run starts
