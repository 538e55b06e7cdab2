"""DeploymentConfig: bad fields named; the candidate it names and the rollout it starts, in a
real SQLite registry."""

from __future__ import annotations

import pytest
from conftest import Models
from pydantic import ValidationError

from prefect_mlops import registry
from prefect_mlops.deployment.rollout import (
    DeploymentConfig,
    resolve_candidate,
    start_progressive_rollout,
)
from prefect_mlops.errors import (
    AliasNotFoundError,
    ConfigError,
    InfraValidationError,
    ModelNotFoundError,
)


def _config(**kwargs: object) -> DeploymentConfig:
    return DeploymentConfig(model_name="m", **kwargs)


def _named(models: Models, **kwargs: object) -> DeploymentConfig:
    return DeploymentConfig(model_name=models.name, **kwargs)


def test_deployment_config_names_bad_fields() -> None:
    with pytest.raises(ValidationError, match="canary_share"):
        _config(canary_share=1.5)
    with pytest.raises(ValidationError, match="strategy"):
        _config(strategy="big-bang")
    with pytest.raises(ValidationError, match="version"):
        _config(version="latest")


def test_service_urls_must_be_http() -> None:
    assert _config(service_urls=["http://127.0.0.1:3000"]).service_urls
    with pytest.raises(ValidationError, match=r"service_urls: '127\.0\.0\.1:3000'"):
        _config(service_urls=["127.0.0.1:3000"])


def test_the_candidate_is_the_configured_version_else_the_challenger(models: Models) -> None:
    v1, v2 = models.version(), models.version()
    assert resolve_candidate(models.client, _named(models, version=v1)) == v1
    registry.move_alias(models.client, models.name, registry.CHALLENGER, v2, reason="t")
    assert resolve_candidate(models.client, _named(models)) == v2
    with pytest.raises(ModelNotFoundError, match=f"model '{models.name}' has no version '9'"):
        resolve_candidate(models.client, _named(models, version="9"))


def test_a_missing_challenger_names_the_model_and_the_fix(models: Models) -> None:
    models.version()
    with pytest.raises(
        AliasNotFoundError, match=f"model '{models.name}' has no version behind"
    ) as e:
        resolve_candidate(models.client, _named(models))
    assert "pass `version`" in str(e.value)
    assert not isinstance(e.value, InfraValidationError)


def test_canary_and_shadow_start_their_rollout_blue_green_none(models: Models) -> None:
    v1, v2 = models.version(), models.version()
    registry.promote_version(models.client, models.name, v1, reason="first")
    canary = start_progressive_rollout(
        models.client, _named(models, strategy="canary", canary_share=0.25), v2
    )
    assert (canary.mode, canary.challenger_version, canary.share) == ("canary", v2, 0.25)
    assert canary.reason == "canary rollout after infra-validation"
    assert registry.get_rollout(models.client, models.name) == canary
    shadow = start_progressive_rollout(models.client, _named(models, strategy="shadow"), v2)
    assert shadow.mode == "shadow"
    assert registry.get_rollout(models.client, models.name) == shadow
    with pytest.raises(ConfigError, match="blue-green"):
        start_progressive_rollout(models.client, _named(models), v2)
