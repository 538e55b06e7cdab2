"""Undoing a failed registration against a real MLflow SQLite registry, with faults injected
around the real client: every alias goes back (the champion too, once it had moved), and a
restore that fails itself is named in the error and recorded in the alias history."""

from __future__ import annotations

import pytest
from registry_store import (
    FaultyClient,
    Registry,
    alias_set,
    any_history_write,
    history_write_of,
    tag_write,
)

from prefect_mlops import registry
from prefect_mlops.errors import ModelRegistrationError
from prefect_mlops.registry import lineage
from prefect_mlops.registry.aliases import RESTORED_REASON


def _champion_v2_previous_v1(reg: Registry) -> FaultyClient:
    """Two registrations (champion v2, previous champion v1); returns a faulty client of it."""
    reg.register(blessed=True)
    reg.register(blessed=True)
    assert reg.aliases() == {"champion": "2", "challenger": "2"}
    return FaultyClient(reg.client)


def _register(reg: Registry, client: FaultyClient) -> registry.RegistrationResult:
    return registry.register_model_version(
        client,  # type: ignore[arg-type]
        model_name=reg.name,
        model_uri=reg.uri,
        run_id=reg.run_id,
        tags={},
        blessed=True,
        promote=True,
        reason="third",
        actor="tester",
    )


@pytest.mark.parametrize(
    "later_step",
    [
        pytest.param(history_write_of("champion", "3"), id="champion-history-write"),
        pytest.param(tag_write(lineage.PREVIOUS_CHAMPION), id="previous-champion-tag"),
    ],
)
def test_champion_that_moved_goes_back_when_a_later_step_fails(reg: Registry, later_step) -> None:
    client = _champion_v2_previous_v1(reg)
    client.fail(later_step, "registry went away after the champion move")

    with pytest.raises(ModelRegistrationError, match="registry went away") as info:
        _register(reg, client)

    # The champion alias really was on v3 when the step after it failed.
    assert ("set_registered_model_alias", (reg.name, "champion", "3")) in client.calls
    assert "version 3" in str(info.value) and "undoing it failed" not in str(info.value)
    assert reg.aliases() == {"champion": "2", "challenger": "2"}
    assert reg.client.get_registered_model(reg.name).tags[lineage.PREVIOUS_CHAMPION] == "1"
    assert reg.versions() == ["1", "2"]
    history = registry.alias_history(reg.client, reg.name)
    restored = [
        (m.alias, m.from_version, m.to_version) for m in history if m.reason == RESTORED_REASON
    ]
    assert restored == [("challenger", "3", "2"), ("champion", "3", "2")]
    assert reg.replayed_history() == reg.aliases()
    # Rolling back still goes where it went before the failed attempt.
    registry.rollback_champion(reg.client, reg.name, reason="after the failure")
    assert reg.aliases()["champion"] == "1"


def test_a_restore_that_fails_is_named_and_recorded(reg: Registry) -> None:
    client = _champion_v2_previous_v1(reg)
    client.fail(alias_set("champion", "3"), "registry went away during the champion move")
    client.fail(alias_set("challenger", "2"), "alias table locked")

    with pytest.raises(ModelRegistrationError) as info:
        _register(reg, client)

    message = str(info.value)
    assert "registry went away during the champion move" in message
    assert "undoing it failed too" in message
    assert "alias 'challenger' back to version 2 failed: alias table locked" in message
    assert "alias 'champion'" not in message  # the champion had never moved
    history = registry.alias_history(reg.client, reg.name)
    failed = [m for m in history if "restore failed" in m.reason]
    assert [(m.alias, m.from_version, m.to_version) for m in failed] == [("challenger", "3", "3")]
    assert "back to version 2" in failed[0].reason and "alias table locked" in failed[0].reason
    # v3 is still deleted; MLflow drops the alias left on it, and the history says so.
    assert reg.versions() == ["1", "2"]
    assert reg.aliases() == {"champion": "2"}
    assert (history[-1].alias, history[-1].from_version, history[-1].to_version) == (
        "challenger",
        "3",
        None,
    )
    assert "removed with version 3" in history[-1].reason
    assert reg.replayed_history() == reg.aliases()
    assert reg.client.get_registered_model(reg.name).tags[lineage.PREVIOUS_CHAMPION] == "1"


def test_a_failed_previous_champion_restore_is_named_and_recorded(reg: Registry) -> None:
    client = _champion_v2_previous_v1(reg)
    client.fail(history_write_of("champion", "3"), "registry went away after the champion move")
    client.fail(
        lambda method, args: (
            method == "set_registered_model_tag" and args[1:] == (lineage.PREVIOUS_CHAMPION, "1")
        ),
        "tag table locked",
    )

    with pytest.raises(ModelRegistrationError) as info:
        _register(reg, client)

    assert f"tag {lineage.PREVIOUS_CHAMPION} back to 1 failed: tag table locked" in str(info.value)
    assert reg.aliases() == {"champion": "2", "challenger": "2"}
    assert reg.client.get_registered_model(reg.name).tags[lineage.PREVIOUS_CHAMPION] == "2"
    last = registry.alias_history(reg.client, reg.name)[-1]
    assert (last.alias, last.from_version, last.to_version) == ("champion", "2", "2")
    assert "tag table locked" in last.reason
    assert reg.replayed_history() == reg.aliases()


def test_a_history_that_cannot_be_written_is_named_too(reg: Registry) -> None:
    client = _champion_v2_previous_v1(reg)
    client.fail(alias_set("champion", "3"), "registry went away during the champion move")
    client.fail(alias_set("challenger", "2"), "alias table locked")
    # No history entry can be written but those of the registration itself (reason "third").
    client.fail(
        lambda m, a: any_history_write(m, a) and '"reason":"third"' not in a[2], "full", None
    )

    with pytest.raises(ModelRegistrationError) as info:
        _register(reg, client)

    message = str(info.value)
    assert "alias 'challenger' back to version 2 failed: alias table locked" in message
    assert "recording that in the alias history failed: full" in message
    assert "went with version 3, but recording it in the alias history failed: full" in message
    assert reg.versions() == ["1", "2"]


def test_a_version_that_cannot_be_deleted_is_named(reg: Registry) -> None:
    client = _champion_v2_previous_v1(reg)
    client.fail(alias_set("champion", "3"), "registry went away during the champion move")
    client.fail(lambda method, args: method == "delete_model_version", "version table locked")

    with pytest.raises(ModelRegistrationError) as info:
        _register(reg, client)

    assert "deleting version 3 failed: version table locked" in str(info.value)
    # The aliases went back all the same.
    assert reg.aliases() == {"champion": "2", "challenger": "2"}
    assert reg.versions() == ["1", "2", "3"]
    assert reg.replayed_history() == reg.aliases()


def test_undo_of_a_version_never_created_restores_the_aliases(reg: Registry) -> None:
    _champion_v2_previous_v1(reg)
    before = registry.snapshot_aliases(reg.client, reg.name)
    registry.move_alias(reg.client, reg.name, "champion", "1", reason="half-done", actor="x")

    registry.undo_registration(reg.client, reg.name, None, before)

    assert reg.aliases() == {"champion": "2", "challenger": "2"}
    assert reg.client.get_registered_model(reg.name).tags[lineage.PREVIOUS_CHAMPION] == "1"
    assert reg.versions() == ["1", "2"]
    assert reg.replayed_history() == reg.aliases()


def test_restore_names_a_registry_it_cannot_read(reg: Registry) -> None:
    client = _champion_v2_previous_v1(reg)
    before = registry.snapshot_aliases(reg.client, reg.name)
    client.fail(lambda method, args: method == "get_registered_model", "registry down", None)

    with pytest.raises(ModelRegistrationError, match=r"reading them failed.*registry down") as info:
        registry.restore_aliases(client, reg.name, before)  # type: ignore[arg-type]

    assert reg.name in str(info.value) and "'champion': '2'" in str(info.value)


def _aliases_set_over_none(reg: Registry) -> registry.AliasSnapshot:
    """A model with no alias and no remembered champion (snapshot returned), then champion v2
    (previous v1) and challenger v1 set over it."""
    reg.new_version(blessed=False)
    before = registry.snapshot_aliases(reg.client, reg.name)
    assert before == registry.AliasSnapshot(aliases={}, previous_champion=None)
    registry.move_alias(reg.client, reg.name, "champion", "1", reason="set", actor="x")
    registry.move_alias(reg.client, reg.name, "challenger", "1", reason="set", actor="x")
    reg.new_version()
    registry.promote_version(reg.client, reg.name, "2", reason="set", actor="x")
    assert reg.aliases() == {"champion": "2", "challenger": "1"}
    return before


def test_restore_removes_aliases_and_the_remembered_champion_that_were_not_there(
    reg: Registry,
) -> None:
    import getpass

    before = _aliases_set_over_none(reg)

    moves = registry.restore_aliases(reg.client, reg.name, before)

    assert reg.aliases() == {}
    assert lineage.PREVIOUS_CHAMPION not in reg.client.get_registered_model(reg.name).tags
    assert [(m.alias, m.from_version, m.to_version, m.reason) for m in moves] == [
        ("challenger", "1", None, RESTORED_REASON),
        ("champion", "2", None, RESTORED_REASON),
    ]
    assert all(m.actor == f"user:{getpass.getuser()}" for m in moves)
    assert registry.alias_history(reg.client, reg.name)[-2:] == moves
    assert reg.replayed_history() == reg.aliases() == {}


def test_failed_removals_are_all_named_with_what_was_wanted(reg: Registry) -> None:
    before = _aliases_set_over_none(reg)
    client = FaultyClient(reg.client)
    client.fail(lambda m, a: m == "delete_registered_model_alias" and a[1] == "challenger", "a")
    client.fail(tag_write(lineage.PREVIOUS_CHAMPION), "tag table locked")

    with pytest.raises(ModelRegistrationError) as info:
        registry.restore_aliases(client, reg.name, before)  # type: ignore[arg-type]

    assert str(info.value) == (
        f"restoring the aliases of {reg.name!r} to none failed: "
        "alias 'challenger' back to no version (removed) failed: a; "
        f"tag {lineage.PREVIOUS_CHAMPION} back to unset failed: tag table locked"
    )
    # The champion went all the same; the failed steps are in the history, where they are.
    assert reg.aliases() == {"challenger": "1"}
    history = registry.alias_history(reg.client, reg.name)
    assert [(m.alias, m.from_version, m.to_version) for m in history[-3:]] == [
        ("challenger", "1", "1"),
        ("champion", "2", None),
        ("champion", None, None),
    ]
    assert history[-1].reason == (
        "restore failed after a failed registration: "
        f"tag {lineage.PREVIOUS_CHAMPION} back to unset: tag table locked"
    )
    assert reg.replayed_history() == reg.aliases()


def test_a_restore_whose_history_entry_fails_says_it_was_done(reg: Registry) -> None:
    before = _aliases_set_over_none(reg)
    client = FaultyClient(reg.client).fail(history_write_of("challenger"), "history full")

    with pytest.raises(ModelRegistrationError) as info:
        registry.restore_aliases(client, reg.name, before)  # type: ignore[arg-type]

    assert (
        "alias 'challenger' back to no version (removed) done, but its alias-history entry "
        "failed: history full"
    ) in str(info.value)
    assert reg.aliases() == {}
