"""The shadow verdict: how often do the shadow challenger and the champion agree on the same
requests? Pure functions over serving-log rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pandas as pd

from prefect_mlops.deployment.rollout import DeploymentConfig
from prefect_mlops.registry import lineage

ShadowDecision = Literal["done", "rollback", "wait"]


def shadow_agreement(log: pd.DataFrame, version: str) -> tuple[int, float]:
    """(rows compared, share of rows where the shadow challenger agreed with the champion)."""
    if log.empty:
        return 0, 0.0
    shadow = log[(log["variant"] == "shadow") & (log["model_version"].astype(str) == str(version))]
    champion = log[log["variant"] == "champion"]
    pairs = shadow.merge(
        champion, on=["request_id", "row_index"], suffixes=("_shadow", "_champion")
    )
    if pairs.empty:
        return 0, 0.0
    agree = same_predictions(pairs["prediction_shadow"], pairs["prediction_champion"])
    return len(pairs), float(agree.mean())


def same_predictions(a: pd.Series, b: pd.Series) -> pd.Series:
    """Row by row, whether two typed prediction columns agree: as numbers when both are
    numeric (an int64 class read as float64 beside nulls still equals its int), else as text."""
    a_num, b_num = pd.to_numeric(a, errors="coerce"), pd.to_numeric(b, errors="coerce")
    numeric = a_num.notna() & b_num.notna()
    as_text = a.astype(str).to_numpy() == b.astype(str).to_numpy()
    return pd.Series(
        (numeric & (a_num == b_num)).to_numpy() | (~numeric.to_numpy() & as_text), index=a.index
    )


@dataclass
class ShadowVerdict:
    """The shadow's observation so far and what to do: ``done`` (enough rows compared, or time
    is up), ``rollback`` (the live service does not serve the challenger: ``not_served`` says
    why) or ``wait``."""

    decision: ShadowDecision
    compared: int
    agreement: float
    reason: str
    not_served: str | None = None


def judge_shadow(
    log: pd.DataFrame,
    version: str,
    config: DeploymentConfig,
    *,
    timed_out: bool,
    not_served: str | None = None,
) -> ShadowVerdict:
    """Decide from the shadow rows of ``version`` paired with the champion's: ``not_served``
    ends the shadow at once (rollback); ``min_requests`` compared rows, or the time limit, end
    it with the agreement seen."""
    compared, agreement = shadow_agreement(log, version)
    figures = f"shadow agreement {agreement:.2%} over {compared} rows"
    if not_served is not None:
        return ShadowVerdict(
            "rollback", compared, agreement, f"{not_served} ({figures})", not_served
        )
    if compared >= config.min_requests or timed_out:
        return ShadowVerdict("done", compared, agreement, figures)
    return ShadowVerdict("wait", compared, agreement, figures)


def shadow_tags(verdict: ShadowVerdict) -> dict[str, str]:
    """The version tags that record the shadow's rows and agreement (and why the challenger
    was not served, when that ended it)."""
    tags = {
        lineage.SHADOW_ROWS: str(verdict.compared),
        lineage.SHADOW_AGREEMENT: f"{verdict.agreement:.4f}",
    }
    if verdict.not_served is not None:
        tags[lineage.ROLLOUT_NOT_SERVED] = verdict.not_served
    return tags
