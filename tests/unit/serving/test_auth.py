"""The bearer token: the server's check and the client's header."""

from __future__ import annotations

from prefect_mlops.serving.auth import bearer_headers, token_ok


def test_token_check() -> None:
    assert token_ok(None, None)
    assert token_ok("Bearer s3cret", "s3cret")
    assert token_ok("bearer  s3cret ", "s3cret")
    assert not token_ok(None, "s3cret")
    assert not token_ok("Bearer wrong", "s3cret")
    assert not token_ok("Basic s3cret", "s3cret")
    assert not token_ok("s3cret", "s3cret")


def test_client_headers_pass_the_check() -> None:
    headers = bearer_headers("s3cret")
    assert token_ok(headers["Authorization"], "s3cret")
    assert bearer_headers(None) == {} and bearer_headers("") == {}
