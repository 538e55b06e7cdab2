"""The service's bearer token: the server's check (:func:`token_ok`), where a client may send it
(:func:`check_token_destination`: loopback, or an allowed host over https) and the client's
header (:func:`bearer_headers`)."""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Collection

from prefect_mlops.errors import ConfigError

LOOPBACK_NAMES = frozenset({"localhost"})


def token_ok(authorization: str | None, token: str | None) -> bool:
    """Whether an ``Authorization`` header carries ``Bearer <token>`` (always true when no
    token is configured). Constant-time comparison of the UTF-8 bytes (any token or header
    text, ASCII or not, is compared, never raised on)."""
    if not token:
        return True
    if not authorization:
        return False
    scheme, _, given = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode("utf-8", "surrogatepass"), token.encode("utf-8", "surrogatepass")
    )


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a URL's host, IPv6 without brackets) is this machine: ``localhost``,
    127.0.0.0/8, ``::1`` or an IPv4-mapped loopback address."""
    if host.lower().rstrip(".") in LOOPBACK_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def check_token_destination(url: str, allowed_hosts: Collection[str]) -> None:
    """Raise ConfigError unless the serving token may be sent to ``url``: a loopback host over
    http or https, or a host in ``allowed_hosts`` (``serve_token_hosts``) over https. The host
    is the one httpx connects to (``http://127.0.0.1@evil.example/`` goes to evil.example)."""
    import httpx

    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise ConfigError(f"service URL {url!r} is not a valid URL: {exc}") from exc
    host, scheme = parsed.host, parsed.scheme
    fix = (
        "the token goes only to loopback hosts and, over https, to the hosts in "
        "MLOPS_SERVE_TOKEN_HOSTS (setting serve_token_hosts)"
    )
    if scheme not in ("http", "https") or not host:
        raise ConfigError(f"refusing to send the serving token to {url!r}: not an http(s) URL")
    if is_loopback(host):
        return
    if host.lower().rstrip(".") not in {h.lower().rstrip(".") for h in allowed_hosts}:
        raise ConfigError(
            f"refusing to send the serving token to host {host!r} ({url}): {fix}; add {host!r} "
            f"there to trust it, or remove the URL from service_urls"
        )
    if scheme != "https":
        raise ConfigError(
            f"refusing to send the serving token to host {host!r} over plain http ({url}): "
            f"{fix}; use https://{host}"
        )


def bearer_headers(
    token: str | None, url: str | None = None, allowed_hosts: Collection[str] | None = None
) -> dict[str, str]:
    """The headers a client of the service at ``url`` sends: ``Authorization: Bearer <token>``
    when a token is configured, else none. With a ``url``, ``check_token_destination`` must
    pass first (``allowed_hosts`` default: the settings' ``serve_token_hosts``)."""
    if not token:
        return {}
    if url is not None:
        if allowed_hosts is None:
            from prefect_mlops.settings import get_settings

            allowed_hosts = get_settings().serve_token_hosts
        check_token_destination(url, allowed_hosts)
    return {"Authorization": f"Bearer {token}"}
