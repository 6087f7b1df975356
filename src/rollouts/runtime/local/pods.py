"""Keeps the pods of every ReplicaSet in the store running as local processes, and writes back what
they do: Pod objects (for `get pods`, `logs`, and the engine's view) and ReplicaSet status counts.

This plays the part of Kubernetes' ReplicaSet controller and kubelet on one host."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from rollouts.engine.hashing import POD_TEMPLATE_HASH_LABEL as POD_HASH_LABEL
from rollouts.runtime.local.lists import KindLists
from rollouts.runtime.local.processes import PID_ANNOTATION, PID_START_ANNOTATION, recorded, stop_all
from rollouts.runtime.local.routing import PORT_ANNOTATION
from rollouts.runtime.local.supervisor import PodState, PodSupervisor
from rollouts.spec.pod import PodTemplateSpec
from rollouts.store.protocol import AlreadyExists, NotFound, ObjectStore

log = logging.getLogger(__name__)

_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
UNRESOLVED_IMAGE_REASONS = ("ImageNotResolvable", "ImageMapInvalid")
# The kubelet's default maxPods: pods beyond it on this host are not started (they stay Pending), so a
# ReplicaSet asking for a billion replicas cannot take the controller down with it.
DEFAULT_MAX_PODS = 110
UNSCHEDULABLE_REASON = "FailedScheduling"
# While pods stay Pending, their Warning event is refreshed at most this often (each refresh is a write).
UNSCHEDULABLE_EVENT_SECONDS = 60.0


def _settled_empty(rs: dict[str, Any]) -> bool:
    """Whether a ReplicaSet's status already says it has no pods, for its current generation."""
    status = rs.get("status") or {}
    return (not status.get("replicas") and not status.get("readyReplicas") and not status.get("availableReplicas")
            and "replicas" in status and status.get("observedGeneration") == rs["metadata"].get("generation"))


def _recorded_port(annotations: dict[str, str] | None) -> int | None:
    try:
        port = int((annotations or {})[PORT_ANNOTATION])
    except (KeyError, ValueError):
        return None
    return port if 0 < port < 65536 else None


def _parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _started_at(status: dict[str, Any]) -> datetime | None:
    for container in status.get("containerStatuses") or []:
        found = _parse_time(((container.get("state") or {}).get("running") or {}).get("startedAt"))
        if found is not None:
            return found
    return None


def _ports(state: PodState) -> list[dict[str, Any]]:
    """The container's ports as the Pod shows them: the declared ones, or the one port the runtime chose for a
    container that declares none (so a client discovering pods, Prometheus' role pod, finds where it listens)."""
    declared = state.container_ports or (("", state.port, "TCP"),)
    return [{**({"name": name} if name else {}), "containerPort": number, "protocol": protocol}
            for name, number, protocol in declared]


def _pod_name(rs_name: str) -> str:
    return f"{rs_name}-{''.join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(5))}"


def _time(state: PodState) -> str:
    return state.created_at.isoformat().replace("+00:00", "Z")


def pod_status(state: PodState) -> dict[str, Any]:
    """The Kubernetes-shaped status of a local pod."""
    waiting = state.reason in ("CrashLoopBackOff", "ImageNotResolvable", "StartError")
    container_state: dict[str, Any]
    if waiting:
        container_state = {"waiting": {"reason": state.reason, "message": state.message or ""}}
    elif state.phase == "Running":
        started = state.started_at.isoformat().replace("+00:00", "Z") if state.started_at else _time(state)
        container_state = {"running": {"startedAt": started}}
    else:
        container_state = {"terminated": {"exitCode": state.exit_code or 0, "reason": state.reason or ""}}
    return {
        "phase": state.phase.value,
        "podIP": state.ip,
        "podIPs": [{"ip": state.ip}],
        "reason": state.reason,
        "message": state.message,
        "conditions": [{"type": "Ready", "status": "True" if state.ready else "False"}],
        "containerStatuses": [{
            "name": state.container,
            "image": state.image,
            "ready": state.ready,
            "restartCount": state.restarts,
            "state": container_state,
        }],
    }


class PodSync:
    """Reconciles ReplicaSets in the store with the supervisor's processes."""

    def __init__(self, store: ObjectStore, supervisor: PodSupervisor, max_pods: int = DEFAULT_MAX_PODS,
                 lists: KindLists | None = None) -> None:
        if max_pods < 1:
            raise ValueError(f"max_pods: {max_pods} must be 1 or more")
        self.store = store
        self.lists = lists or KindLists(store)
        self.supervisor = supervisor
        self.max_pods = max_pods
        # ReplicaSet (namespace, name) -> (event message, monotonic time it was last recorded), while some of
        # its pods stay Pending for want of room.
        self._unschedulable: dict[tuple[str, str], tuple[str, float]] = {}
        self._written: dict[str, dict[str, Any]] = {}
        self._stopping: set[asyncio.Task[bool]] = set()
        self._warned: set[str] = set()  # pods whose unresolvable image already has its Warning event
        self._last_inputs: tuple[list[Any], list[Any], list[Any]] | None = None

    async def adopt_recorded_pods(self) -> int:
        """At start-up of a detached runtime: take over the pods an earlier process left. A recorded process
        that still runs (same pid and start time) is adopted, not restarted; one that ended restarts as after
        a crash, on its recorded port; a pod whose ReplicaSet is gone stops. Returns how many were adopted
        running."""
        replica_sets = {(rs["metadata"]["namespace"], rs["metadata"]["name"]): rs
                        for rs in self.store.list("ReplicaSet")}
        running = 0
        for obj in self.store.list("Pod"):
            meta = obj["metadata"]
            namespace, name = meta["namespace"], meta["name"]
            labels = meta.get("labels") or {}
            if "rollouts.io/replicaset" not in labels:
                continue  # not a ReplicaSet's pod (a Job's attempt, say): its own controller adopts it
            rs = replica_sets.get((namespace, labels["rollouts.io/replicaset"]))
            process = recorded(meta.get("annotations"))
            try:
                template = PodTemplateSpec.model_validate((rs or {}).get("spec", {}).get("template") or {})
            except ValidationError:
                template = None
            port = _recorded_port(meta.get("annotations"))
            ip = (obj.get("status") or {}).get("podIP")
            if rs is None or template is None or not template.spec.containers or port is None:
                # Not to run again: its ReplicaSet is gone (or unreadable), or no port was recorded.
                if process is not None:
                    await asyncio.to_thread(stop_all, [process], 5.0)
                self._delete_object(namespace, name)
                continue
            container = template.spec.containers[0]
            status = obj.get("status") or {}
            restarts = sum(int(c.get("restartCount") or 0) for c in status.get("containerStatuses") or [])
            state = await self.supervisor.adopt_pod(
                name, labels, container, namespace, port=port, ip=ip if isinstance(ip, str) and ip else None,
                pid=process[0] if process else None, pid_start=process[1] if process else None,
                restarts=restarts, created_at=_parse_time(meta.get("creationTimestamp")),
                started_at=_started_at(status),
                termination_grace_seconds=template.spec.termination_grace_period_seconds)
            running += int(state.adopted)
            log.info("pod %s/%s: %s", namespace, name,
                     f"adopted (pid {state.pid})" if state.adopted else "its process ended: restarting it")
        return running

    def forget_stale_pods(self) -> None:
        """At start-up no process of ours runs yet: Pod objects left by a previous controller are gone."""
        for obj in self.store.list("Pod"):
            try:
                self.store.delete("Pod", obj["metadata"]["namespace"], obj["metadata"]["name"])
            except NotFound:
                pass

    async def sync(self) -> None:
        replica_sets, pod_list = self.lists.list("ReplicaSet"), self.lists.list("Pod")
        states = self.supervisor.pods()
        # Nothing to do when the lists are the very ones of the last pass (no change reported since) and no
        # pod changed: the periodic pass over an idle cluster of thousands of ReplicaSets costs nothing.
        inputs = (replica_sets, pod_list, [(s.name, s.phase, s.ready, s.pid, s.restarts, s.reason, s.terminating)
                                           for s in states])
        last = self._last_inputs
        if last is not None and last[0] is replica_sets and last[1] is pod_list and last[2] == inputs[2] \
                and not self._unschedulable:
            return
        await self._sync(replica_sets, pod_list, states)
        self._last_inputs = inputs

    async def _sync(self, replica_sets: list[dict[str, Any]], pod_list: list[dict[str, Any]],
                    states: list[PodState]) -> None:
        stored_pods = {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in pod_list}
        live = {s.name: s for s in states if not s.terminating}

        # Pods whose object was deleted (eviction, ReplicaSet deleted) stop.
        for name, state in list(live.items()):
            if (state.namespace, name) not in stored_pods and name in self._written:
                self._stop(name, state)
                del live[name]

        # Pods by ReplicaSet, once per pass (not one scan of every pod per ReplicaSet).
        by_set: dict[tuple[str, str], list[PodState]] = {}
        for state in live.values():
            by_set.setdefault((state.namespace, state.labels.get("rollouts.io/replicaset", "")), []).append(state)
        for rs in replica_sets:
            meta = rs["metadata"]
            key = (meta["namespace"], meta["name"])
            mine = by_set.get(key, [])
            if not mine and not rs["spec"].get("replicas") and key not in self._unschedulable \
                    and _settled_empty(rs):
                continue  # scaled to zero and said so: the common idle case, skipped cheaply
            await self._sync_replica_set(rs, live, stored_pods, sorted(mine, key=lambda s: s.created_at))
        present = {(rs["metadata"]["namespace"], rs["metadata"]["name"]) for rs in replica_sets}
        for key in [k for k in self._unschedulable if k not in present]:
            del self._unschedulable[key]

        for namespace, name in stored_pods:
            if name not in live and name in self._written:
                self._delete_object(namespace, name)

    async def _sync_replica_set(self, rs: dict[str, Any], live: dict[str, PodState],
                                stored: dict[tuple[str, str], dict[str, Any]], mine: list[PodState]) -> None:
        """`mine`: the ReplicaSet's live pods, oldest first (the list is extended with pods started here)."""
        meta = rs["metadata"]
        namespace, rs_name = meta["namespace"], meta["name"]
        pod_hash = (meta.get("labels") or {}).get(POD_HASH_LABEL, "")
        desired = int(rs["spec"].get("replicas") or 0)
        template: PodTemplateSpec | None = None
        if len(mine) < desired:
            # Only read when pods are to be made: an idle pass over thousands of ReplicaSets stays cheap.
            try:
                template = PodTemplateSpec.model_validate(rs["spec"].get("template") or {})
            except ValidationError as exc:
                log.warning("ReplicaSet %s/%s: invalid pod template: %s", namespace, rs_name, exc)
                return
        pending = 0
        if template is not None and template.spec.containers:
            container = template.spec.containers[0]
            labels = {**template.metadata.labels, POD_HASH_LABEL: pod_hash, "rollouts.io/replicaset": rs_name}
            grace = template.spec.termination_grace_period_seconds
            missing = desired - len(mine)
            room = max(0, self.max_pods - len(live))
            pending = missing - min(missing, room)
            for _ in range(min(missing, room)):
                state = await self.supervisor.ensure_pod(_pod_name(rs_name), labels, container, namespace,
                                                         termination_grace_seconds=grace)
                mine.append(state)
                live[state.name] = state
        elif len(mine) > desired:
            # Remove not-ready pods first, then the newest, as Kubernetes does.
            victims = sorted(mine, key=lambda s: (s.ready, s.created_at), reverse=False)[: len(mine) - desired]
            for state in victims:
                self._stop(state.name, state)
                mine.remove(state)
                if (namespace, state.name) in stored:
                    self._delete_object(namespace, state.name)

        self._report_pending(rs, desired, pending)
        for state in mine:
            self._write_pod(rs, state)
        ready = sum(1 for s in mine if s.ready)
        status = {"replicas": len(mine), "readyReplicas": ready, "availableReplicas": ready,
                  "observedGeneration": meta.get("generation")}
        if {k: (rs.get("status") or {}).get(k) for k in status} != status:
            try:
                self.store.patch("ReplicaSet", namespace, rs_name, {"status": status}, subresource="status")
            except NotFound:
                pass

    def _report_pending(self, rs: dict[str, Any], desired: int, pending: int) -> None:
        """A Warning event on the ReplicaSet and its Rollout while some of its pods cannot start."""
        meta = rs["metadata"]
        key = (meta["namespace"], meta["name"])
        if not pending:
            self._unschedulable.pop(key, None)
            return
        message = (f"0/1 nodes are available: 1 Too many pods. {pending} of {desired} pods of ReplicaSet "
                   f"{meta['name']} stay Pending: this host runs at most {self.max_pods} pods "
                   f"(raise it with `rollouts controller --max-pods N`, or scale the rollout down)")
        previous = self._unschedulable.get(key)
        now = time.monotonic()
        if previous is not None and previous[0] == message and now - previous[1] < UNSCHEDULABLE_EVENT_SECONDS:
            return
        self._unschedulable[key] = (message, now)
        log.warning(message, extra={"fields": {"replicaset": f"{key[0]}/{key[1]}"}})
        involved = [{"kind": "ReplicaSet", "namespace": key[0], "name": key[1], "uid": meta.get("uid", ""),
                     "apiVersion": "apps/v1"}]
        for owner in meta.get("ownerReferences") or []:
            if owner.get("kind") == "Rollout" and owner.get("name"):
                involved.append({"kind": "Rollout", "namespace": key[0], "name": owner["name"],
                                 "uid": owner.get("uid", ""), "apiVersion": owner.get("apiVersion", "")})
        for obj in involved:
            try:
                self.store.record_event(obj, "Warning", UNSCHEDULABLE_REASON, message, source="rollouts-local-runtime")
            except Exception:  # an event is best effort: never stop the pods from being synced
                log.exception("cannot record the event for ReplicaSet %s", key[1])

    def _write_pod(self, rs: dict[str, Any], state: PodState) -> None:
        status = pod_status(state)
        labels = dict(state.labels)
        # Where the process is, so a restarted local cluster adopts it (and `cluster down` finds it).
        process = {PID_ANNOTATION: str(state.pid) if state.pid else None,
                   PID_START_ANNOTATION: str(state.pid_start) if state.pid and state.pid_start else None}
        # The template's own annotations (prometheus.io/scrape, ...) are the pod's, as in Kubernetes.
        template_meta = ((rs.get("spec") or {}).get("template") or {}).get("metadata") or {}
        annotations = {**{str(k): str(v) for k, v in (template_meta.get("annotations") or {}).items()},
                       PORT_ANNOTATION: str(state.port), "rollouts.io/log": str(state.log_path),
                       **{k: v for k, v in process.items() if v is not None}}
        obj = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": state.name,
                "namespace": state.namespace,
                "labels": labels,
                "annotations": annotations,
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs["metadata"]["name"],
                                     "uid": rs["metadata"].get("uid", ""), "controller": True}],
            },
            "spec": {"containers": [{"name": state.container, "image": state.image, "ports": _ports(state)}]},
            "status": status,
        }
        previous = self._written.get(state.name)
        if previous == obj:
            return
        try:
            self.store.create(obj)
        except AlreadyExists:
            try:
                if previous is None or previous["metadata"]["annotations"] != annotations:
                    self.store.patch("Pod", state.namespace, state.name,
                                     {"metadata": {"annotations": {**annotations, **process}}})
                self.store.patch("Pod", state.namespace, state.name, {"status": status}, subresource="status")
            except NotFound:
                return
        self._written[state.name] = obj
        if state.reason in UNRESOLVED_IMAGE_REASONS and state.name not in self._warned:
            self._warned.add(state.name)
            self._warn_image(rs, state)

    def _warn_image(self, rs: dict[str, Any], state: PodState) -> None:
        """Once per pod: a Warning on the Pod and on the Rollout owning its ReplicaSet, with the supervisor's
        message (which says how to map the image to a command)."""
        message = f"pod {state.name}: {state.message or state.reason}"
        involved = [{"kind": "Pod", "namespace": state.namespace, "name": state.name, "apiVersion": "v1"}]
        for owner in rs["metadata"].get("ownerReferences") or []:
            if owner.get("kind") == "Rollout" and owner.get("name"):
                involved.append({"kind": "Rollout", "namespace": state.namespace, "name": owner["name"],
                                 "uid": owner.get("uid", ""), "apiVersion": owner.get("apiVersion", "")})
        for obj in involved:
            try:
                self.store.record_event(obj, "Warning", state.reason or "ImageNotResolvable", message,
                                        source="rollouts-local-runtime")
            except Exception:  # an event is best effort: never stop the pods from being synced
                log.exception("cannot record the event for pod %s", state.name)

    def _delete_object(self, namespace: str, name: str) -> None:
        self._written.pop(name, None)
        self._warned.discard(name)
        try:
            self.store.delete("Pod", namespace, name)
        except NotFound:
            pass

    def _stop(self, name: str, state: PodState) -> None:
        self._written.pop(name, None)
        task = asyncio.create_task(self.supervisor.delete_pod(name), name=f"stop:{name}")
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)
