"""The process set-up of the commands that run flows or load models, before the heavy imports."""

from __future__ import annotations

import os

from prefect_mlops.processes import TELEMETRY_OFF

QUIET_ENVIRONMENT = {
    **TELEMETRY_OFF,
    # Prefect's ephemeral API takes ~15 s to start; give a busy machine room.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    # MLflow draws a progress bar per artifact download (a reference profile, a config):
    # noise between the lines a command prints.
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


def quiet_environment() -> None:
    """Telemetry off, a patient ephemeral start-up and no MLflow download bars, unless the user
    set these already."""
    for key, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(key, value)


def prepare_flow_process(*, loads_models: bool) -> None:
    """Set up a command that runs a flow: quiet environment, the Prefect API to use (a configured
    or the local running server, else ephemeral: see :mod:`prefect_mlops.cli.prefect_api`) and,
    when this process saves or loads a model, skops imported first. Call it before Prefect is
    imported: Prefect reads ``PREFECT_API_URL`` once, at import.

    Raises PrefectAPIError when a configured loopback API does not answer.
    """
    quiet_environment()
    if loads_models:
        import_model_format_first()
    from prefect_mlops.cli.prefect_api import choose_prefect_api
    from prefect_mlops.settings import get_settings

    choose_prefect_api(get_settings())


def import_model_format_first() -> None:
    """Import skops (MLflow's format for scikit-learn models) before Prefect and MLflow.

    Its import looks up the module of each of ~800 numpy and scikit-learn objects by scanning
    every module loaded so far (``skops.io._utils.whichmodule``): with Prefect, MLflow and their
    dependencies loaded first that scan took ~9 s of a 30,000-row ``score`` run (flow wall
    11.3 s → 2.2 s, whole command 21.4 s → 15.4 s on this project's 2-core machine). Commands
    that save or load a model in their own process (demo, train, score) call this first;
    ``deploy`` does not: its service subprocess loads the models.
    """
    import skops.io  # noqa: F401
