"""The champion fallback's choice and moves on a real MLflow SQLite registry."""

from __future__ import annotations

import pytest
from conftest import Models

from prefect_mlops import registry
from prefect_mlops.deployment.fallback import (
    choose_fallback,
    earlier_champions,
    failed_versions,
    fall_back,
)
from prefect_mlops.errors import ModelNotFoundError
from prefect_mlops.registry import lineage

FIGURES = "error rate 0.12 > max 0.01 over 400 requests; p99 812 ms > SLO 500 ms"


def _champions(models: Models, count: int) -> list[str]:
    """``count`` versions, each promoted champion in turn (the last one is champion)."""
    versions = [models.version() for _ in range(count)]
    for v in versions:
        registry.promote_version(models.client, models.name, v, reason=f"v{v} blessed")
    return versions


def test_failing_champion_goes_back_to_the_previous_with_the_figures_recorded(
    models: Models,
) -> None:
    _champions(models, 2)
    decision = fall_back(models.client, models.name, "2", FIGURES, actor="tester")
    assert (decision.action, decision.target, decision.champion_before) == ("rolled_back", "1", "2")
    assert models.aliases()["champion"] == "1"
    last = registry.alias_history(models.client, models.name)[-1]
    assert (last.alias, last.from_version, last.to_version, last.actor) == (
        "champion",
        "2",
        "1",
        "tester",
    )
    assert FIGURES in last.reason and last.reason.startswith("fallback:")
    tags = models.tags("2")
    assert tags[lineage.FAILING_REASON] == FIGURES and tags[lineage.FAILING_AT]
    assert lineage.FAILING_AT not in models.tags("1")
    assert failed_versions(models.client, models.name) == {"2"}


def test_a_version_that_failed_before_is_skipped(models: Models) -> None:
    _champions(models, 3)  # champions 1, 2, 3 in turn
    fall_back(models.client, models.name, "3", "v3 " + FIGURES)  # → 2
    registry.promote_version(models.client, models.name, "3", reason="retrained, promoted again")
    # v3 fails again: the remembered previous champion is 2 (healthy), so 2.
    assert fall_back(models.client, models.name, "3", FIGURES).target == "2"
    # Now 2 fails: 3 failed before, so past it to 1.
    decision = fall_back(models.client, models.name, "2", FIGURES)
    assert (decision.action, decision.target) == ("rolled_back", "1")
    assert models.aliases()["champion"] == "1"
    assert failed_versions(models.client, models.name) == {"2", "3"}


def test_the_remembered_previous_champion_that_failed_is_not_used(models: Models) -> None:
    """Champions 1 → 2 (failed: back to 1) → 3 → 2 again by hand: a failing 2 goes to the
    remembered 3, and the history behind it holds 1; 2 itself is never a target."""
    _champions(models, 2)
    fall_back(models.client, models.name, "2", FIGURES)  # champion 1, 2 marked
    v3 = models.version()
    registry.promote_version(models.client, models.name, v3, reason="v3")  # previous: 1
    registry.promote_version(models.client, models.name, "2", reason="by hand")  # previous: 3
    assert earlier_champions(models.client, models.name) == ["3", "1"]
    assert fall_back(models.client, models.name, "2", FIGURES).target == "3"


def test_no_previous_champion_is_not_touched_but_marked(models: Models) -> None:
    _champions(models, 1)
    before = registry.alias_history(models.client, models.name)
    decision = fall_back(models.client, models.name, "1", FIGURES)
    assert (decision.action, decision.target) == ("no_target", None)
    assert "no previous champion" in decision.reason and FIGURES in decision.reason
    assert models.aliases()["champion"] == "1"
    assert registry.alias_history(models.client, models.name) == before
    assert models.tags("1")[lineage.FAILING_REASON] == FIGURES


def test_only_failed_earlier_champions_is_not_touched(models: Models) -> None:
    _champions(models, 2)
    fall_back(models.client, models.name, "2", FIGURES)  # → 1; 2 failed
    decision = fall_back(models.client, models.name, "1", "v1 " + FIGURES)
    assert decision.action == "no_target"
    assert "every earlier champion failed" in decision.reason and "v2" in decision.reason
    assert models.aliases()["champion"] == "1"
    assert failed_versions(models.client, models.name) == {"1", "2"}


def test_a_deleted_earlier_champion_is_skipped(models: Models) -> None:
    _champions(models, 3)
    models.client.delete_model_version(models.name, "2")
    decision = choose_fallback(models.client, models.name, "3", FIGURES)
    assert (decision.action, decision.target) == ("rolled_back", "1")


@pytest.mark.parametrize("event_version", ["1", "7"])
def test_a_stale_event_moves_nothing_and_marks_nothing(models: Models, event_version: str) -> None:
    _champions(models, 2)
    before = registry.alias_history(models.client, models.name)
    decision = fall_back(models.client, models.name, event_version, FIGURES)
    assert decision.action == "stale" and decision.target is None
    assert f"v{event_version} is not the champion (champion: v2)" in decision.reason
    assert models.aliases()["champion"] == "2"
    assert registry.alias_history(models.client, models.name) == before
    assert failed_versions(models.client, models.name) == set()


def test_no_champion_at_all_is_a_stale_event(models: Models) -> None:
    models.version()
    decision = fall_back(models.client, models.name, "1", FIGURES)
    assert decision.action == "stale" and "champion: none" in decision.reason


def test_version_none_means_the_current_champion(models: Models) -> None:
    _champions(models, 2)
    decision = fall_back(models.client, models.name, None, "run by hand")
    assert (decision.failing_version, decision.target) == ("2", "1")


def test_an_unknown_model_is_named(models: Models) -> None:
    with pytest.raises(ModelNotFoundError, match="'no-such-model' is not registered"):
        fall_back(models.client, "no-such-model", "1", FIGURES)


def test_choose_changes_nothing(models: Models) -> None:
    _champions(models, 2)
    decision = choose_fallback(models.client, models.name, "2", FIGURES)
    assert (decision.action, decision.target) == ("rolled_back", "1")
    assert (
        models.aliases()["champion"] == "2" and failed_versions(models.client, models.name) == set()
    )
    assert "moved back from v2 to v1" in decision.summary()
