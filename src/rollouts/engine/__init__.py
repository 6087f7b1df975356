"""The rollout engine: a pure state machine `reconcile(rollout, observed, now) -> Decision`.

No I/O, no clock, no logging, no randomness: the shell observes the world, calls `reconcile`, applies the
returned actions in order, stores the returned status and calls again after `requeue_after` seconds (or
when something it watches changes).
"""

from rollouts.engine.reconcile import reconcile
from rollouts.engine.types import (
    Action,
    CreateAnalysisRun,
    CreateReplicaSet,
    Decision,
    DeleteAnalysisRun,
    DeleteReplicaSet,
    EmitEvent,
    EvictPod,
    Observed,
    PodObservation,
    RemoveHeaderRoute,
    ReplicaSetObservation,
    ScaleReplicaSet,
    SetCanaryWeight,
    SetHeaderRoute,
    SetReplicaSetRevision,
    SetScaleDownDeadline,
    SetServiceSelector,
    TerminateAnalysisRun,
)

__all__ = [
    "Action",
    "CreateAnalysisRun",
    "CreateReplicaSet",
    "Decision",
    "DeleteAnalysisRun",
    "DeleteReplicaSet",
    "EmitEvent",
    "EvictPod",
    "Observed",
    "PodObservation",
    "RemoveHeaderRoute",
    "ReplicaSetObservation",
    "ScaleReplicaSet",
    "SetCanaryWeight",
    "SetHeaderRoute",
    "SetReplicaSetRevision",
    "SetScaleDownDeadline",
    "SetServiceSelector",
    "TerminateAnalysisRun",
    "reconcile",
]
