"""Fuzzing, a small seeded batch of each family: the condition language (grammar-driven and random input),
manifests through `rollouts lint`, `rollouts apply` and raw HTTP to the API server, hostile patches, and the
operator's pass over what was stored (bench/fuzz.py runs the same families at the issue's counts)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from rollouts.analysis.expr import ExprError, compile_expr, evaluate_condition
from tests.cluster.conftest import Cluster, start_cluster

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from fuzzlib.expressions import expression_sources, grammar_expressions, results  # noqa: E402

FUZZ = BENCH / "fuzz.py"
LINE = re.compile(r"^(\w+)\s+cases=(\d+) refused=\d+ accepted=\d+ crashes=(\d+) hangs=(\d+)", re.MULTILINE)
OPERATOR = re.compile(r"^operator\s+stored_objects=(\d+) reconciled=\d+ unreadable=(\d+) reconcile_failures=(\d+) "
                      r"escaped=(\d+)", re.MULTILINE)
SEEDED = settings(max_examples=300, derandomize=True, database=None, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def warm_parser() -> None:
    compile_expr("result == 1")  # the grammar's parser tables are built on first use (seconds on a busy host)


@SEEDED
@given(source=expression_sources(), result=results())
def test_condition_language_fuzz_inputs_end_in_a_value_or_an_expr_error(warm_parser: None, source: str,
                                                                        result: Any) -> None:
    started = time.monotonic()
    try:
        evaluate_condition(source, result)
    except ExprError:
        pass
    assert time.monotonic() - started < 1.0, source


def test_grammar_strategy_generates_mostly_parseable_conditions() -> None:
    """The strategy follows expr.lark: most of what it builds parses (the rest reaches the error paths)."""
    sources: list[str] = []

    @SEEDED
    @given(grammar_expressions())
    def collect(source: str) -> None:
        sources.append(source)

    collect()
    parsed = 0
    for source in sources:
        try:
            compile_expr(source)
            parsed += 1
        except ExprError as exc:
            parsed += "syntax error" not in str(exc)  # parsed, refused later (arity, unknown name)
    assert parsed >= 0.75 * len(sources), (parsed, len(sources))


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    found, stop = start_cluster(tmp_path_factory.mktemp("fuzz-api"))
    yield found
    stop()


YAML_BODIES = {
    "5000-keys": (b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: long\ndata:\n"
                  + b"".join(b"  k%d: v\n" % i for i in range(5000)), 201),
    "5000-item-list": (b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: list\ndata:\n"
                       + b"".join(b"- %d\n" % i for i in range(5000)), 422),
    "200000-deep": (b"a: " + b"[" * 200_000 + b"]" * 200_000, 400),
    "two-documents": (b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: two}\n---\nkind: ConfigMap\n", 400),
    "alias": (b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {x: &x v, y: *x}\n", 400),
}


@pytest.mark.parametrize("name", sorted(YAML_BODIES))
def test_yaml_request_body_is_decoded_in_well_under_a_second_of_cpu(name: str) -> None:
    """PyYAML's pure-Python loader spent ~2 s of CPU on the 34 KB list, on the server's event loop; the
    manifest loader's composer takes ~0.2 s. CPU time of this thread, so a busy host does not decide."""
    from rollouts.cluster.apiserver.bodies import decode_yaml
    from rollouts.cluster.apiserver.errors import ApiError

    body, _ = YAML_BODIES[name]
    started = time.thread_time()
    try:
        decode_yaml(body)
    except ApiError:
        pass
    assert time.thread_time() - started < 0.8


@pytest.mark.parametrize("name", sorted(YAML_BODIES))
def test_yaml_request_body_is_stored_or_refused_with_a_4xx(api: Cluster, name: str) -> None:
    body, status = YAML_BODIES[name]
    with api.http() as http:
        answer = http.post("/api/v1/namespaces/default/configmaps", content=body,
                           headers={"Content-Type": "application/yaml"})
    assert answer.status_code == status, answer.text[:300]


def test_seeded_fuzz_batch_has_no_crashes_hangs_or_wedged_objects(shared: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(FUZZ), "--seed", "20", "--expressions", "150", "--manifests", "10", "--patches", "22",
         "--timeout", "5", "--examples", str(shared / "argo-examples")],
        capture_output=True, text=True, timeout=300,
    )
    counts = {family: (int(cases), int(crashes), int(hangs)) for family, cases, crashes, hangs
              in LINE.findall(proc.stdout)}
    assert counts == {"expression": (150, 0, 0), "lint": (10, 0, 0), "apply": (10, 0, 0), "http": (10, 0, 0),
                      "patch": (22, 0, 0)}, proc.stdout[-4000:] + proc.stderr[-2000:]
    [(stored, unreadable, failed, escaped)] = OPERATOR.findall(proc.stdout)
    assert int(stored) > 0 and (unreadable, failed, escaped) == ("0", "0", "0"), proc.stdout[-4000:]
    assert proc.returncode == 0


@pytest.mark.parametrize("duration", ["1" * 400, "-" + "1" * 400, "'" + "9" * 400 + "'"],
                         ids=["int-past-float", "negative-int-past-float", "digit-string-past-float"])
def test_pause_duration_past_float_range_is_a_clean_lint_error(duration: str) -> None:
    """Found by the fuzzer: an integer duration of 400 digits was an "internal error" (OverflowError)."""
    from rollouts.spec.loader import load_bytes
    from rollouts.spec.validation import validate_objects

    manifest = ("apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata: {name: r}\nspec:\n  replicas: 1\n"
                "  selector: {matchLabels: {app: a}}\n"
                "  template: {metadata: {labels: {app: a}}, spec: {containers: [{name: a, image: a}]}}\n"
                f"  strategy:\n    canary:\n      steps:\n      - pause: {{duration: {duration}}}\n")
    [checked] = validate_objects(load_bytes(manifest.encode(), "r.yaml").objects)
    messages = [p.message for p in checked.problems if p.is_error]
    assert messages and not any("internal error" in m for m in messages), messages
