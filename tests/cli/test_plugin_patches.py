"""The plugin verbs send, over HTTP, the requests Argo's kubectl plugin sends (pkg/kubectl-argo-rollouts/cmd):
JSON merge patches, status fields through the /status subresource, spec fields on the object, so the same
CLI drives Argo's own controller on a real cluster."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import Result

from rollouts.kube.client import KubeStore

ROLLOUT = "/apis/argoproj.io/v1alpha1/namespaces/default/rollouts/echo-rollout"
MERGE = "application/merge-patch+json"


@pytest.mark.parametrize(("verb", "expected"), [
    # promote's patch depends on the state it read: Argo's body, conditional on that read's resourceVersion.
    (["promote", "echo-rollout"], [(ROLLOUT + "/status", {"metadata": {"resourceVersion": "<read>"},
                                                          "status": {"pauseConditions": None}})]),
    (["promote", "echo-rollout", "--full"], [(ROLLOUT + "/status", {"metadata": {"resourceVersion": "<read>"},
                                                                    "status": {"promoteFull": True}})]),
    (["abort", "echo-rollout"], [(ROLLOUT + "/status", {"status": {"abort": True}})]),
    (["retry", "rollout", "echo-rollout"], [(ROLLOUT + "/status", {"status": {"abort": False}})]),
    (["pause", "echo-rollout"], [(ROLLOUT, {"spec": {"paused": True}})]),
    (["restart", "echo-rollout"], [(ROLLOUT, {"spec": {"restartAt": "<now>"}})]),
], ids=["promote", "promote-full", "abort", "retry", "pause", "restart"])
def test_plugin_verbs_send_argos_patches_over_http(cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch,
                                                   home: Path, verb: list[str],
                                                   expected: list[tuple[str, dict[str, Any]]]) -> None:
    sent: list[tuple[str, str, str, Any]] = []
    original = KubeStore.request

    def record(self: KubeStore, method: str, path: str, params: Any = None, body: Any = None,
               content_type: str = "application/json") -> Any:
        if method != "GET":
            sent.append((method, path, content_type, json.loads(json.dumps(body))))
        return original(self, method, path, params, body, content_type)

    monkeypatch.setattr(KubeStore, "request", record)
    result = cli(*verb)
    assert result.exit_code == 0, result.output
    for _, _, _, body in sent:
        restart_at = (body.get("spec") or {}).get("restartAt")
        if restart_at is not None:
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", restart_at)  # RFC 3339, as the plugin's
            body["spec"]["restartAt"] = "<now>"
        if (body.get("metadata") or {}).get("resourceVersion"):
            body["metadata"]["resourceVersion"] = "<read>"
    assert sent == [("PATCH", path, MERGE, body) for path, body in expected]
