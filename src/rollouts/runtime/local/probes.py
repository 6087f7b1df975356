"""Readiness probes for local pods: what to check (from the container's readinessProbe), one check, and the
threshold bookkeeping that turns check results into a ready flag.

The probe host is always the pod's own loopback address (its POD_IP). The probe's port, by number or by
name, is resolved against the container's declared ports (ports.py): a pod that declares none has only its
PORT, which every probe port then means.

Kubernetes' default `periodSeconds` is 10 s, which makes local demos crawl. The runtime therefore takes a
`probe_period` override (default 1 s) that replaces the manifest's period; pass `probe_period=None` to use
the manifest's `periodSeconds` (or Kubernetes' 10 s default). Other fields are honoured as written:
initialDelaySeconds (0), timeoutSeconds (1), failureThreshold (3), successThreshold (1).

Probe kinds: httpGet (2xx/3xx is success), tcpSocket (connect), exec (exit code 0, run with the pod's env),
and none (TCP connect to PORT). gRPC probes fall back to a TCP connect.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from rollouts.runtime.local.ports import declared_ports, resolve_port
from rollouts.spec.pod import Container

K8S_DEFAULT_PERIOD_SECONDS = 10.0
DEFAULT_PROBE_PERIOD = 1.0

ProbeKind = Literal["http", "tcp", "exec"]


@dataclass(frozen=True)
class ProbePlan:
    """A resolved readiness probe for one pod."""

    kind: ProbeKind
    port: int
    host: str = "127.0.0.1"
    path: str = "/"
    scheme: str = "http"
    headers: tuple[tuple[str, str], ...] = ()
    command: tuple[str, ...] = ()
    initial_delay: float = 0.0
    period: float = DEFAULT_PROBE_PERIOD
    timeout: float = 1.0
    failure_threshold: int = 3
    success_threshold: int = 1


def plan_readiness(
    container: Container,
    port: int,
    *,
    probe_period: float | None = DEFAULT_PROBE_PERIOD,
    host: str = "127.0.0.1",
) -> ProbePlan:
    """The readiness probe to run for a container listening on `host`:`port`."""
    probe = container.readiness_probe
    declared = declared_ports(container)
    if probe is None:
        period = probe_period if probe_period is not None else K8S_DEFAULT_PERIOD_SECONDS
        return ProbePlan(kind="tcp", port=port, host=host, period=period)
    period = (
        probe_period
        if probe_period is not None
        else float(probe.period_seconds or K8S_DEFAULT_PERIOD_SECONDS)
    )
    action = probe.http_get or probe.tcp_socket
    base = ProbePlan(
        kind="tcp",
        port=resolve_port(action.port if action is not None else None, declared, port),
        host=host,
        initial_delay=float(probe.initial_delay_seconds or 0),
        period=period,
        timeout=float(probe.timeout_seconds or 1),
        failure_threshold=max(1, probe.failure_threshold or 3),
        success_threshold=max(1, probe.success_threshold or 1),
    )
    if probe.http_get is not None:
        get = probe.http_get
        path = get.path or "/"
        return replace(
            base,
            kind="http",
            path=path if path.startswith("/") else "/" + path,
            scheme=(get.scheme or "HTTP").lower(),
            headers=tuple((h.name, h.value) for h in get.http_headers or []),
        )
    if probe.exec is not None and probe.exec.command:
        return replace(base, kind="exec", command=tuple(probe.exec.command))
    return base


def _safe_header(text: str) -> bool:
    return "\r" not in text and "\n" not in text


async def check_http(plan: ProbePlan) -> bool:
    """One HTTP GET; success is a 2xx or 3xx status. TLS is not verified (as in Kubernetes)."""
    if not _safe_header(plan.path) or not all(_safe_header(n) and _safe_header(v) for n, v in plan.headers):
        return False
    context: ssl.SSLContext | None = None
    if plan.scheme == "https":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(plan.timeout):
            reader, writer = await asyncio.open_connection(plan.host, plan.port, ssl=context)
            names = {name.lower() for name, _ in plan.headers}
            lines = [f"GET {plan.path} HTTP/1.1"]
            if "host" not in names:
                lines.append(f"Host: {plan.host}:{plan.port}")
            if "user-agent" not in names:
                lines.append("User-Agent: rollouts-probe")
            lines += [f"{name}: {value}" for name, value in plan.headers]
            lines.append("Connection: close")
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            await writer.drain()
            status_line = await reader.readline()
    except (OSError, TimeoutError, UnicodeEncodeError, ssl.SSLError):
        return False
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
    parts = status_line.split()
    if len(parts) < 2 or not parts[1].isdigit():
        return False
    return 200 <= int(parts[1]) < 400


async def check_tcp(plan: ProbePlan) -> bool:
    try:
        async with asyncio.timeout(plan.timeout):
            _, writer = await asyncio.open_connection(plan.host, plan.port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    return True


async def check_exec(plan: ProbePlan, env: Mapping[str, str], cwd: str | None = None) -> bool:
    try:
        process = await asyncio.create_subprocess_exec(
            *plan.command,
            env=dict(env),
            cwd=cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
    except OSError:
        return False
    try:
        async with asyncio.timeout(plan.timeout):
            return await process.wait() == 0
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        return False


async def check_once(plan: ProbePlan, env: Mapping[str, str] | None = None, cwd: str | None = None) -> bool:
    """Run the probe once."""
    if plan.kind == "http":
        return await check_http(plan)
    if plan.kind == "exec":
        return await check_exec(plan, env or {}, cwd)
    return await check_tcp(plan)


@dataclass
class ReadinessTracker:
    """Consecutive-result counting: ready after `success_threshold` successes in a row, unready after
    `failure_threshold` failures in a row. A pod starts unready."""

    success_threshold: int = 1
    failure_threshold: int = 3
    ready: bool = False
    _successes: int = field(default=0, repr=False)
    _failures: int = field(default=0, repr=False)

    def observe(self, ok: bool) -> bool:
        """Record one result; returns the (possibly changed) ready flag."""
        if ok:
            self._successes += 1
            self._failures = 0
            if not self.ready and self._successes >= self.success_threshold:
                self.ready = True
        else:
            self._failures += 1
            self._successes = 0
            if self.ready and self._failures >= self.failure_threshold:
                self.ready = False
        return self.ready
