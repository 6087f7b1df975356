"""The CLI conventions a kubectl user expects: event order and --sort-by, Argo's verb texts and flags,
ActualWeight/READY as Argo shows them, one-line usage errors, and an Examples section in every --help."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import Result

from tests.cli.fixtures import NOW, Clock, open_home, replica_set, rollout

Cli = Callable[..., Result]


def _events_in_shuffled_order(home: Path) -> list[str]:
    """Six events written out of time order (as a restarted controller may); returns the reasons in
    time order."""
    clock = Clock()
    store = open_home(home, clock)
    minutes = [5, 1, 4, 0, 3, 2]
    for m in minutes:
        clock.now = NOW + timedelta(minutes=m)
        store.record_event({"kind": "Rollout", "namespace": "default", "name": "ordered"}, "Normal",
                           f"Step{m}", f"event at minute {m}")
    store.close()
    return [f"Step{m}" for m in sorted(minutes)]


def _reasons(output: str) -> list[str]:
    return [line.split()[2] for line in output.splitlines()[1:]]


def test_get_events_sorted_by_last_timestamp(home: Path, cli: Cli) -> None:
    expected = _events_in_shuffled_order(home)
    result = cli("get", "events", "--field-selector", "involvedObject.name=ordered")
    assert result.exit_code == 0, result.output
    assert _reasons(result.output) == expected
    as_json = json.loads(cli("get", "events", "--field-selector", "involvedObject.name=ordered", "-o", "json").output)
    assert [e["reason"] for e in as_json["items"]] == expected


def test_get_events_sort_by_creation_timestamp(home: Path, cli: Cli) -> None:
    clock = Clock()
    store = open_home(home, clock)
    ref = {"kind": "Rollout", "namespace": "default", "name": "bumped"}
    clock.now = NOW
    store.record_event(ref, "Normal", "First", "created first, repeated last")
    clock.now = NOW + timedelta(minutes=2)
    store.record_event(ref, "Normal", "First", "created first, repeated last")  # bumps lastTimestamp
    clock.now = NOW + timedelta(minutes=1)
    store.record_event(ref, "Warning", "Second", "created second")
    store.close()
    selector = ("--field-selector", "involvedObject.name=bumped")
    assert _reasons(cli("get", "events", *selector).output) == ["Second", "First"]
    assert _reasons(cli("get", "events", *selector, "--sort-by=.lastTimestamp").output) == ["Second", "First"]
    for form in (".metadata.creationTimestamp", "{.metadata.creationTimestamp}"):
        assert _reasons(cli("get", "events", *selector, f"--sort-by={form}").output) == ["First", "Second"]


def test_get_sort_by_rejects_what_is_not_a_field_path(cli: Cli) -> None:
    result = cli("get", "events", "--sort-by", "last timestamp")
    assert result.exit_code == 1
    assert result.stderr.startswith('error: --sort-by: "last timestamp" is not a field path')


def _inconclusive_blue_green(home: Path, which: str) -> None:
    store = open_home(home, Clock())
    if not store.list("Rollout", "default", field_selector="metadata.name=bg"):
        store.create(rollout("bg", image="app:2", blue_green=True))
    run_status = {"name": "bg-5d4f-2-pre", "status": "Inconclusive"}
    status: dict[str, Any] = {
        "phase": "Paused", "currentPodHash": "5d4f", "stableRS": "4c3e",
        "pauseConditions": [{"reason": "InconclusiveAnalysisRun", "startTime": "2024-05-01T11:59:00Z"}],
        "blueGreen": {"activeSelector": "4c3e", "previewSelector": "5d4f",
                      f"{which}AnalysisRunStatus": run_status},
    }
    store.patch("Rollout", "default", "bg", {"status": status}, subresource="status")
    store.close()


@pytest.mark.parametrize("which, text", [("prePromotion", "pre-promotion"), ("postPromotion", "post-promotion")],
                         ids=["pre-promotion", "post-promotion"])
def test_promote_inconclusive_blue_green_says_a_new_analysis_run_starts(
        home: Path, cli: Cli, which: str, text: str) -> None:
    _inconclusive_blue_green(home, which)
    result = cli("promote", "bg")
    assert result.exit_code == 0, result.output
    assert result.output == f"rollout 'bg' promoted: a new {text} analysis run starts; use --full to skip it\n"
    # --full does skip it, so it says nothing of the kind.
    _inconclusive_blue_green(home, which)
    assert cli("promote", "bg", "--full").output == "rollout 'bg' fully promoted\n"


def test_promote_of_a_plain_pause_keeps_argo_text(cli: Cli) -> None:
    assert cli("promote", "echo-rollout").output == "rollout 'echo-rollout' promoted\n"


def _store_rollout(home: Path, obj: dict[str, Any], status: dict[str, Any],
                   replica_sets: list[dict[str, Any]] | None = None) -> None:
    store = open_home(home, Clock())
    store.create(obj)
    for rs in replica_sets or []:
        store.create(rs)
    store.patch("Rollout", "default", obj["metadata"]["name"], {"status": status}, subresource="status")
    store.close()


COMPLETED = {"phase": "Healthy", "currentStepIndex": 2, "stableRS": "abc123", "currentPodHash": "abc123",
             "replicas": 3, "updatedReplicas": 3, "readyReplicas": 2, "availableReplicas": 2,
             "canary": {"weights": {"canary": {"weight": 0}, "stable": {"weight": 100}}}}


@pytest.mark.parametrize("steps, status", [
    ([{"setWeight": 20}, {"pause": {}}], COMPLETED),
    ([], {**COMPLETED, "currentStepIndex": None, "canary": {}}),
], ids=["all-steps-done-traffic-routed", "no-steps"])
def test_completed_canary_shows_actual_weight_100_and_ready_of_current(
        home: Path, cli: Cli, steps: list[dict[str, Any]], status: dict[str, Any]) -> None:
    rs = replica_set("done", "abc123", 1, image="app:1", replicas=3, available=2)
    _store_rollout(home, rollout("done", image="app:1", steps=steps, replicas=4), status, [rs])
    tree = cli("get", "rollout", "done", "--no-color").output
    assert "  ActualWeight:  100" in tree, tree
    row = next(line.split() for line in cli("list", "rollouts").output.splitlines() if line.startswith("done "))
    assert row[5:7] == ["2/3", "4"]  # READY is ready/current (status.replicas), then DESIRED
    from rollouts.views.info import rollout_info

    with open_home(home) as store:
        shared = rollout_info(store, "default", "done", NOW).to_dict()
    assert (shared["actualWeight"], shared["ready"], shared["current"]) == (100, 2, 3)


def test_actual_weight_of_a_canary_in_progress_is_unchanged(cli: Cli) -> None:
    assert "  ActualWeight:  30" in cli("get", "rollout", "echo-rollout", "--no-color").output


# --- item 13: flags, texts, errors, help -------------------------------------------------------------


def test_watch_false_is_accepted_as_argo_plugin_spells_it(cli: Cli) -> None:
    result = cli("get", "rollout", "echo-rollout", "--watch=false", "--no-color")
    assert result.exit_code == 0, result.stderr
    assert result.output.startswith("Name:            echo-rollout")
    assert cli("status", "echo-rollout", "--watch=false").output == "Paused - CanaryPauseStep\n"
    short = cli("list", "rollouts", "-w=false")  # pflag takes the shorthand with a value too
    assert short.exit_code == 0 and short.output.splitlines()[0].startswith("NAME"), short.stderr
    assert cli("status", "echo-rollout", "--no-watch=true").output == "Paused - CanaryPauseStep\n"
    assert cli("get", "rollout", "echo-rollout", "--watch=maybe").exit_code == 2  # not a boolean: a usage error


def test_list_timestamps_prefix_every_line(cli: Cli) -> None:
    lines = cli("list", "rollouts", "--timestamps").output.splitlines()
    assert lines[0].split()[:2] == ["TIMESTAMP", "NAME"]
    stamp = lines[1].split()[0]
    assert len(stamp) == 20 and stamp.endswith("Z") and stamp[10] == "T"


def test_promote_skip_all_steps_jumps_past_the_last_step(home: Path, cli: Cli) -> None:
    result = cli("promote", "echo-rollout", "--skip-all-steps")
    assert result.output == "rollout 'echo-rollout' promoted\n"
    with open_home(home) as store:
        assert store.get("Rollout", "default", "echo-rollout")["status"]["currentStepIndex"] == 6
    both = cli("promote", "echo-rollout", "-a", "-c")
    assert both.exit_code == 1
    assert both.stderr == "error: Cannot use skip-current-step and skip-all-steps flags at the same time\n"


def test_lint_f_takes_several_files(tmp_path: Path, cli: Cli) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(json.dumps(rollout("one", image="app:1", steps=[{"setWeight": 50}])))
    b.write_text(json.dumps(rollout("two", image="app:1", steps=[{"setWeight": 50}])))
    result = cli("lint", "-f", str(a), str(b))
    assert result.exit_code == 0, result.output
    assert "Rollout/one: ok" in result.output and "Rollout/two: ok" in result.output


def test_retry_prints_retried(cli: Cli) -> None:
    assert cli("retry", "rollout", "rollout-background-analysis").output == \
        "rollout 'rollout-background-analysis' retried\n"


def test_resume_on_a_running_rollout_says_nothing_to_resume(home: Path, cli: Cli) -> None:
    _store_rollout(home, rollout("running", image="app:1", steps=[{"setWeight": 50}, {"pause": {}}]),
                   {"phase": "Progressing", "currentStepIndex": 0})
    assert cli("resume", "running").output == "rollout 'running' is not paused: nothing to resume\n"
    assert cli("resume", "echo-rollout").output == "rollout 'echo-rollout' resumed\n"


def test_set_image_prints_argo_text(cli: Cli) -> None:
    assert cli("set", "image", "echo-rollout", "*=app:9").output == 'rollout "echo-rollout" image updated\n'


@pytest.mark.parametrize("args, usage", [
    (["get", "--bogus"], "Usage: rollouts get [OPTIONS] {kind} [name]"),
    (["get"], "Usage: rollouts get [OPTIONS] {kind} [name]"),
    (["promote", "x", "--replicas", "3"], "Usage: rollouts promote [OPTIONS] {name}"),
    (["scale", "rollout", "x", "--replicas", "many"], "Usage: rollouts scale [OPTIONS] {kind} [name]"),
    (["nosuchverb"], "Usage: rollouts [OPTIONS] COMMAND [ARGS]..."),
], ids=["unknown-flag", "missing-argument", "flag-of-another-verb", "bad-value", "unknown-verb"])
def test_usage_errors_are_one_line_and_the_usage(cli: Cli, args: list[str], usage: str) -> None:
    result = cli(*args)
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: ") and lines[1] == usage, result.stderr
    assert not any(ch in result.stderr for ch in "╭│╰─")


def _every_command() -> list[tuple[str, ...]]:
    import typer

    from rollouts.cli import commands  # noqa: F401
    from rollouts.cli.conventions import walk
    from rollouts.cli.main import app

    return [path for path, _ in walk(typer.main.get_command(app))]


@pytest.mark.parametrize("path", _every_command(), ids=lambda p: " ".join(p) or "rollouts")
def test_every_help_has_an_examples_section(cli: Cli, path: tuple[str, ...]) -> None:
    result = cli(*path, "--help")
    assert result.exit_code == 0, result.output
    text = result.output
    assert "\n  Examples:\n" in text, text
    examples = text.split("\n  Examples:\n", 1)[1].splitlines()
    commands = [line.strip() for line in examples if line.strip() and not line.strip().startswith("#")]
    assert commands and all(c.startswith("rollouts ") or c.startswith("cat ") for c in commands), examples
    assert not any(ch in text for ch in "╭│╰")


def test_promote_inconclusive_blue_green_message_matches_the_engine() -> None:
    """What the message says is what the engine does: after promote, the Inconclusive pre-promotion run is
    replaced by a new one (Argo's semantics) and the switch waits for it."""
    from rollouts.engine import intents
    from tests.engine.builders import deployed, update
    from tests.engine.builders import rollout as engine_rollout

    analysis = {"templates": [{"templateName": "success-rate"}]}
    w = deployed(engine_rollout(replicas=1, blue_green={"activeService": "active", "previewService": "preview",
                                                        "prePromotionAnalysis": analysis}),
                 outcome=lambda run, elapsed: "Inconclusive")
    update(w)
    assert w.run(until=lambda x: x.phase == "Paused", max_seconds=600)
    status = w.rollout.status
    assert status is not None and status.blue_green is not None
    first = status.blue_green.pre_promotion_analysis_run_status
    assert first is not None and first.status == "Inconclusive"
    w.patch(intents.promote(w.rollout))

    def new_run(x: Any) -> bool:
        s = x.rollout.status
        run = s.blue_green.pre_promotion_analysis_run_status if s and s.blue_green else None
        return run is not None and run.name != first.name

    assert w.run(until=new_run, max_seconds=120)
    assert w.rollout.status.blue_green.active_selector != w.rollout.status.current_pod_hash  # not switched
