"""Shell completion (typer's --show-completion / --install-completion) and colour-free output when
stdout is not a terminal or NO_COLOR is set."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

# What the `rollouts` console script runs (its argv[0] names the program, as the installed script's does).
CONSOLE_SCRIPT = "import sys; sys.argv[0] = 'rollouts'; from rollouts.cli.main import main; main()"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def rollouts(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", CONSOLE_SCRIPT, *args], capture_output=True, text=True,
                          timeout=60, env={**os.environ, **(env or {})})


def test_show_completion_prints_a_bash_script() -> None:
    # typer detects the shell from the parent process (shellingham), as when a user types it in bash.
    result = subprocess.run(["bash", "-c", '"$@"; exit $?', "bash", sys.executable, "-c", CONSOLE_SCRIPT,
                             "--show-completion"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "complete -o default -F _rollouts_completion rollouts" in result.stdout
    assert "_ROLLOUTS_COMPLETE=complete_bash" in result.stdout


@pytest.mark.parametrize("words, expected", [
    ("rollouts pat", "patch"),
    ("rollouts port", "port-forward"),
    ("rollouts doc", "doctor"),
    ("rollouts terminate ", "analysisrun"),
], ids=["patch", "port-forward", "doctor", "subcommand"])
def test_the_script_completes_verbs(words: str, expected: str) -> None:
    result = rollouts(env={"_ROLLOUTS_COMPLETE": "complete_bash", "COMP_WORDS": words,
                           "COMP_CWORD": str(len(words.split(" ")) - 1)})
    assert expected in result.stdout.split(), result.stdout + result.stderr


@pytest.mark.parametrize("env", [{}, {"NO_COLOR": "1", "FORCE_COLOR": ""}], ids=["not-a-terminal", "NO_COLOR"])
def test_no_colour_codes_when_not_a_terminal(env: dict[str, str]) -> None:
    result = rollouts("--help", env={"TERM": "xterm-256color", **env})
    assert result.returncode == 0 and "patch" in result.stdout
    assert not ANSI.search(result.stdout)
