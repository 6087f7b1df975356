"""Which port of a local pod a reference means: a probe's `port`, a Service's `targetPort`.

A pod's process listens on its own address at the first `containerPort` of its first container, or, when the
manifest declares none, on a free port the runtime chose (its PORT). References follow Kubernetes: a number
is that port and a name is the declared port of that name. A pod that declares no port has only the one
port, so every reference means it (today's manifests without `ports` keep working); so does a name no
declared port has (Kubernetes would leave the pod out; locally the one listening port is the only candidate).
"""

from __future__ import annotations

from rollouts.spec.pod import Container

# (name or "", containerPort, protocol) of each declared port of a container, in manifest order.
DeclaredPorts = tuple[tuple[str, int, str], ...]


def declared_ports(container: Container) -> DeclaredPorts:
    return tuple((p.name or "", int(p.container_port), p.protocol or "TCP")
                 for p in container.ports or [] if 0 < int(p.container_port) < 65536)


def listen_port(container: Container) -> int | None:
    """The port the manifest says the container listens on (its first containerPort), None without one."""
    ports = declared_ports(container)
    return ports[0][1] if ports else None


def resolve_port(ref: int | str | None, declared: DeclaredPorts, default: int) -> int:
    """The port number `ref` (number, digits or port name) means on a pod listening on `default`."""
    if ref is None or ref == "" or not declared:
        return default
    if isinstance(ref, int):
        return ref if 0 < ref < 65536 else default
    if ref.isdigit():
        number = int(ref)
        return number if 0 < number < 65536 else default
    for name, number, _ in declared:
        if name == ref:
            return number
    return default
