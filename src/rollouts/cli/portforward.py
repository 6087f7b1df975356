"""`rollouts port-forward service/NAME LOCAL:REMOTE`: a TCP forwarder from 127.0.0.1:LOCAL to the local
listener of a Service (or a pod), so commands written for kubectl's port-forward work unchanged."""

from __future__ import annotations

import asyncio

import typer

from rollouts.cli.common import (
    CONTEXT_OPTION,
    HOME_OPTION,
    KUBECONFIG_OPTION,
    NAMESPACE_OPTION,
    fail,
    namespace_or_default,
    open_store,
)
from rollouts.cli.main import app
from rollouts.views.info import PORT_ANNOTATION


def parse_ports(spec: str) -> tuple[int, int]:
    """`8080:80`, `8080` (same both sides) or `:80` (any free local port) -> (local, remote)."""
    local, sep, remote = spec.partition(":")
    if not sep:
        remote = local
    try:
        pair = (int(local) if local else 0, int(remote))
    except ValueError:
        fail(f"{spec!r} is not LOCAL:REMOTE with port numbers, e.g. 8080:80")
    if not all(0 <= p < 65536 for p in pair) or pair[1] == 0:
        fail(f"{spec!r}: ports must be between 1 and 65535 (LOCAL may be 0 for any free port)")
    return pair


def target_port(resource: str, namespace: str, home: str | None, remote: int) -> tuple[str, int]:
    """The local address and port that serve `resource`: a Service's listener on 127.0.0.1, a pod's own
    address (status.podIP) and port."""
    from rollouts.cli.patching import resolve_kind_name
    from rollouts.store.protocol import NotFound

    kind, name = resolve_kind_name(resource) if "/" in resource else ("Pod", resource)
    if kind not in ("Service", "Pod"):
        fail(f"cannot forward to a {kind}: use service/NAME or pod/NAME")
    store = open_store(home)
    try:
        obj = store.get(kind, namespace, name)
    except NotFound as exc:
        fail(str(exc))
    port = (obj["metadata"].get("annotations") or {}).get(PORT_ANNOTATION)
    if not port:
        fail(f"{kind.lower()}/{name} has no local port yet (is `rollouts controller` running?)")
    if kind == "Service":
        declared = [p.get("port") for p in (obj.get("spec") or {}).get("ports") or []]
        if declared and remote not in declared:
            ports = ", ".join(str(p) for p in declared)
            fail(f"service/{name} does not have a service port {remote} (ports: {ports})")
        return "127.0.0.1", int(port)
    return str((obj.get("status") or {}).get("podIP") or "127.0.0.1"), int(port)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        if not writer.is_closing():
            writer.close()


async def forward(local: int, target: int, ready: asyncio.Event | None = None,
                  bound: list[int] | None = None, host: str = "127.0.0.1") -> None:
    """Serve 127.0.0.1:local (0: any free port), piping every connection to host:target."""

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            upstream_r, upstream_w = await asyncio.open_connection(host, target)
        except OSError as exc:
            typer.echo(f"error forwarding to {host}:{target}: {exc}", err=True)
            client_w.close()
            return
        await asyncio.gather(_pipe(client_r, upstream_w), _pipe(upstream_r, client_w))

    server = await asyncio.start_server(handle, "127.0.0.1", local)
    port = server.sockets[0].getsockname()[1]
    if bound is not None:
        bound.append(port)
    if ready is not None:
        ready.set()
    async with server:
        typer.echo(f"Forwarding from 127.0.0.1:{port} -> {target}")
        await server.serve_forever()


@app.command("port-forward")
def port_forward(
    resource: str = typer.Argument(..., help="service/NAME (or svc/NAME, pod/NAME)."),
    ports: str = typer.Argument(..., metavar="LOCAL:REMOTE", help="e.g. 8080:80; LOCAL 0 picks a free port."),
    namespace: str | None = NAMESPACE_OPTION,
    home: str | None = HOME_OPTION,
    kubeconfig: str | None = KUBECONFIG_OPTION,
    kube_context: str | None = CONTEXT_OPTION,
) -> None:
    """Forward a local port to a Service or pod of the local runtime until Ctrl-C."""
    local, remote = parse_ports(ports)
    host, target = target_port(resource, namespace_or_default(namespace), home, remote)
    try:
        asyncio.run(forward(local, target, host=host))
    except KeyboardInterrupt:
        return
    except OSError as exc:
        fail(f"cannot listen on 127.0.0.1:{local}: {exc}")
