"""Loading manifests: documents, origins, field lines, and hostile input turned into problems."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from rollouts.spec.loader import MAX_FILE_BYTES, load_bytes, load_path, load_text

MULTI = """\
# leading comment
apiVersion: v1
kind: ConfigMap
metadata:
  name: one
---
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: two
spec:
  strategy:
    canary:
      steps:
      - setWeight: 20
      - pause: {}
      - setWeight: 140
"""


def test_documents_keep_source_and_lines() -> None:
    result = load_text(MULTI, "m.yaml")
    assert result.problems == []
    assert [(o.kind, o.name, o.line, o.source) for o in result.objects] == [
        ("ConfigMap", "one", 2, "m.yaml"),
        ("Rollout", "two", 8, "m.yaml"),
    ]
    rollout = result.objects[1]
    assert rollout.line_of(("spec", "strategy", "canary", "steps", 2, "setWeight")) == 18
    assert rollout.line_of(("spec", "strategy", "canary", "steps", 1)) == 17
    # a field that is absent takes its closest present ancestor's line
    assert rollout.line_of(("spec", "strategy", "blueGreen", "activeService")) == 13


def test_json_document() -> None:
    result = load_text('{"apiVersion": "v1", "kind": "Secret",\n "metadata": {"name": "s"}}', "s.json")
    assert [o.name for o in result.objects] == ["s"]
    assert result.objects[0].line_of(("metadata", "name")) == 2


def test_yaml_11_scalars_and_merge_keys() -> None:
    result = load_text("base: &b {x: 1}\nobj:\n  <<: *b\n  y: yes\n  t: 2024-01-01\n  n: ~\n", "y.yaml")
    assert result.objects[0].data["obj"] == {"x": 1, "y": True, "t": "2024-01-01", "n": None}


HOSTILE = [
    ("syntax", b"a: [1,\n  b: c: d\n", 2, "YAML syntax error"),
    ("invalid-utf8", b"kind: \xff\xfe\n", 1, "not UTF-8 text"),
    ("nul-byte", b"kind: a\x00b\n", 1, "binary data"),
    ("control-char", b"kind: a\x07b\n", 1, "YAML"),
    ("list-document", b"- a\n- b\n", 1, "document is a list, not a mapping"),
    ("scalar-document", b"hello\n", 1, "document is a plain value"),
    ("deep-nesting", b"a: " + b"[" * 100_000, 1, "nest"),  # our limit, or PyYAML>=6.0.4 refusing first
    ("unknown-alias", b"a: *nope\n", 1, "refers to no complete anchor"),
    ("recursive-alias", b"a: &x [*x]\n", 1, "refers to no complete anchor"),
    ("complex-key", b"? [a]\n: 1\n", 1, "mapping key must be a plain value"),
]


@pytest.mark.parametrize(("data", "line", "fragment"), [c[1:] for c in HOSTILE], ids=[c[0] for c in HOSTILE])
def test_hostile_input_becomes_a_problem(data: bytes, line: int, fragment: str) -> None:
    result = load_bytes(data, "h.yaml")
    assert result.objects == []
    assert len(result.problems) == 1
    problem = result.problems[0]
    assert (problem.line, problem.severity) == (line, "error")
    assert fragment in problem.message


def billion_laughs(levels: int = 12) -> str:
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    previous = "a"
    for level in range(1, levels):
        name = f"l{level}"
        text += f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]\n"
        previous = name
    return text


def test_alias_bomb_is_refused_fast() -> None:
    start = time.monotonic()
    result = load_text(billion_laughs(), "bomb.yaml")
    assert time.monotonic() - start < 2.0
    assert result.objects == []
    assert "aliases expand to more than" in result.problems[0].message


def test_modest_alias_reuse_is_fine() -> None:
    result = load_text("a: &a {x: 1}\nb: [*a, *a, *a]\n", "ok.yaml")
    assert result.problems == []
    assert result.objects[0].data["b"] == [{"x": 1}] * 3


def test_duplicate_key_is_an_error_on_the_object() -> None:
    result = load_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  name: b\n", "d.yaml")
    (obj,) = result.objects
    assert obj.name == "b"
    (finding,) = obj.findings
    assert finding.path == ("metadata", "name")
    assert "first at line 4" in finding.message
    assert obj.line_of(finding.path) == 5


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n---\n", "~\n"], ids=["empty", "comment", "seps", "null"])
def test_empty_input_is_a_warning(text: str) -> None:
    result = load_text(text, "e.yaml")
    assert result.objects == []
    assert [(p.severity, p.message.split(" (")[0]) for p in result.problems] == [("warning", "no objects")]


def test_oversize_file_is_refused_without_reading(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as stream:
        stream.truncate(MAX_FILE_BYTES + 1)
    start = time.monotonic()
    result = load_path(str(big))
    assert time.monotonic() - start < 1.0
    assert "refused (the limit is 8 MiB per file)" in result.problems[0].message


def test_directory_is_read_recursively_in_order(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x.yml").write_text("kind: A\n")
    (tmp_path / "a.json").write_text('{"kind": "B"}')
    (tmp_path / "c.yaml").write_text("kind: C\n")
    (tmp_path / "notes.txt").write_text("kind: D\n")
    (tmp_path / ".hidden.yaml").write_text("kind: E\n")
    result = load_path(str(tmp_path))
    assert [o.kind for o in result.objects] == ["B", "A", "C"]


def test_missing_path(tmp_path: Path) -> None:
    result = load_path(str(tmp_path / "nope.yaml"))
    assert [p.message for p in result.problems] == ["no such file or directory"]


def long_string_bomb(text_bytes: int = 10_000, levels: int = 4) -> str:
    """Few nodes, long text: a string anchored once and aliased 9**levels times (about 65 MB expanded)."""
    text = f'apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: b}}\ndata:\n  a: &a "{"x" * text_bytes}"\n'
    previous = "a"
    for level in range(1, levels + 1):
        text += f"  l{level}: &l{level} [" + ",".join([f"*{previous}"] * 9) + "]\n"
        previous = f"l{level}"
    return text


def test_alias_amplification_is_budgeted_by_expanded_bytes() -> None:
    import tracemalloc

    from rollouts.spec.validation import validate

    text = long_string_bomb()
    assert len(text) < 12_000  # 7,381 expanded nodes: well inside the node budget
    tracemalloc.start()
    try:
        result = load_text(text, "bomb.yaml")
        problems = validate(result)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.objects == []
    (problem,) = problems
    assert (problem.line, problem.severity) == (8, "error")
    assert "aliases expand to more than 100000 nodes or 2 MiB" in problem.message
    assert peak < 16 * 1024 * 1024, f"loading and validating used {peak / 1e6:.0f} MB"


def test_alias_budget_covers_the_whole_file_not_each_document() -> None:
    one = billion_laughs(levels=4)  # 7,380 alias nodes: fine alone
    assert load_text(one, "one.yaml").problems == []
    result = load_text("---\n".join([one] * 20), "many.yaml")
    assert any("aliases expand to more than" in p.message for p in result.problems)
