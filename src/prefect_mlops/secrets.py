"""Secrets: mask them wherever text is shown, stored or raised; resolve references to them.

Masking (:func:`mask_url`, :func:`mask_text`) replaces with ``***``:

* the password in a URL's userinfo (``postgresql://user:***@host/db``);
* the value of every sensitive ``key=value`` pair — a URL's query parameters and libpq-style
  keyword strings alike: ``password``, ``passwd``, ``pwd``, ``pass``, ``secret``, ``token``,
  ``access_token``, ``api_key``, ``apikey``, ``sslpassword``, ``sig``, ``signature``... and any
  key ending in ``password``, ``passwd``, ``secret``, ``token``, ``apikey`` or ``api_key``
  (case-insensitive, URL-encoded keys decoded, ``-`` read as ``_``);
* any ``known`` secret value given (and its URL-encoded form), wherever it appears.

Text with none of these is returned unchanged.

A configuration never holds a secret, only a reference to one, resolved where the connection is
opened: an environment variable's name (:func:`resolve_env`) or a Prefect Secret block's name
(:func:`resolve_secret_block`; Prefect is imported only then). :func:`with_password` puts a
resolved password into a URL.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote, unquote_plus

MASK = "***"

#: Keys whose values are secret (compared lower-case, ``-`` as ``_``).
SENSITIVE_KEYS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "pass",
        "secret",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "auth_token",
        "api_key",
        "apikey",
        "sslpassword",
        "client_secret",
        "private_key",
        "access_key",
        "secret_key",
        "account_key",
        "sig",
        "signature",
        "x_amz_signature",
        "x_amz_security_token",
        "x_goog_signature",
        "sas",
        "credential",
        "credentials",
        "auth",
        "authorization",
    }
)
_SENSITIVE_SUFFIXES = ("password", "passwd", "secret", "token", "apikey", "api_key")

# scheme://userinfo@ — the userinfo runs to the authority's last "@" (an unencoded "@" in a
# password stays masked); the password is what follows the first ":".
_USERINFO = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://(?P<user>[^\s/?#@:'\"<>`]*)):"
    r"(?P<password>[^\s/?#'\"<>`]*)@"
)
# key=value after a start, a separator of a query or keyword string, or an opening bracket.
_PAIR = re.compile(
    r"(?P<lead>(?:^|[\s?&;,({\[]))(?P<key>[A-Za-z0-9_.%\-]+)\s*=\s*"
    r"(?P<value>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^\s&#'\"<>`]*)"
)


def is_sensitive_key(key: str) -> bool:
    """Whether a query parameter or keyword named ``key`` holds a secret."""
    name = unquote_plus(key).strip().lower().replace("-", "_")
    return name in SENSITIVE_KEYS or name.endswith(_SENSITIVE_SUFFIXES)


def mask_text(text: str, known: Iterable[str | None] = ()) -> str:
    """``text`` with every URL password, sensitive ``key=value`` value and ``known`` secret
    replaced by ``***`` (see the module docstring); other text is left as it is."""
    if not text:
        return text
    out = _USERINFO.sub(lambda m: f"{m['head']}:{MASK}@" if m["password"] else m[0], text)
    out = _PAIR.sub(_mask_pair, out)
    for secret in known:
        if secret and len(secret) >= 3:
            for form in {secret, quote(secret, safe=""), quote(secret)}:
                out = out.replace(form, MASK)
    return out


def mask_url(url: str, known: Iterable[str | None] = ()) -> str:
    """``url`` with its userinfo password and sensitive query parameters masked."""
    return mask_text(url, known)


def url_has_secret(url: str) -> bool:
    """Whether ``url`` carries a password (userinfo) or a sensitive query parameter."""
    return mask_url(url) != url


def secret_values(url: str) -> list[str]:
    """The secrets ``url`` carries, decoded: its userinfo password and the values of its
    sensitive query parameters (to mask them in text that shows them outside a URL)."""
    found = [unquote_plus(m["password"]) for m in _USERINFO.finditer(url) if m["password"]]
    for m in _PAIR.finditer(url):
        if is_sensitive_key(m["key"]) and m["value"]:
            found.append(unquote_plus(m["value"].strip("'\"")))
    return found


def chainable(exc: BaseException, known: Iterable[str | None] = ()) -> BaseException | None:
    """``exc`` to chain under a new error (``raise ... from``), or None when its text, or that
    of an exception chained under it, shows a secret (a traceback would print it)."""
    known = list(known)
    seen: BaseException | None = exc
    while seen is not None:
        text = str(seen)
        if mask_text(text, known) != text:
            return None
        seen = seen.__cause__ or seen.__context__
    return exc


def _mask_pair(match: re.Match[str]) -> str:
    if not is_sensitive_key(match["key"]) or not match["value"] or match["value"] == MASK:
        return match[0]
    return f"{match['lead']}{match['key']}={MASK}"
