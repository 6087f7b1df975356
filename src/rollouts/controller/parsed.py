"""A bounded cache of parsed (frozen) models keyed by object identity and resourceVersion.

Why it exists: the engine memoises hashes and validation results by the identity of the model objects it
is given. Parsing every stored object afresh on every pass gave it new identities each time, so each pass
added entries that were never hit again, each holding a whole Rollout spec and every template (the
controller's memory grew ~1.2 MB/s with `infra/rollouts` applied and nothing happening). Handing the engine
the same model while the stored object is unchanged keeps those memos flat, and saves the parsing."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)

# Enough for every object a local controller holds; the least recently used entries go first beyond it.
DEFAULT_LIMIT = 4096


class ModelCache:
    """`parse(cls, obj)`: `cls.model_validate(obj)`, the same model again while obj's uid and
    resourceVersion are unchanged. Raises what model_validate raises (nothing is cached then)."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self._entries: OrderedDict[tuple[str, str, str, str], tuple[str, str, BaseModel]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def parse(self, cls: type[M], obj: Mapping[str, Any], part: str = "", value: Any = None) -> M:
        """`part` names a piece of obj (e.g. "spec.template") parsed from `value` instead of obj itself."""
        content = obj if not part else value
        meta = obj.get("metadata") or {}
        version = str(meta.get("resourceVersion") or "")
        if not version:  # not a stored object: nothing identifies this content
            return cls.model_validate(content)
        key = (f"{cls.__qualname__}:{part}", str(obj.get("kind") or ""), str(meta.get("namespace") or ""),
               str(meta.get("name") or ""))
        uid = str(meta.get("uid") or "")
        hit = self._entries.get(key)
        if hit is not None and hit[0] == uid and hit[1] == version and isinstance(hit[2], cls):
            self._entries.move_to_end(key)
            return hit[2]
        model = cls.model_validate(content)
        self._entries[key] = (uid, version, model)
        self._entries.move_to_end(key)
        while len(self._entries) > self.limit:
            self._entries.popitem(last=False)
        return model
