"""The deployment decision table (every verdict → action and result) and what carrying it out
records in a real SQLite registry."""

from __future__ import annotations

import pytest
from conftest import Models

from prefect_mlops import registry
from prefect_mlops.deployment.canary import CanaryVerdict
from prefect_mlops.deployment.decisions import (
    REASON_LIMIT,
    Decision,
    aborted_reason,
    carry_out,
    decide,
    decide_blue_green,
    decide_canary,
    decide_shadow,
)
from prefect_mlops.deployment.infra_validation import InfraValidationReport
from prefect_mlops.deployment.rollout import DeploymentConfig
from prefect_mlops.deployment.shadow import ShadowVerdict
from prefect_mlops.errors import ConfigError
from prefect_mlops.registry import lineage

REPORT = InfraValidationReport(
    passed=True, rows=10, requests=1, errors=0, mismatches=0, p50_ms=1.0, p99_ms=2.0
)


def _config(**kwargs: object) -> DeploymentConfig:
    return DeploymentConfig(model_name="m", **kwargs)


def _canary(decision: str) -> CanaryVerdict:
    return CanaryVerdict(decision, 20, 0.0, 5.0, f"canary said {decision}")  # type: ignore[arg-type]


def _shadow(decision: str, compared: int = 20, agreement: float = 1.0) -> ShadowVerdict:
    return ShadowVerdict(decision, compared, agreement, f"shadow said {decision}")  # type: ignore[arg-type]


def test_blue_green_promotes_after_infra_validation() -> None:
    decision = decide(_config(strategy="blue-green"), REPORT, None)
    assert decision == decide_blue_green(REPORT)
    assert (decision.action, decision.result) == ("promote", "promoted")
    assert decision.reason == decision.move_reason == f"blue-green after {REPORT.summary()}"


@pytest.mark.parametrize(
    ("verdict", "action", "result", "move_reason"),
    [
        ("promote", "promote", "promoted", "canary promoted: canary said promote"),
        ("rollback", "roll_back", "rolled_back", "canary rolled back: canary said rollback"),
        # Never promote what was not judged healthy.
        ("wait", "roll_back", "rolled_back", "canary rolled back: canary said wait"),
    ],
)
def test_canary_decision_table(verdict: str, action: str, result: str, move_reason: str) -> None:
    decision = decide(_config(strategy="canary"), REPORT, _canary(verdict))
    assert decision == decide_canary(_canary(verdict))
    assert decision == Decision(action, result, f"canary said {verdict}", move_reason)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("verdict", "promote_after_shadow", "action", "result"),
    [
        (_shadow("rollback"), True, "roll_back", "rolled_back"),
        (_shadow("rollback"), False, "roll_back", "rolled_back"),
        (_shadow("done"), False, "roll_back", "shadowed"),
        (_shadow("done", agreement=0.9), True, "promote", "promoted"),  # = min_agreement
        (_shadow("done", agreement=0.8999), True, "roll_back", "shadowed"),
        (_shadow("done", compared=0, agreement=0.0), True, "roll_back", "shadowed"),
        (_shadow("wait"), True, "roll_back", "rolled_back"),  # never promote unfinished
    ],
    ids=[
        "not-served", "not-served-no-promote", "observed-only", "agreement-at-minimum",
        "agreement-below-minimum", "nothing-compared", "wait",
    ],
)  # fmt: skip
def test_shadow_decision_table(
    verdict: ShadowVerdict, promote_after_shadow: bool, action: str, result: str
) -> None:
    config = _config(
        strategy="shadow", min_agreement=0.9, promote_after_shadow=promote_after_shadow
    )
    decision = decide(config, REPORT, verdict)
    assert decision == decide_shadow(verdict, config)
    assert (decision.action, decision.result) == (action, result)
    assert decision.reason == verdict.reason
    prefix = "shadow rolled back: " if verdict.decision != "done" else ""
    assert decision.move_reason == prefix + verdict.reason


def test_shadow_promotes_one_agreeing_row_when_no_agreement_is_asked() -> None:
    config = _config(strategy="shadow", min_agreement=0.0, promote_after_shadow=True)
    assert decide_shadow(_shadow("done", compared=1, agreement=0.0), config).result == "promoted"
    assert decide_shadow(_shadow("done", compared=0, agreement=0.0), config).result == "shadowed"


@pytest.mark.parametrize(
    ("strategy", "verdict"),
    [("blue-green", _canary("promote")), ("canary", None), ("canary", _shadow("done")),
     ("shadow", _canary("promote")), ("shadow", None)],
)  # fmt: skip
def test_a_verdict_of_another_strategy_is_refused(
    strategy: str, verdict: CanaryVerdict | ShadowVerdict | None
) -> None:
    kind = type(verdict).__name__
    with pytest.raises(ConfigError, match=f"strategy '{strategy}' cannot decide on a {kind} "):
        decide(_config(strategy=strategy), REPORT, verdict)


def test_aborted_reason_names_the_strategy_and_fits_a_tag() -> None:
    assert aborted_reason("canary", ValueError("labels gone")) == "canary aborted: labels gone"
    long = aborted_reason("shadow", ValueError("x" * 6000))
    assert len(long) == REASON_LIMIT and long.startswith("shadow aborted: xxx")


def test_promotion_moves_champion_ends_the_rollout_and_tags_the_version(models: Models) -> None:
    v1, v2 = models.version(), models.version()
    registry.promote_version(models.client, models.name, v1, reason="first")
    registry.start_rollout(
        models.client, models.name, mode="canary", challenger_version=v2, share=0.5, reason="t"
    )
    move = carry_out(models.client, models.name, v2, decide_canary(_canary("promote")))
    assert move is not None and (move.from_version, move.to_version) == (v1, v2)
    assert move.reason == "canary promoted: canary said promote"
    assert models.aliases()["champion"] == v2
    assert registry.get_rollout(models.client, models.name) is None
    assert models.tags(v2)[lineage.ROLLOUT_RESULT] == "promoted"
    model = models.client.get_registered_model(models.name)
    assert model.tags[lineage.PREVIOUS_CHAMPION] == v1


def test_roll_back_ends_the_rollout_and_records_the_champion_kept(models: Models) -> None:
    v1, v2 = models.version(), models.version()
    registry.promote_version(models.client, models.name, v1, reason="first")
    registry.start_rollout(
        models.client, models.name, mode="shadow", challenger_version=v2, reason="t"
    )
    decision = decide_shadow(_shadow("done"), _config(strategy="shadow"))
    assert carry_out(models.client, models.name, v2, decision) is None
    assert models.aliases()["champion"] == v1
    assert registry.get_rollout(models.client, models.name) is None
    tags = models.tags(v2)
    assert tags[lineage.ROLLOUT_RESULT] == "rolled_back"  # a shadowed version is rolled back
    assert tags[lineage.ROLLOUT_REASON] == "shadow said done"
    kept = registry.alias_history(models.client, models.name)[-1]
    assert (kept.alias, kept.from_version, kept.to_version) == ("champion", v1, v1)
    assert kept.reason == f"v{v2}: shadow said done"
