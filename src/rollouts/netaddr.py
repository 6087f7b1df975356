"""Listening addresses given on the command line (`HOST:PORT`, `[v6]:PORT`): one parser, so every flag that
takes an address accepts the same forms and names itself in its errors. No I/O; a bottom-layer module."""

from __future__ import annotations


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
