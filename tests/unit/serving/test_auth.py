"""The bearer token: the server's check, where a client may send it, and the client's header."""

from __future__ import annotations

import pytest

from prefect_mlops.errors import ConfigError
from prefect_mlops.serving.auth import bearer_headers, check_token_destination, token_ok

ALLOWED = ["serving.internal.example"]


def test_token_check() -> None:
    assert token_ok(None, None)
    assert token_ok("Bearer s3cret", "s3cret")
    assert token_ok("bearer  s3cret ", "s3cret")
    assert not token_ok(None, "s3cret")
    assert not token_ok("Bearer wrong", "s3cret")
    assert not token_ok("Basic s3cret", "s3cret")
    assert not token_ok("s3cret", "s3cret")


def test_non_ascii_tokens_and_headers_are_compared_not_raised_on() -> None:
    # hmac.compare_digest raises TypeError on non-ASCII str (the service answered 500).
    assert token_ok("Bearer clé-ünïcode", "clé-ünïcode")
    assert not token_ok("Bearer clé-ünïcode", "s3cret")
    assert not token_ok("Bearer s3cret", "clé-ünïcode")
    assert not token_ok("Bearer Ã©", "é")  # a header as Starlette decodes UTF-8 (latin-1)
    assert not token_ok("Bearer \ud800", "s3cret")  # a lone surrogate


def test_client_headers_pass_the_check() -> None:
    headers = bearer_headers("s3cret")
    assert token_ok(headers["Authorization"], "s3cret")
    assert bearer_headers(None) == {} and bearer_headers("") == {}
    url = "http://127.0.0.1:3000/metadata"
    assert bearer_headers("s3cret", url, []) == headers


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:3000/predict",
        "https://127.0.0.1:3000",
        "http://127.8.9.10:3000",
        "http://localhost:3000",
        "http://LOCALHOST.:3000",
        "http://[::1]:3000/metadata",
        "http://[::ffff:127.0.0.1]:3000",
        "https://serving.internal.example/metadata",
        "https://SERVING.internal.example:8443",
        "http://user:pw@127.0.0.1:3000",
    ],
)
def test_the_token_goes_to_loopback_and_allowed_hosts_over_https(url: str) -> None:
    check_token_destination(url, ALLOWED)
    assert bearer_headers("s3cret", url, ALLOWED) == {"Authorization": "Bearer s3cret"}


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("http://serving.internal.example/metadata", "over plain http"),
        ("https://evil.example/metadata", "'evil.example'"),
        ("http://evil.example:3000", "'evil.example'"),
        ("http://127.0.0.1@evil.example/", "'evil.example'"),
        ("http://127.0.0.1:3000\\@evil.example/", "'evil.example'"),
        ("http://evil.example#@127.0.0.1/", "'evil.example'"),
        ("http://localhost.evil.example/", "'localhost.evil.example'"),
        ("https://127.0.0.1.nip.io/", "'127.0.0.1.nip.io'"),
        ("http://0.0.0.0:3000", "'0.0.0.0'"),
        ("http://[::2]:3000", "'::2'"),
        ("https://serving.internal.example.evil.example/", "MLOPS_SERVE_TOKEN_HOSTS"),
        ("ftp://127.0.0.1/", "not an http"),
    ],
)
def test_the_token_is_refused_anywhere_else(url: str, named: str) -> None:
    with pytest.raises(ConfigError, match="refusing to send the serving token") as info:
        bearer_headers("s3cret", url, ALLOWED)
    assert named in str(info.value)
    # No token, no header, nothing to refuse.
    assert bearer_headers(None, url, ALLOWED) == {}


def test_allowed_hosts_default_to_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "https://serving.internal.example/metadata"
    monkeypatch.delenv("MLOPS_SERVE_TOKEN_HOSTS", raising=False)
    with pytest.raises(ConfigError, match="serve_token_hosts"):
        bearer_headers("s3cret", url)
    monkeypatch.setenv("MLOPS_SERVE_TOKEN_HOSTS", '["serving.internal.example"]')
    assert bearer_headers("s3cret", url) == {"Authorization": "Bearer s3cret"}
