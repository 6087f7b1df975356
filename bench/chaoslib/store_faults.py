"""Chaos family "store-faults": the disk under the local cluster's store fills up, or another process holds
the store's write lock, while a release writes.

The cluster's HOME (its SQLite store, logs, state) lives on a small tmpfs (`mount -t tmpfs -o size=...`;
when mounting is refused, e.g. unprivileged, the disk-full case is skipped with the reason printed and only
the lock case runs, on an ordinary folder). Per run: a canary release (set image) with 1 s pauses; at a
seed-chosen moment the fault starts (a filler file written until ENOSPC, or a second connection holding
`BEGIN EXCLUSIVE`), lasts a moment, then ends (the filler removed, the lock released).

Judged: while full, a write through the API is refused with a 500 InternalError whose message names the
full store (never another error, never a 201 that is then missing); the release then finishes on the new
image (the acknowledged `set image` is not lost: else `lost_writes`); `PRAGMA integrity_check` is "ok",
every stored object and feed entry parses and carries its row's resourceVersion, the feed's versions
strictly increase (else `corrupted_stores`).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from chaoslib import Outcome

FAMILY = "store-faults"
FAULTS = ("disk-full", "locked")
TMPFS_SIZE = "96m"
FAULT_SECONDS = 1.5
COLORS = ("yellow", "green", "purple", "orange", "blue")


def manifest(name: str) -> str:
    rollout = {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": name},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"terminationGracePeriodSeconds": 1,
                                       "containers": [{"name": "app", "image": "rollouts-demo:blue"}]}},
                 "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": "1s"}},
                                                   {"setWeight": 100}]}}},
    }
    return f"---\n{json.dumps(rollout)}\n"


def mount_tmpfs(folder: Path) -> str:
    """Mount a small tmpfs on `folder`; "" when mounted, else why not."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(folder)],
                              capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"mount failed: {exc}"
    return "" if done.returncode == 0 else f"mount -t tmpfs refused: {(done.stderr or done.stdout).strip()}"


def unmount(folder: Path) -> None:
    subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=20, check=False)


def fill_disk(folder: Path) -> Path:
    """Write a filler file until the file system refuses (ENOSPC); returns it."""
    filler = folder / "filler.bin"
    chunk = b"\0" * (256 * 1024)
    with contextlib.suppress(OSError), filler.open("wb", buffering=0) as out:
        while True:
            out.write(chunk)
    return filler


def check_store(path: Path) -> list[str]:
    """What is wrong with the store file (empty when intact)."""
    problems: list[str] = []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        verdict = conn.execute("PRAGMA integrity_check").fetchall()
        if verdict != [("ok",)]:
            problems.append(f"integrity_check: {verdict[:3]}")
        for rv, body in conn.execute("SELECT rv, body FROM objects"):
            try:
                if str(json.loads(body)["metadata"]["resourceVersion"]) != str(rv):
                    problems.append(f"object at rv {rv} carries another resourceVersion")
            except (ValueError, KeyError, TypeError) as exc:
                problems.append(f"object at rv {rv} does not parse: {exc}")
        feed = [rv for (rv,) in conn.execute("SELECT rv FROM changes ORDER BY rowid")]
        if feed != sorted(set(feed)):
            problems.append("feed resourceVersions not strictly increasing")
    finally:
        conn.close()
    return problems


class Api:
    """Raw HTTP to the home's local cluster with its token (the checks a client would see)."""

    def __init__(self, home: Path) -> None:
        from rollouts.cluster.apiserver.kubeconfig import api_token
        from rollouts.cluster.apiserver.server import read_state
        from rollouts.cluster.apiserver.tls import CERT_FILE

        running = read_state(home)
        assert running is not None, f"no local cluster runs for {home}"
        self.client = httpx.Client(base_url=f"https://127.0.0.1:{running.port}", timeout=60,
                                   headers={"Authorization": f"Bearer {api_token(home)}"},
                                   verify=ssl.create_default_context(cafile=str(home / CERT_FILE)))

    def write_probe(self, name: str) -> tuple[int, dict[str, Any]]:
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
                "data": {"payload": "x" * 256 * 1024}}
        answer = self.client.post("/api/v1/namespaces/default/configmaps", json=body)
        try:
            return answer.status_code, answer.json()
        except ValueError:
            return answer.status_code, {"raw": answer.text[:200]}


def one_run(ctl: Any, api: Api, index: int, fault: str, rng: random.Random, home: Path, workdir: Path,
            name: str) -> Outcome:
    from tests.e2e.harness import wait_until

    started = time.monotonic()
    color = COLORS[index % len(COLORS)]
    image = f"rollouts-demo:{color}"
    problems: list[str] = []
    lost = 0
    ctl.cli("set", "image", name, f"app={image}")  # acknowledged: must be what the release ends on
    time.sleep(rng.uniform(0.0, 2.0))  # somewhere in the release: scaling, a step, a status write
    answers: list[tuple[int, dict[str, Any]]] = []
    if fault == "disk-full":
        filler = fill_disk(home)
        try:
            answers.append(api.write_probe(f"probe-{index}"))
            time.sleep(FAULT_SECONDS)
        finally:
            filler.unlink()
        for code, body in answers:
            if code == 201:
                continue  # there was still room in the store's free pages: then it must be stored
            if code != 500 or body.get("reason") != "InternalError" or "is full" not in str(body.get("message")):
                problems.append(f"write while full answered {code}: {str(body)[:200]}")
    else:
        holder = sqlite3.connect(home / "state.db", isolation_level=None, timeout=30)
        try:
            holder.execute("BEGIN EXCLUSIVE")
            time.sleep(FAULT_SECONDS)
            holder.execute("ROLLBACK")
        finally:
            holder.close()

    def done() -> bool:
        status = ctl.rollout(name).get("status") or {}
        return status.get("phase") == "Healthy" and status.get("stableRS") == status.get("currentPodHash")

    try:
        wait_until(done, 120, f"rollout {name} to finish on {image}")
    except AssertionError as exc:
        problems.append(str(exc)[:300])
    rollout = ctl.rollout(name)
    images = [c.get("image") for c in rollout["spec"]["template"]["spec"]["containers"]]
    if images != [image]:
        lost = 1
        problems.append(f"spec image {images}, the acknowledged write set {image}")
    for code, _ in answers:
        if code == 201:
            with ctl.store() as store:
                try:
                    store.get("ConfigMap", "default", f"probe-{index}")
                except Exception:
                    lost += 1
                    problems.append("a write answered 201 while full is missing")
    with contextlib.suppress(Exception):
        api.client.delete(f"/api/v1/namespaces/default/configmaps/probe-{index}")
    corrupt = check_store(home / "state.db")
    status = rollout.get("status") or {}
    final = f"{status.get('phase')} on {image}" + (f", full-write answers {[c for c, _ in answers]}"
                                                  if answers else "")
    return Outcome(FAMILY, f"store {fault} for {FAULT_SECONDS:g}s during a canary release", final,
                   not problems and not corrupt, lost_writes=lost, corrupted_stores=int(bool(corrupt)),
                   seconds=time.monotonic() - started, detail="; ".join(problems + corrupt))


def _start(ctl: Any) -> None:
    """Start the operator with four times the harness' start windows: on a loaded machine (load ~20 on 2
    cores) the cluster and operator imports alone can take longer than its 40 s."""
    import tests.e2e.harness as harness

    original = harness.wait_until

    def patient(check: Any, timeout: float, what: str, interval: float = 0.2) -> Any:
        return original(check, timeout * 4, what, interval)

    harness.wait_until = patient  # type: ignore[assignment]
    try:
        ctl.start()
    finally:
        harness.wait_until = original  # type: ignore[assignment]


def run(runs: int, seed: int, workdir: Path, only: str | None = None) -> list[Outcome]:
    """`runs` faults, one at a time (a full disk is everyone's), on one release of one cluster and operator
    whose HOME is a small tmpfs."""
    root = Path(__file__).resolve().parents[2]
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from tests.e2e.harness import ControllerProcess

    workdir.mkdir(parents=True, exist_ok=True)
    home = workdir / "home"
    reason = mount_tmpfs(home) if os.geteuid() == 0 else "not root: mount -t tmpfs needs privileges"
    faults = [only] if only else list(FAULTS)
    if reason:
        print(f"store-faults: disk-full case skipped ({reason}); the lock case runs on {home}", flush=True)
        faults = [f for f in faults if f != "disk-full"] or ["locked"]
    rng = random.Random(seed)
    ctl = ControllerProcess(home)
    outcomes: list[Outcome] = []
    try:
        _start(ctl)
        name = "sf"
        (workdir / "sf.yaml").write_text(manifest(name))
        ctl.cli("apply", "-f", str(workdir / "sf.yaml"))
        ctl.cli("status", name, "--timeout", "60s", timeout=90)
        api = Api(home)
        order = [faults[i % len(faults)] for i in range(runs)]
        rng.shuffle(order)
        for index, fault in enumerate(order, start=1):
            outcomes.append(one_run(ctl, api, index, fault, rng, home, workdir, name))
    finally:
        with contextlib.suppress(Exception):
            ctl.stop_leaving_no_pods()
        if not reason:
            # Keep the controller log (it is on the tmpfs) next to the workdir for a reader.
            with contextlib.suppress(OSError):
                (workdir / "controller.log").write_bytes((home / "controller.log").read_bytes())
            threading.Thread(target=unmount, args=(home,), daemon=True).start()
            time.sleep(0.5)
    return outcomes
