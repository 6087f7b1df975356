"""Which operator actions make sense for a rollout in its current state, and why not when they do not.

The page disables a button with the reason on hover; the API refuses the same action with 409 and the same
reason, so a stale page (or a script) cannot do what the button would not. The CLI keeps the kubectl
plugin's looser rules (its verbs go straight to the shared actions), this is the dashboard's own guard."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from rollouts.api.models import ApiModel

VERBS = ("promote", "promote-full", "abort", "retry", "pause", "resume", "restart")


class Availability(ApiModel):
    allowed: bool
    reason: str = Field("", description="why the action does not apply now (empty when it does)")


def _release(obj: Mapping[str, Any]) -> tuple[bool, str]:
    """(a release is in progress, a description of the rollout's state when none is)."""
    status = obj.get("status") or {}
    current, stable = status.get("currentPodHash"), status.get("stableRS")
    if current and stable and current != stable:
        return True, ""
    strategy = (obj.get("spec") or {}).get("strategy") or {}
    steps = (strategy.get("canary") or {}).get("steps") or []
    index = status.get("currentStepIndex")
    if "canary" in strategy and isinstance(index, int) and index < len(steps) and current and not stable:
        return True, ""
    return False, "no release is in progress: the current revision is the stable one"


def availability(obj: Mapping[str, Any]) -> dict[str, Availability]:
    """For each verb of VERBS, whether it applies to the stored rollout `obj` now."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    aborted = bool(status.get("abort"))
    paused = bool(spec.get("paused")) or bool(status.get("pauseConditions"))
    releasing, idle = _release(obj)

    def ok() -> Availability:
        return Availability(allowed=True)

    def no(reason: str) -> Availability:
        return Availability(allowed=False, reason=reason)

    blocked = "the rollout is aborted: retry it first (or set a new image)" if aborted else idle
    can_move = ok() if releasing and not aborted else no(blocked)
    return {
        "promote": can_move,
        "promote-full": can_move,
        "abort": no("the rollout is already aborted") if aborted else (ok() if releasing else no(idle)),
        "retry": ok() if aborted else no("retry applies only to an aborted rollout"),
        "pause": no("the rollout is already paused") if spec.get("paused") else ok(),
        "resume": ok() if paused else no("the rollout is not paused: there is nothing to resume"),
        "restart": ok(),
    }


def undo_availability(live: bool) -> Availability:
    """Undo to a revision: not to the one that is already the rollout's pod template."""
    if live:
        return Availability(allowed=False, reason="this revision is already the rollout's pod template")
    return Availability(allowed=True)
