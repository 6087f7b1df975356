"""Only the local cluster opens the SQLite store: every other module of the package (CLI, operator,
dashboard, report, doctor, demo) reaches objects through the Kubernetes API."""

from __future__ import annotations

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "rollouts"
# The store package owns SQLite; the local cluster's package is the one process that serves it.
OWNERS = ("store/", "cluster/")
# Modules not switched onto the API yet, each with the reason. Empty: the operator (controller/service.py),
# the dashboard (api/) and the demo have all moved; a module added here needs a reason and an owner.
NOT_SWITCHED_YET: dict[str, str] = {}
OPENS_SQLITE = re.compile(r"^\s*(import sqlite3|from sqlite3 )|\bsqlite3\.connect\b|\bSQLiteStore\b|"
                          r"\bdatabase_path\b|rollouts\.store\.sqlite\b", re.MULTILINE)


def test_no_module_outside_the_store_and_the_local_cluster_opens_sqlite() -> None:
    offenders = {}
    for path in sorted(SRC.rglob("*.py")):
        relative = path.relative_to(SRC).as_posix()
        if relative.startswith(OWNERS) or relative in NOT_SWITCHED_YET:
            continue
        found = sorted({m.group(0).strip() for m in OPENS_SQLITE.finditer(path.read_text())})
        if found:
            offenders[relative] = found
    assert offenders == {}, "these modules open the SQLite store instead of going through the API"


def test_the_pattern_catches_each_way_of_opening_the_store() -> None:
    for line in ("import sqlite3", "from rollouts.cluster.store import SQLiteStore", "store = SQLiteStore(p)",
                 "from rollouts.store.home import database_path", "conn = sqlite3.connect(p)"):
        assert OPENS_SQLITE.search(line), line
    assert not OPENS_SQLITE.search("from rollouts.store.protocol import ObjectStore")
