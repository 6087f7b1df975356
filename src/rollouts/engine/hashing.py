"""Stable names for what a rollout deploys: the pod-template hash, ReplicaSet names, the steps hash.

A hash is 10 characters from Kubernetes' "safe" alphabet (no vowels, no confusable digits) derived from
the canonical JSON of the template, so the same template always gets the same ReplicaSet. Results are
memoised by object identity: models are frozen, and the memo keeps a reference to the object so its id
cannot be reused while the entry lives.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from rollouts.engine.memo import MEMO_LIMIT, forget_oldest
from rollouts.spec.pod import PodTemplateSpec
from rollouts.spec.rollout import CanaryStep

POD_TEMPLATE_HASH_LABEL = "rollouts-pod-template-hash"
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
HASH_LENGTH = 10

_template_memo: dict[tuple[int, int], tuple[object, str]] = {}
_steps_memo: dict[int, tuple[object, str]] = {}


def _encode(digest: bytes) -> str:
    number = int.from_bytes(digest[:16], "big")
    out = []
    for _ in range(HASH_LENGTH):
        number, rem = divmod(number, len(SAFE_ALPHABET))
        out.append(SAFE_ALPHABET[rem])
    return "".join(out)


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def template_without_hash_label(template: PodTemplateSpec) -> PodTemplateSpec:
    """The template as the user wrote it: our own hash label removed (it is added to ReplicaSets)."""
    labels = template.metadata.labels
    if POD_TEMPLATE_HASH_LABEL not in labels:
        return template
    kept = {k: v for k, v in labels.items() if k != POD_TEMPLATE_HASH_LABEL}
    return template.model_copy(update={"metadata": template.metadata.model_copy(update={"labels": kept})})


def pod_template_hash(template: PodTemplateSpec, collision_count: int | None = None) -> str:
    """The `rollouts-pod-template-hash` of a template (and the status' collisionCount)."""
    key = (id(template), collision_count or 0)
    hit = _template_memo.get(key)
    if hit is not None and hit[0] is template:
        return hit[1]
    body = template_without_hash_label(template).to_dict()
    payload = _canonical(body)
    if collision_count:
        payload += b"/" + str(collision_count).encode()
    result = _encode(hashlib.sha256(payload).digest())
    if len(_template_memo) >= MEMO_LIMIT:
        forget_oldest(_template_memo)
    _template_memo[key] = (template, result)
    return result


def steps_hash(steps: Sequence[CanaryStep] | None) -> str:
    """`status.currentStepHash`: changes whenever the step list changes (which restarts the steps)."""
    key = id(steps)
    hit = _steps_memo.get(key)
    if hit is not None and hit[0] is steps:
        return hit[1]
    payload = _canonical([s.to_dict() for s in steps or []])
    result = _encode(hashlib.sha256(payload).digest())
    if len(_steps_memo) >= MEMO_LIMIT:
        forget_oldest(_steps_memo)
    _steps_memo[key] = (steps, result)
    return result


def _fnv32a(data: bytes) -> int:
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


def _go_json(value: Any) -> bytes:
    # encoding/json: compact, UTF-8 as is, HTML characters and the JS line separators escaped.
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text.encode()


def _argo_step(step: CanaryStep) -> dict[str, Any]:
    """A step as Argo's Go types marshal it: struct field order, `omitempty` false booleans dropped, and
    the (non-pointer, so never omitted) analysisRunMetadata struct present."""
    body = step.to_dict()
    scale = body.get("setCanaryScale")
    if isinstance(scale, dict) and scale.get("matchTrafficWeight") is False:
        del scale["matchTrafficWeight"]
    analysis = body.get("analysis")
    if isinstance(analysis, dict):
        for ref in analysis.get("templates") or []:
            if ref.get("clusterScope") is False:
                del ref["clusterScope"]
        meta = analysis.pop("analysisRunMetadata", None) or {}
        ordered = {k: analysis[k] for k in ("templates", "args", "dryRun", "measurementRetention") if analysis.get(k)}
        ordered["analysisRunMetadata"] = {k: dict(sorted(meta[k].items())) for k in ("labels", "annotations")
                                          if meta.get(k)}
        body["analysis"] = ordered
    return body


def argo_steps_hash(steps: Sequence[CanaryStep] | None) -> str:
    """`status.currentStepHash` as Argo's controller writes it (conditions.ComputeStepHash: fnv32a of the
    steps' JSON, its decimal rendered with rand.SafeEncodeString), so a status Argo wrote is recognised."""
    digits = str(_fnv32a(_go_json([_argo_step(s) for s in steps or []])))
    return "".join(SAFE_ALPHABET[ord(d) % len(SAFE_ALPHABET)] for d in digits)


def replica_set_name(rollout_name: str, pod_hash: str) -> str:
    return f"{rollout_name}-{pod_hash}"


def templates_equal(a: PodTemplateSpec, b: PodTemplateSpec) -> bool:
    """Whether two templates deploy the same thing (ignoring our hash label)."""
    if a is b:
        return True
    return pod_template_hash(a) == pod_template_hash(b)
