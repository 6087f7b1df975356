"""`rollouts eval EXPR --result JSON`: a result nested too deeply is refused with a clean error (exit 2),
like any other bad input, never with Python's recursion message."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from rollouts.cli import commands  # noqa: F401  (registers the verbs)
from rollouts.cli.main import app

DEEP = [
    ("lists-1k", "[" * 1000 + "]" * 1000),
    ("lists-100k", "[" * 100_000 + "]" * 100_000),
    ("objects-30k", '{"a":' * 30_000 + "1" + "}" * 30_000),
    ("unbalanced", "[" * 100_000),
]


@pytest.mark.parametrize("result", [c[1] for c in DEEP], ids=[c[0] for c in DEEP])
def test_eval_refuses_a_deeply_nested_result(result: str) -> None:
    outcome = CliRunner().invoke(app, ["eval", "result == 1", "--result", result], catch_exceptions=False)
    assert outcome.exit_code == 2
    assert "result is nested deeper than 100 levels" in outcome.output
    assert "recursion" not in outcome.output


@pytest.mark.parametrize(("result", "expected"), [
    ('[[["x"]]]', "true"),
    ('{"s": "' + "[" * 500 + '"}', "false"),  # brackets inside a string are text, not nesting
], ids=["shallow", "brackets-in-string"])
def test_eval_accepts_ordinary_results(result: str, expected: str) -> None:
    condition = "result[0][0][0] == 'x'" if expected == "true" else "result.s == 'x'"
    outcome = CliRunner().invoke(app, ["eval", condition, "--result", result], catch_exceptions=False)
    assert (outcome.exit_code, outcome.output.strip()) == (0, expected)
