"""Process helpers for the end-to-end tests: which processes a local cluster (or a controller) started, which
belong to one home, and whether they are still alive. Scoped to one home so that tests running beside each
other do not interfere."""

from __future__ import annotations

import collections
from pathlib import Path


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = collections.defaultdict(list)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            children[int(fields[1])].append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def living(pids: set[int]) -> set[int]:
    return {pid for pid in pids if alive(pid)}


def home_processes(home: Path) -> set[int]:
    """Live processes whose stdout or stderr is a file under `home` (the cluster process, the operator, pods
    and jobs all log there): this home's, and no other test's."""
    prefix = str(home.resolve()) + "/"
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        for fd in ("1", "2"):
            try:
                target = (entry / "fd" / fd).readlink()
            except OSError:
                continue
            if str(target).startswith(prefix):
                found.add(int(entry.name))
                break
    return living(found)
