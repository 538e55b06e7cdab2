"""The client's X-Request-ID: kept as given when it is printable ASCII of at most 128
characters (spaces included), else replaced by a server id with the reason."""

from __future__ import annotations

import pytest

from prefect_mlops.serving.request_ids import (
    MAX_REQUEST_ID_LENGTH,
    REFUSED_HEADER,
    accept_request_id,
)


@pytest.mark.parametrize(
    "given",
    ["client-id-1", "order 42 / retry 3", "a", "x" * MAX_REQUEST_ID_LENGTH, '{id:"7"}~!'],
)
def test_printable_ascii_ids_are_kept_as_given(given: str) -> None:
    rid = accept_request_id(given)
    assert (rid.value, rid.refused) == (given, None)
    assert rid.headers() == {"X-Request-ID": given}


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ("x" * (MAX_REQUEST_ID_LENGTH + 1), "longer than 128 characters"),
        ("caf\u00e9", "not printable ASCII"),
        ("tab\there", "not printable ASCII"),
        ("line\nbreak", "not printable ASCII"),
    ],
)
def test_other_ids_are_replaced_and_the_answer_says_why(given: str, reason: str) -> None:
    rid = accept_request_id(given)
    assert rid.value != given and len(rid.value) == 32 and rid.value.isalnum()
    assert rid.refused is not None and reason in rid.refused
    assert rid.headers()[REFUSED_HEADER] == rid.refused
    assert rid.headers()["X-Request-ID"] == rid.value


@pytest.mark.parametrize("given", [None, ""])
def test_without_an_id_the_server_makes_one_silently(given: str | None) -> None:
    a, b = accept_request_id(given), accept_request_id(given)
    assert a.value != b.value and a.refused is None
    assert a.headers() == {"X-Request-ID": a.value}
