"""Type confusion and hostile values in otherwise well-formed manifests: each ends in clean, located problem
lines (never an internal error), quickly; and the input rules `apply` and `patch` share (label keys,
owner references, NUL characters)."""

from __future__ import annotations

import copy
import io
import json
import time
from pathlib import Path
from typing import Any

import pytest

from rollouts.cli.lint_report import run_lint
from tests.spec.helpers import ROLLOUT


def lint_doc(tmp_path: Path, doc: Any, *, as_json: bool = True) -> tuple[int, list[str], float]:
    path = tmp_path / "m.yaml"
    path.write_text(json.dumps(doc) if as_json else doc)
    out = io.StringIO()
    start = time.monotonic()
    code = run_lint([str(path)], "text", out)
    return code, out.getvalue().splitlines(), time.monotonic() - start


def rollout_with(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(ROLLOUT)
    node = doc
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return doc


TYPE_CONFUSION = [
    ("kind-list", ("kind",), [], "kind: must be a string such as Rollout (got a list)"),
    ("kind-mapping", ("kind",), {}, "kind: must be a string such as Rollout (got a mapping)"),
    ("kind-number", ("kind",), 3, "kind: must be a string such as Rollout (got 3)"),
    ("kind-bool", ("kind",), True, "kind: must be a string such as Rollout (got true)"),
    ("kind-null", ("kind",), None, "kind: required (a string such as Rollout)"),
    ("api-version-list", ("apiVersion",), ["x"], "apiVersion: must be a string such as argoproj.io/v1alpha1"),
    ("metadata-list", ("metadata",), [], "metadata: must be a mapping"),
    ("name-list", ("metadata", "name"), [], "metadata.name: must be a string"),
    ("labels-string", ("metadata", "labels"), "x", "metadata.labels: must be a mapping"),
    ("spec-number", ("spec",), 7, "spec: must be a mapping"),
    ("pause-blank", ("spec", "strategy", "canary", "steps", 1, "pause", "duration"), "\t", "is not a duration"),
    ("pause-sign", ("spec", "strategy", "canary", "steps", 1, "pause", "duration"), "-", "is not a duration"),
]


@pytest.mark.parametrize(("path", "value", "fragment"), [c[1:] for c in TYPE_CONFUSION],
                         ids=[c[0] for c in TYPE_CONFUSION])
def test_type_confusion_ends_in_a_clean_problem_line(tmp_path: Path, path: tuple[Any, ...], value: Any,
                                                     fragment: str) -> None:
    code, lines, seconds = lint_doc(tmp_path, rollout_with(path, value))
    assert code == 1
    assert any(fragment in line for line in lines), lines
    assert not any("internal error" in line for line in lines), lines
    assert all(line.startswith(str(tmp_path / "m.yaml")) for line in lines)
    assert seconds < 1.0


def test_blank_analysis_interval_is_a_problem_not_an_internal_error(tmp_path: Path) -> None:
    template = {"apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisTemplate", "metadata": {"name": "t"},
                "spec": {"metrics": [{"name": "m", "interval": "\t", "count": 2,
                                      "provider": {"job": {"spec": {"template": {"spec": {"containers": []}}}}}}]}}
    code, lines, _ = lint_doc(tmp_path, template)
    assert code == 1
    assert any("spec.metrics[0].interval" in line for line in lines), lines
    assert not any("internal error" in line for line in lines), lines


INPUT_RULES = [
    ("label-key", ("metadata", "labels"), {"bad key!": "v"},
     'metadata.labels.bad key!: "bad key!" is not a valid label key'),
    ("label-key-long", ("metadata", "labels"), {"k" * 64: "v"}, "the name is 64 characters (at most 63)"),
    ("label-prefix", ("metadata", "labels"), {"Bad_Prefix/x": "v"}, 'the prefix "Bad_Prefix" is not a DNS'),
    ("label-value", ("metadata", "labels"), {"app": "-v-"}, 'metadata.labels.app: label value "-v-" must be'),
    ("template-label-key", ("spec", "template", "metadata", "labels"), {"app": "app", "/x": "y"},
     "spec.template.metadata.labels./x"),
    ("annotation-key", ("metadata", "annotations"), {"a b": "v"}, '"a b" is not a valid annotation key'),
    ("owner-service", ("metadata", "ownerReferences"),
     [{"apiVersion": "v1", "kind": "Service", "name": "svc", "uid": "u-1"}],
     "metadata.ownerReferences[0].kind: a Service cannot own objects here (owners are Rollout and Experiment"),
    ("owner-without-uid", ("metadata", "ownerReferences"),
     [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "r"}],
     "metadata.ownerReferences[0].uid: required"),
    ("nul-image", ("spec", "template", "spec", "containers", 0, "image"), "app\x00:1",
     "spec.template.spec.containers[0].image: contains a NUL character"),
    ("nul-env", ("spec", "template", "spec", "containers", 0, "env"), [{"name": "A", "value": "x\x00y"}],
     "spec.template.spec.containers[0].env[0].value: contains a NUL character"),
]


@pytest.mark.parametrize(("path", "value", "fragment"), [c[1:] for c in INPUT_RULES],
                         ids=[c[0] for c in INPUT_RULES])
def test_input_rules_refuse_what_kubernetes_refuses(tmp_path: Path, path: tuple[Any, ...], value: Any,
                                                    fragment: str) -> None:
    code, lines, _ = lint_doc(tmp_path, rollout_with(path, value))
    assert code == 1
    assert any(fragment in line for line in lines), lines


def test_nul_escape_in_yaml_text_is_located(tmp_path: Path) -> None:
    text = json.dumps(ROLLOUT, indent=1).replace('"app:1"', '"app\\u0000:1"')
    image_line = next(n for n, line in enumerate(text.splitlines(), 1) if "u0000" in line)
    code, lines, _ = lint_doc(tmp_path, text, as_json=False)
    assert code == 1
    (line,) = [line for line in lines if "NUL" in line]
    assert line.startswith(f"{tmp_path / 'm.yaml'}:{image_line}: Rollout/app: spec.template.spec.containers[0].image")


def test_valid_labels_owners_and_prefixes_pass(tmp_path: Path) -> None:
    doc = rollout_with(("metadata", "labels"), {"app.kubernetes.io/name": "app", "tier": "", "a_b.c-d": "X.y_z"})
    doc["metadata"]["annotations"] = {"example.com/note": "any text: even spaces!"}
    doc["metadata"]["ownerReferences"] = [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Experiment",
                                          "name": "e", "uid": "u-1"}]
    code, lines, _ = lint_doc(tmp_path, doc)
    assert code == 0, lines
    assert lines[0].endswith("Rollout/app: ok")


def test_rules_still_run_when_a_list_item_lacks_a_required_field(tmp_path: Path) -> None:
    doc = rollout_with(("spec", "template", "spec", "containers", 0, "ports"), [{"containerPort": "x"}])
    doc["spec"]["strategy"]["canary"]["steps"] = [{"setWeight": 140}]
    code, lines, _ = lint_doc(tmp_path, doc)
    assert code == 1
    assert any("containers[0].ports[0].containerPort: must be an integer (got \"x\")" in line for line in lines)
    # the port item emptied is still invalid (containerPort is required): the rest of the object is checked
    assert any("steps[0].setWeight: 140 is not between 0 and 100" in line for line in lines), lines


MANY = [
    ("unknown-field-steps", ("spec", "strategy", "canary", "steps"), [{"setWeigth": 1}] * 20_000,
     "more problem(s) in this object not listed (the first 100 are)"),
    ("wrong-item-ports", ("spec", "template", "spec", "containers", 0, "ports"), list(range(20_000)),
     "schema errors in this object; the first 500 are described"),
]


@pytest.mark.parametrize(("path", "value", "fragment"), [c[1:] for c in MANY], ids=[c[0] for c in MANY])
def test_thousands_of_problems_in_one_object_are_capped_and_quick(tmp_path: Path, path: tuple[Any, ...],
                                                                  value: Any, fragment: str) -> None:
    code, lines, seconds = lint_doc(tmp_path, rollout_with(path, value))
    assert code == 1
    assert len(lines) <= 101
    assert any(fragment in line for line in lines), lines[-3:]
    assert seconds < 5.0  # was minutes: each finding was compared with every removed part
