"""Model validation ("blessing", after TFX): may a candidate model replace the champion?

Each :class:`~prefect_mlops.config.MetricThreshold` gives up to three checks on one metric,
direction aware (``log_loss``, ``rmse`` and ``mae`` are lower-is-better):

* a **value** check: ``candidate >= min_value`` (higher-is-better metrics) or
  ``candidate <= max_value`` (lower-is-better metrics);
* an absolute **change** check: ``improvement >= min_improvement``;
* a relative **change** check: ``improvement / |champion| >= min_relative_improvement``;

where ``improvement`` is ``candidate - champion`` for higher-is-better metrics and
``champion - candidate`` for lower-is-better ones. Change checks run only when there is a
champion (the first model is judged on value checks alone). With ``per_slice`` the checks also
run on every slice: value checks on the candidate's slices, change checks on the slices both
models have.

Rules (documented choices):

* ``min_value`` on a lower-is-better metric, or ``max_value`` on a higher-is-better one, is a
  :class:`~prefect_mlops.errors.ConfigError`, as is a threshold with no rule at all
  (:func:`check_thresholds` tells early, before any training).
* A metric missing from the candidate's overall results (e.g. ``roc_auc`` for a regression
  model, or a classifier without ``predict_proba``) fails its checks with a reason saying so.
  A metric missing from a slice (undefined there, e.g. one class) skips that slice's check.
* A metric the champion's results lack skips the change check (recorded as passed, with the
  reason), as on a first run.
* Comparisons allow a float tolerance of 1e-12, so an exact tie passes ``min_improvement=0``.
* Relative change against a champion value of 0 counts as +inf / 0 / -inf by the sign of the
  improvement.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from prefect_mlops.config import HIGHER_IS_BETTER, MetricThreshold
from prefect_mlops.errors import ConfigError
from prefect_mlops.modeling.evaluation import EvaluationResult

TOLERANCE = 1e-12
"""Float slack of every comparison, so that equal values computed two ways still tie."""

MAX_SUMMARY_FAILURES = 3
"""The one-line summary lists this many failed checks, then counts the rest."""


def default_thresholds(task: str) -> list[MetricThreshold]:
    """Return the blessing rules used when the configuration gives none.

    Classification (binary and multiclass): ``roc_auc`` must be at least 0.5 and not worse than
    the champion's. Regression: ``rmse`` must not be worse than the champion's.

    Raises:
        ConfigError: ``task`` is not ``"classification"`` or ``"regression"``.
    """
    if task == "classification":
        return [MetricThreshold(metric="roc_auc", min_value=0.5, min_improvement=0.0)]
    if task == "regression":
        return [MetricThreshold(metric="rmse", min_improvement=0.0)]
    raise ConfigError(
        f"no default thresholds for task {task!r}; expected 'classification' or 'regression'"
    )


def check_thresholds(thresholds: list[MetricThreshold]) -> None:
    """Raise ConfigError naming every threshold whose rules contradict the metric's direction.

    ``min_value`` is the bound of a higher-is-better metric and ``max_value`` of a
    lower-is-better one; a threshold must set at least one rule. Returns None when all are fine.
    """
    problems: list[str] = []
    for t in thresholds:
        higher = HIGHER_IS_BETTER[t.metric]
        if higher and t.max_value is not None:
            problems.append(
                f"threshold on {t.metric}: max_value={t.max_value} is not allowed, {t.metric} "
                f"is higher-is-better; use min_value"
            )
        if not higher and t.min_value is not None:
            problems.append(
                f"threshold on {t.metric}: min_value={t.min_value} is not allowed, {t.metric} "
                f"is lower-is-better; use max_value"
            )
        rules = (t.min_value, t.max_value, t.min_improvement, t.min_relative_improvement)
        if all(r is None for r in rules):
            problems.append(
                f"threshold on {t.metric} sets no rule; give "
                f"{'min_value' if higher else 'max_value'}, min_improvement or "
                "min_relative_improvement"
            )
    if problems:
        raise ConfigError("invalid blessing thresholds:\n  " + "\n  ".join(problems))


@dataclass
class CheckResult:
    """One check of one metric on the whole test set (``slice`` None) or on one slice.

    ``bound`` is the value bound for a ``"value"`` check and the required (absolute, or
    relative when ``relative``) improvement for a ``"change"`` check. ``candidate`` /
    ``champion`` are None when that model has no value for the metric.
    """

    metric: str
    slice: str | None
    kind: Literal["value", "change"]
    passed: bool
    candidate: float | None
    champion: float | None
    bound: float
    reason: str
    relative: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict of the fields."""
        return asdict(self)


@dataclass
class BlessingDecision:
    """The verdict on a candidate: blessed when every check passed."""

    blessed: bool
    checks: list[CheckResult]
    has_champion: bool

    @property
    def failed(self) -> list[CheckResult]:
        """The checks that failed."""
        return [c for c in self.checks if not c.passed]

    @property
    def reasons(self) -> list[str]:
        """Return the reasons of the failed checks, or ``[summary()]`` when blessed."""
        if self.blessed:
            return [self.summary()]
        return [c.reason for c in self.failed]

    def summary(self) -> str:
        """Return the decision in one line.

        ``not blessed: roc_auc 0.712 is 0.041 below champion 0.753 (required improvement
        ≥ 0.000)`` or ``blessed: roc_auc 0.861 vs champion 0.853 (+0.008); roc_auc 0.861 ≥
        0.500``; slice checks are counted rather than listed when they pass.
        """
        if not self.blessed:
            failed = self.failed
            shown = "; ".join(c.reason for c in failed[:MAX_SUMMARY_FAILURES])
            more = len(failed) - MAX_SUMMARY_FAILURES
            return f"not blessed: {shown}" + (f" (+{more} more failed checks)" if more > 0 else "")
        head = "blessed" if self.has_champion else "blessed (no champion yet)"
        overall = [_short(c) for c in self.checks if c.slice is None]
        n_slices = sum(1 for c in self.checks if c.slice is not None)
        parts = overall + ([f"{n_slices} slice checks passed"] if n_slices else [])
        return f"{head}: " + ("; ".join(parts) if parts else "no thresholds configured")

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict: blessed, has_champion, summary, reasons and checks."""
        return {
            "blessed": self.blessed,
            "has_champion": self.has_champion,
            "summary": self.summary(),
            "reasons": self.reasons,
            "checks": [c.to_dict() for c in self.checks],
        }

    def markdown(self) -> str:
        """Return a Markdown report: the decision, then one table row per check."""
        verdict = "✅ **Blessed**" if self.blessed else "❌ **Not blessed**"
        lines = [f"{verdict}: {_md(self.summary().split(': ', 1)[-1])}", ""]
        if not self.has_champion:
            lines += ["No champion yet: value checks only.", ""]
        if not self.checks:
            return "\n".join(lines).rstrip() + "\n"
        lines += [
            "| metric | slice | check | candidate | champion | bound | result |",
            "|---|---|---|---|---|---|---|",
        ]
        for c in self.checks:
            lines.append(
                "| "
                + " | ".join(
                    [
                        c.metric,
                        _md(c.slice) if c.slice is not None else "(overall)",
                        _check_label(c),
                        _fmt(c.candidate),
                        _fmt(c.champion),
                        _fmt_bound(c),
                        "pass" if c.passed else "**FAIL**",
                    ]
                )
                + " |"
            )
        return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# formatting
# --------------------------------------------------------------------------------------------


def _fmt(x: float | None) -> str:
    """Three decimals for ordinary values, significant digits for tiny or huge ones."""
    if x is None:
        return "n/a"
    if not math.isfinite(x):
        return str(x)
    # At exactly 0.001 both formats print "0.001", so "<" and "<=" are the same test there.
    tiny = abs(x) < 1e-3  # pragma: no mutate
    if x == 0 or (not tiny and abs(x) < 1e6):
        return f"{x:.3f}"
    return f"{x:.3g}"


def _fmt_pct(x: float) -> str:
    return f"{x * 100:+.1f}%"  # ±inf prints as "+inf%" / "-inf%"


def _fmt_bound(c: CheckResult) -> str:
    return _fmt_pct(c.bound) if c.relative else _fmt(c.bound)


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def _where(metric: str, slice_key: str | None) -> str:
    return metric if slice_key is None else f"{metric} on slice {slice_key!r}"


def _check_label(c: CheckResult) -> str:
    if c.kind == "value":
        return "value ≥" if HIGHER_IS_BETTER[c.metric] else "value ≤"
    return "relative improvement ≥" if c.relative else "improvement ≥"


def _short(c: CheckResult) -> str:
    """A passed check in a few words, for the blessed summary."""
    if c.kind == "value":
        op = "≥" if HIGHER_IS_BETTER[c.metric] else "≤"
        return f"{c.metric} {_fmt(c.candidate)} {op} {_fmt(c.bound)}"
    if c.champion is None or c.candidate is None:
        return f"{c.metric} {_fmt(c.candidate)} (champion has no {c.metric})"
    delta = c.candidate - c.champion
    sign = "+" if delta >= 0 else "-"
    return (
        f"{c.metric} {_fmt(c.candidate)} vs champion {_fmt(c.champion)} ({sign}{_fmt(abs(delta))})"
    )


# --------------------------------------------------------------------------------------------
# checks
# --------------------------------------------------------------------------------------------


def _value_check(
    metric: str, slice_key: str | None, candidate: float | None, bound: float
) -> CheckResult:
    higher = HIGHER_IS_BETTER[metric]
    where = _where(metric, slice_key)
    if candidate is None:
        return CheckResult(
            metric=metric,
            slice=slice_key,
            kind="value",
            passed=False,
            candidate=None,
            champion=None,
            bound=bound,
            reason=f"{where} is missing from the candidate's evaluation, so it cannot be checked "
            f"against the {'minimum' if higher else 'maximum'} {_fmt(bound)}",
        )
    if higher:
        passed = candidate >= bound - TOLERANCE
        word, op = "below the minimum", "≥"
    else:
        passed = candidate <= bound + TOLERANCE
        word, op = "above the maximum", "≤"
    if passed:
        reason = f"{where} {_fmt(candidate)} {op} {_fmt(bound)}"
    else:
        gap = abs(candidate - bound)
        reason = f"{where} {_fmt(candidate)} is {_fmt(gap)} {word} {_fmt(bound)}"
    return CheckResult(metric, slice_key, "value", passed, candidate, None, bound, reason)


def _improvement(metric: str, candidate: float, champion: float) -> float:
    return candidate - champion if HIGHER_IS_BETTER[metric] else champion - candidate


def _relative(improvement: float, champion: float) -> float:
    if champion != 0:
        return improvement / abs(champion)
    if improvement > TOLERANCE:
        return math.inf
    return -math.inf if improvement < -TOLERANCE else 0.0


def _change_check(
    metric: str,
    slice_key: str | None,
    candidate: float | None,
    champion: float | None,
    bound: float,
    relative: bool,
) -> CheckResult:
    where = _where(metric, slice_key)
    required = (
        f"required relative improvement ≥ {_fmt_pct(bound)}"
        if relative
        else f"required improvement ≥ {_fmt(bound)}"
    )
    if candidate is None:
        return CheckResult(
            metric=metric,
            slice=slice_key,
            kind="change",
            passed=False,
            candidate=None,
            champion=champion,
            bound=bound,
            reason=f"{where} is missing from the candidate's evaluation, so it cannot be "
            f"compared with the champion ({required})",
            relative=relative,
        )
    if champion is None:
        return CheckResult(
            metric=metric,
            slice=slice_key,
            kind="change",
            passed=True,
            candidate=candidate,
            champion=None,
            bound=bound,
            reason=f"{where}: the champion has no {metric}, change check skipped",
            relative=relative,
        )
    improvement = _improvement(metric, candidate, champion)
    if relative:
        value = _relative(improvement, champion)
        passed = value >= bound - TOLERANCE
    else:
        passed = improvement >= bound - TOLERANCE
    diff = candidate - champion
    # ``side`` is read only when |diff| > TOLERANCE, where "diff >= 0" is the same test as
    # "diff > 0": hence the pragma.
    above = diff > 0  # pragma: no mutate
    side = "above" if above else "below"
    if abs(diff) <= TOLERANCE:
        how = "equals"
    elif relative:
        share = abs(diff) / abs(champion) if champion != 0 else math.inf
        how = f"is {share * 100:.1f}% {side}"
    else:
        how = f"is {_fmt(abs(diff))} {side}"
    direction = "" if HIGHER_IS_BETTER[metric] else "lower is better; "
    reason = f"{where} {_fmt(candidate)} {how} champion {_fmt(champion)} ({direction}{required})"
    return CheckResult(
        metric, slice_key, "change", passed, candidate, champion, bound, reason, relative
    )


def _checks_for(
    t: MetricThreshold,
    slice_key: str | None,
    candidate: float | None,
    champion: float | None,
    has_champion: bool,
) -> list[CheckResult]:
    out: list[CheckResult] = []
    bound = t.min_value if HIGHER_IS_BETTER[t.metric] else t.max_value
    if bound is not None:
        out.append(_value_check(t.metric, slice_key, candidate, bound))
    if has_champion:
        if t.min_improvement is not None:
            out.append(
                _change_check(t.metric, slice_key, candidate, champion, t.min_improvement, False)
            )
        if t.min_relative_improvement is not None:
            out.append(
                _change_check(
                    t.metric, slice_key, candidate, champion, t.min_relative_improvement, True
                )
            )
    return out


def bless_candidate(
    candidate: EvaluationResult,
    champion: EvaluationResult | None,
    thresholds: list[MetricThreshold],
) -> BlessingDecision:
    """Return the blessing decision of ``candidate`` against ``champion`` (None on a first run).

    The candidate is blessed when every check of every threshold passes (see the module
    docstring for the checks). Overall checks come first, then per-slice checks in the order of
    the candidate's slices.

    Raises:
        ConfigError: a threshold contradicts its metric's direction or sets no rule (see
            :func:`check_thresholds`), or candidate and champion solve different tasks.
    """
    check_thresholds(thresholds)
    has_champion = champion is not None
    if champion is not None and champion.task != candidate.task:
        raise ConfigError(
            f"the candidate is a {candidate.task} model but the champion is a {champion.task} "
            "model; their metrics cannot be compared (register it under a new model name)"
        )
    champ_overall = champion.overall if champion is not None else {}
    champ_slices = champion.slices if champion is not None else {}
    checks: list[CheckResult] = []
    for t in thresholds:
        checks += _checks_for(
            t, None, candidate.overall.get(t.metric), champ_overall.get(t.metric), has_champion
        )
    for t in thresholds:
        if not t.per_slice:
            continue
        for key, metrics in candidate.slices.items():
            value = metrics.get(t.metric)
            if value is None:
                continue  # undefined on this slice (e.g. one class): nothing to check
            champ_metrics = champ_slices.get(key)
            champ_value = champ_metrics.get(t.metric) if champ_metrics is not None else None
            both = has_champion and champ_value is not None
            checks += _checks_for(t, key, value, champ_value, both)
    return BlessingDecision(
        blessed=all(c.passed for c in checks), checks=checks, has_champion=has_champion
    )


def metrics_rows(
    candidate: EvaluationResult, champion: EvaluationResult | None, digits: int = 4
) -> list[dict[str, Any]]:
    """The test-set metrics side by side, rounded to ``digits``, for a table artifact: overall
    first (slice ``(overall)``), then each of the candidate's slices. Each row: ``metric``,
    ``slice``, ``rows`` (the candidate's), ``candidate``, ``champion`` and ``change``
    (candidate - champion); the champion's values are None without a champion or metric."""
    parts: list[tuple[str, int, dict[str, float], dict[str, float]]] = [
        ("(overall)", candidate.n_rows, candidate.overall, champion.overall if champion else {})
    ]
    for key, metrics in candidate.slices.items():
        theirs = champion.slices.get(key, {}) if champion else {}
        parts.append((key, candidate.slice_sizes.get(key, 0), metrics, theirs))
    rows = []
    for slice_key, n_rows, ours, theirs in parts:
        for metric, value in ours.items():
            other = theirs.get(metric)
            rows.append(
                {
                    "metric": metric,
                    "slice": slice_key,
                    "rows": n_rows,
                    "candidate": round(value, digits),
                    "champion": None if other is None else round(other, digits),
                    "change": None if other is None else round(value - other, digits),
                }
            )
    return rows
