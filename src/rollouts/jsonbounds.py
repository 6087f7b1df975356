"""Bounds on untrusted JSON: how deeply a JSON text nests (checked before decoding, since Python's decoder
recurses), and the nodes, bytes and depth of a decoded value (measured without recursion, stopping at the
first limit crossed). Used wherever a user hands us JSON: `eval --result`, `patch`, the store's patches."""

from __future__ import annotations

import re
from typing import Any

# A manifest nests ~15 levels; anything near these is hostile, not a configuration.
MAX_VALUE_DEPTH = 100
MAX_DOCUMENT_DEPTH = 200
MAX_DOCUMENT_NODES = 200_000
MAX_DOCUMENT_BYTES = 4 * 1024 * 1024

# A JSON string literal (escapes included), and the brackets that open or close a level.
# (The unrolled form: runs of plain characters are matched in one step, 30x faster on long strings.)
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


class TooLarge(ValueError):
    """A value (or JSON text) beyond one of the bounds; the message says which, in plain words."""


def text_depth(text: str, limit: int) -> int:
    """How deeply a JSON text nests, counting no further than `limit + 1` (enough to refuse it)."""
    depth = deepest = 0
    for match in _BRACKET.finditer(_STRING.sub('""', text)):
        if match.group() in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif depth:
            depth -= 1
    return deepest


def check_text_depth(text: str, what: str, limit: int = MAX_VALUE_DEPTH) -> None:
    """TooLarge when the JSON text nests deeper than `limit` (before json.loads can recurse on it)."""
    if text_depth(text, limit) > limit:
        raise TooLarge(f"{what} is nested deeper than {limit} levels")


def measure(
    value: Any,
    what: str,
    *,
    max_depth: int = MAX_DOCUMENT_DEPTH,
    max_nodes: int = MAX_DOCUMENT_NODES,
    max_bytes: int = MAX_DOCUMENT_BYTES,
) -> tuple[int, int]:
    """(nodes, approximate JSON bytes) of a value, or TooLarge as soon as a bound is crossed.

    Walks with an explicit stack, so a value too deep for recursion is measured (and refused) safely; the
    walk stops at the first bound crossed, so measuring a huge value costs no more than the bounds.
    """
    nodes = size = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            raise TooLarge(f"{what} is nested deeper than {max_depth} levels")
        nodes += 1
        if isinstance(node, dict):
            size += 2
            for key, item in node.items():
                size += len(str(key)) + 4
                stack.append((item, depth + 1))
        elif isinstance(node, list | tuple):
            size += 2
            stack.extend((item, depth + 1) for item in node)
        elif isinstance(node, str):
            size += len(node) + 3
        else:
            size += 8
        if nodes > max_nodes:
            raise TooLarge(f"{what} would hold more than {max_nodes} values")
        if size > max_bytes:
            raise TooLarge(f"{what} would be larger than {_mib(max_bytes)}")
    return nodes, size


def _mib(size: int) -> str:
    return f"{size / 1024 / 1024:g} MiB"
