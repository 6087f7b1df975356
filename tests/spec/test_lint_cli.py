"""`rollouts lint` end to end: output lines, exit codes, JSON, and hostile input without tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rollouts.cli import commands  # noqa: F401  (registers the verbs)
from rollouts.cli.main import app
from tests.spec.test_loader import billion_laughs

runner = CliRunner()


def lint(*args: str, stdin: str | None = None) -> tuple[int, str]:
    result = runner.invoke(app, ["lint", *args], input=stdin)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line]


def hostile_files(tmp: Path) -> dict[str, Path]:
    files = {
        "empty": b"",
        "garbage": bytes(range(256)) * 64,
        "bomb": billion_laughs().encode(),
        "list": b"- 1\n- 2\n",
        "scalar": b"42\n",
        "unknown-kind": b"apiVersion: example.com/v1\nkind: Frob\nmetadata:\n  name: f\n",
        "deep": b"a: " + b"{b: " * 5000 + b"1" + b"}" * 5000 + b"\n",
        "syntax": b"kind: [\n",
    }
    paths = {}
    for name, data in files.items():
        path = tmp / f"{name}.yaml"
        path.write_bytes(data)
        paths[name] = path
    big = tmp / "big.yaml"
    big.write_bytes(b"# filler line\n" * (10 * 1024 * 1024 // 14 + 1))
    paths["big"] = big
    return paths


EXPECTED = {
    "empty": (0, "no objects"),
    "garbage": (1, "not UTF-8 text"),
    "bomb": (1, "aliases expand to more than"),
    "list": (1, "document is a list"),
    "scalar": (1, "document is a plain value"),
    "unknown-kind": (1, 'unknown kind "Frob"'),
    "deep": (1, "nested more than"),
    "syntax": (1, "YAML syntax error"),
    "big": (1, "refused (the limit is 8 MiB per file)"),
}


@pytest.mark.parametrize("case", sorted(EXPECTED), ids=sorted(EXPECTED))
def test_hostile_input(tmp_path: Path, case: str) -> None:
    path = hostile_files(tmp_path)[case]
    start = time.monotonic()
    code, output = lint("-f", str(path))
    assert time.monotonic() - start < 10
    expected_code, fragment = EXPECTED[case]
    assert code == expected_code, output
    assert fragment in output
    assert "Traceback" not in output
    assert all(line.startswith(str(path)) for line in lines(output))


def test_real_entry_point_never_prints_a_traceback(tmp_path: Path) -> None:
    paths = hostile_files(tmp_path)
    args = [arg for path in paths.values() for arg in ("-f", str(path))]
    exe = Path(sys.executable).with_name("rollouts")
    command = [str(exe)] if exe.exists() else [sys.executable, "-c", "from rollouts.cli.main import main; main()"]
    proc = subprocess.run([*command, "lint", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout + proc.stderr
    assert len(lines(proc.stdout)) == len(paths)


def test_broken_copy_reports_exactly_three_lines(shared: Path, tmp_path: Path) -> None:
    canary = (shared / "argo-examples" / "rollout-canary.yaml").read_text()
    assert "      - setWeight: 40\n" in canary and "  revisionHistoryLimit: 2\n" in canary
    broken = canary.replace("      - setWeight: 40\n", "      - setWeight: 140\n").replace(
        "  revisionHistoryLimit: 2\n", "  revisionHistoryLimt: 2\n"
    )
    bluegreen = (shared / "argo-examples" / "rollout-bluegreen.yaml").read_text().split("\n---")[0]
    assert "    activeService: rollout-bluegreen-active\n" in bluegreen
    (tmp_path / "a-canary.yaml").write_text(broken)
    (tmp_path / "b-bluegreen.yaml").write_text(bluegreen.replace("    activeService: rollout-bluegreen-active\n", ""))
    code, output = lint("-f", str(tmp_path))

    def line_of(name: str, text: str) -> int:
        return (tmp_path / name).read_text().splitlines().index(text) + 1

    a, b = tmp_path / "a-canary.yaml", tmp_path / "b-bluegreen.yaml"
    assert code == 1
    assert lines(output) == [
        f"{a}:{line_of('a-canary.yaml', '  revisionHistoryLimt: 2')}: Rollout/rollout-canary: "
        'spec.revisionHistoryLimt: unknown field (did you mean "revisionHistoryLimit"?)',
        f"{a}:{line_of('a-canary.yaml', '      - setWeight: 140')}: Rollout/rollout-canary: "
        "spec.strategy.canary.steps[2].setWeight: 140 is not between 0 and 100",
        f"{b}:{line_of('b-bluegreen.yaml', '    blueGreen: ')}: Rollout/rollout-bluegreen: "
        "spec.strategy.blueGreen.activeService: required (the Service that receives production traffic)",
    ]


def test_ok_and_warning_lines(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n---\n"
        "apiVersion: argoproj.io/v1alpha1\nkind: Experiment\nmetadata:\n  name: e\n"
    )
    code, output = lint("-f", str(path))
    assert code == 0
    assert lines(output) == [
        f"{path}:1: ConfigMap/c: ok",
        f"{path}:6: Experiment/e: ok",
        f"{path}:6: Experiment/e: parsed; experiments are not run by this version (warning)",
    ]


def test_json_output(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("apiVersion: v1\nkind: Service\nmetadata:\n  name: S\nspec:\n  selector: {app: a}\n")
    code, output = lint("-f", str(path), "-o", "json")
    assert code == 1
    (entry,) = json.loads(output)
    assert entry == {
        "file": str(path), "line": 4, "kind": "Service", "name": "S", "path": "metadata.name",
        "message": entry["message"], "severity": "error",
    }
    assert "not a valid name" in entry["message"]


def test_stdin() -> None:
    code, output = lint("-f", "-", stdin="apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n")
    assert (code, lines(output)) == (0, ["<stdin>:1: ConfigMap/c: ok"])


def test_missing_path_and_bad_format(tmp_path: Path) -> None:
    code, output = lint("-f", str(tmp_path / "nope.yaml"))
    assert (code, lines(output)) == (1, [f"{tmp_path / 'nope.yaml'}: no such file or directory"])
    code, _ = lint("-f", str(tmp_path), "-o", "xml")
    assert code == 2


def test_unexpected_exception_becomes_a_problem_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import rollouts.spec.validation as validation

    def explode(*_: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(validation, "validate_objects", explode)
    path = tmp_path / "c.yaml"
    path.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n")
    code, output = lint("-f", str(path))
    assert code == 1
    assert "internal error" in output and "RuntimeError: boom" in output
    assert "Traceback" not in output


def test_alias_amplification_lint_stays_small_in_a_real_process(tmp_path: Path) -> None:
    from tests.spec.test_loader import long_string_bomb

    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(long_string_bomb(text_bytes=79_000, levels=4))  # the 79 KB manifest that used 2.1 GB
    script = (
        # VmHWM is this process image's own peak; ru_maxrss would also carry the peak of the process
        # that forked it (a large test worker), which execve does not reset.
        "import re, sys\n"
        "from rollouts.cli.lint_report import run_lint\n"
        "code = run_lint([sys.argv[1]], 'text')\n"
        "hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)\n"
        "print('maxrss_kib', hwm)\n"
        "sys.exit(code)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(bomb)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert "aliases expand to more than 100000 nodes or 2 MiB" in proc.stdout
    maxrss_mib = int(proc.stdout.rsplit("maxrss_kib ", 1)[1]) / 1024
    assert maxrss_mib < 200, f"lint used {maxrss_mib:.0f} MiB"
