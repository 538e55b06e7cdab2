"""The request ids: the server makes the id every request is routed, sampled and logged under;
the client's X-Request-ID is kept beside it when it is printable ASCII of at most 128
characters (spaces included), else dropped with the reason."""

from __future__ import annotations

import pytest

from prefect_mlops.serving.request_ids import (
    MAX_REQUEST_ID_LENGTH,
    REFUSED_HEADER,
    accept_request_id,
)


def _server_made(value: str) -> bool:
    return len(value) == 32 and all(c in "0123456789abcdef" for c in value)


@pytest.mark.parametrize(
    "given",
    [
        "client-id-1",
        "order 42 / retry 3",
        "a",
        "x" * MAX_REQUEST_ID_LENGTH,
        '{id:"7"}~!',
        " ",  # 0x20, the first printable character
        "~",  # 0x7E, the last
        "0123456789abcdef0123456789abcdef",  # looks like a server id: still only the client's
    ],
)
def test_printable_ascii_ids_are_kept_beside_a_server_id(given: str) -> None:
    rid = accept_request_id(given)
    assert (rid.client, rid.refused) == (given, None)
    assert _server_made(rid.value) and rid.value != given
    assert rid.headers() == {"X-Request-ID": rid.value}


def test_the_same_client_id_gets_a_new_server_id_each_time() -> None:
    """Routing and sampling hash the server's id: repeating an id chooses nothing."""
    values = {accept_request_id("steer-me").value for _ in range(50)}
    assert len(values) == 50


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ("x" * (MAX_REQUEST_ID_LENGTH + 1), "longer than 128 characters"),
        ("caf\u00e9", "not printable ASCII"),
        ("tab\there", "not printable ASCII"),
        ("line\nbreak", "not printable ASCII"),
        ("unit\x1fsep", "not printable ASCII"),  # 0x1F, just below the space
        ("del\x7f", "not printable ASCII"),  # 0x7F, just past the tilde
    ],
)
def test_other_ids_are_dropped_and_the_answer_says_why(given: str, reason: str) -> None:
    rid = accept_request_id(given)
    assert _server_made(rid.value) and rid.client is None
    assert rid.refused == f"{reason}; not kept as client_request_id"
    assert rid.headers()[REFUSED_HEADER] == rid.refused
    assert rid.headers()["X-Request-ID"] == rid.value


@pytest.mark.parametrize("given", [None, ""])
def test_without_an_id_the_server_makes_one_silently(given: str | None) -> None:
    a, b = accept_request_id(given), accept_request_id(given)
    assert a.value != b.value and _server_made(a.value)
    assert (a.client, a.refused) == (None, None)
    assert a.headers() == {"X-Request-ID": a.value}


def test_the_refusal_header_is_named_as_documented() -> None:
    rid = accept_request_id("caf\u00e9")
    assert rid.headers() == {
        "X-Request-ID": rid.value,
        "X-Request-ID-Refused": "not printable ASCII; not kept as client_request_id",
    }
