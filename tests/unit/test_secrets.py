"""Tests of secret masking (URLs and free text) and of the references a DataSource resolves."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from prefect_mlops.config import DataSource, TrainingConfig
from prefect_mlops.errors import ConfigError, DataIngestError, ModelLoadError
from prefect_mlops.secret_references import with_password
from prefect_mlops.secrets import (
    SENSITIVE_KEYS,
    chainable,
    is_sensitive_key,
    mask_text,
    mask_url,
    secret_values,
    url_has_secret,
)

PW = "pw-5f2a9c-SENTINEL"


# --- masking ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        (f"postgresql://app:{PW}@db:5432/w", "postgresql://app:***@db:5432/w"),
        (f"postgresql+psycopg://app:{PW}@db/w?x=1", "postgresql+psycopg://app:***@db/w?x=1"),
        (f"mysql://:{PW}@db/w", "mysql://:***@db/w"),
        ("postgresql://app:p%40ss%3Aw@db/w", "postgresql://app:***@db/w"),  # URL-encoded
        ("postgresql://app:p@ss@db/w", "postgresql://app:***@db/w"),  # unencoded "@"
        ("postgresql://app:pw@[::1]:5432/w", "postgresql://app:***@[::1]:5432/w"),
        ("https://user:tok@example.com/a/b", "https://user:***@example.com/a/b"),
    ],
)
def test_userinfo_password_is_masked(url: str, masked: str) -> None:
    assert mask_url(url) == masked
    assert url_has_secret(url)


@pytest.mark.parametrize("key", sorted(SENSITIVE_KEYS))
def test_every_sensitive_query_parameter_is_masked(key: str) -> None:
    url = f"postgresql://app@db/w?sslmode=require&{key}={PW}&application_name=x"
    assert mask_url(url) == f"postgresql://app@db/w?sslmode=require&{key}=***&application_name=x"


@pytest.mark.parametrize(
    "key",
    [
        "PASSWORD",
        "Password",
        "ApiKey",
        "API-KEY",
        "pass%77ord",
        "api%5Fkey",
        "db_password",
        "x-amz-security-token",
        "AWS_SESSION_TOKEN",
        "clientSecret",
    ],
)
def test_keys_match_case_encoding_and_suffix(key: str) -> None:
    assert is_sensitive_key(key)
    assert mask_url(f"s3://bucket/key?{key}={PW}") == f"s3://bucket/key?{key}=***"


@pytest.mark.parametrize("key", ["sslmode", "user", "host", "application_name", "passes", "q"])
def test_ordinary_keys_are_kept(key: str) -> None:
    assert not is_sensitive_key(key)
    url = f"postgresql://app@db/w?{key}=value"
    assert mask_url(url) == url
    assert not url_has_secret(url)


def test_url_encoded_value_and_fragment() -> None:
    url = "https://h/p?token=a%2Fb%3Dc#section"
    assert mask_url(url) == "https://h/p?token=***#section"


def test_several_urls_in_one_text() -> None:
    text = (
        f"cannot open 'postgresql://a:{PW}@h1/d' nor "
        f'"mysql://b:{PW}@h2/d?password={PW}" (see https://sqlalche.me/e/20/f405), '
        f"and sqlite:////tmp/x.db?token={PW}; retry"
    )
    masked = mask_text(text)
    assert PW not in masked
    assert masked == (
        "cannot open 'postgresql://a:***@h1/d' nor "
        '"mysql://b:***@h2/d?password=***" (see https://sqlalche.me/e/20/f405), '
        "and sqlite:////tmp/x.db?token=*** retry"  # a value runs to the next space
    )


def test_keyword_connection_strings_are_masked() -> None:
    text = f"host=db port=5432 password={PW} user=app sslpassword='a b c' dbname=w"
    assert mask_text(text) == "host=db port=5432 password=*** user=app sslpassword=*** dbname=w"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "column 'password' is missing from the data",
        "data file /data/churn.csv does not exist",
        "http://127.0.0.1:8080/predict?rows=3",
        "user@example.com wrote a=b&c=d",
        "sqlite:////tmp/mlops/mlflow.db",
        "postgresql://app@db:5432/w :: SELECT * FROM t WHERE pass_rate > 0.5",
        "ratio: 3:4@scale",
        "models:/churn/3",
    ],
)
def test_text_without_secrets_is_untouched(text: str) -> None:
    assert mask_text(text) == text


def test_known_secrets_are_masked_anywhere() -> None:
    text = f"driver said: bad password {PW!r}, encoded p%40ss"
    assert mask_text(text, known=[PW, "p@ss", None, ""]) == (
        "driver said: bad password '***', encoded ***"
    )


def test_secret_values_of_a_url() -> None:
    url = f"postgresql://a:p%40ss@h/d?password={PW}&sslmode=require"
    assert secret_values(url) == ["p@ss", PW]


def test_with_password_encodes_it() -> None:
    url = with_password("postgresql://app@db:5432/w", "p@ss/word")
    assert url == "postgresql://app:p%40ss%2Fword@db:5432/w"
    assert mask_url(url) == "postgresql://app:***@db:5432/w"


def test_chainable_drops_a_cause_that_shows_a_secret() -> None:
    clean = ValueError("relation missing does not exist")
    assert chainable(clean) is clean
    assert chainable(ValueError(f"postgresql://a:{PW}@h/d")) is None
    assert chainable(ValueError(f"bad {PW}"), known=[PW]) is None
    outer = RuntimeError("wrapped")
    outer.__cause__ = ValueError(f"postgresql://a:{PW}@h/d")
    assert chainable(outer) is None


# --- errors are masked where they are built ----------------------------------------------------


@pytest.mark.parametrize("error", [DataIngestError, ModelLoadError, ConfigError])
def test_package_errors_mask_their_message(error: type[Exception]) -> None:
    exc = error(f"cannot open the registry at postgresql://m:{PW}@h/mlflow?token={PW}")
    assert PW not in str(exc) and PW not in repr(exc)
    assert "postgresql://m:***@h/mlflow?token=***" in str(exc)
    assert PW not in str(pickle.loads(pickle.dumps(exc)))


# --- DataSource: references, never a literal password ------------------------------------------


def _config(data: dict[str, Any]) -> dict[str, Any]:
    return {"model_name": "m", "target": "y", "data": {"query": "SELECT * FROM t", **data}}


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://app:{PW}@127.0.0.1/w",
        f"postgresql://app@127.0.0.1/w?password={PW}",
        f"postgresql://app@127.0.0.1/w?SSLPassword={PW}",
    ],
)
def test_a_password_in_sql_url_is_refused(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        TrainingConfig.from_mapping(_config({"sql_url": url}), source="train.yaml")
    message = str(info.value)
    assert PW not in message
    assert "field data.sql_url" in message
    assert "password_env" in message and "sql_url_env" in message  # the fix
    assert PW not in str(info.value.__cause__)  # pydantic's error hides the input


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"sql_url": "sqlite:///x.db", "sql_url_env": "U"}, "exactly one of"),
        ({"sql_url_env": "U", "password_env": "P"}, "go with `sql_url`"),
        ({"sql_url": "sqlite:///x.db", "password_env": "P", "password_secret": "s"}, "at most"),
        ({"path": "t.csv", "password_env": "P"}, "go with `sql_url`"),
    ],
)
def test_reference_combinations(data: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        TrainingConfig.from_mapping(_config(data))


def test_references_resolve_at_connect_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_PW", PW)
    monkeypatch.setenv("T_URL", f"postgresql://app@db/w?password={PW}")
    by_password = DataSource(sql_url="postgresql://app@db/w", password_env="T_PW", query="q")
    by_url = DataSource(sql_url_env="T_URL", query="q")
    assert by_password.connection_url() == f"postgresql://app:{PW}@db/w"
    assert by_url.connection_url() == f"postgresql://app@db/w?password={PW}"
    for source in (by_password, by_url):
        assert PW not in source.describe()
        assert PW not in source.model_dump_json()
    assert by_url.describe() == "postgresql://app@db/w?password=*** (from $T_URL) :: q"
    # the config (hash included) holds the reference, not the value
    config = TrainingConfig.from_mapping(_config({"sql_url_env": "T_URL"}))
    monkeypatch.setenv("T_URL", "postgresql://app@db/w?password=other")
    assert TrainingConfig.from_mapping(_config({"sql_url_env": "T_URL"})) == config


def test_an_unset_reference_names_the_field_and_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("T_MISSING", raising=False)
    source = DataSource(sql_url="postgresql://app@db/w", password_env="T_MISSING", query="q")
    with pytest.raises(ConfigError, match=r"data.password_env .* T_MISSING, which is not set"):
        source.connection_url()
    assert DataSource(sql_url_env="T_MISSING", query="q").describe() == "$T_MISSING :: q"
