"""What the live service shows: its /metadata load error, and champion-only answers in its
serving log after the takeover time."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from conftest import Models

from prefect_mlops import registry
from prefect_mlops.deployment.rollout import DeploymentConfig
from prefect_mlops.deployment.serving_evidence import (
    LiveService,
    challenger_load_error,
    requests_of,
    rows_since,
    service_metadata,
    unserved_challenger,
)
from prefect_mlops.processes import free_port
from prefect_mlops.serving.log import ServingLogWriter
from prefect_mlops.serving.routing import request_fraction


def _config(**kwargs: object) -> DeploymentConfig:
    return DeploymentConfig(model_name="m", **kwargs)


STARTED = "2026-01-01T12:00:00+00:00"


def _metadata(error: str | None, version: str = "3", started_at: str = STARTED) -> dict:
    rollout = {"mode": "canary", "challenger_version": version, "started_at": started_at}
    return {"challenger_error": error, "rollout": rollout, "challenger": None}


def test_challenger_load_error_only_for_this_rollout() -> None:
    error = "the canary challenger is not served: cannot load models:/m/3: OSError: gone"
    assert challenger_load_error(_metadata(error), "3", STARTED) == error
    # Serving it, not yet seen this rollout, another version or an earlier rollout: no error.
    assert challenger_load_error(_metadata(None), "3", STARTED) is None
    assert challenger_load_error({"challenger_error": None, "rollout": None}, "3", STARTED) is None
    assert challenger_load_error(_metadata(error, version="4"), "3", STARTED) is None
    assert challenger_load_error(_metadata(error, started_at="2025-12-31"), "3", STARTED) is None
    assert challenger_load_error({}, "3", STARTED) is None


def _served(variant: str, version: str, ids: list[str], seconds: float) -> pd.DataFrame:
    at = pd.Timestamp(STARTED) + pd.Timedelta(seconds=seconds)
    return pd.DataFrame(
        {"request_id": ids, "row_index": 0, "timestamp": at, "model_name": "m",
         "variant": variant, "model_version": version, "status": "ok", "latency_ms": 5.0,
         "prediction": "1"}
    )  # fmt: skip


def _ids(n: int, *, routed: bool) -> list[str]:
    """``n`` request ids the canary share 0.5 gives to the challenger (or not)."""
    ids = (f"r-{i}" for i in range(10_000))
    return [i for i in ids if (request_fraction(i) < 0.5) == routed][:n]


def _unserved(log: pd.DataFrame, mode: str = "canary", **kwargs: object) -> str | None:
    config = _config(**{"takeover_seconds": 30, "min_requests": 50, **kwargs})
    return unserved_challenger(
        log, model_name="m", version="3", mode=mode, share=0.5 if mode == "canary" else 0.0,
        started_at=STARTED, config=config,
    )  # fmt: skip


def test_unserved_challenger_needs_champion_answers_after_the_takeover_time() -> None:
    routed = _ids(12, routed=True)
    # Champion answers to the challenger's share after the takeover time, none by v3.
    reason = _unserved(_served("champion", "1", routed, 40))
    assert reason is not None
    assert "has not loaded v3" in reason and "12 requests" in reason
    # Before the takeover time (the service may not have reloaded yet): no evidence.
    assert _unserved(_served("champion", "1", routed, 20)) is None
    # The champion's own share does not count; too few requests do not either.
    assert _unserved(_served("champion", "1", _ids(30, routed=False), 40)) is None
    assert _unserved(_served("champion", "1", routed[:9], 40)) is None
    assert _unserved(_served("champion", "1", routed[:5], 40), min_requests=5) is not None
    # One challenger answer shows it is loaded; other models' rows do not count.
    served = pd.concat([_served("champion", "1", routed, 40), _served("challenger", "3", ["x"], 1)])
    assert _unserved(served) is None
    other = _served("champion", "1", routed, 40).assign(model_name="other")
    assert _unserved(other) is None
    assert _unserved(pd.DataFrame()) is None


def test_unserved_shadow_counts_every_champion_request() -> None:
    ids = [f"s-{i}" for i in range(10)]
    reason = _unserved(_served("champion", "1", ids, 45), mode="shadow")
    assert reason is not None and "all 10 requests" in reason
    shadowed = pd.concat([_served("champion", "1", ids, 45), _served("shadow", "3", ids[:1], 45)])
    assert _unserved(shadowed, mode="shadow") is None


def test_rows_since_keeps_the_rollout_s_rows() -> None:
    log = pd.concat([_served("champion", "1", ["a"], -1), _served("champion", "1", ["b"], 0)])
    assert rows_since(log, STARTED)["request_id"].tolist() == ["b"]
    assert rows_since(pd.DataFrame(), STARTED).empty


def test_requests_of_counts_a_request_once() -> None:
    log = pd.concat(
        [_served("challenger", "3", ["a", "a", "b"], 1), _served("champion", "3", ["c"], 1)]
    )
    assert requests_of(log, "3", "challenger")["request_id"].tolist() == ["a", "b"]
    assert requests_of(log, "4", "challenger").empty
    assert requests_of(pd.DataFrame(), "3", "challenger").empty


def _live(models: Models, tmp_path: Path, version: str, urls: list[str]) -> LiveService:
    config = DeploymentConfig(
        model_name=models.name, strategy="shadow", min_requests=10, takeover_seconds=30,
        service_urls=urls,
    )  # fmt: skip
    rollout = registry.Rollout("shadow", version, 0.0, STARTED, "tester", "t")
    return LiveService(models.client, config, version, rollout, tmp_path / "serving_log")


def _write_log(directory: Path, log: pd.DataFrame) -> None:
    writer = ServingLogWriter(directory)
    writer.log([{**row, "error": None} for row in log.to_dict("records")])
    writer.close()


def test_live_service_reads_its_serving_log_since_the_rollout(
    models: Models, tmp_path: Path
) -> None:
    live = _live(models, tmp_path, "3", [])
    assert live.serving_log().empty
    before = _served("champion", "1", ["old"], -5)
    after = _served("champion", "1", [f"s-{i}" for i in range(3)], 40)
    other_model = _served("champion", "1", ["elsewhere"], 40)  # model "m"
    mine = pd.concat([before, after]).assign(model_name=models.name)
    _write_log(live.log_dir, pd.concat([mine, other_model]))
    log = live.serving_log()
    assert log["request_id"].tolist() == ["s-0", "s-1", "s-2"]
    assert "prediction" in log and not any(c.startswith("feature.") for c in log)


def test_a_silent_service_and_champion_only_answers_show_an_unloadable_challenger(
    models: Models, tmp_path: Path
) -> None:
    version = models.version()  # its source folder holds no model: it cannot load
    closed = f"http://127.0.0.1:{free_port()}"
    assert service_metadata(closed, None) is None
    live = _live(models, tmp_path, version, [closed])
    champion = _served("champion", "1", [f"s-{i}" for i in range(10)], 40)
    champion = champion.assign(model_name=models.name)
    assert live.not_served(champion.head(9)) is None  # too few requests
    assert live.not_served(champion.assign(model_name="m")) is None  # another model's
    reason = live.not_served(champion)
    assert reason is not None
    assert reason.startswith(f"the live service has not loaded v{version}: all 10 requests")
    assert f"; loading it fails: cannot load models:/{models.name}/{version}" in reason
