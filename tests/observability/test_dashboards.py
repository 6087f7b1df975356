"""The Grafana dashboards in deploy/grafana: importable JSON, queries that Prometheus parses (promtool), and
only metric names the controller or the ingress proxy export."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from tests.conftest import REPO, require_tool

from rollouts.cluster.store import SQLiteStore
from rollouts.controller.metrics import ControllerMetrics
from rollouts.demo.http_metrics import RequestMetrics as AppRequestMetrics
from rollouts.runtime.local.proxy import IngressProxy

GRAFANA = REPO / "deploy" / "grafana"
DASHBOARDS = sorted(GRAFANA.glob("*.json"))
EXPECTED = {
    "rollouts-overview.json": "Argo Rollouts Overview",
    "service-slo.json": "Service SLO",
    "release-timeline.json": "Release Timeline",
}

# The series each dashboard is about, per the runbook's list of what it shows.
REQUIRED_METRICS = {
    "rollouts-overview.json": {"rollout_info", "rollout_events_total", "analysis_run_info",
                               "argo_rollouts_analysis_run_phase", "argo_rollouts_analysis_run_current",
                               "argo_rollouts_rollout_phase"},
    "service-slo.json": {"http_requests_total", "http_request_duration_seconds_bucket"},
    "release-timeline.json": {"rollout_events_total", "rollout_duration_seconds_bucket",
                              "rollout_phase_duration_seconds"},
}

# What Grafana puts in place of its variables, for checking the queries outside Grafana.
BUILTIN_VARIABLES = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h"}
SAMPLE_VALUES = {"namespace": ".*", "service": "shop", "slo": "0.995"}

PROMQL_WORDS = frozenset({
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset",
    "inf", "nan", "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
    "count_values", "group",
})
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$([A-Za-z_]\w*)")


def _load(path: Path) -> dict[str, Any]:
    board = json.loads(path.read_text())
    assert isinstance(board, dict)
    return board


def _panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])  # panels inside collapsed rows


def _queries(board: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every panel target and annotation query."""
    for panel in _panels(board):
        for target in panel.get("targets", []):
            yield f"panel {panel['id']} {panel['title']!r} target {target['refId']}", target["expr"]
    for annotation in board["annotations"]["list"]:
        if "expr" in annotation:
            yield f"annotation {annotation['name']!r}", annotation["expr"]


def _variables(board: dict[str, Any]) -> set[str]:
    return {v["name"] for v in board["templating"]["list"]}


def substitute(expr: str, variables: set[str]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name in BUILTIN_VARIABLES:
            return BUILTIN_VARIABLES[name]
        assert name in variables, f"${name} is not a template variable of the dashboard ({sorted(variables)})"
        return SAMPLE_VALUES[name]

    return _VARIABLE.sub(one, expr)


def metric_names(expr: str) -> set[str]:
    """Series names a PromQL expression selects: identifiers before `{` or `[` or bare, minus the language."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals (label values, label_replace args)
    text = re.sub(r"\{[^}]*\}", "{}", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "[]", text)  # ranges and subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)  # label lists
    names = set()
    for match in re.finditer(r"(?<![\w.:])([A-Za-z_:][\w:]*)(?=\s*(\(?))", text):
        name, paren = match.group(1), match.group(2)
        if paren == "(" or name.lower() in PROMQL_WORDS:
            continue  # a function call or a keyword
        names.add(name)
    return names


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (le) (rate(x_bucket{a="b{c}"}[5m]))', {"x_bucket"}),
        ('label_replace(increase(a[1h]), "name", "$1", "rollout", "(.*)") / on (name) b', {"a", "b"}),
        ("count(up) or vector(0)", {"up"}),
        ("histogram_quantile(0.95, sum without (pod) (rate(h_bucket[5m:1m])))", {"h_bucket"}),
        ('max by (version) (info{phase=~"Progressing|Paused"}) > bool 1', {"info"}),
    ],
    ids=["matchers-and-ranges", "strings-and-on", "bare-and-function", "subquery", "bool"],
)
def test_metric_names_are_parsed_out_of_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Every series name the controller's /metrics and the ingress proxy's /metrics can show."""
    store = SQLiteStore(tmp_path_factory.mktemp("metrics") / "db.sqlite")
    try:
        return exported_names(store)
    finally:
        store.close()


def exported_names(store: SQLiteStore) -> set[str]:
    names: set[str] = set()
    for family in ControllerMetrics(store).collect():
        names.add(family.name)
        if family.type == "histogram":
            names |= {f"{family.name}_bucket", f"{family.name}_sum", f"{family.name}_count"}
    proxy = IngressProxy(None)  # type: ignore[arg-type]  # only its metrics are read
    # The application's own request series (what the dashboards chart) and the proxy's.
    app = AppRequestMetrics("shop")
    text = app.render().decode() + proxy.render_metrics().decode()
    for family in text_string_to_metric_families(text):
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names |= {f"{family.name}_bucket", f"{family.name}_sum", f"{family.name}_count"}
        else:
            names.add(family.name)
    return names


def test_the_three_runbook_dashboards_exist() -> None:
    assert {p.name: _load(p)["title"] for p in DASHBOARDS} == EXPECTED


def test_exported_names_include_the_series_the_dashboards_are_about(exported: set[str]) -> None:
    for name in ("rollout_info", "rollout_events_total", "rollout_phase_duration_seconds",
                 "argo_rollouts_analysis_run_phase", "argo_rollouts_analysis_run_current", "argo_rollouts_rollout_phase",
                 "rollout_duration_seconds_bucket", "http_requests_total",
                 "http_request_duration_seconds_bucket", "notification_send_error"):
        assert name in exported


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_is_importable_json(path: Path) -> None:
    board = _load(path)
    for key in ("title", "uid", "panels", "schemaVersion", "templating", "time", "annotations"):
        assert key in board, f"{path.name}: missing {key}"
    assert 36 <= board["schemaVersion"] <= 41
    assert board["id"] is None
    assert re.fullmatch(r"[a-z0-9-]{1,40}", board["uid"])
    datasource = [v for v in board["templating"]["list"] if v["type"] == "datasource"]
    assert [(v["name"], v["query"]) for v in datasource] == [("DS_PROMETHEUS", "prometheus")]
    ids = [p["id"] for p in _panels(board)]
    assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
    occupied: set[tuple[int, int]] = set()
    for panel in _panels(board):
        grid = panel["gridPos"]
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                 for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not cells & occupied, f"{path.name}: panel {panel['title']!r} overlaps another"
        occupied |= cells
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
            assert panel["targets"], f"{panel['title']!r} has no query"
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "${DS_PROMETHEUS}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_query_parses_with_promtool(path: Path, tmp_path: Path) -> None:
    promtool = require_tool("promtool", "apt-get install prometheus")
    board = _load(path)
    variables = _variables(board)
    queries = list(_queries(board))
    for var in board["templating"]["list"]:
        if var["type"] == "query":
            found = re.fullmatch(r"label_values\((.+), *\w+\)", var["query"]["query"])
            assert found, var["query"]
            queries.append((f"variable {var['name']}", found.group(1)))
    rules = {"groups": [{"name": path.stem, "rules": [
        {"record": f"dashboard:query:{i}", "expr": substitute(expr, variables)} for i, (_, expr) in enumerate(queries)
    ]}]}
    rules_file = tmp_path / "queries.yaml"
    rules_file.write_text(yaml.safe_dump(rules, sort_keys=False))
    result = subprocess.run([promtool, "check", "rules", str(rules_file)], capture_output=True, text=True,
                            timeout=60)
    where = "\n".join(f"  {i}: {w}" for i, (w, _) in enumerate(queries))
    assert result.returncode == 0, f"{result.stdout}{result.stderr}\nrule index -> query:\n{where}"


def test_promtool_rejects_a_broken_query(tmp_path: Path) -> None:
    promtool = require_tool("promtool", "apt-get install prometheus")
    rules_file = tmp_path / "bad.yaml"
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [
        {"record": "dashboard:query:0", "expr": "sum(rate(x[5m]) by"}]}]}))
    result = subprocess.run([promtool, "check", "rules", str(rules_file)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_queries_use_only_exported_metrics(path: Path, exported: set[str]) -> None:
    board = _load(path)
    unknown = {}
    used: set[str] = set()
    variables = _variables(board)
    for where, expr in _queries(board):
        names = metric_names(substitute(expr, variables))
        assert names, f"{where}: no metric in {expr!r}"
        used |= names
        if names - exported:
            unknown[where] = sorted(names - exported)
    assert not unknown, unknown
    assert REQUIRED_METRICS[path.name] <= used
