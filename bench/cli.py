"""CLI start-up benchmark: wall time of `rollouts get rollout NAME` against a home holding a rollout with
three revisions, two pods and an analysis run, as a ratio to `python -c pass` (median of N runs each).
The verb goes through the Kubernetes API: the home is served by its local cluster, API only, for the run.

    python bench/cli.py --runs 15
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rollouts.cluster.apiserver.server import start_background, stop_background
from rollouts.cluster.store import SQLiteStore


def _populate(home: Path) -> None:
    store = SQLiteStore(home / "state.db")
    owner = [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "web", "uid": ""}]
    steps = [{"setWeight": 20}, {"pause": {}}, {"setWeight": 50}, {"pause": {"duration": "30s"}}]
    store.create({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "web"},
                  "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                           "template": {"metadata": {"labels": {"app": "web"}},
                                        "spec": {"containers": [{"name": "web", "image": "web:2"}]}},
                           "strategy": {"canary": {"steps": steps}}}})
    for revision, pod_hash, replicas in ((1, "aaaa1", 0), (2, "bbbb2", 2), (3, "cccc3", 1)):
        labels = {"app": "web", "rollouts-pod-template-hash": pod_hash}
        store.create({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                      "metadata": {"name": f"web-{pod_hash}", "labels": labels, "ownerReferences": owner,
                                   "annotations": {"rollout.argoproj.io/revision": str(revision)}},
                      "spec": {"replicas": replicas, "template": {"spec": {"containers": [
                          {"name": "web", "image": f"web:{revision}"}]}}},
                      "status": {"replicas": replicas, "availableReplicas": replicas}})
        for i in range(replicas):
            store.create({"apiVersion": "v1", "kind": "Pod",
                          "metadata": {"name": f"web-{pod_hash}-{i}", "labels": labels,
                                       "ownerReferences": [{"kind": "ReplicaSet", "name": f"web-{pod_hash}"}]},
                          "spec": {"containers": [{"name": "web"}]},
                          "status": {"phase": "Running", "containerStatuses": [{"ready": True, "restartCount": 0}]}})
    store.create({"apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
                  "metadata": {"name": "web-cccc3-3", "ownerReferences": owner,
                               "labels": {"rollouts-pod-template-hash": "cccc3"}},
                  "status": {"phase": "Running", "metricResults": [{"name": "m", "successful": 2}]}})
    store.patch("Rollout", "default", "web", {"status": {
        "phase": "Paused", "message": "CanaryPauseStep", "currentStepIndex": 1, "stableRS": "bbbb2",
        "currentPodHash": "cccc3", "replicas": 3, "updatedReplicas": 1, "readyReplicas": 3,
        "availableReplicas": 3}}, subresource="status")
    store.close()


def _median(argv: list[str], runs: int, env: dict[str, str]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        _populate(home)
        env = {**os.environ, "ROLLOUTS_HOME": str(home), "NO_COLOR": "1"}
        env.pop("KUBECONFIG", None)
        command = [sys.executable, "-m", "rollouts", "get", "rollout", "web"]
        start_background(home, runtime=None)
        try:
            _median(command, 2, env)  # warm the file cache
            # Taking turns, run by run: a change in the machine's load weighs on both alike.
            pairs = [(_median([sys.executable, "-c", "pass"], 1, env), _median(command, 1, env))
                     for _ in range(args.runs)]
            baseline = statistics.median(p[0] for p in pairs)
            cli = statistics.median(p[1] for p in pairs)
        finally:
            stop_background(home)
    print(f"python -c pass:           {baseline * 1000:7.1f} ms (median of {args.runs})")
    print(f"rollouts get rollout web: {cli * 1000:7.1f} ms (median of {args.runs})")
    print(f"ratio:                    {cli / baseline:7.2f}x")


if __name__ == "__main__":
    main()
