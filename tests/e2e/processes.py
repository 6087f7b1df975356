"""Process-tree helpers for the end-to-end tests: which processes a controller started, and whether they
are still alive. Scoped to one controller so that tests running beside each other do not interfere."""

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
