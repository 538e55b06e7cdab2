"""prefect-mlops."""

from pathlib import Path as _Path

# In a source checkout, the root folders flows/, tasks/ and deployments/ are installed as
# subpackages of this one (pyproject's package-dir). When the checkout's root is on sys.path
# (the working directory of `python -c`, a Prefect worker or flow loader started in the
# repository, a spawned Dask worker inheriting either), Python imports this folder rather than
# the installed package, and `prefect_mlops.tasks` would not exist. Searching the checkout's root
# for subpackages too makes this folder import exactly like the installed package.
_here = _Path(__file__).parent
if not (_here / "tasks").is_dir() and all(
    (_here.parent / sub / "__init__.py").is_file() for sub in ("flows", "tasks", "deployments")
):
    __path__.append(str(_here.parent))
