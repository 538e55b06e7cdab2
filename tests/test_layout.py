"""The source checkout imports like the installed package.

flows/, tasks/ and deployments/ are root folders installed as subpackages of prefect_mlops. A
process whose sys.path starts with the repository root (``python -c`` in the checkout, a Prefect
worker or flow loader started there, the Dask workers such a process spawns) imports the source
folder prefect_mlops/ instead; every subpackage must still import.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_checkout_root_on_sys_path_imports_every_subpackage() -> None:
    code = (
        "import prefect_mlops, prefect_mlops.tasks.scoring, prefect_mlops.flows.training, "
        "prefect_mlops.deployments; "
        "print(prefect_mlops.__file__); print(prefect_mlops.tasks.scoring.__file__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    package_file, tasks_file = done.stdout.split()
    # The source folder was imported (the case that used to fail), and tasks came from the
    # same checkout's tasks/ folder.
    assert Path(package_file).resolve() == ROOT / "prefect_mlops" / "__init__.py"
    assert Path(tasks_file).resolve() == ROOT / "tasks" / "scoring.py"
