"""The dashboard's bearer token and the access rules built on it.

The token lives in HOME/dashboard.token (created on first start, mode 0600 whatever the umask, and put
back to 0600 if found readable by others) unless one is configured
with --token-file or $ROLLOUTS_DASHBOARD_TOKEN. It is only ever compared in constant time and only ever
accepted from the Authorization header, never from a cookie or a URL. Every data call needs it, on any
bind: a loopback address is shared by every local user and every page a browser opens."""

from __future__ import annotations

import hmac
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path

from rollouts.netaddr import is_loopback_host

TOKEN_FILE = "dashboard.token"
TOKEN_ENV = "ROLLOUTS_DASHBOARD_TOKEN"
MIN_TOKEN_LENGTH = 16


class TokenError(ValueError):
    """A configured token that cannot be used; the text names its source."""


def token_path(home: Path) -> Path:
    return home / TOKEN_FILE


def _check(token: str, source: str) -> str:
    token = token.strip()
    if len(token) < MIN_TOKEN_LENGTH or any(c.isspace() for c in token) or not token.isprintable():
        raise TokenError(f"{source}: the dashboard token must be at least {MIN_TOKEN_LENGTH} printable "
                         "characters without spaces")
    return token


def load_or_create_token(home: Path) -> tuple[str, bool]:
    """(token, created): reads HOME/dashboard.token, creating it with a fresh random token if absent."""
    path = token_path(home)
    try:
        # O_EXCL: two processes starting at once cannot both create (and disagree on) the token.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        _tighten(path)
        return _check(path.read_text(), str(path)), False
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    os.chmod(path, 0o600)  # exactly 0600 whatever the umask
    return token, True


def _tighten(path: Path) -> None:
    """A token file others can read (written by hand, or by an older version) is made 0600 again."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            os.chmod(path, 0o600)
    except OSError:
        pass  # not ours to change (then reading it reports the problem, if any)


def resolve_token(home: Path, token_file: Path | None = None,
                  environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(token, where it came from): --token-file, else $ROLLOUTS_DASHBOARD_TOKEN, else the home's file."""
    environ = os.environ if environ is None else environ
    if token_file is not None:
        try:
            return _check(token_file.read_text(), f"--token-file {token_file}"), str(token_file)
        except OSError as exc:
            raise TokenError(f"--token-file {token_file}: {exc.strerror or exc}") from None
    if environ.get(TOKEN_ENV):
        return _check(environ[TOKEN_ENV], f"${TOKEN_ENV}"), f"${TOKEN_ENV}"
    token, _ = load_or_create_token(home)
    return token, str(token_path(home))


def tokens_match(given: str | None, expected: str) -> bool:
    """Constant-time comparison (of UTF-8 bytes, so non-ASCII input cannot raise)."""
    if given is None:
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode("utf-8"))


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost; 0.0.0.0 and :: listen on every interface, so they are not."""
    return is_loopback_host(host)


def bearer(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def auth_problem(authorization: str | None, expected: str) -> tuple[int, str] | None:
    """None when the Authorization header carries the token; else the status (401 no token, 403 a wrong
    one) and the text to answer with."""
    given = bearer(authorization)
    if given is None:
        return 401, ("this needs the dashboard token: send 'Authorization: Bearer <token>' "
                     "(rollouts dashboard --show-token prints it)")
    if not tokens_match(given, expected):
        return 403, "the bearer token is not the dashboard token"
    return None
