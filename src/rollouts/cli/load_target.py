"""Where `rollouts load` sends a rollout's traffic, read from the cluster's objects:

- through its Ingress when it has one: a canary's `trafficRouting.nginx.stableIngress(es)`, else an Ingress
  of the namespace whose rules send to the rollout's stable/active Service; the local ingress listens on the
  Ingress's `rollouts.io/port` annotation, and the rule's host goes in the Host header, as a client of the
  real ingress would send it;
- else its active Service (blue/green `activeService`; for a canary without an Ingress, a Service selecting
  all its pods, else its `stableService`): the Service's local listener, `rollouts.io/port`;
- `preview`: a blue/green rollout's `previewService`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rollouts.store.protocol import NotFound, ObjectStore

PORT_ANNOTATION = "rollouts.io/port"
LISTENER_HOST = "127.0.0.1"

Obj = dict[str, Any]


class TargetError(LookupError):
    """The rollout, its Ingress or Service cannot be found, or has no local listener yet."""


@dataclass(frozen=True)
class LoadTarget:
    url: str
    host_header: str | None  # the Ingress rule's host, None to send the URL's
    what: str  # "ingress/auth-svc" or "service/analytics-svc-active", for the user

    def describe(self) -> str:
        host = f", Host {self.host_header}" if self.host_header else ""
        return f"{self.what} ({self.url}{host})"


def resolve_target(store: ObjectStore, namespace: str, name: str, *, preview: bool = False) -> LoadTarget:
    try:
        rollout = store.get("Rollout", namespace, name)
    except NotFound:
        raise TargetError(f'rollout "{name}" not found in namespace "{namespace}"') from None
    strategy = (rollout.get("spec") or {}).get("strategy") or {}
    blue_green, canary = strategy.get("blueGreen"), strategy.get("canary")
    if preview:
        if not isinstance(blue_green, dict):
            raise TargetError(f"rollout {namespace}/{name} is not blue/green: --preview sends to "
                              "spec.strategy.blueGreen.previewService (for a canary, send its header, e.g. "
                              "--header 'X-Canary: true')")
        service = blue_green.get("previewService")
        if not service:
            raise TargetError(f"rollout {namespace}/{name} has no spec.strategy.blueGreen.previewService")
        return _service_target(store, namespace, str(service))
    if isinstance(blue_green, dict):
        active = str(blue_green.get("activeService") or "")
        if not active:
            raise TargetError(f"rollout {namespace}/{name} has no spec.strategy.blueGreen.activeService")
        ingress = _ingress_sending_to(store, namespace, {active})
        return _ingress_target(store, ingress, {active}) if ingress else _service_target(store, namespace, active)
    canary = canary if isinstance(canary, dict) else {}
    stable = str(canary.get("stableService") or "")
    nginx = (canary.get("trafficRouting") or {}).get("nginx") or {}
    named = nginx.get("stableIngress") or next(iter(nginx.get("stableIngresses") or []), None)
    if named:
        try:
            ingress = store.get("Ingress", namespace, str(named))
        except NotFound:
            raise TargetError(f"rollout {namespace}/{name}: its stable Ingress {named!r} "
                              "(spec.strategy.canary.trafficRouting.nginx) does not exist") from None
        return _ingress_target(store, ingress, {stable} if stable else set())
    if stable:
        ingress = _ingress_sending_to(store, namespace, {stable})
        if ingress:
            return _ingress_target(store, ingress, {stable})
    whole = _service_selecting_all(store, namespace, rollout, exclude={stable, str(canary.get("canaryService") or "")})
    if whole:
        return _service_target(store, namespace, whole)
    if stable:
        return _service_target(store, namespace, stable)
    raise TargetError(f"rollout {namespace}/{name} has no Ingress and no Service selecting its pods: nothing "
                      "to send requests to")


def _annotated_port(obj: Obj, what: str) -> int:
    raw = ((obj.get("metadata") or {}).get("annotations") or {}).get(PORT_ANNOTATION)
    try:
        port = int(raw) if raw else 0
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        raise TargetError(f"{what} has no local listener yet (metadata.annotations.{PORT_ANNOTATION} is "
                          f"{raw!r}): the local cluster's runtime sets it once it serves the object; is the "
                          "cluster running with its runtime (`rollouts cluster up`)?")
    return port


def _service_target(store: ObjectStore, namespace: str, name: str) -> LoadTarget:
    what = f"service/{name}"
    try:
        service = store.get("Service", namespace, name)
    except NotFound:
        raise TargetError(f'{what} not found in namespace "{namespace}"') from None
    port = _annotated_port(service, f"{what} in {namespace}")
    return LoadTarget(url=f"http://{LISTENER_HOST}:{port}/", host_header=None, what=what)


def _rules(ingress: Obj) -> list[tuple[str | None, str, str]]:
    """(host, path, backend service) of every HTTP path of the Ingress, in order."""
    found: list[tuple[str | None, str, str]] = []
    for rule in (ingress.get("spec") or {}).get("rules") or []:
        for path in ((rule.get("http") or {}).get("paths")) or []:
            service = ((path.get("backend") or {}).get("service") or {}).get("name") or ""
            found.append((rule.get("host") or None, path.get("path") or "/", str(service)))
    return found


def _ingress_sending_to(store: ObjectStore, namespace: str, services: set[str]) -> Obj | None:
    for ingress in store.list("Ingress", namespace):
        annotations = (ingress.get("metadata") or {}).get("annotations") or {}
        if any(key.endswith("/canary") and value == "true" for key, value in annotations.items()):
            continue  # a canary Ingress is reached through its stable one
        if any(service in services for _, _, service in _rules(ingress)):
            return ingress
    return None


def _ingress_target(store: ObjectStore, ingress: Obj, services: set[str]) -> LoadTarget:
    name = (ingress.get("metadata") or {}).get("name", "")
    namespace = (ingress.get("metadata") or {}).get("namespace", "")
    what = f"ingress/{name}"
    port = _annotated_port(ingress, f"{what} in {namespace}")
    rules = _rules(ingress)
    if not rules:
        raise TargetError(f"{what} in {namespace} has no spec.rules[].http.paths: nothing routes through it")
    # The rule that sends to the rollout's Service, else the first.
    host, path, _ = next((r for r in rules if r[2] in services), rules[0])
    if host and host.startswith("*."):
        host = "load" + host[1:]  # any name matches a wildcard rule
    return LoadTarget(url=f"http://{LISTENER_HOST}:{port}{path if path.startswith('/') else '/' + path}",
                      host_header=host, what=what)


def _service_selecting_all(store: ObjectStore, namespace: str, rollout: Obj, *, exclude: set[str]) -> str | None:
    labels = ((((rollout.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels")) or {}
    if not labels:
        return None
    for service in store.list("Service", namespace):
        name = (service.get("metadata") or {}).get("name", "")
        selector = (service.get("spec") or {}).get("selector") or {}
        if name in exclude or not selector:
            continue
        if all(labels.get(k) == v for k, v in selector.items()):
            return str(name)
    return None
