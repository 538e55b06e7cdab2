"""The package's layout and public surface.

The core lives under ``src/``; the root folders flows/, tasks/ and deployments/ are installed as
its subpackages. A process started in the checkout (``python -c``, a Prefect worker or flow
loader, the Dask workers they spawn) has the checkout's root on ``sys.path`` and must still import
the one installed package, never a half-package from the working directory.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

import prefect_mlops

ROOT = Path(__file__).resolve().parents[2]


def _run_in_checkout(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_checkout_root_on_sys_path_imports_the_installed_package() -> None:
    done = _run_in_checkout(
        "import prefect_mlops, prefect_mlops.tasks.scoring, prefect_mlops.flows.training, "
        "prefect_mlops.deployments; "
        "print(prefect_mlops.__file__); print(prefect_mlops.tasks.scoring.__file__)"
    )
    assert done.returncode == 0, done.stderr
    package_file, tasks_file = done.stdout.split()
    assert Path(package_file).resolve() == ROOT / "src" / "prefect_mlops" / "__init__.py"
    assert Path(tasks_file).resolve() == ROOT / "tasks" / "scoring.py"


@pytest.mark.parametrize("name", ["prefect_mlops.tests", "prefect_mlops.bench"])
def test_root_folders_other_than_the_prefect_layer_are_not_subpackages(name: str) -> None:
    done = _run_in_checkout(f"import {name}")
    assert done.returncode != 0
    assert "ModuleNotFoundError" in done.stderr


def test_every_core_subpackage_is_packaged() -> None:
    """A new folder under src/prefect_mlops/ must be listed in pyproject's packages."""
    import tomllib

    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    core = ROOT / "src" / "prefect_mlops"
    folders = {
        "prefect_mlops." + p.parent.relative_to(core).as_posix().replace("/", ".")
        for p in core.rglob("__init__.py")
        if p.parent != core
    }
    assert folders <= listed, sorted(folders - listed)


def test_public_names_resolve() -> None:
    assert prefect_mlops.__version__ == importlib.metadata.version("prefect-mlops")
    assert set(prefect_mlops.__all__) == {"__version__", *prefect_mlops._PUBLIC}
    for name in prefect_mlops.__all__:
        assert getattr(prefect_mlops, name) is not None, name
    assert sorted(dir(prefect_mlops)) == sorted(prefect_mlops.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        prefect_mlops.nope  # noqa: B018


def test_errors_are_one_family() -> None:
    from prefect_mlops import errors

    classes = [
        obj for obj in vars(errors).values() if isinstance(obj, type) and issubclass(obj, Exception)
    ]
    assert all(issubclass(cls, errors.MLOpsError) for cls in classes)


def test_import_is_light() -> None:
    """Prefect imports every collection it finds: the package itself imports no heavy stack."""
    done = _run_in_checkout(
        "import sys, prefect_mlops; "
        "print(sorted(m for m in ('prefect', 'mlflow', 'bentoml', 'great_expectations', "
        "'sklearn', 'pandas', 'evidently') if m in sys.modules))"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_cli_module_is_the_console_script() -> None:
    (script,) = [
        ep
        for ep in importlib.metadata.entry_points(group="console_scripts")
        if ep.name == "prefect-mlops"
    ]
    assert script.load() is importlib.import_module("prefect_mlops.cli.app").app
