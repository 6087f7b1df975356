"""Adopting ReplicaSets another controller (Argo Rollouts) created: template equality ignoring the hash.

Argo names a ReplicaSet after its own hash of the pod template (Kubernetes' ComputeHash), which ours
does not reproduce. Argo itself falls back, when no ReplicaSet carries the expected name, to comparing
templates (`PodTemplateEqualIgnoreHash`): the `rollouts-pod-template-hash` label removed, the API
server's defaults applied to the desired template, then a semantic deep-equal (nil and empty
collections alike). We do the same, applying the defaults to both sides because the local runtime does
not default what it stores (defaulting is idempotent, so a defaulted live template is unchanged).
The adopted ReplicaSet keeps its name, labels, hash and revision.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

from rollouts.engine.hashing import POD_TEMPLATE_HASH_LABEL
from rollouts.engine.memo import MEMO_LIMIT, forget_oldest
from rollouts.engine.types import ReplicaSetObservation
from rollouts.spec.pod import PodTemplateSpec

_PROBE_DEFAULTS = {"timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}
_POD_SPEC_DEFAULTS: dict[str, Any] = {
    "restartPolicy": "Always",
    "terminationGracePeriodSeconds": 30,
    "dnsPolicy": "ClusterFirst",
    "securityContext": {},
    "schedulerName": "default-scheduler",
}

_normal_memo: dict[int, tuple[object, Any]] = {}
_equal_memo: dict[tuple[int, int], tuple[object, object, bool]] = {}


def _image_pull_policy(image: str) -> str:
    # Kubernetes: ":latest" or no tag pulls Always, anything else IfNotPresent (a digest counts as a tag).
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else ""
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def _default_probe(probe: dict[str, Any]) -> None:
    for key, value in _PROBE_DEFAULTS.items():
        probe.setdefault(key, value)
    http = probe.get("httpGet")
    if isinstance(http, dict):
        http.setdefault("path", "/")
        http.setdefault("scheme", "HTTP")


def _default_container(container: dict[str, Any]) -> None:
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    if "image" in container:
        container.setdefault("imagePullPolicy", _image_pull_policy(str(container["image"])))
    for port in container.get("ports") or []:
        port.setdefault("protocol", "TCP")
    for name in ("readinessProbe", "livenessProbe", "startupProbe"):
        if isinstance(container.get(name), dict):
            _default_probe(container[name])
    _default_resources(container)
    for env in container.get("env") or []:
        field_ref = (env.get("valueFrom") or {}).get("fieldRef")
        if isinstance(field_ref, dict):
            field_ref.setdefault("apiVersion", "v1")


_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000), "": Fraction(1),
            "k": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9), "T": Fraction(10**12),
            "P": Fraction(10**15), "E": Fraction(10**18)}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)(?:([eE][+-]?[0-9]+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$")


def _quantity(value: Any) -> Any:
    """A resource quantity as an exact number: the API server stores "1000m" as "1", and Argo compares
    quantities by value. Anything unparsable is compared as written."""
    found = _QUANTITY.match(str(value).strip())
    if found is None:
        return value
    number, exponent, suffix = found.groups()
    try:
        amount = Fraction(number)
    except ValueError:
        return value
    if exponent:
        amount *= Fraction(10) ** int(exponent[1:])
    elif suffix in _BINARY:
        amount *= _BINARY[suffix]
    else:
        amount *= _DECIMAL[suffix or ""]
    return f"{amount.numerator}/{amount.denominator}"


def _default_resources(container: dict[str, Any]) -> None:
    resources = container.get("resources")
    if not isinstance(resources, dict):
        return
    for key in ("limits", "requests"):
        if isinstance(resources.get(key), dict):
            resources[key] = {name: _quantity(v) for name, v in resources[key].items()}
    # Requests are not defaulted to the limits here: Kubernetes does that for Pods, not pod templates.


def _default_volume(volume: dict[str, Any]) -> None:
    for source in ("configMap", "secret", "downwardAPI", "projected"):
        if isinstance(volume.get(source), dict):
            volume[source].setdefault("defaultMode", 420)


def _normalise(value: Any) -> Any:
    # Semantic equality: unset, null, empty list and empty map are the same; maps compare unordered.
    if isinstance(value, dict):
        out = {k: _normalise(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, [], {})}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    return value


def defaulted_template(template: PodTemplateSpec) -> dict[str, Any]:
    """The template as the API server stores it (SetObjectDefaults_PodTemplate's defaults for the fields
    we model), without the hash label, normalised for semantic comparison. Memoised by identity."""
    hit = _normal_memo.get(id(template))
    if hit is not None and hit[0] is template:
        return hit[1]  # type: ignore[no-any-return]
    body = copy.deepcopy(template.to_dict())
    metadata = body.setdefault("metadata", {})
    metadata.pop("creationTimestamp", None)
    (metadata.get("labels") or {}).pop(POD_TEMPLATE_HASH_LABEL, None)
    spec = body.setdefault("spec", {})
    for key, value in _POD_SPEC_DEFAULTS.items():
        spec.setdefault(key, copy.deepcopy(value))
    if spec.get("serviceAccountName") and not spec.get("serviceAccount"):
        # The deprecated field mirrors the new one once stored.
        spec["serviceAccount"] = spec["serviceAccountName"]
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or []:
            _default_container(container)
    for volume in spec.get("volumes") or []:
        _default_volume(volume)
    result = _normalise(body)
    if len(_normal_memo) >= MEMO_LIMIT:
        forget_oldest(_normal_memo)
    _normal_memo[id(template)] = (template, result)
    return result


def equal_ignore_hash(live: PodTemplateSpec, desired: PodTemplateSpec) -> bool:
    """Whether a ReplicaSet's template deploys what the rollout's template asks for (hash label ignored).
    Memoised by identity: an adopted ReplicaSet is compared again on every pass."""
    if live is desired:
        return True
    key = (id(live), id(desired))
    hit = _equal_memo.get(key)
    if hit is not None and hit[0] is live and hit[1] is desired:
        return hit[2]
    result = defaulted_template(live) == defaulted_template(desired)
    if len(_equal_memo) >= MEMO_LIMIT:
        forget_oldest(_equal_memo)
    _equal_memo[key] = (live, desired, result)
    return result


def find_adoptable(
    replica_sets: Sequence[ReplicaSetObservation], template: PodTemplateSpec
) -> ReplicaSetObservation | None:
    """The oldest ReplicaSet whose template equals `template` (as Argo's FindNewReplicaSet falls back to)."""
    matches = [rs for rs in replica_sets if rs.pod_hash and equal_ignore_hash(rs.template, template)]
    if len(matches) < 2:
        return matches[0] if matches else None
    oldest = datetime.min.replace(tzinfo=UTC)
    return min(matches, key=lambda rs: (rs.created_at or oldest, rs.name))
