"""Bounds for the engine's identity-keyed memos (hashes, validation results): a size limit and the
eviction that keeps a memo under it."""

from __future__ import annotations

from typing import Any

MEMO_LIMIT = 65536


def forget_oldest(memo: dict[Any, Any]) -> None:
    """Drop the oldest quarter of a memo (dicts keep insertion order)."""
    for key in list(memo)[: len(memo) // 4 + 1]:
        del memo[key]
