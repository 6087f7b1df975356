"""The set of objects being checked together, indexed for cross-object references (a Rollout's analysis
templates, Services and Ingresses)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pydantic import BaseModel


def _meta(model: BaseModel) -> tuple[str, str, str | None]:
    kind = str(getattr(model, "kind", ""))
    meta = getattr(model, "metadata", None)
    name = getattr(meta, "name", None) or ""
    namespace = getattr(meta, "namespace", None)
    return kind, name, namespace


@dataclass
class Inventory:
    """Objects by (kind, name); a namespace left unset matches any namespace (it is the current one)."""

    _by_key: dict[tuple[str, str], list[BaseModel]] = field(default_factory=dict)
    _kinds: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, models: Iterable[BaseModel]) -> Inventory:
        inventory = cls()
        for model in models:
            inventory.add(model)
        return inventory

    def add(self, model: BaseModel) -> None:
        kind, name, _ = _meta(model)
        self._kinds.add(kind)
        if name:
            self._by_key.setdefault((kind, name), []).append(model)

    def has_kind(self, kind: str) -> bool:
        return kind in self._kinds

    def find(self, kind: str, name: str, namespace: str | None = None) -> BaseModel | None:
        """The object of that kind and name; cluster-scoped kinds ignore the namespace."""
        for model in self._by_key.get((kind, name), []):
            other = _meta(model)[2]
            if kind.startswith("Cluster") or namespace is None or other is None or other == namespace:
                return model
        return None
