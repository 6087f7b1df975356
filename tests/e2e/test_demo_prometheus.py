"""`rollouts demo --prometheus`: the same demo gated by PromQL through a real Prometheus that scrapes the
ingress proxy; without the binary, a one-line hint and exit code 2."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rollouts.cluster.store import SQLiteStore
from tests.conftest import require_tool

pytestmark = pytest.mark.integration


def test_demo_gates_through_a_real_prometheus(tmp_path: Path) -> None:
    require_tool("prometheus", "apt-get install prometheus")
    home = tmp_path / "home"
    env = {**os.environ, "TMPDIR": str(tmp_path), "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-m", "rollouts", "demo", "--prometheus", "--home", str(home)],
                          env=env, capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert re.search(r"^good release rollouts-demo:yellow: promoted after .*; as expected$", proc.stdout, re.M)
    assert re.search(r"^bad release rollouts-demo:bad-red: rolled back automatically after .*; as expected$",
                     proc.stdout, re.M)

    with SQLiteStore(home / "state.db") as store:
        runs = store.list("AnalysisRun", "default")
    # Four passed gates for the good release; the bad one fails a gate (service-wide success rate, so at
    # 10 % weight its errors are diluted and it may pass the first gate before failing the next).
    phases = [r["status"]["phase"] for r in runs]
    assert phases.count("Failed") == 1 and 4 <= phases.count("Successful") <= 5, phases
    for run in runs:
        metric = run["spec"]["metrics"][0]
        assert 'http_requests_total{service="{{args.service-name}}"' in metric["provider"]["prometheus"]["query"]
        assert {"name": "service-name", "value": "demo"} in run["spec"]["args"]
    # The values are Prometheus answers (instant vectors), and the bad release's success rate fell below 99.5 %.
    failed = next(r for r in runs if r["status"]["phase"] == "Failed")
    rates = [m["value"] for res in failed["status"]["metricResults"] if res["name"] == "success-rate"
             for m in res["measurements"]]
    assert any(float(v.strip("[]")) < 0.995 for v in rates), rates
    # Prometheus and its temporary folder are gone.
    assert not list(tmp_path.glob("rollouts-demo-prometheus-*"))


def test_demo_without_prometheus_says_how_to_install_it(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}  # no prometheus binary on PATH
    proc = subprocess.run([sys.executable, "-m", "rollouts", "demo", "--prometheus", "--home", str(tmp_path / "h")],
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "apt-get install prometheus" in proc.stderr
    assert not (tmp_path / "h").exists()  # nothing started, nothing written
