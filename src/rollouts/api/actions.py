"""The operator verbs applied to a stored Rollout: load it, compute the engine's intent patch, write it.

Shared by the CLI verbs and the dashboard API so that both write exactly the same patches. No web
framework here: the CLI imports this module without pulling in the server."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rollouts.engine import intents
from rollouts.engine.intents import IntentError, Patch
from rollouts.spec.rollout import Rollout
from rollouts.store.protocol import NotFound, ObjectStore
from rollouts.views.info import RolloutNotFound

__all__ = ["ActionError", "ActionResult", "RolloutNotFound", "apply_intent", "load_rollout", "promote",
           "set_image", "undo", "write_patch"]


class ActionError(ValueError):
    """A verb that cannot apply to this rollout; the text says why."""


@dataclass(frozen=True)
class ActionResult:
    message: str
    changed: bool


def load_rollout(store: ObjectStore, namespace: str, name: str) -> tuple[dict[str, Any], Rollout]:
    try:
        obj = store.get("Rollout", namespace, name)
    except NotFound:
        raise RolloutNotFound(namespace, name) from None
    return obj, Rollout.model_validate(obj)


def write_patch(store: ObjectStore, namespace: str, name: str, patch: Patch,
                resource_version: str | None = None) -> bool:
    """Writes the status part, then the spec part, in one transaction where the store has them (SQLite): a
    process killed between the two leaves neither (a half-applied promote or resume would be read by the
    controller as a different verb).

    A Kubernetes API has no transaction, so the order matters there. The status part carries what depends
    on the state (promote's next step index); the spec part is `paused: false` whatever the state. Status
    first makes the spec part the verb's last write, so concurrent verbs on one rollout always end as some
    sequential order of them would (each in the order of its last write), and the moment between the two
    holds the rollout still (spec.paused holds it, never a pause condition left over from before).

    `resource_version`: the version of the rollout the patch was computed from, for a verb whose patch
    depends on what it read. The first write carries it as a precondition, so the verb applies to exactly
    the state it saw or fails with Conflict (409) having written nothing; the constant spec part after it
    needs none."""
    bodies = sorted(patch.bodies(), key=lambda part: part[0] != "status")
    if resource_version and bodies:
        first, body = bodies[0]
        bodies[0] = (first, {**body, "metadata": {"resourceVersion": str(resource_version)}})
    with store.transaction():
        for subresource, body in bodies:
            store.patch("Rollout", namespace, name, body, subresource="status" if subresource else None)
    return bool(bodies)


def apply_intent(store: ObjectStore, namespace: str, name: str, make: Callable[[Rollout], Patch], *,
                 conditional: bool = False) -> ActionResult:
    """`conditional`: the patch depends on the state read (see `write_patch`); a concurrent write makes
    it fail with Conflict. Verbs whose patch is the same whatever the state (abort, pause, resume, retry,
    restart) stay unconditional: they always apply, so an abort is never refused because the controller
    wrote the status meanwhile."""
    obj, rollout = load_rollout(store, namespace, name)
    try:
        patch = make(rollout)
    except IntentError as exc:
        raise ActionError(str(exc)) from None
    version = str(obj["metadata"].get("resourceVersion") or "") if conditional else None
    return ActionResult(patch.message, write_patch(store, namespace, name, patch, version))


def promote(store: ObjectStore, namespace: str, name: str, *, full: bool = False,
            skip_current_step: bool = False) -> ActionResult:
    return apply_intent(store, namespace, name,
                        lambda r: intents.promote(r, full=full, skip_current_step=skip_current_step),
                        conditional=True)


def abort(store: ObjectStore, namespace: str, name: str) -> ActionResult:
    return apply_intent(store, namespace, name, intents.abort)


def retry(store: ObjectStore, namespace: str, name: str) -> ActionResult:
    return apply_intent(store, namespace, name, intents.retry)


def pause(store: ObjectStore, namespace: str, name: str) -> ActionResult:
    return apply_intent(store, namespace, name, intents.pause)


def resume(store: ObjectStore, namespace: str, name: str) -> ActionResult:
    return apply_intent(store, namespace, name, intents.resume)


def restart(store: ObjectStore, namespace: str, name: str, at: datetime) -> ActionResult:
    return apply_intent(store, namespace, name, lambda r: intents.restart(r, at))


def undo(store: ObjectStore, namespace: str, name: str, to_revision: int = 0) -> ActionResult:
    from rollouts.controller.observe import observe_rollout

    obj, rollout = load_rollout(store, namespace, name)
    try:
        result = intents.undo(rollout, observe_rollout(store, rollout).replica_sets, to_revision)
    except IntentError as exc:
        raise ActionError(str(exc)) from None
    version = str(obj["metadata"].get("resourceVersion") or "")
    return ActionResult(result.message, write_patch(store, namespace, name, result.patch, version))


def set_image(store: ObjectStore, namespace: str, name: str, container: str, image: str) -> ActionResult:
    """Sets the image of the named container (init and ephemeral ones included); '*' means every one."""
    if not container or not image:
        raise ActionError("container and image must both be given (container '*' sets every container)")
    obj, _ = load_rollout(store, namespace, name)
    template = obj["spec"]["template"]
    spec = template["spec"]
    found = False
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for item in spec.get(key) or []:
            if container in ("*", item.get("name")):
                item["image"] = image
                found = True
    if not found:
        names = ", ".join(c.get("name", "") for c in spec.get("containers") or [])
        raise ActionError(f"unable to find container named {container!r} (containers: {names})")
    # The whole template as read goes back: conditional on that read, so a concurrent change to the
    # template (another set image, an undo) is never overwritten unseen; it fails with Conflict instead.
    version = str(obj["metadata"].get("resourceVersion") or "")
    store.patch("Rollout", namespace, name,
                {"metadata": {"resourceVersion": version} if version else {}, "spec": {"template": template}})
    return ActionResult(f"rollout '{name}' image updated", True)
