"""The service's bearer token: the server's check and the client's header."""

from __future__ import annotations

import hmac


def token_ok(authorization: str | None, token: str | None) -> bool:
    """Whether an ``Authorization`` header carries ``Bearer <token>`` (always true when no
    token is configured). Constant-time comparison."""
    if not token:
        return True
    if not authorization:
        return False
    scheme, _, given = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), token)


def bearer_headers(token: str | None) -> dict[str, str]:
    """The headers a client of the service sends: ``Authorization: Bearer <token>`` when a
    token is configured, else none."""
    return {"Authorization": f"Bearer {token}"} if token else {}
