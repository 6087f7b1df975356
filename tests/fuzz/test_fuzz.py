"""A small seeded batch of bench/fuzz.py: mutated manifests (lint and apply), expressions and patches all
end cleanly (0 tracebacks, 0 hangs)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).resolve().parents[2] / "bench" / "fuzz.py"
COUNTS = re.compile(r"^(manifest|expression|patch)\s+cases=(\d+) .*tracebacks=(\d+) hangs=(\d+)", re.MULTILINE)


def test_seeded_fuzz_batch_has_no_tracebacks_or_hangs(shared: Path) -> None:
    if not (shared / "argo-examples").is_dir():
        pytest.skip("Argo's example manifests are not available")
    proc = subprocess.run(
        [sys.executable, str(FUZZ), "--seed", "20", "--manifests", "200", "--expressions", "100",
         "--patches", "25", "--timeout", "5", "--examples", str(shared / "argo-examples")],
        capture_output=True, text=True, timeout=300,
    )
    counts = {family: (int(cases), int(tracebacks), int(hangs))
              for family, cases, tracebacks, hangs in COUNTS.findall(proc.stdout)}
    assert counts == {"manifest": (200, 0, 0), "expression": (100, 0, 0), "patch": (25, 0, 0)}, (
        proc.stdout[-4000:] + proc.stderr[-2000:]
    )
    assert proc.returncode == 0
