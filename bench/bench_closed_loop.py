"""Benchmark of the closed loop: `.venv/bin/python bench/bench_closed_loop.py [--runs N]`.

Runs the demo command (`prefect-mlops demo`, what `make demo` runs: a local `prefect server`, a
process worker polling every second, the loop's deployments, the BentoML service under live
traffic) ``--runs`` times, each in a fresh ``MLOPS_HOME``, and reads the timed milestones it
writes with ``--json``:

* drift event → retrain run start (goal ≤ 2 s): from the ``mlops.drift.detected`` event's
  ``occurred`` to the triggered run's ``start_time`` (Running: the worker has picked it up and
  its process has loaded the flow), and to its creation (the automation's part);
* drift onset → new champion answering (goal ≤ 60 s): from the first drifted request to the
  service's ``/metadata`` naming the promoted version with no rollout left.

Writes bench/out/closed_loop.json and the "Closed loop" section of bench/README.md (between
its markers); ``--no-readme`` leaves the README alone.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench_common import child_env

from prefect_mlops.processes import free_port

BENCH = Path(__file__).resolve().parent
README = BENCH / "README.md"
OUT = BENCH / "out" / "closed_loop.json"
CLI = Path(sys.executable).parent / "prefect-mlops"
START, END = "<!-- closed-loop:start -->", "<!-- closed-loop:end -->"
GOAL_EVENT_TO_START, GOAL_ONSET_TO_CHAMPION = 2.0, 60.0
KEYS = {
    "event_to_retrain_created_seconds": "drift event → retrain run created",
    "event_to_retrain_start_seconds": "drift event → retrain run started",
    "onset_to_new_champion_seconds": "drift onset → new champion answering",
    "setup_seconds": "set-up (server, champion, deploy, service)",
    "total_seconds": "whole demo",
}
STEPS = [
    ("drift_onset", "drift_event", "onset → drift event (monitoring run)"),
    ("drift_event", "retrain_started", "drift event → retrain running"),
    ("retrain_started", "blessed_event", "retrain running → blessed"),
    ("blessed_event", "rollout_started", "blessed → model-deployment running"),
    ("rollout_started", "rollout_ended", "infra-validation + canary → promoted"),
    ("rollout_ended", "new_champion_answering", "promoted → service answers"),
]


def one_run(folder: Path) -> dict[str, Any]:
    """The demo once in ``folder``; returns its result JSON plus the load around it."""
    out = folder / "result.json"
    load_before = os.getloadavg()[0]
    began = time.perf_counter()
    done = subprocess.run(
        [str(CLI), "demo", "--port", str(free_port()), "--json", str(out)],
        env=child_env(MLOPS_HOME=str(folder / "mlops")), cwd=folder, capture_output=True,
        text=True, timeout=1200, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"the demo failed ({done.returncode}):\n{done.stdout[-4000:]}"
                         f"{done.stderr[-4000:]}")  # fmt: skip
    result = json.loads(out.read_text())
    result["command_seconds"] = time.perf_counter() - began
    result["load_before"], result["load_after"] = load_before, os.getloadavg()[0]
    result["steps"] = [line for line in done.stdout.splitlines() if line.startswith("[")]
    return result


def _fmt(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} ({', '.join(f'{v:.1f}' for v in values)})"


def section(runs: list[dict[str, Any]], when: str) -> str:
    """The README section's text."""
    mark = {True: "✅", False: "❌"}
    start = [r["event_to_retrain_start_seconds"] for r in runs]
    onset = [r["onset_to_new_champion_seconds"] for r in runs]
    loads = ", ".join(f"{r['load_before']:.1f}" for r in runs)
    lines = [
        f"Run on {when} ({len(runs)} run(s) of `prefect-mlops demo`, each in a fresh "
        f"`MLOPS_HOME`). Machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()}; 1-min load before each run: "
        f"{loads} (the machine is shared).",
        "",
        "| figure | seconds: median (runs) | goal |",
        "|---|---:|---|",
    ]
    for key, label in KEYS.items():
        goal = ""
        if key == "event_to_retrain_start_seconds":
            goal = f"≤ {GOAL_EVENT_TO_START:.0f} s {mark[statistics.median(start) <= 2.0]}"
        if key == "onset_to_new_champion_seconds":
            goal = f"≤ {GOAL_ONSET_TO_CHAMPION:.0f} s {mark[statistics.median(onset) <= 60.0]}"
        lines.append(f"| {label} | {_fmt([r[key] for r in runs])} | {goal} |")
    lines += ["", "Where the time from drift onset to the new champion goes (median s):", "",
              "| step | seconds |", "|---|---:|"]  # fmt: skip
    for first, last, label in STEPS:
        values = [r["times"][last] - r["times"][first] for r in runs]
        lines.append(f"| {label} | {statistics.median(values):.1f} |")
    lines += ["", "The demo's own output (last run):", "", "```", *runs[-1]["steps"], "```"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args()
    runs = []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="bench-loop-") as tmp:
            runs.append(one_run(Path(tmp)))
        r = runs[-1]
        print(f"run {i + 1}: event → retrain start {r['event_to_retrain_start_seconds']:.1f} s, "
              f"onset → champion {r['onset_to_new_champion_seconds']:.1f} s, "
              f"total {r['total_seconds']:.1f} s")  # fmt: skip
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps({"when": when, "runs": runs}, indent=2))
    text = section(runs, when)
    print(text)
    if not args.no_readme:
        readme = README.read_text()
        block = f"{START}\n{text}\n{END}"
        if START in readme:
            readme = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, readme,
                            flags=re.S)  # fmt: skip
        else:
            readme = readme.rstrip("\n") + "\n\n## Closed loop\n\n" + block + "\n"
        README.write_text(readme)


if __name__ == "__main__":
    main()
