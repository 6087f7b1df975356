"""The release runbook, command by command, against a local controller running the infra/rollouts
configuration (AIVO images mapped to the demo service by infra/rollouts/local-images.yaml).

Every runbook command runs through bash with `rollouts` in place of `kubectl` / `kubectl argo rollouts`
(docs/runbook.md lists the pairs), in the runbook's order, and each is checked for what the runbook says
it does. For speed the configuration is a copy with fewer replicas, no probe delays, short scale-down
delays and short gates through the built-in traffic provider (slo-gates) instead of PromQL; see
`local_copy` and docs/runbook.md."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import require_tool
from tests.e2e.harness import ControllerProcess, Load, wait_until
from tests.integration.prometheus_server import free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra" / "rollouts"
NS = "aivo-system"
CANARY_GATE = {"interval": "3s", "count": 3, "window": "4s"}
BLUE_GREEN_GATES = """
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: preview-gates, namespace: aivo-system}
spec:
  args: [{name: service-name}]
  metrics:
  - name: preview-success-rate
    interval: 1s
    count: 3
    failureLimit: 1
    successCondition: result >= 0.995
    failureCondition: result < 0.995
    provider:
      plugin:
        rollouts/traffic: {service: "{{args.service-name}}", metric: success-rate, version: preview, window: 4s, minRequests: 10}
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: active-gates, namespace: aivo-system}
spec:
  args: [{name: service-name}]
  metrics:
  - name: success-rate
    interval: 1s
    count: 2
    successCondition: result >= 0.995
    failureCondition: result < 0.995
    provider:
      plugin:
        rollouts/traffic: {service: "{{args.service-name}}", metric: success-rate, version: active, window: 4s, minRequests: 10}
"""


def _shrink_rollout(doc: dict[str, Any]) -> None:
    spec = doc["spec"]
    pod = spec["template"]["spec"]
    pod["terminationGracePeriodSeconds"] = 2
    for container in pod["containers"]:
        for probe in ("readinessProbe", "livenessProbe"):
            if probe in container:
                container[probe].update(initialDelaySeconds=0, periodSeconds=1)
    if "canary" in spec["strategy"]:
        spec["replicas"] = 2
        canary = spec["strategy"]["canary"]
        canary["abortScaleDownDelaySeconds"] = 2
        for step in canary["steps"]:
            if "analysis" in step:
                step["analysis"]["templates"] = [{"templateName": "slo-gates"}]
                step["analysis"]["args"] = [a for a in step["analysis"]["args"] if a["name"] == "service-name"]
        # An indefinite pause after the second weight, for the runbook's `promote --skip-current-step`.
        canary["steps"].insert(3, {"pause": {}})
    else:
        spec["replicas"] = 1
        blue_green = spec["strategy"]["blueGreen"]
        blue_green.update(scaleDownDelaySeconds=2, abortScaleDownDelaySeconds=2)
        for key, template in (("prePromotionAnalysis", "preview-gates"), ("postPromotionAnalysis", "active-gates")):
            blue_green[key]["templates"] = [{"templateName": template}]
            blue_green[key]["args"] = [a for a in blue_green[key]["args"] if a["name"] == "service-name"]


def local_copy(target: Path) -> Path:
    """infra/rollouts with test-speed settings, plus one `<service>-rollout.yaml` per Rollout."""
    target.mkdir()
    for source in sorted(INFRA.glob("*.yaml")):
        if source.name == "local-images.yaml":
            continue
        docs = [d for d in yaml.safe_load_all(source.read_text()) if d]
        for doc in docs:
            if doc["kind"] == "Rollout":
                _shrink_rollout(doc)
                (target / f"{doc['metadata']['name']}-rollout.yaml").write_text(yaml.safe_dump(doc))
            elif doc["kind"] == "AnalysisTemplate" and doc["metadata"]["name"] == "slo-gates":
                for metric in doc["spec"]["metrics"]:
                    metric.update(interval=CANARY_GATE["interval"], count=CANARY_GATE["count"])
                    metric["provider"]["plugin"]["rollouts/traffic"]["window"] = CANARY_GATE["window"]
                    # About one request a second reaches a 10 % canary here: this flow test turns the
                    # minimum sample off (an empty window is then an Error, tolerated up to 4 in a row).
                    metric["provider"]["plugin"]["rollouts/traffic"]["minRequests"] = 0
        (target / "config").mkdir(exist_ok=True)
        (target / "config" / source.name).write_text(yaml.safe_dump_all(docs))
    (target / "config" / "test-gates.yaml").write_text(BLUE_GREEN_GATES)
    return target


class Runbook:
    """Runs runbook lines through bash, with `rollouts` on PATH and the test's home."""

    def __init__(self, ctl: ControllerProcess, workdir: Path) -> None:
        self.ctl = ctl
        self.workdir = workdir
        bin_dir = workdir / "bin"
        bin_dir.mkdir()
        wrapper = bin_dir / "rollouts"
        wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m rollouts "$@"\n')
        wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
        self.env = {**ctl.env, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "NO_COLOR": "1"}

    def sh(self, command: str, *, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=self.workdir, env=self.env,
                                capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"`{command}` failed ({result.returncode}):\n{result.stdout}{result.stderr}\n"
                                 f"--- controller log ---\n{self.ctl.tail()}")
        return result

    def rollout(self, name: str) -> dict[str, Any]:
        return self.ctl.rollout(name, NS)

    def status(self, name: str) -> dict[str, Any]:
        return self.rollout(name).get("status") or {}

    def runs(self, name: str) -> list[dict[str, Any]]:
        with self.ctl.store() as store:
            return store.list("AnalysisRun", NS, label_selector=f"rollout={name}")

    def port(self, kind: str, name: str) -> int:
        def port() -> int | None:
            with self.ctl.store() as store:
                value = (store.get(kind, NS, name)["metadata"].get("annotations") or {}).get("rollouts.io/port")
            return int(value) if value else None

        return int(wait_until(port, 20, f"a port for {kind} {name}"))

    def image(self, name: str) -> str:
        return str(self.rollout(name)["spec"]["template"]["spec"]["containers"][0]["image"])

    def healthy(self, name: str) -> bool:
        status = self.status(name)
        return bool(status.get("phase") == "Healthy"
                    and str(status.get("observedGeneration")) == str(self.rollout(name)["metadata"]["generation"]))

    def canary_pods_ready(self, name: str) -> bool:
        status = self.status(name)
        current = status.get("currentPodHash")
        if not current or current == status.get("stableRS"):
            return False
        with self.ctl.store() as store:
            pods = store.list("Pod", NS, label_selector=f"app={name},rollouts-pod-template-hash={current}")
        return any(any(c.get("type") == "Ready" and c.get("status") == "True"
                       for c in (p.get("status") or {}).get("conditions") or []) for p in pods)


def colors(port: int, host: str, requests: int = 20, headers: dict[str, str] | None = None) -> list[str]:
    with httpx.Client(timeout=5) as client:
        return [client.get(f"http://127.0.0.1:{port}/", headers={"Host": host, **(headers or {})}).json()["color"]
                for _ in range(requests)]


def _answers(port: int) -> str | None:
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
    except httpx.HTTPError:
        return None
    return str(response.json().get("color")) if response.status_code == 200 else None


@pytest.fixture
def runbook(tmp_path: Path) -> Iterator[Runbook]:
    for tool in ("bash", "curl"):
        require_tool(tool, "apt-get install bash curl")
    ctl = ControllerProcess(tmp_path / "home", images=INFRA / "local-images.yaml")
    ctl.start()
    try:
        yield Runbook(ctl, local_copy(tmp_path / "rollouts"))
    finally:
        ctl.stop_leaving_no_pods()


def test_runbook(runbook: Runbook) -> None:  # noqa: PLR0915 - the runbook is one long story
    rb = runbook
    rb.sh("rollouts apply -f config")
    for name in ("auth-svc", "analytics-svc"):
        rb.sh(f"rollouts status {name} -n {NS} --timeout 60s")
    auth_port = rb.port("Ingress", "auth-svc")
    with Load(auth_port, rate=30):
        # --- 1. Pre-release checklist
        out = rb.sh(f"rollouts doctor auth-svc -n {NS}").stdout  # it finds the home's controller itself
        assert re.search(r"^PASS controller: running", out, re.M) and "PASS controller-health" in out, out
        assert re.search(r"^PASS analysis-templates: \d+ valid \(.*slo-gates.*\); 1 used by the rollouts$", out,
                         re.M), out
        assert rb.sh("rollouts version").stdout.startswith("rollouts: v")
        out = rb.sh(f"rollouts get analysistemplate -n {NS}").stdout
        for template in ("success-rate", "latency-p95", "error-budget-burn", "slo-gates"):
            assert template in out
        out = rb.sh(f"rollouts get rollout auth-svc -n {NS}").stdout
        assert "Healthy" in out and "auth-svc:1.0.0" in out

        # --- 2. Initiating a canary release (method 1: patch; method 3: apply is below, "Re-enable")
        rb.sh(f"""rollouts patch rollout auth-svc -n {NS} \\
          --type='merge' \\
          -p='{{"spec":{{"template":{{"spec":{{"containers":[{{"name":"auth-svc","image":"auth-svc:1.1.0"}}]}}}}}}}}'""")
        wait_until(lambda: rb.canary_pods_ready("auth-svc"), 30, "the 1.1.0 canary pod")

        # --- 4. Manual canary control, its first half: `promote` past the first gate while it measures. Done
        # as soon as the gate runs (the gate lasts ~10 s; section 3's commands can take 20 s on a loaded
        # machine), then section 3 watches the paused canary.
        wait_until(lambda: rb.runs("auth-svc"), 20, "the first gate's analysis run")
        before = int(rb.status("auth-svc").get("currentStepIndex") or 0)
        rb.sh(f"rollouts promote auth-svc -n {NS}")
        wait_until(lambda: int(rb.status("auth-svc").get("currentStepIndex") or 0) > before, 10, "promote")
        wait_until(lambda: rb.status("auth-svc").get("phase") == "Paused", 30, "the pause step")

        # --- 3. Monitoring canary progress
        out = rb.sh(f"rollouts get rollout auth-svc -n {NS} --watch --timeout-seconds 2").stdout
        assert "auth-svc:1.1.0" in out and "canary" in out
        out = rb.sh(f"rollouts get analysisrun -n {NS} -l rollout=auth-svc --watch --timeout-seconds 2").stdout
        assert rb.runs("auth-svc")[0]["metadata"]["name"] in out
        out = rb.sh(f"rollouts get ingress auth-svc-auth-svc-canary -n {NS} -o yaml | grep canary-weight").stdout
        assert re.search(r"canary-weight: '(10|25|50|75)'", out), out
        out = rb.sh(f"rollouts get events -n {NS} --field-selector involvedObject.name=auth-svc").stdout
        assert "RolloutUpdated" in out or "RolloutStepCompleted" in out, out

        # --- 4. Manual canary control, continued
        before = int(rb.status("auth-svc")["currentStepIndex"])
        rb.sh(f"rollouts promote auth-svc -n {NS} --skip-current-step")
        wait_until(lambda: int(rb.status("auth-svc").get("currentStepIndex") or 0) > before, 10, "skip")
        # The skipped pause no longer holds the rollout: its condition goes when the next step completes.
        wait_until(lambda: not rb.status("auth-svc").get("pauseConditions")
                   and int(rb.status("auth-svc").get("currentStepIndex") or 0) > before + 1, 40, "past the pause")
        assert rb.status("auth-svc").get("phase") != "Healthy", "the canary finished before the abort"
        rb.sh(f"rollouts abort auth-svc -n {NS}")
        wait_until(lambda: rb.status("auth-svc").get("phase") == "Degraded", 15, "the abort")
        wait_until(lambda: colors(auth_port, "auth-svc.aivo.dev") == ["1.0.0"] * 20, 10, "traffic back on stable")
        rb.sh(f"rollouts pause auth-svc -n {NS}")
        assert rb.rollout("auth-svc")["spec"]["paused"] is True
        rb.sh(f"rollouts resume auth-svc -n {NS}")
        assert rb.rollout("auth-svc")["spec"].get("paused") is False

    # --- 5. Blue/green release process
    preview_port = rb.port("Service", "analytics-svc-preview")
    active_port = rb.port("Service", "analytics-svc-active")
    rb.sh(f"""rollouts patch rollout analytics-svc -n {NS} \\
      --type='merge' \\
      -p='{{"spec":{{"template":{{"spec":{{"containers":[{{"name":"analytics-svc","image":"analytics-svc:2.0.0"}}]}}}}}}}}'""")
    # The preview gate measures requests to the preview Service: exercise it ("run integration tests
    # against preview") from the moment it points at the green pods.
    wait_until(lambda: rb.canary_pods_ready("analytics-svc"), 30, "the green pod")
    with Load(preview_port, rate=20), Load(active_port, rate=20):
        wait_until(lambda: rb.status("analytics-svc").get("pauseConditions"), 30, "the blue/green pause")
        local = free_port()  # the runbook's 8080, unless taken
        forward = subprocess.Popen(
            ["bash", "-c", f"exec rollouts port-forward service/analytics-svc-preview {local}:80 -n {NS}"],
            cwd=rb.workdir, env=rb.env, stdout=subprocess.PIPE, text=True)
        try:
            assert forward.stdout is not None and forward.stdout.readline().startswith("Forwarding from")
            assert rb.sh(f"curl -sf http://localhost:{local}/healthz").stdout == "ok"
            assert json.loads(rb.sh(f"curl -sf http://localhost:{local}/").stdout)["color"] == "2.0.0"
        finally:
            forward.terminate()
            forward.wait(timeout=10)
        out = rb.sh(f"rollouts get analysisrun -n {NS} -l rollout=analytics-svc").stdout
        assert "Successful" in out, out
        rb.sh(f"rollouts promote analytics-svc -n {NS}")
        wait_until(lambda: rb.healthy("analytics-svc") and rb.status("analytics-svc").get("stableRS")
                   == rb.status("analytics-svc").get("currentPodHash"), 40, "the promoted green version")
        with httpx.Client(timeout=5) as client:
            assert client.get(f"http://127.0.0.1:{active_port}/").json()["color"] == "2.0.0"

    with Load(auth_port, rate=30):
        # --- 6. Manual rollback
        rb.sh(f"rollouts abort auth-svc -n {NS}")
        assert rb.status("auth-svc")["abort"] is True
        rb.sh(f"rollouts undo auth-svc -n {NS}")
        assert rb.image("auth-svc") == "auth-svc:1.0.0"
        wait_until(lambda: rb.healthy("auth-svc"), 30, "auth-svc back on 1.0.0")
        history = json.loads(rb.sh(f"rollouts history auth-svc -n {NS} -o json").stdout)
        revision = next(r["revision"] for r in history if "auth-svc:1.1.0" in json.dumps(r))
        rb.sh(f"rollouts undo auth-svc -n {NS} --to-revision={revision}")
        assert rb.image("auth-svc") == "auth-svc:1.1.0"

        # --- Incident response: a bad release stuck (its gate fails and the rollout aborts itself)
        rb.sh(f"rollouts set image auth-svc auth-svc=auth-svc:bad-1.2.0 -n {NS}")
        wait_until(lambda: rb.status("auth-svc").get("phase") == "Degraded", 120, "the automatic abort")
        out = rb.sh(f"rollouts describe analysisrun $(rollouts get analysisrun -n {NS} -l rollout=auth-svc "
                    f"-o name | head -1) -n {NS}").stdout
        assert out.startswith("Name:") and "success-rate" in out and "error-budget-burn" in out, out
        bad_hash = rb.status("auth-svc")["currentPodHash"]
        out = rb.sh(f"rollouts logs -l app=auth-svc,rollouts-pod-template-hash={bad_hash} -n {NS}").stdout
        assert "bad-1.2.0" in out and "error_rate=0.2" in out, out
        rb.sh(f"rollouts abort auth-svc -n {NS}")
        out = rb.sh(f"rollouts get rollout auth-svc -n {NS}").stdout
        assert "Degraded" in out

        # --- Traffic split issues (on a good canary)
        rb.sh(f"rollouts set image auth-svc auth-svc=auth-svc:1.3.0 -n {NS}")
        wait_until(lambda: rb.canary_pods_ready("auth-svc"), 30, "the 1.3.0 canary pod")
        out = rb.sh(f"rollouts get ingress auth-svc-auth-svc-canary -n {NS} -o yaml").stdout
        assert "canary-by-header: X-Canary" in out and "canary-weight" in out
        out = rb.sh(f"rollouts get endpoints auth-svc-canary -n {NS}").stdout
        # The canary pod's own address (local pods get one from 127.1.0.0/16) and port.
        assert re.search(r"\b127\.1\.\d+\.\d+:\d+\b", out), out
        ingress = rb.port("Ingress", "auth-svc")
        header = rb.sh(f'curl -s -H "X-Canary: true" -H "Host: auth-svc.aivo.dev" http://127.0.0.1:{ingress}/')
        assert json.loads(header.stdout)["color"] == "1.3.0"
        plain = rb.sh(f'curl -s -H "Host: auth-svc.aivo.dev" http://127.0.0.1:{ingress}/')
        assert json.loads(plain.stdout)["color"] in ("1.0.0", "1.3.0")
        # The header always reaches the canary; plain requests reach the stable version (the canary
        # only gets its weight's share).
        assert set(colors(ingress, "auth-svc.aivo.dev", 10, {"X-Canary": "true"})) == {"1.3.0"}
        assert "1.0.0" in colors(ingress, "auth-svc.aivo.dev", 40)
        out = rb.sh(f"rollouts logs ingress --tail 5 -n {NS}").stdout
        assert "auth-svc" in out

        # --- Emergency: service down
        previous = rb.image("auth-svc")
        rb.sh(f"rollouts undo auth-svc -n {NS}")
        assert rb.image("auth-svc") != previous
        scaled = rb.sh(f"rollouts scale deployment auth-svc --replicas=5 -n {NS}")
        assert rb.rollout("auth-svc")["spec"]["replicas"] == 5 and "Rollout" in scaled.stderr
        rb.sh(f"""rollouts patch rollout auth-svc -n {NS} \\
          --type='merge' \\
          -p='{{"spec":{{"strategy":{{"canary":{{"steps":[{{"setWeight":100}}]}}}}}}}}'""")
        rb.sh(f"rollouts retry rollout auth-svc -n {NS}")
        wait_until(lambda: rb.healthy("auth-svc"), 40, "the direct promotion")
        assert rb.status("auth-svc")["stableRS"] == rb.status("auth-svc")["currentPodHash"]

    # --- Mass rollback: every rollout of the namespace, as the runbook's loop
    out = rb.sh(f"""for rollout in $(rollouts get rollouts -n {NS} -o name); do
  echo "Rolling back $rollout"
  rollouts abort $rollout -n {NS}
done""").stdout
    assert out.count("Rolling back") == 6 and out.count("aborted") == 6, out
    with rb.ctl.store() as store:
        assert all((r.get("status") or {}).get("abort") for r in store.list("Rollout", NS))
    out = rb.sh(f"rollouts abort --all -n {NS}").stdout
    assert len(out.splitlines()) == 6

    # --- Analysis template issues
    rb.sh(f"""rollouts patch rollout auth-svc -n {NS} \\
      --type='merge' \\
      -p='{{"spec":{{"strategy":{{"canary":{{"analysis":null}}}}}}}}'""")
    out = rb.sh(f"rollouts apply -f auth-svc-rollout.yaml -n {NS}").stdout
    assert "rollout/auth-svc configured" in out
    restored = rb.rollout("auth-svc")["spec"]
    assert restored["replicas"] == 2 and any("analysis" in s for s in restored["strategy"]["canary"]["steps"])

    # --- Appendix
    out = rb.sh("rollouts list rollouts -A").stdout
    assert all(n in out for n in ("auth-svc", "user-svc", "inference-gateway-svc", "analytics-svc",
                                  "reporting-svc", "report-worker"))
    out = rb.sh(f"rollouts history auth-svc -n {NS}").stdout
    assert "auth-svc:1.1.0" in out and "auth-svc:bad-1.2.0" in out
    out = rb.sh(f"rollouts describe analysistemplate slo-gates -n {NS}").stdout
    assert "error-budget-burn" in out
    out = rb.sh("rollouts get analysisrun -A --watch --timeout-seconds 1").stdout
    assert NS in out
    rb.sh(f"rollouts get rollout auth-svc -n {NS} -o yaml > backup.yaml")
    backup = yaml.safe_load((rb.workdir / "backup.yaml").read_text())
    assert backup["kind"] == "Rollout" and backup["metadata"]["name"] == "auth-svc"
    assert backup["spec"] == rb.rollout("auth-svc")["spec"]
