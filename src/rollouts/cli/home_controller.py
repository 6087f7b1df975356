"""The controller running on a home, found without asking the user: its pid is in the home's lock file,
its `--metrics-address` is on its command line (the default when absent), and when it listened on port 0
the port is the one of its listening sockets that answers `/healthz`. Linux /proc only (as the local
runtime itself); anything unreadable means "unknown", never a guess."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_METRICS_ADDRESS = "127.0.0.1:8090"  # the default of `rollouts controller --metrics-address`
_LISTEN = "0A"  # TCP state LISTEN in /proc/net/tcp


@dataclass(frozen=True)
class HomeController:
    pid: int
    argv: tuple[str, ...]

    @property
    def metrics_address(self) -> str | None:
        """HOST:PORT given as --metrics-address (its default when absent); None when it serves nothing."""
        value: str | None = None
        for index, arg in enumerate(self.argv):
            if arg == "--metrics-address" and index + 1 < len(self.argv):
                value = self.argv[index + 1]
            elif arg.startswith("--metrics-address="):
                value = arg.split("=", 1)[1]
        if value is None:
            return DEFAULT_METRICS_ADDRESS
        return value or None


def find(home: Path) -> HomeController | None:
    """The live process named in the home's lock file, if it is a controller."""
    from rollouts.store.lock import LOCK_FILE

    try:
        text = (home / LOCK_FILE).read_text().strip()
        argv = (Path("/proc") / text / "cmdline").read_bytes().split(b"\0") if text.isdigit() else []
    except OSError:
        return None
    words = tuple(a.decode(errors="replace") for a in argv if a)
    if "controller" not in " ".join(words):
        return None
    return HomeController(pid=int(text), argv=words)


def listening_ports(pid: int) -> list[int]:
    """TCP ports the process listens on (its socket inodes matched against /proc/<pid>/net/tcp{,6})."""
    proc = Path("/proc") / str(pid)
    inodes: set[str] = set()
    try:
        for fd in os.listdir(proc / "fd"):
            try:
                target = os.readlink(proc / "fd" / fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return []
    ports: list[int] = []
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == _LISTEN and fields[9] in inodes:
                port = int(fields[1].rsplit(":", 1)[1], 16)
                if port not in ports:
                    ports.append(port)
    return ports


def healthz_address(controller: HomeController) -> str | None:
    """HOST:PORT of the controller's /healthz: its --metrics-address, or with port 0 the listening port
    that answers /healthz with 200."""
    import httpx

    address = controller.metrics_address
    if address is None:
        return None
    host, _, port = address.rpartition(":")
    if port != "0":
        return address
    connect = "127.0.0.1" if host in ("", "0.0.0.0", "[::]", "::") else host
    for candidate in listening_ports(controller.pid):
        try:
            response = httpx.get(f"http://{connect}:{candidate}/healthz", timeout=1)
        except httpx.HTTPError:
            continue
        if response.status_code == 200:
            return f"{connect}:{candidate}"
    return None
