"""The request id: the client's ``X-Request-ID`` when the service can echo it as given, else a
fresh one, with the reason the client's was not used.

An id is taken as given when it is 1 to 128 characters of printable ASCII (letters, digits,
punctuation and spaces: anything an HTTP header carries back unchanged). Any other id (longer,
non-ASCII, control characters) is replaced by a uuid4 hex, and the answer says so in its
``X-Request-ID-Refused`` header (see ``docs/serving.md``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

MAX_REQUEST_ID_LENGTH = 128
REFUSED_HEADER = "X-Request-ID-Refused"
_PRINTABLE_ASCII = frozenset(map(chr, range(0x20, 0x7F)))


@dataclass(frozen=True)
class RequestId:
    """The id a request is answered, routed and logged under; ``refused`` says why the
    client's ``X-Request-ID`` was not used (None when it was, or none was sent)."""

    value: str
    refused: str | None = None

    def headers(self) -> dict[str, str]:
        """The response headers: ``X-Request-ID`` and, when the client's was refused,
        ``X-Request-ID-Refused`` with the reason."""
        out = {"X-Request-ID": self.value}
        if self.refused:
            out[REFUSED_HEADER] = self.refused
        return out


def accept_request_id(given: str | None) -> RequestId:
    """The client's id (``X-Request-ID``) when it is usable as given, else a fresh uuid4 hex with
    the reason."""
    if given is None or given == "":
        return RequestId(uuid.uuid4().hex)
    if len(given) > MAX_REQUEST_ID_LENGTH:
        reason = f"longer than {MAX_REQUEST_ID_LENGTH} characters"
    elif not _PRINTABLE_ASCII.issuperset(given):
        reason = "not printable ASCII"
    else:
        return RequestId(given)
    return RequestId(uuid.uuid4().hex, f"{reason}; the server's id is used")
