"""Atomic file writes: a reader sees the old file or the whole new one, never half of one.

Every file the package writes for others to read (snapshots and their sidecars, scored parts,
the scoring summary, serving-log parts) goes through :func:`atomic_path`, or through
:func:`temp_path_beside` and :func:`publish` when its name is known only after writing. The
content is written to a temp file in the destination's folder, then renamed over it; on any
failure the temp file is removed and the destination is untouched.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def temp_path_beside(final: Path) -> Iterator[Path]:
    """Yield a new, empty temp file in ``final``'s folder (created if absent); whatever is left
    of it when the block ends, cleanly or not, is removed. :func:`publish` moves it into place."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def publish(tmp: Path, final: Path, *, read_only: bool = False) -> None:
    """Move the finished temp file ``tmp`` onto ``final`` in one rename (read-only first when
    ``read_only``). Raises OSError when the move fails."""
    if read_only:
        os.chmod(tmp, 0o444)
    os.replace(tmp, final)


@contextlib.contextmanager
def atomic_path(final: Path, *, read_only: bool = False) -> Iterator[Path]:
    """Yield a temp path beside ``final``; when the block ends cleanly, move it onto ``final``.

    ``read_only`` makes the file read-only (0444) before the move. Raises whatever the block or
    the move raises; the temp file never stays behind and ``final`` is then untouched.
    """
    with temp_path_beside(final) as tmp:
        yield tmp
        publish(tmp, Path(final), read_only=read_only)


def write_bytes_atomic(data: bytes, final: Path, *, read_only: bool = False) -> None:
    """Write ``data`` to ``final`` atomically (see :func:`atomic_path`)."""
    with atomic_path(final, read_only=read_only) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(text: str, final: Path, *, read_only: bool = False) -> None:
    """Write ``text`` (UTF-8) to ``final`` atomically (see :func:`atomic_path`)."""
    write_bytes_atomic(text.encode("utf-8"), final, read_only=read_only)
