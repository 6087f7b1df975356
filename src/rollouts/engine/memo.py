"""Bounds for the engine's identity-keyed memos (hashes, validation results): a size limit and the
eviction that keeps a memo under it."""

from __future__ import annotations

from typing import Any

# Each entry can hold a whole Rollout spec and its templates: a few hundred entries cover every object a
# controller holds, where 65536 let a long-running controller grow by gigabytes.
MEMO_LIMIT = 512


def forget_oldest(memo: dict[Any, Any]) -> None:
    """Drop the oldest quarter of a memo (dicts keep insertion order)."""
    for key in list(memo)[: len(memo) // 4 + 1]:
        del memo[key]
