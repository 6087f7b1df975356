"""The work behind `rollouts lint`, kept out of the verb module so the CLI starts without loading models."""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Sequence
from typing import TextIO

from rollouts.spec.problems import Problem


def lint_problems(paths: Sequence[str]) -> tuple[list[Problem], list[str]]:
    """Problems and, in input order, the text lines to print (one per problem, `ok` per valid object)."""
    from rollouts.spec.loader import load_paths
    from rollouts.spec.validation import validate_objects

    result = load_paths(paths)
    checked = {id(c.obj): c for c in validate_objects(result.objects)}
    problems: list[Problem] = []
    lines: list[str] = []
    for item in result.order:
        if isinstance(item, Problem):
            problems.append(item)
            lines.append(item.format())
            continue
        entry = checked[id(item)]
        if entry.ok:
            kind = item.kind or "<no kind>"
            lines.append(f"{item.source}:{item.line}: {kind}/{item.name or '<unnamed>'}: ok")
        for problem in entry.problems:
            problems.append(problem)
            lines.append(problem.format())
    return problems, lines


def run_lint(paths: Sequence[str], output: str, out: TextIO | None = None) -> int:
    """Print the report; the exit code (0 when no errors, 1 otherwise). Never raises."""
    out = out if out is not None else sys.stdout
    try:
        problems, lines = lint_problems(paths)
    except Exception as exc:  # whatever the input, report it as a problem line rather than a traceback
        detail = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        where = f" at {detail.filename.rsplit('/', 1)[-1]}:{detail.lineno}" if detail else ""
        problem = Problem(
            ",".join(paths), 0, "", "", "", f"internal error{where}: {type(exc).__name__}: {exc}", "error"
        )
        problems, lines = [problem], [problem.format()]
    if output == "json":
        out.write(json.dumps([p.to_dict() for p in problems], indent=2) + "\n")
    else:
        for text in lines:
            out.write(text + "\n")
    return 1 if any(p.is_error for p in problems) else 0
