"""What the live service shows about a rollout: its serving log since the rollout started, its
``GET /metadata``, and whether it serves the challenger at all.

A challenger the live service cannot load never answers; the rollout must end at once rather
than wait out ``max_minutes``. Two kinds of evidence say so: the service's ``/metadata`` names
its ``challenger_error`` (:func:`challenger_load_error`), or its serving log shows the champion
answering what the rollout gives the challenger (:func:`unserved_challenger`).
:class:`LiveService` gathers both for the watch loop.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from prefect_mlops.deployment.rollout import DeploymentConfig
from prefect_mlops.errors import ModelLoadError

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from prefect_mlops.registry import Rollout

logger = logging.getLogger(__name__)


def requests_of(log: pd.DataFrame, version: str, variant: str) -> pd.DataFrame:
    """One row per request of ``variant`` served by ``version``."""
    if log.empty:
        return pd.DataFrame(columns=["request_id", "status", "latency_ms"])
    mine = log[(log["variant"] == variant) & (log["model_version"].astype(str) == str(version))]
    return mine.drop_duplicates("request_id")


def rows_since(log: pd.DataFrame, started_at: str) -> pd.DataFrame:
    """The serving-log rows logged at or after ``started_at`` (an ISO time with offset)."""
    if log.empty:
        return log
    stamps = pd.to_datetime(log["timestamp"], utc=True)
    return log[stamps >= pd.Timestamp(started_at)]


def challenger_load_error(metadata: dict[str, Any], version: str, started_at: str) -> str | None:
    """The live service's reason for not serving ``version``, from its ``GET /metadata``: its
    ``challenger_error`` once it has taken up this rollout (same challenger version and start
    time); None while it serves the challenger or has not yet seen the rollout."""
    rollout = metadata.get("rollout") or {}
    error = metadata.get("challenger_error")
    if not error or not isinstance(rollout, dict):
        return None
    same = str(rollout.get("challenger_version")) == str(version)
    if not same or rollout.get("started_at") != started_at:
        return None
    return str(error)


def unserved_challenger(
    log: pd.DataFrame,
    *,
    model_name: str,
    version: str,
    mode: Literal["canary", "shadow"],
    share: float,
    started_at: str,
    config: DeploymentConfig,
) -> str | None:
    """Why the serving log shows the live service is not serving ``version``, or None.

    Evidence: at least ``min(10, min_requests)`` requests that arrived ``takeover_seconds``
    after the rollout started were answered by the champion although the rollout gives them to
    the challenger (canary: the routed ``share`` of request ids; shadow: every request), while
    no row at all comes from the challenger. ``log`` holds the rows since the rollout started.
    """
    from prefect_mlops.serving.routing import request_fraction

    if log.empty:
        return None
    rows = log[log["model_name"].astype(str) == model_name] if "model_name" in log else log
    variant = "challenger" if mode == "canary" else "shadow"
    if not requests_of(rows, version, variant).empty:
        return None
    after = pd.Timestamp(started_at) + pd.Timedelta(seconds=config.takeover_seconds)
    champion = rows[
        (rows["variant"] == "champion") & (pd.to_datetime(rows["timestamp"], utc=True) >= after)
    ].drop_duplicates("request_id")
    if mode == "canary":
        routed = champion["request_id"].astype(str).map(request_fraction) < share
        champion = champion[routed]
    n = len(champion)
    if n < min(10, config.min_requests):
        return None
    given = "the challenger's share of" if mode == "canary" else "all"
    return (
        f"the live service has not loaded v{version}: {given} {n} requests since "
        f"{config.takeover_seconds:g} s after the {mode} started were answered by the champion, "
        f"none by v{version}"
    )


def service_metadata(
    url: str, token: str | None, token_hosts: Collection[str] | None = None
) -> dict[str, Any] | None:
    """``GET <url>/metadata`` of a live service, or None when it does not answer (a service
    that is down says nothing about the challenger; the serving log still does). The token
    goes only where ``serving.auth.check_token_destination`` allows (``token_hosts``, default
    the settings' ``serve_token_hosts``), else ConfigError: a watcher that cannot
    authenticate cannot judge."""
    import httpx

    from prefect_mlops.serving.auth import bearer_headers

    endpoint = url.rstrip("/") + "/metadata"
    headers = bearer_headers(token, endpoint, token_hosts)
    try:
        response = httpx.get(endpoint, headers=headers, timeout=10)
        response.raise_for_status()
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        logger.warning("live service %s: no /metadata (%s)", url, exc)
        return None
    return body if isinstance(body, dict) else None


@dataclass
class LiveService:
    """The live evidence of one rollout: the serving log under ``log_dir`` and the services at
    ``config.service_urls`` (read with ``token``, sent only to the URLs
    ``serving.auth.check_token_destination`` allows with ``token_hosts``, default the settings'
    ``serve_token_hosts``: ConfigError at construction names a refused one)."""

    client: MlflowClient
    config: DeploymentConfig
    version: str
    rollout: Rollout
    log_dir: Path
    token: str | None = None
    token_hosts: Collection[str] | None = None

    def __post_init__(self) -> None:
        from prefect_mlops.serving.auth import bearer_headers

        for url in self.config.service_urls:
            bearer_headers(self.token, url.rstrip("/") + "/metadata", self.token_hosts)

    def serving_log(self) -> pd.DataFrame:
        """The model's serving-log rows since the rollout started: the common columns and
        ``prediction`` (features and probabilities are not read)."""
        from prefect_mlops.serving.log import COLUMNS, PREDICTION, read_window

        return read_window(
            self.log_dir, self.config.model_name, start=self.rollout.started_at,
            columns=[*COLUMNS, PREDICTION],
        )  # fmt: skip

    def not_served(self, log: pd.DataFrame) -> str | None:
        """Why the live service is not serving the challenger, or None: first what a service
        at ``service_urls`` says (its load error), else what ``log`` shows (then the load error
        is reproduced here with the service's own loader, when it fails here too)."""
        name, version = self.config.model_name, self.version
        for url in self.config.service_urls:
            metadata = service_metadata(url, self.token, self.token_hosts) or {}
            error = challenger_load_error(metadata, version, self.rollout.started_at)
            if error is not None:
                return f"the live service at {url} cannot load {name} v{version}: {error}"
        evidence = unserved_challenger(
            log, model_name=name, version=version, mode=self.rollout.mode,
            share=self.rollout.share, started_at=self.rollout.started_at, config=self.config,
        )  # fmt: skip
        if evidence is None:
            return None
        from prefect_mlops.serving.loading import load_version

        try:
            load_version(self.client, name, version)  # the service's own (safe) loader
        except ModelLoadError as exc:
            return f"{evidence}; loading it fails: {exc}"
        return evidence
