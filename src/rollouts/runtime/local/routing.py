"""The local ingress's routing table: which Service (and which version, stable or canary) serves a request,
decided the way ingress-nginx decides with its canary annotations.

Pure: `build_table` turns Ingress objects into a `RoutingTable`, `choose_backend` picks a `Backend` for one
request given a random number in [0, 1). No I/O, no clock, no randomness of its own.

Semantics carried over from ingress-nginx:
- A stable Ingress has no `<prefix>/canary: "true"` annotation. A canary Ingress has it and is attached to
  the stable rule with the same host and path; at most one canary per host/path (later ones are ignored and
  reported in `RoutingTable.problems`), and a canary with no stable partner serves nothing.
- On a canary-enabled rule the decision goes: header, then cookie, then weight.
  * `canary-by-header: H`. Without a value or pattern: `H: always` -> canary, `H: never` -> stable, any other
    value falls through. With `canary-by-header-value: V`: `H: V` (exact) -> canary, any other value falls
    through. With `canary-by-header-pattern: R` (used only when no value is set): a regex search match ->
    canary, else falls through; an invalid pattern sends the request to stable.
  * `canary-by-cookie: C`: cookie `always` -> canary, `never` -> stable, other values fall through.
  * `canary-weight: W` out of `canary-weight-total: T` (default 100): canary when rand * T < W.
- Hosts: an exact host beats a wildcard (`*.example.com`, one label), which beats rules without a host.
  Within the chosen host, the longest matching path wins (Exact before Prefix at equal length). Prefix
  matches whole path elements (`/api` matches `/api` and `/api/x`, not `/apix`); ImplementationSpecific is a
  plain string prefix, as an NGINX location is. `spec.defaultBackend` serves what no rule matches.
- Local convenience (not NGINX): a request whose Host is a loopback address matches as if it named the host
  of the table's rules when they all share a single host, so `curl http://127.0.0.1:PORT/` works.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from rollouts.linear_regex import LinearPattern, RegexError, compile_linear
from rollouts.spec.core import Ingress, IngressBackend

DEFAULT_ANNOTATION_PREFIX = "nginx.ingress.kubernetes.io"
PORT_ANNOTATION = "rollouts.io/port"
SERVICE_ANNOTATION = "rollouts.io/service"
DEFAULT_WEIGHT_TOTAL = 100

Version = Literal["stable", "canary"]
PathType = Literal["Exact", "Prefix", "ImplementationSpecific"]

_LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


@dataclass(frozen=True)
class CanaryPolicy:
    """The canary half of a rule, from a canary Ingress's annotations."""

    ingress: str
    namespace: str
    service: str
    service_port: int | str | None
    weight: int = 0
    weight_total: int = DEFAULT_WEIGHT_TOTAL
    header: str | None = None
    header_value: str | None = None
    header_pattern: str | None = None
    cookie: str | None = None
    # The compiled header pattern (RE2, linear time); None when there is none or it is invalid.
    header_regex: LinearPattern | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Route:
    """One host/path rule of a stable Ingress, with its canary if one is attached."""

    host: str | None
    path: str
    path_type: PathType
    namespace: str
    ingress: str
    logical_service: str
    service: str
    service_port: int | str | None
    canary: CanaryPolicy | None = None
    is_default: bool = False


@dataclass(frozen=True)
class Backend:
    """Where one request goes.

    service/namespace: the Kubernetes Service to forward to. ingress: the Ingress whose backend was used
    (the canary Ingress for canary traffic). stable_ingress and logical_service label the metrics: the
    stable Ingress's name and its `rollouts.io/service` annotation (default: the stable Ingress's name).
    host, path and stable_service are the matched rule's (its host, "" without one; its path as written in
    the Ingress; the stable Ingress's backend Service), for ingress-nginx's metric labels: never the
    request's own Host or path, so the label values are bounded by the Ingress objects.
    """

    service: str
    version: Version
    ingress: str
    namespace: str = "default"
    stable_ingress: str = ""
    logical_service: str = ""
    service_port: int | str | None = None
    host: str = ""
    path: str = "/"
    stable_service: str = ""

    @property
    def service_key(self) -> str:
        return f"{self.namespace}/{self.service}"


@dataclass(frozen=True)
class StableIngress:
    """A stable Ingress the proxy listens for: its key, requested port and logical service name."""

    namespace: str
    name: str
    port: int | None
    logical_service: str

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class RoutingTable:
    routes: tuple[Route, ...] = ()
    stable_ingresses: tuple[StableIngress, ...] = ()
    problems: tuple[str, ...] = ()

    def for_ingresses(self, keys: Iterable[str]) -> RoutingTable:
        """The part of the table that belongs to these stable Ingresses (`namespace/name`)."""
        wanted = set(keys)
        return RoutingTable(
            routes=tuple(r for r in self.routes if f"{r.namespace}/{r.ingress}" in wanted),
            stable_ingresses=tuple(s for s in self.stable_ingresses if s.key in wanted),
            problems=self.problems,
        )


# --- building -----------------------------------------------------------------------------------------


def build_table(
    ingresses: Iterable[Ingress | Mapping[str, Any]],
    *,
    annotation_prefix: str = DEFAULT_ANNOTATION_PREFIX,
) -> RoutingTable:
    """The routing table for a set of Ingresses (stable and canary, in any order)."""
    problems: list[str] = []
    parsed: list[Ingress] = []
    for index, item in enumerate(ingresses):
        try:
            parsed.append(item if isinstance(item, Ingress) else Ingress.model_validate(item))
        except ValidationError as exc:
            problems.append(f"ingresses[{index}]: not a valid Ingress ({exc.error_count()} errors); ignored")
    prefix = annotation_prefix.rstrip("/")
    stables = [i for i in parsed if not _is_canary(i, prefix)]
    canaries = [i for i in parsed if _is_canary(i, prefix)]

    routes: list[Route] = []
    stable_infos: list[StableIngress] = []
    for ing in stables:
        info = _stable_info(ing, problems)
        stable_infos.append(info)
        for host, path, path_type, backend, is_default in _rules(ing):
            if backend.service is None:
                continue
            routes.append(
                Route(
                    host=host,
                    path=path,
                    path_type=path_type,
                    namespace=info.namespace,
                    ingress=info.name,
                    logical_service=info.logical_service,
                    service=backend.service.name,
                    service_port=_port_of(backend),
                    is_default=is_default,
                )
            )

    slots = {(r.host, r.path, r.is_default): i for i, r in enumerate(routes)}
    for ing in canaries:
        attached = False
        for host, path, _type, backend, is_default in _rules(ing):
            if backend.service is None:
                continue
            where = slots.get((host, path, is_default))
            name = _name(ing)
            if where is None:
                continue
            current = routes[where]
            if current.canary is not None:
                problems.append(
                    f"Ingress {name}: host {host or '*'} path {path} already has canary Ingress "
                    f"{current.canary.namespace}/{current.canary.ingress}; only one canary per host/path, ignored"
                )
                continue
            routes[where] = _with_canary(current, _canary_policy(ing, backend, prefix, problems))
            attached = True
        if not attached:
            problems.append(
                f"Ingress {_name(ing)}: canary Ingress matches no host/path of a stable Ingress; it serves nothing"
            )
    ordered = sorted(routes, key=_route_order)
    return RoutingTable(routes=tuple(ordered), stable_ingresses=tuple(stable_infos), problems=tuple(problems))


def _is_canary(ing: Ingress, prefix: str) -> bool:
    return ing.metadata.annotations.get(f"{prefix}/canary", "").strip().lower() == "true"


def _name(ing: Ingress) -> str:
    return f"{ing.metadata.namespace or 'default'}/{ing.metadata.name or ''}"


def _stable_info(ing: Ingress, problems: list[str]) -> StableIngress:
    annotations = ing.metadata.annotations
    port: int | None = None
    raw = annotations.get(PORT_ANNOTATION)
    if raw is not None:
        try:
            port = int(raw)
            if not 0 < port < 65536:
                raise ValueError
        except ValueError:
            problems.append(
                f"Ingress {_name(ing)}: metadata.annotations.{PORT_ANNOTATION}: {raw!r} is not a port "
                "between 1 and 65535; a free port is used"
            )
            port = None
    name = ing.metadata.name or ""
    return StableIngress(
        namespace=ing.metadata.namespace or "default",
        name=name,
        port=port,
        logical_service=annotations.get(SERVICE_ANNOTATION) or name,
    )


def _rules(ing: Ingress) -> list[tuple[str | None, str, PathType, IngressBackend, bool]]:
    found: list[tuple[str | None, str, PathType, IngressBackend, bool]] = []
    for rule in ing.spec.rules:
        host = rule.host.lower().rstrip(".") if rule.host else None
        for p in rule.http.paths if rule.http else []:
            path_type: PathType = "ImplementationSpecific"
            if p.path_type in ("Exact", "Prefix"):
                path_type = p.path_type  # type: ignore[assignment]
            found.append((host, p.path or "/", path_type, p.backend, False))
    if ing.spec.default_backend is not None:
        found.append((None, "/", "Prefix", ing.spec.default_backend, True))
    return found


def _port_of(backend: IngressBackend) -> int | str | None:
    port = backend.service.port if backend.service else None
    if port is None:
        return None
    return port.number if port.number is not None else port.name


def _canary_policy(ing: Ingress, backend: IngressBackend, prefix: str, problems: list[str]) -> CanaryPolicy:
    annotations = ing.metadata.annotations

    def get(key: str) -> str | None:
        value = annotations.get(f"{prefix}/{key}")
        return value if value else None

    def integer(key: str, default: int) -> int:
        raw = get(key)
        if raw is None:
            return default
        try:
            return int(raw.strip())
        except ValueError:
            problems.append(
                f"Ingress {_name(ing)}: metadata.annotations.{prefix}/{key}: {raw!r} is not an integer; "
                f"{default} is used"
            )
            return default

    total = integer("canary-weight-total", DEFAULT_WEIGHT_TOTAL)
    if total <= 0:
        problems.append(
            f"Ingress {_name(ing)}: metadata.annotations.{prefix}/canary-weight-total: {total} must be "
            f"positive; {DEFAULT_WEIGHT_TOTAL} is used"
        )
        total = DEFAULT_WEIGHT_TOTAL
    weight = integer("canary-weight", 0)
    if not 0 <= weight <= total:
        problems.append(
            f"Ingress {_name(ing)}: metadata.annotations.{prefix}/canary-weight: {weight} is not between 0 "
            f"and {total}; clamped"
        )
        weight = min(max(weight, 0), total)
    pattern = get("canary-by-header-pattern")
    regex: LinearPattern | None = None
    if pattern is not None:
        try:
            regex = compile_linear(pattern)
        except RegexError as exc:
            problems.append(
                f"Ingress {_name(ing)}: metadata.annotations.{prefix}/canary-by-header-pattern: {pattern!r} "
                f"is not a valid regular expression ({exc}); requests carrying the header go to stable"
            )
    assert backend.service is not None
    return CanaryPolicy(
        ingress=ing.metadata.name or "",
        namespace=ing.metadata.namespace or "default",
        service=backend.service.name,
        service_port=_port_of(backend),
        weight=weight,
        weight_total=total,
        header=get("canary-by-header"),
        header_value=get("canary-by-header-value"),
        header_pattern=pattern,
        cookie=get("canary-by-cookie"),
        header_regex=regex,
    )


def _with_canary(route: Route, canary: CanaryPolicy) -> Route:
    return Route(
        host=route.host,
        path=route.path,
        path_type=route.path_type,
        namespace=route.namespace,
        ingress=route.ingress,
        logical_service=route.logical_service,
        service=route.service,
        service_port=route.service_port,
        canary=canary,
        is_default=route.is_default,
    )


def _route_order(route: Route) -> tuple[int, int, int]:
    # Longest path first; Exact before Prefix at equal length; default backends last.
    return (int(route.is_default), -len(route.path), 0 if route.path_type == "Exact" else 1)


# --- choosing -----------------------------------------------------------------------------------------


def choose_backend(
    table: RoutingTable,
    host: str | None,
    path: str,
    headers: Mapping[str, str],
    cookies: Mapping[str, str],
    rand: float,
) -> Backend | None:
    """The backend for one request, or None when no rule (and no default backend) matches.

    `rand` is a number in [0, 1) that decides weighted splits; `headers` are matched case-insensitively."""
    route = _match_route(table, _normal_host(host), path or "/")
    if route is None:
        return None
    stable = Backend(
        service=route.service,
        version="stable",
        ingress=route.ingress,
        namespace=route.namespace,
        stable_ingress=route.ingress,
        logical_service=route.logical_service,
        service_port=route.service_port,
        host=route.host or "",
        path=route.path,
        stable_service=route.service,
    )
    policy = route.canary
    if policy is None or not _goes_to_canary(policy, headers, cookies, rand):
        return stable
    return Backend(
        service=policy.service,
        version="canary",
        ingress=policy.ingress,
        namespace=policy.namespace,
        stable_ingress=route.ingress,
        logical_service=route.logical_service,
        service_port=policy.service_port,
        host=route.host or "",
        path=route.path,
        stable_service=route.service,
    )


def _goes_to_canary(
    policy: CanaryPolicy, headers: Mapping[str, str], cookies: Mapping[str, str], rand: float
) -> bool:
    if policy.header:
        value = _header(headers, policy.header)
        if value is not None:
            if policy.header_value:
                if value == policy.header_value:
                    return True
            elif policy.header_pattern:
                # Matched per request: RE2 (linear time, bounded subject), never a backtracking engine.
                if policy.header_regex is None:
                    return False
                if policy.header_regex.search(value):
                    return True
            elif value == "always":
                return True
            elif value == "never":
                return False
    if policy.cookie:
        cookie = cookies.get(policy.cookie)
        if cookie == "always":
            return True
        if cookie == "never":
            return False
    return rand * policy.weight_total < policy.weight


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, candidate in headers.items():
        if key.lower() == lowered:
            return candidate
    return None


def _normal_host(host: str | None) -> str | None:
    if not host:
        return None
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end >= 0 else host
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".") or None


def _host_rank(rule_host: str | None, host: str | None) -> int | None:
    """How well a rule's host matches: 0 exact, 1 wildcard, 2 any host; None when it does not match."""
    if rule_host is None:
        return 2
    if host is None:
        return None
    if rule_host == host:
        return 0
    if rule_host.startswith("*."):
        suffix = rule_host[1:]
        head = host[: -len(suffix)] if host.endswith(suffix) else ""
        if head and "." not in head:
            return 1
    return None


def _match_route(table: RoutingTable, host: str | None, path: str) -> Route | None:
    rules = [r for r in table.routes if not r.is_default]
    if host in _LOOPBACK or host is None:
        hosts = {r.host for r in rules}
        if len(hosts) == 1:
            host = next(iter(hosts))
    ranked = [(rank, r) for r in rules if (rank := _host_rank(r.host, host)) is not None]
    if ranked:
        best = min(rank for rank, _ in ranked)
        # NGINX picks the server (host) first, then a location inside it: no fallback to other hosts.
        for rank, route in ranked:
            if rank == best and _path_matches(route, path):
                return route
    for route in table.routes:
        if route.is_default:
            return route
    return None


def _path_matches(route: Route, path: str) -> bool:
    if route.path_type == "Exact":
        return path == route.path
    if route.path_type == "Prefix":
        base = route.path.rstrip("/")
        return base == "" or path == base or path.startswith(base + "/")
    return path.startswith(route.path)
