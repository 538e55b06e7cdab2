"""The shadow verdict: agreement of shadow and champion rows, done once enough or out of time."""

from __future__ import annotations

import pandas as pd
import pytest

from prefect_mlops.deployment.rollout import DeploymentConfig
from prefect_mlops.deployment.shadow import ShadowVerdict, judge_shadow, shadow_agreement


def _config(**kwargs: object) -> DeploymentConfig:
    return DeploymentConfig(model_name="m", **kwargs)


def _log(variant: str, version: str, statuses: list[str], latency: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "request_id": [f"{variant}-{i}" for i in range(len(statuses))],
            "row_index": 0,
            "variant": variant,
            "model_version": version,
            "status": statuses,
            "latency_ms": latency,
            "prediction": "1",
        }
    )


def test_shadow_agreement_pairs_rows_by_request() -> None:
    champion = pd.DataFrame(
        {"request_id": ["a", "a", "b"], "row_index": [0, 1, 0], "variant": "champion",
         "model_version": "1", "prediction": ["1", "0", "1"]}
    )  # fmt: skip
    shadow = pd.DataFrame(
        {"request_id": ["a", "a", "b"], "row_index": [0, 1, 0], "variant": "shadow",
         "model_version": "2", "prediction": ["1", "1", "1"]}
    )  # fmt: skip
    compared, agreement = shadow_agreement(pd.concat([champion, shadow]), "2")
    assert compared == 3
    assert agreement == pytest.approx(2 / 3)
    assert shadow_agreement(pd.DataFrame(), "2") == (0, 0.0)


def test_shadow_waits_until_enough_rows_or_time() -> None:
    champion = _log("champion", "1", ["ok"] * 4, 5.0).assign(request_id=list("abcd"))
    shadow = _log("shadow", "2", ["ok"] * 4, 5.0).assign(request_id=list("abcd"))
    log = pd.concat([champion, shadow])
    assert judge_shadow(log, "2", _config(min_requests=5), timed_out=False).decision == "wait"
    done = judge_shadow(log, "2", _config(min_requests=4), timed_out=False)
    assert (done.decision, done.compared, done.agreement) == ("done", 4, 1.0)
    assert done.reason == "shadow agreement 100.00% over 4 rows"
    late = judge_shadow(log, "2", _config(min_requests=5), timed_out=True)
    assert late.decision == "done"


def test_only_shadow_rows_of_this_version_are_compared() -> None:
    champion = _log("champion", "2", ["ok"] * 3, 5.0).assign(request_id=list("abc"))
    other = _log("shadow", "3", ["ok"] * 3, 5.0).assign(request_id=list("abc"), prediction="0")
    mine = _log("shadow", "2", ["ok"], 5.0).assign(request_id=["a"])
    assert shadow_agreement(pd.concat([champion, other, mine]), "2") == (1, 1.0)
    # Shadow rows no champion row answered: nothing compared.
    assert shadow_agreement(pd.concat([other, mine]), "2") == (0, 0.0)


def test_a_waiting_shadow_reports_what_it_saw() -> None:
    champion = _log("champion", "1", ["ok"] * 4, 5.0).assign(request_id=list("abcd"))
    shadow = _log("shadow", "2", ["ok"] * 4, 5.0).assign(request_id=list("abcd"))
    shadow.loc[3, "prediction"] = "0"
    waiting = judge_shadow(
        pd.concat([champion, shadow]), "2", _config(min_requests=5), timed_out=False
    )
    assert waiting == ShadowVerdict("wait", 4, 0.75, "shadow agreement 75.00% over 4 rows")


def test_typed_predictions_agree_as_numbers_or_as_text() -> None:
    from prefect_mlops.deployment.shadow import same_predictions

    # An int64 class read as float64 beside a refused row's null equals the int; text as text.
    left = pd.Series([1.0, 0.0, "yes", None, 2.5])
    right = pd.Series([1, 1, "yes", None, 2.5], dtype=object)
    assert same_predictions(left, right).tolist() == [True, False, True, True, True]
    assert same_predictions(pd.Series(["no"]), pd.Series(["yes"])).tolist() == [False]
