"""Argo's status glyphs and which status maps to which (kinds' icons: ⟳ Rollout, # revision, ⧉ ReplicaSet,
□ Pod, α AnalysisRun, Σ Experiment, ⊞ Job)."""

from __future__ import annotations

OK, BAD, PROGRESSING, PAUSED, WAITING, WARNING, UNKNOWN, NEUTRAL = "✔", "✖", "◌", "॥", "◷", "⚠", "?", "•"

ICON_ROLLOUT, ICON_REVISION, ICON_REPLICASET, ICON_POD, ICON_ANALYSISRUN, ICON_EXPERIMENT, ICON_JOB = (
    "⟳", "#", "⧉", "□", "α", "Σ", "⊞"
)

_ROLLOUT = {"Healthy": OK, "Progressing": PROGRESSING, "Paused": PAUSED, "Degraded": BAD}
_REPLICASET = {"Healthy": OK, "Progressing": PROGRESSING, "ScaledDown": NEUTRAL, "Degraded": BAD}
_ANALYSIS = {"Successful": OK, "Failed": BAD, "Error": WARNING, "Running": PROGRESSING, "Pending": WAITING,
             "": WAITING, "Inconclusive": UNKNOWN}
_POD_OK = {"Running", "Succeeded", "Completed"}
_POD_PROGRESSING = {"Pending", "ContainerCreating", "PodInitializing", "Terminating"}
_POD_WARNING = {"CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "ImageNotResolvable", "Evicted"}


def rollout_icon(phase: str) -> str:
    return _ROLLOUT.get(phase, UNKNOWN)


def replica_set_icon(status: str) -> str:
    return _REPLICASET.get(status, UNKNOWN)


def analysis_icon(phase: str) -> str:
    return _ANALYSIS.get(phase, UNKNOWN)


def pod_icon(status: str) -> str:
    if status in _POD_OK:
        return OK
    if status in _POD_PROGRESSING:
        return PROGRESSING
    if status in _POD_WARNING:
        return WARNING
    if status in ("Failed", "Error", "StartError", "OOMKilled") or status.startswith("Err"):
        return BAD
    return UNKNOWN


# ANSI colour per glyph (used only when colour is on).
COLORS: dict[str, str] = {
    OK: "32", BAD: "31", PROGRESSING: "33", PAUSED: "33", WAITING: "33", WARNING: "31", UNKNOWN: "35",
    NEUTRAL: "90",
}
