"""`apply` / `create -f`: a templateName that names no template in the input or the store is an error."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import Result

from tests.cli.fixtures import open_home, rollout

Cli = Callable[..., Result]


def _template(name: str, cluster: bool = False) -> dict[str, Any]:
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "ClusterAnalysisTemplate" if cluster else "AnalysisTemplate",
            "metadata": {"name": name},
            "spec": {"metrics": [{"name": "ok", "count": 1, "provider": {"job": {"spec": {"template": {"spec": {
                "containers": [{"name": "c", "image": "true"}], "restartPolicy": "Never"}}}}}}]}}


def _gated(ref: dict[str, Any], where: str) -> dict[str, Any]:
    analysis = {"templates": [ref]}
    if where == "step":
        return rollout("shop", image="app:1", steps=[{"setWeight": 20}, {"analysis": analysis}])
    if where == "background":
        obj = rollout("shop", image="app:1", steps=[{"setWeight": 20}])
        obj["spec"]["strategy"]["canary"]["analysis"] = analysis
        return obj
    obj = rollout("shop", image="app:1", blue_green=True)
    obj["spec"]["strategy"]["blueGreen"]["prePromotionAnalysis"] = analysis
    return obj


def _write(tmp_path: Path, *objs: dict[str, Any]) -> str:
    path = tmp_path / "input.yaml"
    path.write_text(yaml.safe_dump_all(objs))
    return str(path)


@pytest.mark.parametrize("where, path", [
    ("step", "spec.strategy.canary.steps[1].analysis.templates[0].templateName"),
    ("background", "spec.strategy.canary.analysis.templates[0].templateName"),
    ("pre-promotion", "spec.strategy.blueGreen.prePromotionAnalysis.templates[0].templateName"),
], ids=["step", "background", "blue-green-pre-promotion"])
@pytest.mark.parametrize("verb", ["apply", "create"])
def test_apply_template_name_naming_no_template_is_an_error(
        tmp_path: Path, home: Path, cli: Cli, where: str, path: str, verb: str) -> None:
    result = cli(verb, "-f", _write(tmp_path, _gated({"templateName": "nosuch"}, where)))
    assert result.exit_code == 1
    first = result.stderr.splitlines()[0]
    assert first.startswith(f'error: Rollout/shop: {path}: AnalysisTemplate "nosuch" is neither in the input '
                            'nor in namespace "default"'), result.stderr
    assert result.stderr.endswith("error: 1 problem(s) found; nothing was changed\n")
    with open_home(home) as store:
        assert not store.list("Rollout", "default", field_selector="metadata.name=shop")


@pytest.mark.parametrize("case", ["in-the-input", "in-the-store", "cluster-template-in-the-store"])
def test_apply_template_name_found_in_input_or_store_is_accepted(
        tmp_path: Path, home: Path, cli: Cli, case: str) -> None:
    cluster = case.startswith("cluster")
    ref = {"templateName": "gate", "clusterScope": True} if cluster else {"templateName": "gate"}
    gated = _gated(ref, "step")
    if case == "in-the-input":
        objs = [gated, _template("gate")]
    else:
        with open_home(home) as store:
            store.create({**_template("gate", cluster), "metadata": {"name": "gate",
                                                                     "namespace": "" if cluster else "default"}})
        objs = [gated]
    result = cli("apply", "-f", _write(tmp_path, *objs))
    assert result.exit_code == 0, result.stderr
    assert "rollout/shop created" in result.output


def test_apply_missing_cluster_template_names_the_cluster(tmp_path: Path, cli: Cli) -> None:
    result = cli("apply", "-f", _write(tmp_path, _gated({"templateName": "gate", "clusterScope": True}, "step")))
    assert result.exit_code == 1
    assert 'ClusterAnalysisTemplate "gate" is neither in the input nor in the cluster' in result.stderr
