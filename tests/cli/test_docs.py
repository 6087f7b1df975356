"""The docs name files that exist and one health path: what the runbook mapping and the README tell a user to
run must work on this repository as it is."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = ["docs/runbook.md", "README.md"]
APPLY = re.compile(r"rollouts (?:apply|lint|create|analyze|simulate)[^`|]*?-f\s+(\S+?)[`\s|)]")


def _local_cells(text: str) -> list[str]:
    """What the docs tell a user to run locally: the Local column of the mapping tables and code blocks."""
    cells, in_code = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
            continue
        if in_code:
            cells.append(line)
        elif line.startswith("|") and line.count("|") >= 3:
            cells.append(line.rstrip("|").rsplit("|", 1)[-1])
    return cells


@pytest.mark.parametrize("doc", DOCS)
def test_runbook_docs_name_files_that_exist(doc: str) -> None:
    cells = "\n".join(_local_cells((REPO / doc).read_text()))
    paths = {m.group(1).rstrip("/") for m in APPLY.finditer(cells + " ")}
    paths = {p for p in paths if p not in ("-", "FILE") and not p.startswith("<") and "*" not in p}
    assert paths, f"no -f paths found in {doc}"
    missing = sorted(p for p in paths if "/" in p and not (REPO / p).exists())
    assert not missing, f"{doc} tells the user to use files that do not exist: {missing}"
    assert "rollouts/<svc>-rollout.yaml" not in cells


@pytest.mark.parametrize("doc", DOCS)
def test_docs_health_path_is_healthz_everywhere(doc: str) -> None:
    wrong = [cell.strip() for cell in _local_cells((REPO / doc).read_text())
             if re.search(r"/health(?![z\w])", cell)]
    assert not wrong, f"{doc}: local commands use /health instead of /healthz: {wrong}"


def test_docs_runbook_health_checks_map_to_healthz() -> None:
    """Every runbook row that checks `/health` is translated to the demo service's `/healthz`."""
    rows = [line for line in (REPO / "docs/runbook.md").read_text().splitlines()
            if line.startswith("|") and re.search(r"/health(?![z\w])", line.split("|")[1])]
    assert rows
    wrong = [row for row in rows if "/healthz" not in row.rstrip("|").rsplit("|", 1)[-1]]
    assert not wrong, wrong
