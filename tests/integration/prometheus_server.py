"""A real Prometheus server for integration tests: the product's launcher (rollouts.demo.prometheus) with the
test's work folder, any number of targets and rule files, plus query helpers."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from rollouts.demo.prometheus import PrometheusProcess, free_port

__all__ = ["PrometheusServer", "free_port"]


class PrometheusServer(PrometheusProcess):
    """One Prometheus process scraping `targets`, its files in `workdir`; `address` is its base URL once
    `start()` returns."""

    def __init__(self, binary: str, workdir: Path, targets: list[str], *, scrape_interval: str = "1s",
                 rule_files: list[Path] | None = None) -> None:
        super().__init__(binary, {f"target{i}": target for i, target in enumerate(targets)},
                         scrape_interval=scrape_interval, rule_files=rule_files or [], folder=workdir)
        self.workdir = workdir

    def query(self, promql: str) -> list[dict]:
        response = httpx.get(f"{self.address}/api/v1/query", params={"query": promql}, timeout=5)
        response.raise_for_status()
        return list(response.json()["data"]["result"])

    def wait_for(self, promql: str, timeout: float = 30.0) -> list[dict]:
        """Poll until the query returns a non-empty vector (or fail at the deadline)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.query(promql)
            if result:
                return result
            time.sleep(0.25)
        raise TimeoutError(f"no data for {promql!r} within {timeout}s")
