"""The view model and Argo's `get rollout` layout, from objects written straight into a store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rollouts.views.info import RolloutNotFound, list_rollout_infos, rollout_info
from rollouts.views.tree import render_rollout
from tests.cli.fixtures import NOW, open_home

PAUSED = """\
Name:            echo-rollout
Namespace:       default
Status:          ॥ Paused
Message:         CanaryPauseStep
Strategy:        Canary
  Step:          1/6
  SetWeight:     30
  ActualWeight:  30
Images:          hashicorp/http-echo (canary, stable)
Replicas:
  Desired:       1
  Current:       2
  Updated:       1
  Ready:         2
  Available:     2

NAME                                      KIND        STATUS        AGE    INFO
⟳ echo-rollout                            Rollout     ॥ Paused      2d21h
├──# revision:3
│  └──⧉ echo-rollout-64fb847897           ReplicaSet  ✔ Healthy     2s     canary
│     └──□ echo-rollout-64fb847897-49sg6  Pod         ✔ Running     2s     ready:1/1
├──# revision:2
│  └──⧉ echo-rollout-578bfdb4b8           ReplicaSet  ✔ Healthy     3h5m   stable
│     └──□ echo-rollout-578bfdb4b8-86z6n  Pod         ✔ Running     3h5m   ready:1/1
└──# revision:1
   └──⧉ echo-rollout-948d9c9f9            ReplicaSet  • ScaledDown  2d21h
"""

ABORTED_TREE = """\
⟳ rollout-background-analysis                            Rollout      ✖ Degraded    7d
├──# revision:2
│  ├──⧉ rollout-background-analysis-db976bc44            ReplicaSet   • ScaledDown  7d   canary
│  └──α rollout-background-analysis-db976bc44-2          AnalysisRun  ✖ Failed      7d   ✖ 1
└──# revision:1
   └──⧉ rollout-background-analysis-7d84d44bb8           ReplicaSet   ✔ Healthy     7d   stable
      └──□ rollout-background-analysis-7d84d44bb8-z5wps  Pod          ✔ Running     7d   ready:1/1
"""


def test_paused_canary_matches_argo_layout(home: Path) -> None:
    info = rollout_info(open_home(home), "default", "echo-rollout", NOW)
    assert render_rollout(info, NOW) == PAUSED


def test_aborted_canary_tree_and_header(home: Path) -> None:
    info = rollout_info(open_home(home), "default", "rollout-background-analysis", NOW)
    text = render_rollout(info, NOW)
    assert text.endswith(ABORTED_TREE)
    assert "Status:          ✖ Degraded\n" in text
    assert "  SetWeight:     0\n  ActualWeight:  0\n" in text
    assert info.analysis_runs[0].failed == 1 and info.analysis_runs[0].metrics[0].measurements[0].value == "0.5"


def test_color_only_when_asked(home: Path) -> None:
    info = rollout_info(open_home(home), "default", "echo-rollout", NOW)
    assert "\x1b[" not in render_rollout(info, NOW, color=False)
    colored = render_rollout(info, NOW, color=True)
    assert "\x1b[32m✔ Healthy\x1b[0m" in colored
    # alignment ignores the escapes
    assert [len(line) for line in colored.replace("\x1b[32m", "").replace("\x1b[33m", "").replace(
        "\x1b[90m", "").replace("\x1b[0m", "").splitlines()] == [len(line) for line in PAUSED.splitlines()]


def test_model_is_json_with_argo_field_names(home: Path) -> None:
    info = rollout_info(open_home(home), "default", "echo-rollout", NOW)
    data = json.loads(json.dumps(info.to_dict()))
    assert data["setWeight"] == 30 and data["actualWeight"] == 30 and data["step"] == "1/6"
    rs = data["revisions"][0]["replicaSets"][0]
    assert rs["canary"] is True and rs["stable"] is False and rs["pods"][0]["port"] == 41002
    assert [s["state"] for s in data["steps"]] == ["done", "current", "pending", "pending", "pending", "pending"]
    assert data["events"][0]["reason"] == "RolloutPaused"


def test_list_and_not_found(home: Path) -> None:
    store = open_home(home)
    assert [i.name for i in list_rollout_infos(store, None, NOW)] == ["echo-rollout",
                                                                      "rollout-background-analysis"]
    assert list_rollout_infos(store, "other", NOW) == []
    with pytest.raises(RolloutNotFound, match='rollouts.argoproj.io "x" not found in namespace "default"'):
        rollout_info(store, "default", "x", NOW)


@pytest.mark.parametrize(("seconds", "text"), [(5, "5s"), (119, "119s"), (150, "2m30s"), (600, "10m"),
                                               (11100, "3h5m"), (30 * 3600, "30h"), (69 * 3600, "2d21h"),
                                               (7 * 86400, "7d"), (30 * 86400, "30d")],
                         ids=["s", "under-2m", "m-s", "10m", "h-m", "h", "d-h", "7d", "30d"])
def test_human_duration(seconds: int, text: str) -> None:
    from rollouts.views.ages import human_duration

    assert human_duration(seconds) == text
