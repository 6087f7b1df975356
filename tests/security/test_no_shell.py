"""No shell is ever built, from manifest data or anything else: no `shell=True`, `os.system`, `os.popen`
or `create_subprocess_shell` anywhere in src/ (found in the syntax tree, so neither comments nor strings
hide or fake one)."""

from __future__ import annotations

import ast

import pytest

from tests.conftest import REPO

SRC = REPO / "src" / "rollouts"
FORBIDDEN_CALLS = {("os", "system"), ("os", "popen"), ("asyncio", "create_subprocess_shell"),
                   ("subprocess", "getoutput"), ("subprocess", "getstatusoutput"), ("pty", "spawn")}
FORBIDDEN_NAMES = {"create_subprocess_shell", "getoutput", "getstatusoutput"}


def shell_uses(source: str, filename: str = "<source>") -> list[str]:
    found: list[str] = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) \
                    and (func.value.id, func.attr) in FORBIDDEN_CALLS:
                found.append(f"{filename}:{node.lineno}: {func.value.id}.{func.attr}()")
            elif isinstance(func, ast.Attribute) and func.attr in FORBIDDEN_NAMES:
                found.append(f"{filename}:{node.lineno}: .{func.attr}()")
            elif isinstance(func, ast.Name) and func.id in FORBIDDEN_NAMES | {"system", "popen"}:
                found.append(f"{filename}:{node.lineno}: {func.id}()")
            for keyword in node.keywords:
                if keyword.arg == "shell" and not (isinstance(keyword.value, ast.Constant)
                                                   and keyword.value.value is False):
                    found.append(f"{filename}:{node.lineno}: shell={ast.unparse(keyword.value)}")
        elif isinstance(node, ast.ImportFrom) and node.module in ("os", "asyncio", "subprocess", "pty"):
            for alias in node.names:
                if (node.module, alias.name) in FORBIDDEN_CALLS:
                    found.append(f"{filename}:{node.lineno}: from {node.module} import {alias.name}")
    return found


@pytest.mark.parametrize(("source", "count"), [
    ("import subprocess\nsubprocess.run('ls', shell=True)", 1),
    ("import subprocess\nflag = True\nsubprocess.Popen(['ls'], shell=flag)", 1),
    ("import os\nos.system('ls')\nos.popen('ls')", 2),
    ("import asyncio\nasyncio.create_subprocess_shell('ls')", 1),
    ("from os import system\nsystem('ls')", 2),
    ("import subprocess\nsubprocess.run(['ls'], shell=False)\n# os.system('x')\ns = 'shell=True'", 0),
], ids=["shell-true", "shell-variable", "os-system-popen", "asyncio-shell", "imported-name", "clean"])
def test_shell_scanner_finds_what_it_must(source: str, count: int) -> None:
    assert len(shell_uses(source)) == count


def test_no_shell_in_src() -> None:
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 100
    # Only files that mention one of the names can use it: the others need no parsing.
    words = ("shell", "system", "popen", "getoutput", "getstatusoutput", "spawn")
    texts = {path: path.read_text(encoding="utf-8") for path in files}
    found = [use for path, text in texts.items() if any(w in text for w in words)
             for use in shell_uses(text, str(path.relative_to(REPO)))]
    assert found == []
