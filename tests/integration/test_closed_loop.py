"""The closed loop, end to end, through the demo command itself (`prefect-mlops demo`, what
`make demo` runs), so the demo cannot rot: a real `prefect server` on a loopback port, a real
process worker, the loop's deployments from `prefect_mlops.automations` deployed with
`prefect deploy --all`, a real BentoML service answering live traffic and the MLflow store.

Drifted traffic → monitoring emits `mlops.drift.detected` → exactly one retrain → a new version
registered and blessed → the model-deployment flow canaries and promotes it → the service
answers with it. Read back from the registry and the Prefect API after the command ends, not
only from what the command says. Prints the seconds from the drift event to the retrain run's
start, and from the drift onset to the new champion answering.

Part of the default suite: 85 s on the 2-core machine when quiet (the demo itself 79 s), about
2.5 min under a load of 3-6.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from prefect_mlops import registry
from prefect_mlops.cli.demo_loop import DEMO_MODEL, loop_home
from prefect_mlops.processes import free_port, telemetry_off_env
from prefect_mlops.registry import lineage
from prefect_mlops.settings import Settings

CLI = Path(sys.executable).parent / "prefect-mlops"


def test_make_demo_closes_the_loop(tmp_path: Path) -> None:
    env = {k: v for k, v in telemetry_off_env().items() if not k.startswith(("PREFECT_", "MLOPS_"))}
    env["MLOPS_HOME"] = str(tmp_path / "mlops")
    result_path = tmp_path / "result.json"
    done = subprocess.run(
        [str(CLI), "demo", "--port", str(free_port()), "--json", str(result_path)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    output = done.stdout[-6000:] + done.stderr[-6000:]
    assert done.returncode == 0, output
    result = json.loads(result_path.read_text())
    onset_to_champion = result["onset_to_new_champion_seconds"]
    print(
        f"\nclosed loop: drift event → retrain run started "
        f"{result['event_to_retrain_start_seconds']:.1f} s (created "
        f"{result['event_to_retrain_created_seconds']:.1f} s); drift onset → new champion "
        f"answering {onset_to_champion:.1f} s; demo total {result['total_seconds']:.1f} s "
        f"(set-up {result['setup_seconds']:.1f} s)"
    )
    # What the command printed is what a user sees: every step and the URLs.
    for step in ("drift detected", "retrain started", "blessed", "canary decided",
                 "service answers", "Prefect UI:", "MLflow UI:", "service:"):  # fmt: skip
        assert step in done.stdout, f"{step!r} not printed:\n{output}"
    assert result["drift_events"] >= 1
    assert result["retrain_runs"] == 1, "exactly one retrain for the drift"
    champion_before, new = result["champion_before"], result["new_version"]
    assert (champion_before, new) == ("1", "2")
    # The registry, read afresh: v2 registered by the triggered run, blessed, promoted.
    settings = Settings(home=loop_home(tmp_path / "mlops"))
    client = registry.mlflow_client(settings)
    tags = client.get_model_version(DEMO_MODEL, new).tags
    assert tags[lineage.BLESSED] == "true"
    assert tags[lineage.ROLLOUT_RESULT] == "promoted"
    assert registry.alias_state(client, DEMO_MODEL)["champion"] == new
    run_tags = client.get_run(client.get_model_version(DEMO_MODEL, new).run_id).data.tags
    assert run_tags[lineage.TRIGGER_EVENT] == "mlops.drift.detected"
    last = registry.alias_history(client, DEMO_MODEL)[-1]
    assert (last.alias, last.from_version, last.to_version) == ("champion", "1", new)
    # The service answered with the new champion (its /metadata, then its answers).
    assert result["answering_version"] == new
    assert result["rollout_result"] == "promoted"
    # Every step happened in order.
    times = result["times"]
    order = ["drift_onset", "drift_event", "retrain_created", "retrain_started", "blessed_event",
             "rollout_started", "rollout_ended", "new_champion_answering"]  # fmt: skip
    assert [times[k] for k in order] == sorted(times[k] for k in order), times
