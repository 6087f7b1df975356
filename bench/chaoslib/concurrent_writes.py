"""Chaos family "concurrent-writes": 20 clients issuing promote / abort / pause / resume / set image on ONE
rollout at once, through the CLI verbs' own code (`rollouts.api.actions`), each client a thread with its own
`KubeStore` connection to a real API server; with and without the operator reconciling meanwhile.

Every patch a client sends is recorded with the resourceVersion the API answered. Afterwards the rollout's
whole resourceVersion chain is read back from a watch (every version of the object, the operator's writes
included) and judged:
- errors: a write that failed other than with 409 Conflict (a 5xx, a dropped connection) or an
  unexpected exception;
- lost writes: an acknowledged write whose version is not in the chain, or whose version is not exactly
  the previous version with that patch applied (RFC 7386, on the part it wrote: spec or status; the other
  part unchanged), or a conditional write (it carries `metadata.resourceVersion`) applied on another
  version than the one it read;
- without the operator, the final spec and status must be what replaying the acknowledged verbs, in the
  order of their last write's resourceVersion, through the same `rollouts.api.actions` on an in-memory
  copy of the starting object gives.
"""

from __future__ import annotations

import contextlib
import copy
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FAMILY = "concurrent-writes"
CLIENTS = 20
WRITES_PER_CLIENT = 6
VERBS = ("promote", "abort", "pause", "resume", "set-image")
NAMESPACE = "default"


@dataclass
class Write:
    client: int
    seq: int
    verb: str
    image: str = ""
    outcome: str = ""              # "ok", "conflict", "refused" (the verb does not apply), "error"
    error: str = ""
    parts: list[tuple[str, dict[str, Any], int]] = field(default_factory=list)  # (subresource, body, version)
    changed_nothing: bool = False  # its last part answered a version an earlier write made

    @property
    def last_version(self) -> int:
        return self.parts[-1][2] if self.parts else 0


def _recording_store(store_class: type) -> type:
    """`store_class` whose patch calls are recorded (body and the version the API answered) in `parts`."""

    class Recording(store_class):  # type: ignore[misc, valid-type]
        parts: list[tuple[str, dict[str, Any], int]]

        def patch(self, kind: str, namespace: str, name: str, patch: Any, patch_type: Any = "merge",
                  subresource: Any = None) -> Any:
            answer = super().patch(kind, namespace, name, patch, patch_type, subresource)
            self.parts.append((subresource or "", copy.deepcopy(patch), int(answer["metadata"]["resourceVersion"])))
            return answer

    return Recording


class MemoryStore:
    """The object-store calls the verbs make (get, patch, transaction) on one in-memory Rollout: the
    replay copy."""

    def __init__(self, obj: dict[str, Any]) -> None:
        self.obj = copy.deepcopy(obj)

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        return copy.deepcopy(self.obj)

    def patch(self, kind: str, namespace: str, name: str, patch: Any, patch_type: str = "merge",
              subresource: str | None = None) -> dict[str, Any]:
        from rollouts.store.patch import merge_patch

        body = {k: v for k, v in patch.items() if k != "metadata"}
        self.obj = merge_patch(self.obj, body)
        return copy.deepcopy(self.obj)

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


def do_verb(store: Any, name: str, write: Write, blind: bool = False) -> None:
    """The CLI's verb; `blind`: promote and set image written unconditionally, as a client that ignores
    resourceVersions would (what this family must catch)."""
    from rollouts.api import actions
    from rollouts.engine import intents

    if blind and write.verb == "promote":
        _, found = actions.load_rollout(store, NAMESPACE, name)
        actions.write_patch(store, NAMESPACE, name, intents.promote(found))
    elif blind and write.verb == "set-image":
        obj = store.get("Rollout", NAMESPACE, name)
        obj["spec"]["template"]["spec"]["containers"][0]["image"] = write.image
        store.patch("Rollout", NAMESPACE, name, {"spec": {"template": obj["spec"]["template"]}})
    elif write.verb == "promote":
        actions.promote(store, NAMESPACE, name)
    elif write.verb == "abort":
        actions.abort(store, NAMESPACE, name)
    elif write.verb == "pause":
        actions.pause(store, NAMESPACE, name)
    elif write.verb == "resume":
        actions.resume(store, NAMESPACE, name)
    else:
        actions.set_image(store, NAMESPACE, name, "shop", write.image)


def client(number: int, kubeconfig: Path, name: str, writes: list[Write], start: threading.Barrier,
           blind: bool = False) -> None:
    from rollouts.api.actions import ActionError
    from rollouts.kube.client import KubeStore
    from rollouts.kube.config import load_config
    from rollouts.store.protocol import Conflict

    store = _recording_store(KubeStore)(load_config(str(kubeconfig)))
    try:
        with contextlib.suppress(threading.BrokenBarrierError):  # a slow start: begin anyway
            start.wait(30)
        for write in writes:
            store.parts = []
            try:
                do_verb(store, name, write, blind)
                write.outcome = "ok"
            except Conflict as exc:
                write.outcome, write.error = "conflict", str(exc)
            except ActionError as exc:
                write.outcome, write.error = "refused", str(exc)
            except Exception as exc:  # noqa: BLE001 - anything else is what this family counts
                write.outcome, write.error = "error", f"{type(exc).__name__}: {exc}"
            write.parts = list(store.parts)
    finally:
        store.close()


def plan(rng: random.Random, images: tuple[str, ...]) -> list[list[Write]]:
    return [[Write(c, s, verb := rng.choice(VERBS), rng.choice(images) if verb == "set-image" else "")
             for s in range(WRITES_PER_CLIENT)] for c in range(CLIENTS)]


def read_chain(kubeconfig: Path, name: str, since: int, until: int) -> dict[int, dict[str, Any]]:
    """Every version of the rollout after `since` up to `until`, from a watch, by resourceVersion."""
    from rollouts.kube.client import KubeStore
    from rollouts.kube.config import load_config

    chain: dict[int, dict[str, Any]] = {}
    store = KubeStore(load_config(str(kubeconfig)))
    try:
        cursor, deadline = since, time.monotonic() + 30
        while cursor < until and time.monotonic() < deadline:
            changes = store.watch(cursor, {"Rollout"}, timeout=1.0, limit=5000)
            for change in changes:
                if change.namespace == NAMESPACE and change.name == name:
                    chain[change.resource_version] = change.object
                cursor = max(cursor, change.resource_version)
    finally:
        store.close()
    return chain


@dataclass
class Verdict:
    acknowledged: int
    conflicts: int
    refused: int
    errors: int
    lost: int
    replay_ok: bool | None
    others: int          # versions in the chain no client wrote (the operator's)
    details: list[str]


def _section_of(subresource: str) -> str:
    return "status" if subresource == "status" else "spec"


def judge(writes: list[Write], initial: dict[str, Any], chain: dict[int, dict[str, Any]], final: dict[str, Any],
          replay: bool) -> Verdict:
    from rollouts.store.patch import merge_patch

    details: list[str] = []
    counts = Counter(w.outcome or "error" for w in writes)  # no outcome: the client died before it
    for w in writes:
        if w.outcome == "error" and len(details) < 3:
            details.append(f"client {w.client} {w.verb}: {w.error[:200]}")
        if w.outcome in ("conflict", "refused") and w.parts:
            details.append(f"client {w.client} {w.verb} failed ({w.outcome}) after writing {len(w.parts)} part(s)")
    versions = sorted(chain)
    initial_version = int(initial["metadata"]["resourceVersion"])
    before = {v: (versions[i - 1] if i else initial_version) for i, v in enumerate(versions)}
    objects = {initial_version: initial, **chain}
    lost = 0
    acknowledged = [w for w in writes if w.outcome == "ok"]
    for w in acknowledged:
        for subresource, body, version in w.parts:
            section = _section_of(subresource)
            if version not in objects:
                lost += 1
                details.append(f"client {w.client} {w.verb}: version {version} is not in the chain")
                continue
            prior = before.get(version, version)
            previous = objects.get(prior)
            if previous is None:
                lost += 1
                details.append(f"client {w.client} {w.verb}: no version before {version} in the chain")
                continue
            given = (body.get("metadata") or {}).get("resourceVersion")
            other = "status" if section == "spec" else "spec"
            now = objects[version]
            # It made `version`: the previous version with this patch applied, the other part untouched,
            # and (conditional) on the version it read.
            made = (merge_patch(previous.get(section) or {}, body.get(section) or {}) == (now.get(section) or {})
                    and (now.get(other) or {}) == (previous.get(other) or {})
                    and (not given or int(given) == prior))
            # Or it changed nothing (the API answers the current version without a new one): the patch is
            # already true of `version`, and (conditional) `version` is the one it read.
            unchanged = (merge_patch(now.get(section) or {}, body.get(section) or {}) == (now.get(section) or {})
                         and (not given or int(given) == version))
            w.changed_nothing = not made
            if not (made or unchanged):
                lost += 1
                if len(details) < 6:
                    details.append(f"client {w.client} {w.verb} answered {version} (conditional on {given}): "
                                   f"not the previous version {prior} with its patch applied "
                                   f"({section} {str(now.get(section))[:150]})")
    replay_ok: bool | None = None
    if replay:
        memory = MemoryStore(initial)
        # A write that changed nothing answered the version an earlier write made: it comes after that one.
        for w in sorted(acknowledged, key=lambda w: (w.last_version, w.changed_nothing)):
            do_verb(memory, initial["metadata"]["name"], w)
        got = {k: final.get(k) or {} for k in ("spec", "status")}
        want = {k: memory.obj.get(k) or {} for k in ("spec", "status")}
        replay_ok = got == want
        if not replay_ok:
            lost += 1
            diff = {k: (got[k], want[k]) for k in got if got[k] != want[k]}
            details.append(f"final state is not the replay of the acknowledged writes: {str(diff)[:400]}")
    ours = {version for w in writes for _, _, version in w.parts}
    return Verdict(len(acknowledged), counts["conflict"], counts["refused"], counts["error"], lost, replay_ok,
                   len(set(chain) - ours), details)


# --- setups -----------------------------------------------------------------------------------------

STEPS = [step for weight in range(5, 100, 5) for step in ({"setWeight": weight}, {"pause": {}})]


def rollout(name: str, image: str = "rollouts-demo:blue") -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "shop", "image": image}]}},
                 "strategy": {"canary": {"steps": STEPS}}},
    }


@contextlib.contextmanager
def api_only(workdir: Path) -> Iterator[Path]:
    """A real API server (TLS, token, SQLite) from a thread, no runtime and no operator: the kubeconfig."""
    from tests.cluster.conftest import start_cluster

    home = workdir / "api-home"
    home.mkdir(parents=True, exist_ok=True)
    found, stop = start_cluster(home)
    try:
        yield found.kubeconfig
    finally:
        stop()


def one_run(kubeconfig: Path, name: str, rng: random.Random, operator: bool, images: tuple[str, ...],
            blind: bool = False) -> Any:
    from chaoslib import Outcome
    from rollouts.kube.client import KubeStore
    from rollouts.kube.config import load_config

    began = time.monotonic()
    store = KubeStore(load_config(str(kubeconfig)))
    try:
        initial = store.get("Rollout", NAMESPACE, name)
        work = plan(rng, images)
        barrier = threading.Barrier(CLIENTS)
        threads = [threading.Thread(target=client, args=(c, kubeconfig, name, work[c], barrier, blind),
                                    daemon=True)
                   for c in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        writes = [w for items in work for w in items]
        if any(thread.is_alive() for thread in threads):
            raise TimeoutError(f"clients still writing after 120s: {sum(not w.outcome for w in writes)} writes left")
        final = store.get("Rollout", NAMESPACE, name)
        last = max([w.last_version for w in writes] + [int(final["metadata"]["resourceVersion"])])
    finally:
        store.close()
    chain = read_chain(kubeconfig, name, int(initial["metadata"]["resourceVersion"]), last)
    if not operator:
        final = chain[max(chain)] if chain else initial
    verdict = judge(writes, initial, chain, final, replay=not operator)
    mode = "with the operator reconciling" if operator else "no operator"
    ok = not verdict.errors and not verdict.lost and verdict.replay_ok is not False
    status = final.get("status") or {}
    return Outcome(
        family=FAMILY,
        fault=f"{CLIENTS} clients x {WRITES_PER_CLIENT} verbs on one rollout at once, {mode}",
        final=f"step {status.get('currentStepIndex')} abort={bool(status.get('abort'))} "
              f"paused={bool((final.get('spec') or {}).get('paused'))}",
        ok=ok,
        lost_writes=verdict.lost,
        seconds=time.monotonic() - began,
        detail="; ".join([f"{verdict.acknowledged} applied, {verdict.conflicts} 409, {verdict.refused} refused, "
                          f"{verdict.errors} errors, {len(chain)} versions in the chain ({verdict.others} by others)"
                          + ("" if verdict.replay_ok is None else f", replay {'matches' if verdict.replay_ok else 'differs'}"),
                          *verdict.details]),
        extra={"applied": float(verdict.acknowledged), "conflicts": float(verdict.conflicts),
               "operator_versions": float(verdict.others),
               "errors": float(verdict.errors)},
    )


def run(runs: int, seed: int, workdir: Path, *, operator_runs: bool = True, operator_first: bool = False,
        blind: bool = False) -> list[Any]:
    """Runs alternate: even ones against an API server alone, odd ones against the local cluster with the
    operator reconciling a canary of the same rollout meanwhile (`operator_first`: the other way round;
    `operator_runs=False`: never). `blind`: clients that write promote and set image unconditionally (the
    checker must then find lost writes)."""
    for folder in Path(__file__).resolve().parents[1:3]:
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    from chaoslib import Outcome
    from rollouts.kube.client import KubeStore
    from rollouts.kube.config import load_config

    workdir = Path(workdir) / FAMILY
    workdir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    outcomes: list[Any] = []
    with contextlib.ExitStack() as stack:
        kubeconfig = stack.enter_context(api_only(workdir))
        ctl: Any = None
        for number in range(runs):
            operator = operator_runs and number % 2 == (0 if operator_first else 1)
            try:
                if operator:
                    if ctl is None:
                        ctl = start_operator(workdir / f"home-{seed}")
                        stack.callback(ctl.stop_leaving_no_pods)
                    outcomes.append(one_run(ctl.home / "kubeconfig", "shop", rng, True,
                                            ("rollouts-demo:green", "rollouts-demo:yellow"), blind))
                else:
                    name = f"w{seed}-{number}"
                    with contextlib.closing(KubeStore(load_config(str(kubeconfig)))) as store:
                        created = store.create(rollout(name, "shop:1"))
                        store.update_status({**created, "status": {
                            "currentStepIndex": 1, "controllerPause": True,
                            "pauseConditions": [{"reason": "CanaryPauseStep",
                                                 "startTime": "2026-01-01T00:00:00Z"}]}})
                    outcomes.append(one_run(kubeconfig, name, rng, False, ("shop:2", "shop:3"), blind))
            except Exception as exc:  # noqa: BLE001 - one run that cannot finish is one failed outcome
                outcomes.append(Outcome(FAMILY, f"concurrent verbs run {number}", "did not finish", False,
                                        detail=f"{type(exc).__name__}: {exc}"))
    return outcomes


def start_operator(home: Path) -> Any:
    """The local cluster + operator with the `shop` rollout released once."""
    from tests.e2e.harness import ControllerProcess, wait_until
    from tests.e2e.manifests import shop_services

    ctl = ControllerProcess(home)
    ctl.start()
    manifest = home.parent / "shop.yaml"
    import yaml

    body = rollout("shop")
    body["spec"]["selector"] = {"matchLabels": {"app": "shop"}}
    body["spec"]["template"]["metadata"]["labels"] = {"app": "shop"}
    body["spec"]["strategy"]["canary"].update({
        "canaryService": "shop-canary", "stableService": "shop-stable", "abortScaleDownDelaySeconds": 1,
        "trafficRouting": {"nginx": {"stableIngress": "shop"}},
        "steps": [{"setWeight": 20}, {"pause": {"duration": "1s"}}, {"setWeight": 50}, {"pause": {}}]})
    manifest.write_text(yaml.safe_dump(body) + shop_services())
    ctl.cli("apply", "-f", str(manifest))
    # Released once; the clients' own set image calls start the canaries the operator then reconciles.
    wait_until(lambda: (ctl.rollout("shop").get("status") or {}).get("phase") == "Healthy", 90,
               "the first release")
    return ctl
