"""Listening addresses given on the command line (`HOST:PORT`, `[v6]:PORT`): one parser, so every flag that
takes an address accepts the same forms and names itself in its errors; and the strict parser of the Host
request header that every server we run (except the ingress proxy) checks. No I/O; a bottom-layer module."""

from __future__ import annotations

import ipaddress


class AddressError(ValueError):
    pass


def parse_address(text: str, *, default_host: str | None = None, default_port: int | None = None,
                  what: str = "--address", example: str | None = None) -> tuple[str, int]:
    """`HOST:PORT` or `[v6]:PORT` -> (host, port); port 0 picks a free one.

    With a default host, `:PORT` is accepted; with a default port, `HOST` (and an unbracketed IPv6 host) is.
    Without a default port the port is required, so the last colon always separates it."""
    example = example or f"127.0.0.1:{default_port if default_port is not None else 8080}"
    host, port_text = _split(text, port_required=default_port is None)
    host = host or default_host or ""
    if not host or (not port_text and default_port is None):
        raise AddressError(f'{what}: "{text}" is not HOST:PORT (for example {example})')
    if not port_text and default_port is not None:
        return host, default_port
    try:
        port = int(port_text)
    except ValueError:
        raise AddressError(f"{what}: {text!r}: the port must be a number (HOST:PORT, e.g. {example})") from None
    if not 0 <= port <= 65535:
        raise AddressError(f"{what}: {text!r}: port {port} is not between 0 and 65535")
    return host, port


def _split(text: str, *, port_required: bool) -> tuple[str, str]:
    if text.startswith("["):
        inner, _, rest = text[1:].partition("]")
        return inner, rest.removeprefix(":")
    if text.count(":") == 1 or (port_required and ":" in text):
        host, _, port_text = text.rpartition(":")
        return host, port_text
    return text, ""


# ---- Host request headers -------------------------------------------------------------------------------

_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-_")
_V6_CHARS = frozenset("0123456789abcdef:.")
LOOPBACK_NAMES = frozenset({"localhost"})


class HostHeaderError(ValueError):
    pass


def parse_host_header(value: str) -> tuple[str, int | None]:
    """A request's Host header, strictly: `name`, `name:port`, `[v6]` or `[v6]:port` -> (host, port).

    The host is lower-cased (a v6 host without brackets). Anything else (user-info such as
    `localhost:3100@evil.example`, a path, spaces, several colons outside brackets, an empty host, a port
    that is not 1-5 digits up to 65535) raises HostHeaderError, so that no server can be fooled into reading
    the wrong part of it as the host."""
    text = value.lower()
    if text.startswith("["):
        inner, closed, rest = text[1:].partition("]")
        if not closed or not inner or not set(inner) <= _V6_CHARS or ":" not in inner:
            raise HostHeaderError(f"Host {value!r}: a bracketed host must be an IPv6 address, e.g. [::1]:8080")
        host = inner
        if rest and not rest.startswith(":"):
            raise HostHeaderError(f"Host {value!r}: only ':PORT' may follow ']'")
        port_text = rest[1:] if rest else None
    else:
        host, colon, port_text_or_empty = text.partition(":")
        port_text = port_text_or_empty if colon else None
        if not host or not set(host) <= _HOST_CHARS or host.startswith((".", "-")):
            raise HostHeaderError(f"Host {value!r} is not HOST or HOST:PORT (letters, digits, '.', '-' only)")
    if port_text is None:
        return host, None
    if not port_text.isascii() or not port_text.isdigit() or len(port_text) > 5 or int(port_text) > 65535:
        raise HostHeaderError(f"Host {value!r}: the port must be a number up to 65535")
    return host, int(port_text)


def is_loopback_host(host: str) -> bool:
    """localhost, 127.0.0.0/8 and ::1 (a host as parse_host_header gives it, brackets optional)."""
    host = host.strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_allowed(header: str | None, allowed: frozenset[str] = frozenset()) -> bool:
    """Whether a Host header names this machine's loopback or one of `allowed` (host names or addresses,
    lower case; `*` allows every well-formed header). A missing or malformed header never is."""
    if header is None:
        return False
    try:
        host, _ = parse_host_header(header)
    except HostHeaderError:
        return False
    return "*" in allowed or host in allowed or is_loopback_host(host)
