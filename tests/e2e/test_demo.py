"""`rollouts demo` end to end, as a user runs it: exit code, summary lines, and nothing left running."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

DEMO_TIMEOUT = 240


def _demo_pods(tmpdir: Path) -> list[int]:
    """Demo service processes started by this test's run: they inherit its TMPDIR."""
    marker = f"TMPDIR={tmpdir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone meanwhile, or not ours
            continue
        if b"rollouts.demo.service" in cmdline and marker in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


@pytest.mark.integration
def test_demo_promotes_the_good_release_and_rolls_back_the_bad_one(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path), "COLUMNS": "200"}
    env.pop("ROLLOUTS_HOME", None)
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "rollouts", "demo"], env=env, capture_output=True, text=True,
                          timeout=DEMO_TIMEOUT, check=False)
    wall = time.monotonic() - started
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]

    good = re.search(r"^good release rollouts-demo:yellow: promoted after ([\d.]+)s; canary served (\d+) "
                     r"requests; (\d+) failed requests; as expected$", proc.stdout, re.MULTILINE)
    assert good, proc.stdout[-3000:]
    assert int(good.group(2)) > 100  # it served real traffic through every step
    bad = re.search(r"^bad release rollouts-demo:bad-red: rolled back automatically after ([\d.]+)s; "
                    r"canary served (\d+) requests; (\d+) failed requests; as expected$", proc.stdout,
                    re.MULTILINE)
    assert bad, proc.stdout[-3000:]
    assert int(bad.group(3)) > 0  # the bad version did fail some requests before its gate stopped it
    assert float(bad.group(1)) < float(good.group(1))  # stopped at the first gate, not after all steps
    assert wall < 180, f"the demo took {wall:.0f}s"

    deadline = time.monotonic() + 10
    while (left := _demo_pods(tmp_path)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left == [], f"demo service processes left behind: {left}"
    assert not list(tmp_path.glob("rollouts-demo-*")), "the temporary home was not removed"
