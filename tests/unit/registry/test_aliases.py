"""The registry module against a real MLflow SQLite registry: aliases, history, rollback, undo."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from registry_store import Registry

from prefect_mlops import registry
from prefect_mlops.errors import (
    ModelNotFoundError,
    ModelRegistrationError,
    NoPreviousChampionError,
)
from prefect_mlops.registry import lineage


def test_register_blessed_and_promoted_gets_challenger_and_champion(reg: Registry) -> None:
    result = reg.register(blessed=True)
    assert result.version == "1"
    assert result.aliases == ["challenger", "champion"]
    assert result.previous_champion is None
    assert result.model_uri == f"models:/{reg.name}/1"
    assert reg.aliases() == {"champion": "1", "challenger": "1"}
    version = reg.client.get_model_version(reg.name, "1")
    assert version.tags[lineage.BLESSED] == "true"
    assert version.tags[lineage.BLESSING_REASON] == "unit test"
    assert version.tags["mlops.metric.roc_auc"] == "0.91"
    assert version.run_id == reg.run_id
    # The registered version loads and predicts through the alias.
    from prefect_mlops.registry.tracking import load_model

    model = load_model(f"models:/{reg.name}@champion")
    assert list(model.predict(pd.DataFrame({"a": [0.0, 3.0], "b": [1.0, 0.0]}))) == [0, 1]


def test_register_blessed_without_promote_only_moves_challenger(reg: Registry) -> None:
    reg.register(blessed=True)
    result = reg.register(blessed=True, promote=False)
    assert result.version == "2" and result.aliases == ["challenger"]
    assert result.previous_champion == "1"
    assert reg.aliases() == {"champion": "1", "challenger": "2"}


def test_register_not_blessed_sets_no_alias(reg: Registry) -> None:
    first = reg.register(blessed=False)
    assert first.aliases == [] and first.moves == []
    assert reg.aliases() == {}
    assert reg.client.get_model_version(reg.name, "1").tags[lineage.BLESSED] == "false"
    reg.register(blessed=True)
    reg.register(blessed=False)
    assert reg.aliases() == {"champion": "2", "challenger": "2"}
    assert reg.versions() == ["1", "2", "3"]


def test_promote_moves_champion_and_remembers_the_previous(reg: Registry) -> None:
    reg.register(blessed=True)
    reg.new_version()
    move = registry.promote_version(reg.client, reg.name, "2", reason="manual", actor="alice")
    assert (move.alias, move.from_version, move.to_version) == ("champion", "1", "2")
    assert (move.actor, move.reason) == ("alice", "manual")
    assert reg.aliases() == {"champion": "2", "challenger": "1"}
    tags = reg.client.get_registered_model(reg.name).tags
    assert tags[lineage.PREVIOUS_CHAMPION] == "1"
    # Promoting the champion again keeps the remembered previous champion.
    registry.promote_version(reg.client, reg.name, "2", reason="again", actor="alice")
    tags = reg.client.get_registered_model(reg.name).tags
    assert tags[lineage.PREVIOUS_CHAMPION] == "1"


def test_rollback_goes_back_to_the_previous_champion(reg: Registry) -> None:
    reg.register(blessed=True)
    reg.register(blessed=True)
    assert reg.aliases()["champion"] == "2"
    move = registry.rollback_champion(reg.client, reg.name, reason="v2 misbehaves", actor="ops")
    assert (move.from_version, move.to_version) == ("2", "1")
    assert reg.aliases() == {"champion": "1", "challenger": "2"}
    # The rollback is itself a move: rolling back again returns to v2.
    registry.rollback_champion(reg.client, reg.name, reason="undo", actor="ops")
    assert reg.aliases()["champion"] == "2"


def test_rollback_without_previous_champion_names_the_model(reg: Registry) -> None:
    reg.register(blessed=True)
    with pytest.raises(NoPreviousChampionError, match=reg.name) as info:
        registry.rollback_champion(reg.client, reg.name, reason="nothing to go back to")
    assert "no previous champion" in str(info.value)
    assert reg.aliases() == {"champion": "1", "challenger": "1"}


def test_unknown_model_is_named(reg: Registry) -> None:
    unknown = f"{reg.name}-absent"
    with pytest.raises(ModelNotFoundError, match=unknown):
        registry.rollback_champion(reg.client, unknown, reason="x")
    with pytest.raises(ModelNotFoundError, match=unknown):
        registry.promote_version(reg.client, unknown, "1", reason="x")
    with pytest.raises(ModelNotFoundError, match=unknown):
        registry.list_versions(reg.client, unknown)
    assert registry.alias_state(reg.client, unknown) == {}
    assert registry.get_alias_version(reg.client, unknown, "champion") is None
    # A known model without the alias: None too, and the version behind an alias it has.
    reg.new_version()
    assert registry.get_alias_version(reg.client, reg.name, "champion") is None
    registry.move_alias(reg.client, reg.name, "challenger", "1", reason="x", actor="me")
    behind = registry.get_alias_version(reg.client, reg.name, "challenger")
    assert behind is not None and str(behind.version) == "1"


def test_promote_to_a_missing_version_changes_nothing(reg: Registry) -> None:
    reg.register(blessed=True)
    before = reg.aliases()
    history_before = registry.alias_history(reg.client, reg.name)
    with pytest.raises(ModelNotFoundError, match=r"no version '7'") as info:
        registry.promote_version(reg.client, reg.name, "7", reason="typo")
    assert reg.name in str(info.value)
    assert reg.aliases() == before
    assert registry.alias_history(reg.client, reg.name) == history_before
    tags = reg.client.get_registered_model(reg.name).tags
    assert lineage.PREVIOUS_CHAMPION not in tags


def test_alias_history_records_every_move_in_order(reg: Registry) -> None:
    reg.register(blessed=True)  # v1: challenger, champion
    reg.register(blessed=True)  # v2: challenger, champion
    registry.promote_version(reg.client, reg.name, "1", reason="v2 is slow", actor="bob")
    registry.rollback_champion(reg.client, reg.name, reason="fixed", actor="carol")
    history = registry.alias_history(reg.client, reg.name)
    assert [(m.alias, m.from_version, m.to_version, m.actor, m.reason) for m in history] == [
        ("challenger", None, "1", "tester", "unit test"),
        ("champion", None, "1", "tester", "unit test"),
        ("challenger", "1", "2", "tester", "unit test"),
        ("champion", "1", "2", "tester", "unit test"),
        ("champion", "2", "1", "bob", "v2 is slow"),
        ("champion", "1", "2", "carol", "fixed"),
    ]
    assert all(m.model_name == reg.name for m in history)
    stamps = [m.at for m in history]
    assert stamps == sorted(stamps)


def test_default_actor_outside_a_flow_is_the_os_user(reg: Registry) -> None:
    import getpass

    version = reg.new_version()
    move = registry.promote_version(reg.client, reg.name, version, reason="cli")
    assert move.actor == f"user:{getpass.getuser()}"
    assert registry.alias_history(reg.client, reg.name)[-1].actor == move.actor


def test_list_versions_shows_aliases_blessing_and_metrics(reg: Registry) -> None:
    reg.new_version(**{"mlops.metric.roc_auc": "0.81", "mlops.metric.f1": "0.7"})
    reg.new_version(blessed=False, **{"mlops.metric.roc_auc": "0.75"})
    reg.new_version(**{"mlops.metric.roc_auc": "0.88", "other.tag": "x"})
    registry.promote_version(reg.client, reg.name, "1", reason="first")
    registry.promote_version(reg.client, reg.name, "3", reason="better")
    registry.move_alias(reg.client, reg.name, "challenger", "3", reason="better")
    summaries = registry.list_versions(reg.client, reg.name)
    assert [s.version for s in summaries] == ["3", "2", "1"]
    by_version = {s.version: s for s in summaries}
    assert by_version["3"].aliases == ["challenger", "champion"]
    assert by_version["2"].aliases == [] and by_version["1"].aliases == []
    assert [by_version[v].blessed for v in ("1", "2", "3")] == ["true", "false", "true"]
    assert by_version["2"].reason == "not blessed: roc_auc worse"
    assert by_version["1"].metrics == {"roc_auc": "0.81", "f1": "0.7"}
    assert by_version["3"].metrics == {"roc_auc": "0.88"}
    assert by_version["3"].run_id == reg.run_id
    assert by_version["1"].created.endswith("+00:00")


class _ChampionMoveFails:
    """Fault injection: the real ``move_alias``, except that moving ``champion`` fails."""

    def __init__(self) -> None:
        self.original = registry.move_alias
        self.calls: list[str] = []

    def __call__(self, client: Any, model_name: str, alias: str, *args: Any, **kwargs: Any):
        self.calls.append(alias)
        if alias == registry.CHAMPION:
            raise MlflowException("registry went away during the champion move")
        return self.original(client, model_name, alias, *args, **kwargs)


@pytest.fixture
def failed_registration(
    reg: Registry, monkeypatch: pytest.MonkeyPatch
) -> tuple[dict[str, str], list[str], _ChampionMoveFails]:
    """Champion v2 (previous v1); then a third registration fails on the champion move.
    Returns (aliases before, versions before, the fault)."""
    reg.register(blessed=True)
    reg.register(blessed=True)
    before, versions_before = reg.aliases(), reg.versions()
    fault = _ChampionMoveFails()
    with monkeypatch.context() as mp:
        mp.setattr(registry.aliases, "move_alias", fault)
        with pytest.raises(ModelRegistrationError, match="registry went away") as info:
            reg.register(blessed=True)
    assert reg.name in str(info.value) and "version 3" in str(info.value)
    assert isinstance(info.value.__cause__, MlflowException)
    return before, versions_before, fault


def test_failed_registration_restores_aliases_and_deletes_the_version(
    reg: Registry, failed_registration: tuple[dict[str, str], list[str], _ChampionMoveFails]
) -> None:
    before, versions_before, fault = failed_registration
    assert fault.calls == ["challenger", "champion"]  # challenger had really moved to v3
    assert before == {"champion": "2", "challenger": "2"}
    assert reg.aliases() == before
    assert reg.versions() == versions_before == ["1", "2"]
    tags = reg.client.get_registered_model(reg.name).tags
    assert tags[lineage.PREVIOUS_CHAMPION] == "1"
    # The registry still works: rollback goes to v1 as before the failed attempt.
    registry.rollback_champion(reg.client, reg.name, reason="after failure")
    assert reg.aliases()["champion"] == "1"


def test_alias_history_after_a_failed_registration_matches_the_aliases(
    reg: Registry, failed_registration: tuple[dict[str, str], list[str], _ChampionMoveFails]
) -> None:
    replayed: dict[str, str] = {}
    for move in registry.alias_history(reg.client, reg.name):
        if move.to_version is None:
            replayed.pop(move.alias, None)
        else:
            replayed[move.alias] = move.to_version
    assert replayed == reg.aliases()


def test_alias_history_is_written_as_readable_utf8(reg: Registry) -> None:
    reason = "blessed: roc_auc 0.91 ≥ 0.90"
    version = reg.new_version()
    registry.promote_version(reg.client, reg.name, version, reason=reason, actor="ana")
    tags = reg.client.get_registered_model(reg.name).tags
    (raw,) = [v for k, v in tags.items() if k.startswith(lineage.ALIAS_MOVE_PREFIX)]
    assert "≥" in raw and "\\u2265" not in raw
    # Compact (no spaces after separators), to stay well under MLflow's tag-value limit.
    assert raw.startswith(f'{{"model_name":"{reg.name}","alias":"champion","from_version":null')
    assert registry.alias_history(reg.client, reg.name)[-1].reason == reason


def test_alias_history_reads_entries_written_escaped(reg: Registry) -> None:
    import json

    reg.new_version()
    old = {
        "model_name": reg.name,
        "alias": "champion",
        "from_version": None,
        "to_version": "1",
        "actor": "user:old",
        "reason": "roc_auc ≥ 0.9",
        "at": "2025-01-01T00:00:00+00:00",
    }
    escaped = json.dumps(old, separators=(",", ":"))
    assert "\\u2265" in escaped
    reg.client.set_registered_model_tag(reg.name, f"{lineage.ALIAS_MOVE_PREFIX}{0:020d}", escaped)
    registry.promote_version(reg.client, reg.name, "1", reason="now ≥ then", actor="ana")
    history = registry.alias_history(reg.client, reg.name)
    assert [m.reason for m in history] == ["roc_auc ≥ 0.9", "now ≥ then"]
    assert history[0] == registry.AliasMove(**old)


@pytest.mark.parametrize(
    "name",
    ["it's", 'say "hi"', 'o\'k "x"', "back\\slash'"],
    ids=["single-quote", "double-quote", "both-quotes", "backslash"],
)
def test_list_versions_of_a_name_with_quotes(reg: Registry, name: str) -> None:
    quoted = Registry(reg.client, f"{reg.name}-{name}", reg.run_id, reg.uri)
    quoted.new_version()
    quoted.new_version(blessed=False)
    # A name the LIKE fallback would also match (quotes as wildcards) is not listed.
    lookalike = Registry(
        reg.client, quoted.name.replace("'", "Q").replace('"', "Q"), reg.run_id, reg.uri
    )
    lookalike.new_version()
    summaries = registry.list_versions(reg.client, quoted.name)
    assert [s.version for s in summaries] == ["2", "1"]
    assert [s.blessed for s in summaries] == ["false", "true"]
    assert quoted.versions() == ["1", "2"]
