"""Shared by `get`, `list`, `describe` and the fast path: colour choice, the one-line not-found error,
fetching objects of a kind (with derived Endpoints), and the `get rollout` tree text."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rollouts.store.protocol import ObjectStore

Obj = dict[str, Any]


def use_color(no_color: bool) -> bool:
    """Colour only on a terminal, without --no-color and without NO_COLOR set."""
    return not no_color and "NO_COLOR" not in os.environ and sys.stdout.isatty()


def not_found(kind: str, namespace: str, name: str) -> str:
    from rollouts.store.protocol import CLUSTER_SCOPED_KINDS, resource_name
    from rollouts.views.tables import GROUPS

    group = GROUPS.get(kind)
    what = f"{resource_name(kind)}.{group}" if group else resource_name(kind)
    where = "" if kind in CLUSTER_SCOPED_KINDS else f' in namespace "{namespace}"'
    return f'{what} "{name}" not found{where}'


def rollout_text(store: ObjectStore, namespace: str, name: str, color: bool, now: datetime | None = None) -> str:
    """The `get rollout NAME` text; LookupError with the one-line message when there is no such rollout."""
    from rollouts.views.info import rollout_info
    from rollouts.views.tree import render_rollout

    moment = now or datetime.now(UTC)
    return render_rollout(rollout_info(store, namespace, name, moment, events=False), moment, color)


def fetch(
    store: ObjectStore, kind: str, namespace: str | None, name: str | None,
    label_selector: str | None = None, field_selector: str | None = None,
) -> list[Obj]:
    """Objects of a kind as `get` lists them; LookupError (one-line message) for a missing named object."""
    from rollouts.store.protocol import NotFound

    if kind == "Endpoints":
        from rollouts.views.tables import endpoints_for

        services = store.list("Service", namespace, label_selector, field_selector)
        pods = store.list("Pod", namespace)
        found = [endpoints_for(svc, [p for p in pods if p["metadata"].get("namespace") ==
                                     svc["metadata"].get("namespace")]) for svc in services]
        if name is not None:
            found = [ep for ep in found if ep["metadata"]["name"] == name]
            if not found:
                raise LookupError(not_found(kind, namespace or "default", name))
        return found
    if name is not None:
        try:
            obj = store.get(kind, namespace or "default", name)
        except NotFound:
            raise LookupError(not_found(kind, namespace or "default", name)) from None
        return [obj]
    return store.list(kind, namespace, label_selector, field_selector)
