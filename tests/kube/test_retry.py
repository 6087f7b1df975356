"""Re-read and retry on 409, against the real local API server with a competing writer."""

from __future__ import annotations

from typing import Any

import pytest

from rollouts.kube.client import KubeStore
from rollouts.kube.retry import update_with_retry
from rollouts.store.protocol import Conflict
from tests.kube.conftest import rollout


def test_update_with_retry_rereads_after_a_409(kube: KubeStore) -> None:
    kube.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "r-race"}, "data": {"n": "0"}})
    attempts = 0

    def bump(obj: dict[str, Any]) -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:  # another writer gets in between our read and our write
            kube.patch("ConfigMap", "default", "r-race", {"data": {"other": "yes"}})
        obj["data"]["n"] = str(int(obj["data"]["n"]) + 1)

    result = update_with_retry(kube, "ConfigMap", "default", "r-race", bump)
    assert attempts == 2 and result["data"] == {"n": "1", "other": "yes"}  # the other write survived


def test_update_with_retry_status_subresource(kube: KubeStore) -> None:
    kube.create(rollout("r-status"))
    result = update_with_retry(kube, "Rollout", "default", "r-status",
                               lambda o: {**o, "status": {"phase": "Paused"}}, subresource="status")
    assert result["status"] == {"phase": "Paused"}


def test_update_with_retry_gives_up_after_the_last_step(kube: KubeStore) -> None:
    kube.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "r-lose"}, "data": {}})

    tries = 0

    def always_raced(obj: dict[str, Any]) -> None:
        nonlocal tries
        tries += 1
        kube.patch("ConfigMap", "default", "r-lose", {"data": {"t": str(tries)}})
        obj["data"]["mine"] = "x"

    with pytest.raises(Conflict):
        update_with_retry(kube, "ConfigMap", "default", "r-lose", always_raced, steps=3, delay=0)
    assert tries == 3
