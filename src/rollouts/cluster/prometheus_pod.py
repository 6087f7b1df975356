"""The container command of the local cluster's Prometheus pod: `python -m rollouts.cluster.prometheus_pod
PROMETHEUS_BINARY [FLAG...]` becomes PROMETHEUS_BINARY FLAG... --web.listen-address=POD_IP:PORT.

Why a launcher: the pod's address and port are only known when the runtime starts it (POD_IP, PORT in the
environment; POD_IP is 127.0.0.1 on a runtime that gives pods no address of their own), and Prometheus takes
its listen address only as a flag. `exec` keeps the pid, so the runtime supervises and re-adopts Prometheus
itself; nothing goes through a shell.
"""

from __future__ import annotations

import os
import sys


def argv(args: list[str], env: dict[str, str]) -> list[str]:
    if not args:
        raise SystemExit("usage: python -m rollouts.cluster.prometheus_pod PROMETHEUS_BINARY [FLAG...]")
    port = env.get("PORT")
    if not port or not port.isdigit():
        raise SystemExit(f"PORT={port!r}: the local runtime sets it to the port the pod listens on")
    host = env.get("POD_IP") or "127.0.0.1"
    return [*args, f"--web.listen-address={host}:{port}"]


def main() -> None:
    command = argv(sys.argv[1:], dict(os.environ))
    os.execv(command[0], command)  # noqa: S606 (fixed binary from the ReplicaSet, no shell)


if __name__ == "__main__":
    main()
