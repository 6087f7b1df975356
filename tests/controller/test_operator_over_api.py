"""The operator over the Kubernetes API (`run_controller(KubeStore)`), against an API-only local cluster in
this process: it reconciles through the API, binds the traffic plugins to the cluster's own statistics (or
to Prometheus on a cluster without them), takes the home's lock only for a local cluster, and the CLI
refuses a kubeconfig it cannot use before starting anything."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rollouts.analysis.providers.registry import _PLUGINS, unregister_plugin
from rollouts.controller.service import register_traffic_plugins, run_controller
from rollouts.kube.client import KubeStore
from rollouts.kube.config import load_config
from rollouts.kube.traffic import ClusterTrafficSource
from rollouts.store.lock import LOCK_FILE
from tests.cluster.conftest import Cluster, rollout, start_cluster


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    (tmp_path / "home").mkdir()
    found, stop = start_cluster(tmp_path / "home")
    yield found
    stop()


@pytest.fixture
def kube(cluster: Cluster) -> Iterator[KubeStore]:
    store = KubeStore(load_config(kubeconfig=cluster.kubeconfig))
    yield store
    store.close()


@pytest.fixture(autouse=True)
def _plugins() -> Iterator[None]:
    saved = dict(_PLUGINS)
    yield
    for name in list(_PLUGINS):
        unregister_plugin(name)
    _PLUGINS.update(saved)


async def _run_until(store: KubeStore, home: Path | None, done: Any, timeout: float = 20.0) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(run_controller(store, home=home, stop=stop))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        while not await asyncio.to_thread(done):
            assert not task.done(), task.exception() if not task.cancelled() else "cancelled"
            assert loop.time() < deadline, "timed out waiting for the operator"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


@pytest.mark.parametrize("with_home", [True, False], ids=["local-cluster-holds-the-home-lock", "any-cluster-no-lock"])
def test_operator_over_api_reconciles_a_rollout_through_the_api(
        cluster: Cluster, kube: KubeStore, with_home: bool) -> None:
    kube.create(rollout("shop", replicas=0))
    home = cluster.home if with_home else None
    held: list[str] = []

    def reconciled() -> bool:
        lock = cluster.home / LOCK_FILE
        held.append(lock.read_text().strip() if lock.exists() else "")
        sets = kube.list("ReplicaSet", "default")
        status = kube.get("Rollout", "default", "shop").get("status") or {}
        return bool(sets) and bool(status.get("currentPodHash"))

    asyncio.run(_run_until(kube, home, reconciled))
    (replica_set,) = kube.list("ReplicaSet", "default")
    owner = replica_set["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner.get("controller")) == ("Rollout", "shop", True)
    status = kube.get("Rollout", "default", "shop")["status"]
    assert replica_set["metadata"]["labels"]["rollouts-pod-template-hash"] == status["currentPodHash"]
    assert (str(os.getpid()) in held) is with_home


def test_operator_over_api_binds_traffic_plugins_to_the_cluster_statistics(kube: KubeStore) -> None:
    source = register_traffic_plugins(kube)
    assert isinstance(source, ClusterTrafficSource)
    for name in ("rollouts/traffic", "rollouts/sequential"):
        provider = _PLUGINS[name]()
        assert getattr(provider, "_stats", None) is source, name


def test_operator_cli_refuses_a_missing_kubeconfig_and_starts_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = subprocess.run([sys.executable, "-m", "rollouts", "controller", "--home", str(home), "--kubeconfig",
                             str(tmp_path / "nope.yaml"), "--metrics-address", ""], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1
    assert f"--kubeconfig {tmp_path / 'nope.yaml'}: no such file" in result.stderr
    assert not (home / "apiserver.json").exists()


def test_operator_cli_refuses_an_unknown_context(cluster: Cluster) -> None:
    result = subprocess.run([sys.executable, "-m", "rollouts", "controller", "--kubeconfig", str(cluster.kubeconfig),
                             "--context", "prod", "--metrics-address", ""], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "prod" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(("host", "token", "expected"), [
    pytest.param("10.96.0.1", True, True, id="pod-with-service-account"),
    pytest.param("10.96.0.1", False, False, id="no-token-mounted"),
    pytest.param("", True, False, id="not-in-a-pod"),
])
def test_operator_cli_in_a_pod_operates_that_cluster_not_a_local_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, host: str, token: bool, expected: bool) -> None:
    import rollouts.kube.config
    from rollouts.cli.controller import _in_a_pod

    if token:
        (tmp_path / "token").write_text("t")
    monkeypatch.setattr(rollouts.kube.config, "SERVICE_ACCOUNT_DIR", tmp_path)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", host)
    assert _in_a_pod() is expected
