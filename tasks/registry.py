"""Tasks that write to the MLflow registry. Run them inside a Prefect ``transaction()``: when a
later step fails, the registration is rolled back (version deleted, aliases restored)."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.transactions import Transaction, get_transaction

from prefect_mlops import registry
from prefect_mlops.data.snapshots import SnapshotRef, load_snapshot
from prefect_mlops.registry.tracking import log_sklearn_model
from prefect_mlops.settings import get_settings
from prefect_mlops.tasks.common import retry_transient


@task(
    name="log-model",
    retries=2,
    retry_delay_seconds=5,
    retry_condition_fn=retry_transient,
    cache_policy=NO_CACHE,
)
def log_model(run_id: str, model: Any, snapshot: SnapshotRef, feature_columns: list[str]) -> str:
    """Log the fitted pipeline (signature of the snapshot's feature columns, input example,
    requirements) in run ``run_id``; returns its model URI."""
    model_uri = log_sklearn_model(run_id, model, load_snapshot(snapshot.path), feature_columns)
    get_run_logger().info(
        "Logged the pipeline as %s (signature: %s input columns)", model_uri, len(feature_columns)
    )
    return model_uri


# No retries on the registry writes: a write that landed but whose reply was lost would, retried,
# register a second version; the transaction undoes a failed one instead.
@task(name="register-model-version", cache_policy=NO_CACHE)
def register_version(
    model_name: str,
    model_uri: str,
    run_id: str,
    tags: dict[str, str],
    blessed: bool,
    reason: str,
    run_link: str | None,
) -> str:
    """Create the model version with its lineage tags and blessing decision; returns it."""
    client = registry.mlflow_client(get_settings())
    _remember_for_rollback(
        model_name=model_name, aliases_before=registry.snapshot_aliases(client, model_name)
    )
    version = registry.create_version(
        client,
        model_name=model_name,
        model_uri=model_uri,
        run_id=run_id,
        tags=tags,
        blessed=blessed,
        reason=reason,
        run_link=run_link,
    )
    _remember_for_rollback(version=version)
    get_run_logger().info(
        "Registered %s version %s from %s (%s)",
        model_name,
        version,
        model_uri,
        "blessed" if blessed else "not blessed",
    )
    return version


def _remember_for_rollback(**values: Any) -> None:
    """Keep ``values`` in the enclosing transaction (if any) for ``_undo_registration``."""
    txn = get_transaction()
    if txn is None:
        return
    for key, value in values.items():
        txn.set(key, value)


@register_version.on_rollback
def _undo_registration(txn: Transaction) -> None:
    """Compensation: delete the new version and put the aliases back as they were. Raises
    ModelRegistrationError naming what could not be undone (Prefect logs it)."""
    client = registry.mlflow_client(get_settings())
    registry.undo_registration(
        client,
        txn.get("model_name"),
        txn.get("version", None),
        txn.get("aliases_before"),
    )


@task(name="assign-aliases", cache_policy=NO_CACHE)
def assign_aliases(
    model_name: str, version: str, blessed: bool, promote: bool, reason: str
) -> list[registry.AliasMove]:
    """Blessed → ``challenger``; with ``promote`` → ``champion`` (previous one remembered).
    Returns the moves."""
    client = registry.mlflow_client(get_settings())
    moves = registry.assign_aliases(
        client, model_name, version, blessed=blessed, promote=promote, reason=reason
    )
    get_run_logger().info(
        "%s version %s: %s",
        model_name,
        version,
        ", ".join(f"{m.alias} {m.from_version or '(none)'} → {m.to_version}" for m in moves)
        or "no alias moved (not blessed)",
    )
    return moves
