"""What every start of the service checks first (a blank token, an address beyond loopback
without one) and the private folder it runs from."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from prefect_mlops.cli.app import app
from prefect_mlops.errors import ConfigError
from prefect_mlops.serving.process import (
    check_exposure,
    check_token,
    is_loopback,
    private_working_dir,
    service_command,
)


@pytest.mark.parametrize("token", ["", " ", "\t\n"])
def test_a_blank_token_is_an_error_naming_the_variable(token: str) -> None:
    with pytest.raises(ConfigError, match="MLOPS_SERVE_TOKEN is set but empty"):
        check_token(token)


@pytest.mark.parametrize("token", [None, "s3cret"])
def test_no_token_or_a_real_one_passes(token: str | None) -> None:
    check_token(token)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("my-host.example", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_beyond_loopback_needs_a_token_or_an_explicit_flag() -> None:
    with pytest.raises(ConfigError, match=r"--host 0\.0\.0\.0.*MLOPS_SERVE_TOKEN.*--allow-unauth"):
        check_exposure("0.0.0.0", None, allow_unauthenticated=False)
    check_exposure("0.0.0.0", "s3cret", allow_unauthenticated=False)
    check_exposure("0.0.0.0", None, allow_unauthenticated=True)
    check_exposure("127.0.0.1", None, allow_unauthenticated=False)
    with pytest.raises(ConfigError, match="set but empty"):  # the flag never allows a blank one
        check_exposure("0.0.0.0", "", allow_unauthenticated=True)


@pytest.mark.parametrize(
    ("args", "token", "message"),
    [
        (["--host", "0.0.0.0"], None, "--allow-unauthenticated"),
        ([], "", "MLOPS_SERVE_TOKEN is set but empty"),
        (["--host", "0.0.0.0", "--allow-unauthenticated"], "", "MLOPS_SERVE_TOKEN is set"),
    ],
)
def test_serve_refuses_before_starting_anything(
    monkeypatch: pytest.MonkeyPatch, args: list[str], token: str | None, message: str
) -> None:
    if token is None:
        monkeypatch.delenv("MLOPS_SERVE_TOKEN", raising=False)
    else:
        monkeypatch.setenv("MLOPS_SERVE_TOKEN", token)
    result = CliRunner().invoke(app, ["serve", "some-model", *args])
    assert result.exit_code == 1, result.output
    assert message in result.output


def test_the_private_folder_is_new_empty_owner_only_and_removed() -> None:
    with private_working_dir() as first, private_working_dir() as second:
        assert first != second
        for folder in (first, second):
            assert os.listdir(folder) == []
            assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
            assert os.stat(folder).st_uid == os.getuid()
    assert not Path(first).exists() and not Path(second).exists()


def test_the_interpreter_runs_with_the_safe_path() -> None:
    command = service_command("127.0.0.1", 3000)
    assert command[1:4] == ["-P", "-m", "bentoml"]
