"""Per-version request statistics read from the local cluster over HTTP: the client of its
`/traffic/v1` endpoints, for the traffic plugins (`rollouts/traffic`, `rollouts/sequential`) of an
operator that no longer holds the ingress proxy's counters in its own memory.

`ClusterTrafficSource` satisfies `analysis.providers._traffic_base.TrafficSource` with the semantics of
`runtime.local.traffic.TrafficStats` (the cluster answers from one): windows of whole seconds, a cumulative
`since` from the per-minute ring, the first request a version's pods served, and the service's request
rate. Answers travel as JSON (`runtime.local.traffic_json`, the encoding the cluster writes) and decode
to the same `WindowStats` the cluster computed, so quantiles and the sequential latency test read exactly
what it counted.

A cluster that does not serve `/traffic/v1` (any real Kubernetes) is detected once by `probe`: the
operator then registers no local source and the plugins query Prometheus, as on a cluster they must.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

from rollouts.kube.client import ApiError, KubeStore
from rollouts.store.protocol import NotFound
from rollouts.traffic_window import WindowStats, window_from_json

PREFIX = "/traffic/v1"


class TrafficUnavailable(RuntimeError):
    """The cluster does not answer the traffic API as expected (names the request and what came back)."""


def _window(answer: Mapping[str, Any], where: str) -> WindowStats:
    try:
        return window_from_json(dict(answer))
    except ValueError as exc:
        raise TrafficUnavailable(f"{where}: {exc}") from exc


def _versions(version: str | Sequence[str]) -> list[str]:
    return [version] if isinstance(version, str) else list(version)


def _number(value: float) -> str:
    return repr(float(value))


class ClusterTrafficSource:
    """`TrafficSource` over the local cluster's traffic API, through a `KubeStore`'s connection and token."""

    def __init__(self, store: KubeStore) -> None:
        self.store = store

    @classmethod
    def probe(cls, store: KubeStore) -> ClusterTrafficSource | None:
        """A source when the cluster serves the traffic API, None when it does not (404: not a local
        cluster); other failures (unreachable, 401) propagate, as any first API call's would."""
        source = cls(store)
        try:
            source.request_rate("default", "rollouts-probe")
        except NotFound:
            return None
        except ApiError as exc:
            if exc.code in (404, 405):
                return None
            raise
        return source

    def _get(self, namespace: str, service: str, what: str, params: list[tuple[str, str]]) -> Mapping[str, Any]:
        path = (f"{PREFIX}/namespaces/{urllib.parse.quote(namespace, safe='')}/services/"
                f"{urllib.parse.quote(service, safe='')}/{what}")
        query = urllib.parse.urlencode(params)
        where = f"traffic of {namespace}/{service} ({what})"
        answer = self.store.request("GET", path + ("?" + query if query else ""))
        if not isinstance(answer, Mapping):
            raise TrafficUnavailable(f"{where}: expected a JSON object, got {type(answer).__name__}")
        return answer

    @staticmethod
    def _selection(version: str | Sequence[str], pod_hash: str | None) -> list[tuple[str, str]]:
        params = [("version", v) for v in _versions(version)]
        if pod_hash is not None:
            params.append(("podHash", pod_hash))
        return params

    def window(
        self, namespace: str, service: str, version: str | Sequence[str], seconds: float, now: float | None = None,
        *, pod_hash: str | None = None, not_before: float | None = None,
    ) -> WindowStats:
        params = self._selection(version, pod_hash)
        params.append(("seconds", _number(seconds)))
        if now is not None:
            params.append(("now", _number(now)))
        if not_before is not None:
            params.append(("notBefore", _number(not_before)))
        return _window(self._get(namespace, service, "window", params), f"traffic window of {namespace}/{service}")

    def since(
        self, namespace: str, service: str, version: str | Sequence[str], start: float, now: float | None = None,
        *, pod_hash: str | None = None,
    ) -> WindowStats:
        params = self._selection(version, pod_hash)
        params.append(("start", _number(start)))
        if now is not None:
            params.append(("now", _number(now)))
        return _window(self._get(namespace, service, "since", params), f"traffic since {start} of {namespace}/{service}")

    def first_seen(
        self, namespace: str, service: str, version: str | Sequence[str], *, pod_hash: str | None = None
    ) -> float | None:
        answer = self._get(namespace, service, "firstseen", self._selection(version, pod_hash))
        value = answer.get("firstSeen")
        return None if value is None else float(value)

    def request_rate(self, namespace: str, service: str, now: float | None = None) -> float | None:
        params = [("now", _number(now))] if now is not None else []
        value = self._get(namespace, service, "rate", params).get("requestRate")
        return None if value is None else float(value)
