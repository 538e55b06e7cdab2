"""The request ids: the server's own id for every request, and the client's ``X-Request-ID``
kept beside it as a correlation id.

The server's id (a uuid4 hex) is the one the canary split and the serving-log sample hash and
the serving log, the answer's ``request_id`` and its ``X-Request-ID`` header carry: a client
cannot choose it, so it cannot choose which model answers. The client's ``X-Request-ID`` is kept
as ``client_request_id`` (answer and serving log) when it is 1 to 128 characters of printable
ASCII (letters, digits, punctuation and spaces: anything an HTTP header carries unchanged); any
other (longer, non-ASCII, control characters) is dropped and the answer says why in its
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
    """The ids of one request: ``value``, the server's (routed, sampled and logged under);
    ``client``, the client's ``X-Request-ID`` when kept; ``refused``, why it was not (None
    when it was kept or none was sent)."""

    value: str
    client: str | None = None
    refused: str | None = None

    def headers(self) -> dict[str, str]:
        """The response headers: ``X-Request-ID`` (the server's id) and, when the client's was
        refused, ``X-Request-ID-Refused`` with the reason."""
        out = {"X-Request-ID": self.value}
        if self.refused:
            out[REFUSED_HEADER] = self.refused
        return out


def accept_request_id(given: str | None) -> RequestId:
    """A fresh server id, with the client's id (``X-Request-ID``) kept when it is usable as
    given, else the reason it is not."""
    server_id = uuid.uuid4().hex
    if given is None or given == "":
        return RequestId(server_id)
    if len(given) > MAX_REQUEST_ID_LENGTH:
        reason = f"longer than {MAX_REQUEST_ID_LENGTH} characters"
    elif not _PRINTABLE_ASCII.issuperset(given):
        reason = "not printable ASCII"
    else:
        return RequestId(server_id, client=given)
    return RequestId(server_id, refused=f"{reason}; not kept as client_request_id")
