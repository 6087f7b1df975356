"""What the local cluster's own controllers (pods as processes, Service listeners, the ingress proxy) are
started with: the flags `rollouts cluster up` and `rollouts controller` pass on to the cluster process."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from rollouts.runtime.local.pods import DEFAULT_MAX_PODS

# Prometheus' duration syntax, as far as a scrape interval needs it (1s, 500ms, 1m30s).
_DURATION = re.compile(r"^(\d+h)?(\d+m)?(\d+s)?(\d+ms)?$")


@dataclass(frozen=True)
class RuntimeOptions:
    images: Path | None = None  # image -> command map (rollouts.runtime.local.images); None: the built-in one
    probe_period: float = 1.0  # readiness probe period in seconds when a container sets none
    max_pods: int = DEFAULT_MAX_PODS  # pods beyond it stay Pending, as with the kubelet's maxPods
    ingress_metrics_port: int | None = None  # the proxy's ingress-nginx /metrics listener; None: not served
    # (with Prometheus on, None serves it on a free port, registered for Prometheus' discovery)
    prometheus: bool = True  # run Debian's prometheus as a pod of the cluster when it is installed
    prometheus_scrape_interval: str = "2s"

    def arguments(self) -> list[str]:
        """The command-line flags of the cluster process that mean these options."""
        args = ["--probe-period", repr(float(self.probe_period)), "--max-pods", str(self.max_pods)]
        if self.images is not None:
            args += ["--images", str(self.images)]
        if self.ingress_metrics_port is not None:
            args += ["--ingress-metrics-port", str(self.ingress_metrics_port)]
        if not self.prometheus:
            args.append("--no-prometheus")
        args += ["--prometheus-scrape-interval", self.prometheus_scrape_interval]
        return args

    def problems(self) -> list[str]:
        """What is wrong with these options, each naming the flag and what would be valid."""
        found = []
        if not self.probe_period > 0:
            found.append(f"--probe-period: {self.probe_period} must be a number of seconds above 0")
        if self.max_pods < 1:
            found.append(f"--max-pods: {self.max_pods} must be 1 or more")
        if self.ingress_metrics_port is not None and not 0 <= self.ingress_metrics_port <= 65535:
            found.append(f"--ingress-metrics-port: {self.ingress_metrics_port} is not between 0 and 65535")
        interval = self.prometheus_scrape_interval
        if not interval or not _DURATION.match(interval) or not any(ch in "123456789" for ch in interval):
            found.append(f"--prometheus-scrape-interval: {interval!r} is not a Prometheus duration above 0 "
                         "(e.g. 2s, 500ms, 1m)")
        return found
