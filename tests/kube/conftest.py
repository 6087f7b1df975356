"""A real local API server per test module (the fixture approach of tests/cluster), and clients for it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rollouts.kube.client import KubeStore
from rollouts.kube.config import load_config
from tests.cluster.conftest import Cluster, rollout, start_cluster

__all__ = ["Cluster", "rollout"]

FEED_LIMIT = 40  # a short retained history, so compaction (and 410) is cheap to reach


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    found, stop = start_cluster(tmp_path_factory.mktemp("kube-home"), feed_limit=FEED_LIMIT)
    yield found
    stop()


@pytest.fixture
def kube(cluster: Cluster) -> Iterator[KubeStore]:
    store = KubeStore(load_config(kubeconfig=cluster.kubeconfig))
    yield store
    store.close()
