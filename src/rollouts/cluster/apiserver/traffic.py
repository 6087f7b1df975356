"""The /traffic/v1 paths: the local ingress's and Service listeners' request statistics (TrafficStats), for
the `rollouts/traffic` and `rollouts/sequential` providers of an operator that runs in another process.

    GET /traffic/v1/namespaces/{ns}/services/{service}/window?version=V[&version=..]&seconds=S
        [&now=T][&podHash=H][&notBefore=B]
    GET .../since?version=V..&start=T[&now=T][&podHash=H]
    GET .../firstseen?version=V..[&podHash=H]      -> {"firstSeen": float|null}
    GET .../rate[?now=T]                           -> {"requestRate": float|null}

Answers have exactly the semantics of TrafficStats' window/since/first_seen/request_rate (times are Unix
seconds); window and since are encoded by `rollouts.runtime.local.traffic_json`. A cluster without a runtime
answers from an empty TrafficStats: zero counts and nulls."""

from __future__ import annotations

import json
import math
from typing import Any

from aiohttp import web

from rollouts.cluster.apiserver.errors import ApiError, bad_request, method_not_allowed
from rollouts.runtime.local.traffic import TrafficStats
from rollouts.traffic_window import window_to_json

PREFIX = "/traffic/v1/namespaces/{namespace}/services/{service}"


def _number(query: Any, name: str, *, required: bool = False, positive: bool = False) -> float | None:
    raw = query.get(name)
    if raw is None or raw == "":
        if required:
            raise bad_request(f"{name}: required (a number of {'seconds' if positive else 'Unix seconds'})")
        return None
    try:
        value = float(raw)
    except ValueError:
        raise bad_request(f'{name}: "{raw}" is not a number') from None
    if not math.isfinite(value) or (positive and value <= 0):
        raise bad_request(f'{name}: "{raw}" must be a finite number{" above 0" if positive else ""}')
    return value


def _versions(query: Any) -> list[str]:
    versions = [v for v in query.getall("version", []) if v]
    if not versions:
        raise bad_request("version: required, once per version to count (e.g. version=canary)")
    return versions


def _answer(body: dict[str, Any]) -> web.Response:
    return web.Response(body=json.dumps(body).encode(), content_type="application/json")


class TrafficEndpoints:
    def __init__(self, stats: TrafficStats | None) -> None:
        # An empty TrafficStats answers "nothing counted" with the same shapes and windows.
        self.stats = stats if stats is not None else TrafficStats()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(PREFIX + "/window", self.window)
        app.router.add_get(PREFIX + "/since", self.since)
        app.router.add_get(PREFIX + "/firstseen", self.first_seen)
        app.router.add_get(PREFIX + "/rate", self.rate)
        app.router.add_route("*", "/traffic/{tail:.*}", self.unknown)

    async def window(self, request: web.Request) -> web.Response:
        q, m = request.query, request.match_info
        versions = _versions(q)
        seconds = _number(q, "seconds", required=True, positive=True)
        assert seconds is not None
        stats = self.stats.window(m["namespace"], m["service"], versions, seconds, _number(q, "now"),
                                  pod_hash=q.get("podHash"), not_before=_number(q, "notBefore"))
        return _answer(window_to_json(stats))

    async def since(self, request: web.Request) -> web.Response:
        q, m = request.query, request.match_info
        versions = _versions(q)
        start = _number(q, "start", required=True)
        assert start is not None
        stats = self.stats.since(m["namespace"], m["service"], versions, start, _number(q, "now"),
                                 pod_hash=q.get("podHash"))
        return _answer(window_to_json(stats))

    async def first_seen(self, request: web.Request) -> web.Response:
        q, m = request.query, request.match_info
        seen = self.stats.first_seen(m["namespace"], m["service"], _versions(q), pod_hash=q.get("podHash"))
        return _answer({"firstSeen": seen})

    async def rate(self, request: web.Request) -> web.Response:
        m = request.match_info
        return _answer({"requestRate": self.stats.request_rate(m["namespace"], m["service"], _number(request.query, "now"))})

    async def unknown(self, request: web.Request) -> web.Response:
        if request.method != "GET":
            raise method_not_allowed(f"{request.method} is not supported on {request.path}")
        raise ApiError(404, "NotFound", f"{request.path}: not a traffic path; see "
                                        "/traffic/v1/namespaces/NS/services/SVC/{window,since,firstseen,rate}")
