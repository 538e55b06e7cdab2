"""Registry: the MLflow stores, model versions, alias moves and their history, rollout state,
lineage tag names and tracking.

Modules: ``store`` (the MLflow stores and lookups), ``versions`` (registering and listing
versions), ``aliases`` (alias moves and their history), ``rollouts`` (canary / shadow state),
``lineage`` (every ``mlops.*`` tag name) and ``tracking`` (runs, datasets, logged models). This
package's face hands on the names callers use: ``from prefect_mlops import registry``, then
``registry.promote_version(...)``.
"""

from prefect_mlops.registry.aliases import (
    CHALLENGER,
    CHAMPION,
    AliasMove,
    AliasSnapshot,
    alias_history,
    alias_state,
    assign_aliases,
    default_actor,
    get_alias_version,
    move_alias,
    promote_version,
    record_aliases_dropped,
    record_champion_kept,
    restore_aliases,
    rollback_champion,
    snapshot_aliases,
)
from prefect_mlops.registry.lineage import code_version
from prefect_mlops.registry.rollouts import (
    Rollout,
    RolloutMode,
    end_rollout,
    get_rollout,
    start_rollout,
)
from prefect_mlops.registry.store import (
    configure_mlflow,
    ensure_experiment,
    get_registered_model,
    is_not_found_error,
    mlflow_client,
    model_exists,
    require_version,
    search_versions,
)
from prefect_mlops.registry.versions import (
    RegistrationResult,
    VersionSummary,
    create_version,
    list_versions,
    register_model_version,
    set_version_tags,
    undo_registration,
)

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "AliasMove",
    "AliasSnapshot",
    "RegistrationResult",
    "Rollout",
    "RolloutMode",
    "VersionSummary",
    "alias_history",
    "alias_state",
    "assign_aliases",
    "code_version",
    "configure_mlflow",
    "create_version",
    "default_actor",
    "end_rollout",
    "ensure_experiment",
    "get_alias_version",
    "get_registered_model",
    "get_rollout",
    "is_not_found_error",
    "list_versions",
    "mlflow_client",
    "model_exists",
    "move_alias",
    "promote_version",
    "record_aliases_dropped",
    "record_champion_kept",
    "register_model_version",
    "require_version",
    "restore_aliases",
    "rollback_champion",
    "search_versions",
    "set_version_tags",
    "snapshot_aliases",
    "start_rollout",
    "undo_registration",
]
