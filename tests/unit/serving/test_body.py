"""The byte limit of a request body: checked on its Content-Length before anything is read,
and counted while a chunked body is read; a 413 naming ``body`` and the setting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from prefect_mlops.errors import RequestValidationError
from prefect_mlops.serving.schema import read_body


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def _unreadable() -> AsyncIterator[bytes]:
    raise AssertionError("read")
    yield b""  # pragma: no cover - makes this an async generator


def _read(body: bytes | AsyncIterator[bytes], declared: str | None, limit: int) -> bytes:
    return asyncio.run(read_body(body, declared, limit))


@pytest.mark.parametrize("declared", [None, "10", " 10 ", "not a number"])
def test_a_body_at_the_limit_is_read_whole(declared: str | None) -> None:
    assert _read(_chunks(b"01234", b"56789"), declared, 10) == b"0123456789"
    assert _read(b"0123456789", declared, 10) == b"0123456789"


def test_a_declared_length_over_the_limit_is_refused_unread() -> None:
    with pytest.raises(RequestValidationError) as refused:
        _read(_unreadable(), "11", 10)
    err = refused.value
    assert (err.field, err.status) == ("body", 413)
    assert err.problem == (
        "has 11 bytes, more than the limit of 10 (MLOPS_SERVE_MAX_BODY_BYTES); "
        "send fewer rows per request"
    )


def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_limit() -> None:
    async def endless() -> AsyncIterator[bytes]:
        while True:
            yield b"x" * 4

    with pytest.raises(RequestValidationError) as refused:
        _read(endless(), None, 10)
    assert refused.value.status == 413
    assert refused.value.problem.startswith("has more bytes than the limit of 10 ")


def test_a_body_longer_than_declared_is_still_counted() -> None:
    with pytest.raises(RequestValidationError, match="more bytes than the limit"):
        _read(_chunks(b"x" * 6, b"x" * 6), "5", 10)
    with pytest.raises(RequestValidationError, match="has 11 bytes"):
        _read(b"x" * 11, "5", 10)
