"""A real Prometheus for `rollouts demo --prometheus`: the `prometheus` binary started on 127.0.0.1 with a
temporary data folder, scraping the ingress proxy's /metrics every second; stopped (and its folder
removed) when the demo ends. The launcher (PrometheusProcess) also serves the integration tests."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml

INSTALL_HINT = "apt-get install prometheus"
SCRAPE_INTERVAL = "1s"


class PrometheusUnavailable(RuntimeError):
    """The binary is missing, or the server did not come up."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_binary() -> str:
    path = shutil.which("prometheus")
    if path is None:
        raise PrometheusUnavailable(f"prometheus is not installed: {INSTALL_HINT}")
    return path


class PrometheusProcess:
    """One Prometheus process scraping `targets` (job name -> HOST:PORT); `address` is its base URL once
    started. Its files go to `folder` when given (left in place), else to a temporary folder removed at stop."""

    def __init__(self, binary: str, targets: Mapping[str, str], *, scrape_interval: str = SCRAPE_INTERVAL,
                 rule_files: Sequence[Path] = (), folder: Path | None = None,
                 metric_relabel_configs: Sequence[Mapping[str, Any]] = ()) -> None:
        self.binary = binary
        self.targets = dict(targets)
        self.scrape_interval = scrape_interval
        self.rule_files = list(rule_files)
        self.metric_relabel_configs = [dict(c) for c in metric_relabel_configs]
        self.port = free_port()
        self.address = f"http://127.0.0.1:{self.port}"
        self.folder = folder
        self._owns_folder = folder is None
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        if self.folder is None:
            self.folder = Path(tempfile.mkdtemp(prefix="rollouts-demo-prometheus-"))
        config: dict[str, Any] = {
            "global": {"scrape_interval": self.scrape_interval, "evaluation_interval": self.scrape_interval},
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [target]}],
                                **({"metric_relabel_configs": self.metric_relabel_configs}
                                   if self.metric_relabel_configs else {})}
                               for job, target in self.targets.items()],
        }
        if self.rule_files:
            config["rule_files"] = [str(path) for path in self.rule_files]
        config_path = self.folder / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        log = self.folder / "prometheus.log"
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [self.binary, f"--config.file={config_path}", f"--storage.tsdb.path={self.folder / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
                self.stop()
                raise PrometheusUnavailable(f"prometheus exited with code {self.process.returncode}: {tail[0]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.address}/-/ready", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        self.stop()
        raise PrometheusUnavailable(f"prometheus did not become ready on {self.address} within {timeout:.0f}s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.folder is not None and self._owns_folder:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def __enter__(self) -> PrometheusProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# The demo's Prometheus scrapes the proxy alone, so the proxy's per-version request series stand in for the
# application's own under the application's names (the gates' http_requests_total{service=...}); a Prometheus
# that also scrapes the pods must not do this, or it would count each request twice.
PROXY_AS_APPLICATION = ({"source_labels": ["__name__"], "regex": "rollouts_ingress_(http_.*)",
                         "replacement": "$1", "target_label": "__name__"},)


class DemoPrometheus(PrometheusProcess):
    """The demo's Prometheus: scrapes the ingress proxy's /metrics at `target` (HOST:PORT)."""

    def __init__(self, binary: str, target: str) -> None:
        super().__init__(binary, {"rollouts-ingress": target}, metric_relabel_configs=PROXY_AS_APPLICATION)
        self.target = target
