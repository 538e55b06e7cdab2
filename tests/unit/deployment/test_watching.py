"""The canary / shadow watch loop, driven by a scripted serving log and a fake clock: where it
ends (promote, roll back on errors / latency / not served / time out; shadow done) and when."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
from conftest import Models

from prefect_mlops import registry
from prefect_mlops.deployment.canary import canary_tags
from prefect_mlops.deployment.labels import LabelSpec
from prefect_mlops.deployment.live_quality import QualityReading
from prefect_mlops.deployment.rollout import DeploymentConfig
from prefect_mlops.deployment.shadow import shadow_tags
from prefect_mlops.deployment.watching import (
    watch,
    watch_canary,
    watch_live_canary,
    watch_live_shadow,
    watch_shadow,
)
from prefect_mlops.errors import ConfigError
from prefect_mlops.registry import lineage
from prefect_mlops.serving.log import ServingLogWriter
from prefect_mlops.settings import get_settings


@dataclass
class FakeClock:
    """Seconds that pass only when the loop sleeps."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class ScriptedEvidence:
    """Poll ``k`` sees ``logs[k]`` (the last one from then on) and ``not_served[k]``."""

    logs: list[pd.DataFrame]
    reasons: list[str | None] = field(default_factory=list)
    polls: int = 0
    asked_about: list[pd.DataFrame] = field(default_factory=list)

    def serving_log(self) -> pd.DataFrame:
        log = self.logs[min(self.polls, len(self.logs) - 1)]
        self.polls += 1
        return log

    def not_served(self, log: pd.DataFrame) -> str | None:
        self.asked_about.append(log)
        k = self.polls - 1
        return self.reasons[k] if k < len(self.reasons) else None


def _requests(variant: str, version: str, n: int, *, status: str = "ok", ms: float = 5.0):
    return pd.DataFrame(
        {"request_id": [f"{variant}-{status}-{ms}-{i}" for i in range(n)], "row_index": 0,
         "variant": variant, "model_version": version, "status": status, "latency_ms": ms,
         "prediction": "1"}
    )  # fmt: skip


def _growing(per_poll: int, polls: int, **kwargs: object) -> list[pd.DataFrame]:
    """The challenger's requests after each poll: ``per_poll`` more each time."""
    return [_requests("challenger", "2", per_poll * (k + 1), **kwargs) for k in range(polls)]  # type: ignore[arg-type]


def _config(**kwargs: object) -> DeploymentConfig:
    defaults: dict[str, object] = {
        "strategy": "canary", "min_requests": 30, "max_minutes": 1, "poll_seconds": 10,
        "max_error_rate": 0.1, "max_p99_latency_ms": 100,
    }  # fmt: skip
    return DeploymentConfig(**{"model_name": "m", **defaults, **kwargs})


def test_healthy_canary_promotes_once_it_has_enough_requests() -> None:
    clock, evidence = FakeClock(), ScriptedEvidence(_growing(10, 5))
    verdict = watch_canary(_config(), "2", evidence, clock=clock, sleep=clock.sleep)
    assert verdict.decision == "promote"
    assert verdict.requests == 30 and evidence.polls == 3
    assert clock.sleeps == [10, 10]  # poll_seconds between polls, none after the decision
    assert verdict.reason.startswith("canary healthy: 30 challenger requests")
    assert verdict.not_served is None
    # not_served is asked about the very log that was judged.
    assert [len(log) for log in evidence.asked_about] == [10, 20, 30]


def test_error_rate_over_the_limit_rolls_back_as_soon_as_ten_requests_show_it() -> None:
    logs = [
        _requests("challenger", "2", 5, status="500"),  # too few to judge a breach
        pd.concat([_requests("challenger", "2", 8), _requests("challenger", "2", 2, status="503")]),
    ]
    clock, evidence = FakeClock(), ScriptedEvidence(logs)
    verdict = watch_canary(_config(), "2", evidence, clock=clock, sleep=clock.sleep)
    assert verdict.decision == "rollback" and evidence.polls == 2
    assert verdict.reason.startswith("error rate 20.00% > 10.00%")


def test_p99_over_the_slo_rolls_back() -> None:
    clock, evidence = FakeClock(), ScriptedEvidence(_growing(10, 3, ms=150.0))
    verdict = watch_canary(_config(), "2", evidence, clock=clock, sleep=clock.sleep)
    assert verdict.decision == "rollback" and evidence.polls == 1
    assert verdict.reason.startswith("p99 latency 150.0 ms > 100.0 ms")
    assert verdict.p99_ms == pytest.approx(150.0)


def test_a_challenger_that_is_not_served_rolls_back_at_once() -> None:
    evidence = ScriptedEvidence(_growing(5, 5), [None, "cannot load v2: gone"])
    clock = FakeClock()
    verdict = watch_canary(_config(), "2", evidence, clock=clock, sleep=clock.sleep)
    assert verdict.decision == "rollback" and evidence.polls == 2
    assert verdict.reason.startswith("cannot load v2: gone (10 challenger requests")
    assert verdict.not_served == "cannot load v2: gone"
    assert canary_tags(verdict)[lineage.ROLLOUT_NOT_SERVED] == "cannot load v2: gone"


def test_time_out_rolls_back_a_starved_canary_at_the_deadline() -> None:
    clock, evidence = FakeClock(), ScriptedEvidence(_growing(1, 20))
    verdict = watch_canary(_config(), "2", evidence, clock=clock, sleep=clock.sleep)
    # max_minutes=1, poll_seconds=10: polls at 0, 10, ..., 60 s; the one at 60 s is timed out.
    assert evidence.polls == 7 and clock.now == 1060.0
    assert verdict.decision == "rollback"
    assert verdict.reason == "only 7 of 30 challenger requests before the time limit"
    assert lineage.ROLLOUT_NOT_SERVED not in canary_tags(verdict)


def test_time_out_with_enough_requests_but_too_few_labels_rolls_back() -> None:
    def quality(log: pd.DataFrame) -> QualityReading:
        return QualityReading("accuracy", len(log) // 10, 0.9, 0.9, "champion live")

    clock, evidence = FakeClock(), ScriptedEvidence(_growing(40, 10))
    config = _config(min_labelled_rows=50)
    verdict = watch_canary(config, "2", evidence, quality=quality, clock=clock, sleep=clock.sleep)
    assert verdict.decision == "rollback" and evidence.polls == 7
    assert verdict.reason == "only 28 of 50 labelled challenger rows before the time limit"
    assert verdict.quality is not None and verdict.quality.challenger_rows == 28


def test_quality_is_read_at_every_poll_and_promotes_once_labelled() -> None:
    seen: list[int] = []

    def quality(log: pd.DataFrame) -> QualityReading:
        seen.append(len(log))
        return QualityReading("accuracy", len(log), 0.9, 0.9, "champion live", drop_bound=0.0)

    clock, evidence = FakeClock(), ScriptedEvidence(_growing(20, 5))
    config = _config(min_labelled_rows=60)
    verdict = watch_canary(config, "2", evidence, quality=quality, clock=clock, sleep=clock.sleep)
    assert verdict.decision == "promote" and seen == [20, 40, 60]
    tags = canary_tags(verdict)
    assert tags[lineage.CANARY_QUALITY_ROWS] == "60"
    assert tags[lineage.CANARY_QUALITY_BASELINE_SOURCE] == "champion live"
    assert tags[lineage.CANARY_QUALITY_DROP_BOUND] == "0"


def _pairs(n: int, *, agree: int) -> pd.DataFrame:
    champion = _requests("champion", "1", n)
    shadow = _requests("champion", "1", n).assign(variant="shadow", model_version="2")
    shadow.loc[agree:, "prediction"] = "0"
    return pd.concat([champion, shadow])


def test_shadow_is_done_once_enough_rows_were_compared() -> None:
    clock = FakeClock()
    evidence = ScriptedEvidence([_pairs(10, agree=10), _pairs(20, agree=18), _pairs(30, agree=27)])
    verdict = watch_shadow(
        _config(strategy="shadow", min_requests=20), "2", evidence, clock=clock, sleep=clock.sleep
    )
    assert verdict.decision == "done" and evidence.polls == 2
    assert (verdict.compared, verdict.agreement) == (20, pytest.approx(0.9))
    assert shadow_tags(verdict) == {lineage.SHADOW_ROWS: "20", lineage.SHADOW_AGREEMENT: "0.9000"}


def test_shadow_ends_with_what_it_saw_when_time_is_up() -> None:
    clock, evidence = FakeClock(), ScriptedEvidence([_pairs(3, agree=3)])
    config = _config(strategy="shadow", min_requests=20, max_minutes=0.5, poll_seconds=15)
    verdict = watch_shadow(config, "2", evidence, clock=clock, sleep=clock.sleep)
    assert verdict.decision == "done" and evidence.polls == 3 and clock.now == 1030.0
    assert verdict.reason == "shadow agreement 100.00% over 3 rows"


def test_shadow_not_served_rolls_back_and_is_recorded() -> None:
    clock, evidence = FakeClock(), ScriptedEvidence([pd.DataFrame()], ["no shadow answers"])
    verdict = watch_shadow(
        _config(strategy="shadow"), "2", evidence, clock=clock, sleep=clock.sleep
    )
    assert verdict.decision == "rollback" and evidence.polls == 1 and clock.sleeps == []
    assert shadow_tags(verdict)[lineage.ROLLOUT_NOT_SERVED] == "no shadow answers"
    assert shadow_tags(verdict)[lineage.SHADOW_ROWS] == "0"


def test_the_loop_tells_the_judge_when_time_is_up() -> None:
    seen: list[tuple[float, bool]] = []
    clock = FakeClock()

    @dataclass
    class Waiting:
        decision: str

    def judge(log: pd.DataFrame, timed_out: bool, not_served: str | None) -> Waiting:
        seen.append((clock.now, timed_out))
        return Waiting("done" if timed_out else "wait")

    watch(
        ScriptedEvidence([pd.DataFrame()]), judge,  # type: ignore[arg-type]
        max_seconds=25, poll_seconds=10, clock=clock, sleep=clock.sleep,
    )  # fmt: skip
    assert seen == [(1000, False), (1010, False), (1020, False), (1030, True)]


def _log_rows(log: pd.DataFrame, model_name: str, at: pd.Timestamp) -> list[dict[str, object]]:
    extra = {"model_name": model_name, "timestamp": at.to_pydatetime(), "error": None}
    return [{**row, **extra} for row in log.to_dict("records")]


def _served_since(
    models: Models,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
    log: pd.DataFrame,
    *,
    after_seconds: float = 0,
) -> registry.Rollout:
    """A rollout of v2 (champion v1) and its serving log, written by the service's writer
    ``after_seconds`` after the rollout started."""
    v1, v2 = models.version(), models.version()
    assert (v1, v2) == ("1", "2")
    registry.promote_version(models.client, models.name, v1, reason="first")
    rollout = registry.start_rollout(
        models.client,
        models.name,
        mode=mode,
        challenger_version=v2,
        share=0.5,
        reason="t",  # type: ignore[arg-type]
    )
    monkeypatch.setenv("MLOPS_SERVING_LOG_DIR", str(tmp_path / "serving_log"))
    writer = ServingLogWriter(tmp_path / "serving_log")
    before = pd.Timestamp(rollout.started_at) - pd.Timedelta(seconds=5)
    writer.log(_log_rows(_requests("challenger", "2", 50, status="500"), models.name, before))
    at = pd.Timestamp(rollout.started_at) + pd.Timedelta(seconds=after_seconds)
    writer.log(_log_rows(log, models.name, at))
    writer.close()
    return rollout


def test_the_live_canary_reads_the_serving_log_since_it_started_and_records_figures(
    models: Models, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rollout = _served_since(
        models, tmp_path, monkeypatch, "canary", _requests("challenger", "2", 30)
    )
    config = _config(model_name=models.name, min_requests=30)
    verdict = watch_live_canary(models.client, get_settings(), config, "2", rollout)
    assert (verdict.decision, verdict.requests, verdict.error_rate) == ("promote", 30, 0.0)
    tags = models.tags("2")
    assert (tags[lineage.CANARY_REQUESTS], tags[lineage.CANARY_ERROR_RATE]) == ("30", "0.0000")
    assert tags[lineage.CANARY_P99_MS] == "5.00"


def test_the_live_shadow_records_rows_and_agreement(
    models: Models, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rollout = _served_since(models, tmp_path, monkeypatch, "shadow", _pairs(10, agree=9))
    config = _config(model_name=models.name, strategy="shadow", min_requests=10)
    verdict = watch_live_shadow(models.client, get_settings(), config, "2", rollout)
    assert (verdict.decision, verdict.compared, verdict.agreement) == ("done", 10, 0.9)
    tags = models.tags("2")
    assert (tags[lineage.SHADOW_ROWS], tags[lineage.SHADOW_AGREEMENT]) == ("10", "0.9000")


def test_the_live_canary_rolls_back_a_challenger_the_service_never_answered(
    models: Models, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every request after the takeover answered by the champion: the service has not loaded v2;
    # loading it here fails too (the version's folder holds no model), and both are recorded.
    champion = _requests("champion", "1", 60)
    rollout = _served_since(models, tmp_path, monkeypatch, "canary", champion, after_seconds=2)
    config = _config(model_name=models.name, min_requests=10, takeover_seconds=1)
    verdict = watch_live_canary(models.client, get_settings(), config, "2", rollout)
    assert verdict.decision == "rollback" and verdict.requests == 0
    assert verdict.not_served is not None
    assert verdict.not_served.startswith(
        "the live service has not loaded v2: the challenger's share of "
    )
    assert verdict.not_served.endswith(
        f"none by v2; loading it fails: cannot load models:/{models.name}/2: MlflowException: "
        "No such artifact: 'MLmodel'"
    )
    assert models.tags("2")[lineage.ROLLOUT_NOT_SERVED] == verdict.not_served


def test_the_live_shadow_rolls_back_a_challenger_the_service_never_answered(
    models: Models, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    champion = _requests("champion", "1", 12)
    rollout = _served_since(models, tmp_path, monkeypatch, "shadow", champion, after_seconds=2)
    config = _config(model_name=models.name, strategy="shadow", min_requests=10,
                     takeover_seconds=1)  # fmt: skip
    verdict = watch_live_shadow(models.client, get_settings(), config, "2", rollout)
    assert (verdict.decision, verdict.compared) == ("rollback", 0)
    assert verdict.not_served is not None
    assert verdict.not_served.startswith("the live service has not loaded v2: all 12 requests ")
    assert verdict.not_served.endswith(f"loading it fails: cannot load models:/{models.name}/2: "
                                       "MlflowException: No such artifact: 'MLmodel'")  # fmt: skip
    tags = models.tags("2")
    assert tags[lineage.ROLLOUT_NOT_SERVED] == verdict.not_served
    assert tags[lineage.SHADOW_ROWS] == "0"


def test_the_live_canary_scores_the_labels_of_its_version(
    models: Models, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = _requests("challenger", "2", 30)  # predicts 1, and every label is 1
    other = _requests("challenger", "3", 10).assign(prediction="0")  # another version's rows
    rollout = _served_since(models, tmp_path, monkeypatch, "canary", pd.concat([mine, other]))
    ids = [*mine["request_id"], *other["request_id"]]
    labels = tmp_path / "labels.csv"
    labels.write_text("request_id,row_index,churned\n" + "".join(f"{i},0,1\n" for i in ids))
    config = _config(model_name=models.name, min_requests=30, min_labelled_rows=30,
                     labels={"path": str(labels)})  # fmt: skip
    spec = LabelSpec(str(labels), "churned", "classification", "accuracy", 0.9)
    verdict = watch_live_canary(models.client, get_settings(), config, "2", rollout, spec)
    assert verdict.decision == "promote"
    assert verdict.quality == QualityReading(
        "accuracy", 30, 1.0, 0.9, "challenger offline test", drop_bound=pytest.approx(-0.1)
    )
    tags = models.tags("2")
    assert (tags[lineage.CANARY_QUALITY_ROWS], tags[lineage.CANARY_QUALITY_VALUE]) == ("30", "1")
    assert tags[lineage.CANARY_QUALITY_BASELINE] == "0.9"


def test_the_serving_token_is_checked_against_the_service_urls_before_watching(
    models: Models, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rollout = _served_since(
        models, tmp_path, monkeypatch, "canary", _requests("challenger", "2", 30)
    )
    monkeypatch.setenv("MLOPS_SERVE_TOKEN", "s3cret")
    config = _config(model_name=models.name, min_requests=30,
                     service_urls=["http://models.example.com:3000"])  # fmt: skip
    with pytest.raises(
        ConfigError, match=r"refusing to send the serving token to host 'models\.example\.com'"
    ):
        watch_live_canary(models.client, get_settings(), config, "2", rollout)
    assert lineage.CANARY_REQUESTS not in models.tags("2")
