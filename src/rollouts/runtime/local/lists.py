"""The object lists one runtime pass reads (ReplicaSets, Pods, Services, Ingresses), kept between passes and
read again only after their kind changed, once a change feed reports changes (`follow()`, then
`changed(kinds)` for each batch). An idle pass over thousands of ReplicaSets then costs no JSON decoding.
Without a feed every call reads the store. The lists are shared between passes: read them, never mutate.

Correct under races because `changed` and `list` run on one event loop: a change committed before a read is
in that read; one committed after it is reported later and marks its kind for the next pass."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rollouts.store.protocol import ObjectStore


class KindLists:
    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self._following = False
        self._cache: dict[str, list[dict[str, Any]]] = {}
        self._dirty: set[str] = set()

    def follow(self) -> None:
        """From now on a change feed reports every change through `changed`; start from fresh reads."""
        self._following = True
        self._cache.clear()

    def changed(self, kinds: Iterable[str] | None = None) -> None:
        """These kinds changed (None: any may have, say after the feed was compacted away)."""
        if kinds is None:
            self._cache.clear()
        else:
            self._dirty.update(kinds)

    def list(self, kind: str) -> list[dict[str, Any]]:
        if not self._following:
            return self.store.list(kind)
        if kind in self._dirty or kind not in self._cache:
            self._cache[kind] = self.store.list(kind)
            self._dirty.discard(kind)  # only once read: a failed read is tried again next pass
        return self._cache[kind]
