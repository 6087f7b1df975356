"""Notifications: Argo's subscription annotations and triggers, settings from a ConfigMap and Secret, and
delivery to real HTTP receivers on 127.0.0.1, including one that fails and one that hangs."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.providers.conftest import Reply, ScriptedServer, scripted_server

from rollouts.cluster.store import SQLiteStore
from rollouts.controller.loop import Controller
from rollouts.controller.notifications import Notifier
from rollouts.controller.notifications_config import (
    NotificationConfigError,
    Subscription,
    parse_config,
    parse_documents,
    render,
    subscriptions,
    trigger_for,
)
from rollouts.demo.releases import rollout

SECRET_TOKEN = "s3cr3t-token-value"
SLACK_PATH = "/services/T000/B000/XXXXSECRETPATH"


@pytest.mark.parametrize(
    ("reason", "trigger"),
    [
        ("RolloutUpdated", "on-rollout-updated"),
        ("RolloutStepCompleted", "on-rollout-step-completed"),
        ("RolloutPaused", "on-rollout-paused"),
        ("RolloutAborted", "on-rollout-aborted"),
        ("RolloutCompleted", "on-rollout-completed"),
        ("AnalysisRunFailed", "on-analysis-run-failed"),
        ("AnalysisRunError", "on-analysis-run-error"),
        ("ScalingReplicaSet", "on-scaling-replica-set"),
    ],
    ids=lambda v: str(v),
)
def test_event_reason_maps_to_argo_trigger(reason: str, trigger: str) -> None:
    assert trigger_for(reason) == trigger


def test_subscriptions_are_read_from_annotations() -> None:
    found = subscriptions({
        "notifications.argoproj.io/subscribe.on-rollout-aborted.slack": "team-a; team-b",
        "notifications.argoproj.io/subscribe.on-rollout-completed.hook": "",
        "rollout.argoproj.io/revision": "3",
    })
    assert found == [
        Subscription("on-rollout-aborted", "slack", ("team-a", "team-b")),
        Subscription("on-rollout-completed", "hook", ()),
    ]


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{rollout} r{revision}", "web r7"),
        ("$rollout/${namespace}", "web/prod"),
        ("{{.rollout.metadata.name}} {{.rollout.spec.strategy.canary.steps.1.pause}}", "web {}"),
        ("{unknown} $other {{.rollout.nope}}", "{unknown} $other {{.rollout.nope}}"),
        ("{rollout.__class__} {0}", "{rollout.__class__} {0}"),
    ],
    ids=["format-fields", "template-fields", "argo-paths", "unknown-kept", "no-attribute-access"],
)
def test_render_only_looks_values_up(template: str, expected: str) -> None:
    rollout = {"metadata": {"name": "web"}, "spec": {"strategy": {"canary": {"steps": [{"setWeight": 5},
                                                                                       {"pause": {}}]}}}}
    assert render(template, {"rollout": "web", "revision": 7, "namespace": "prod"}, {"rollout": rollout}) == expected


def test_config_resolves_secret_references_and_redacts_them() -> None:
    data = {
        "service.webhook.hook": "url: http://127.0.0.1:1/x\nheaders:\n- name: Authorization\n  value: Bearer $tok\n",
        "service.slack": "url: $slack-url\nusername: rollouts\n",
        "template.on-rollout-aborted": "message: '{rollout} aborted'\n",
        "trigger.on-rollout-paused": "- send: [custom]\n",
    }
    secrets = {"tok": SECRET_TOKEN, "slack-url": "http://127.0.0.1:1" + SLACK_PATH}
    config = parse_config(data, secrets.get)
    assert config.services["hook"].headers == (("Authorization", f"Bearer {SECRET_TOKEN}"),)
    assert config.services["slack"].url.endswith(SLACK_PATH)
    assert config.templates["on-rollout-aborted"].message == "{rollout} aborted"
    assert config.triggers["on-rollout-paused"] == ("custom",)
    assert config.redact(f"failed with Bearer {SECRET_TOKEN}") == "failed with Bearer ***"


def test_config_names_a_missing_secret_key() -> None:
    with pytest.raises(NotificationConfigError, match=r"service.slack: \$nope is not a key of Secret"):
        parse_config({"service.slack": "url: $nope"}, lambda key: None)


def test_config_file_accepts_configmap_and_secret_documents() -> None:
    text = yaml.safe_dump_all([
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "argo-rollouts-notification-configmap"},
         "data": {"service.slack": "url: $u"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "argo-rollouts-notification-secret"},
         "data": {"u": base64.b64encode(b"http://127.0.0.1:9/hook").decode()}},
    ])
    data, secrets = parse_documents(text)
    assert parse_config(data, secrets.get).services["slack"].url == "http://127.0.0.1:9/hook"


# --- delivery against real receivers -----------------------------------------------------------------


@contextmanager
def receiver(behaviour: str) -> Iterator[ScriptedServer]:
    """A receiver on 127.0.0.1 for the hook and Slack paths that answers 200 ("ok"), 500 ("fail") or, "hang",
    not before the block ends; `.seen` holds what it was sent."""
    reply = {"ok": Reply(200, "ok"), "fail": Reply(500, "boom"), "hang": Reply(hold=True)}[behaviour]
    with scripted_server({"/hook": reply, SLACK_PATH: reply}) as box:
        yield box


def _configure(store: SQLiteStore, url: str, namespace: str = "default") -> None:
    store.create({"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": "argo-rollouts-notification-configmap", "namespace": namespace},
                  "data": {
                      "service.webhook.hook": "url: $hook-url\nheaders:\n- name: Authorization\n"
                                              "  value: Bearer $token\n",
                      "service.slack": "url: $slack-url\n",
                  }})
    store.create({"apiVersion": "v1", "kind": "Secret",
                  "metadata": {"name": "argo-rollouts-notification-secret", "namespace": namespace},
                  "stringData": {"hook-url": url + "/hook", "token": SECRET_TOKEN,
                                 "slack-url": url + SLACK_PATH}})


def _rollout(annotations: dict[str, str]) -> dict[str, Any]:
    web = rollout("web", {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}}, replicas=2, image="web:1",
                  namespace="default")
    web["metadata"]["annotations"] = annotations
    return web


@dataclass
class Recorder:
    calls: list[tuple[str, str, str, str, bool]] = field(default_factory=list)

    def __call__(self, namespace: str, name: str, type: str, reason: str, ok: bool) -> None:
        self.calls.append((namespace, name, type, reason, ok))


def _store(tmp_path: Path) -> SQLiteStore:
    return SQLiteStore(tmp_path / "db.sqlite")


def test_delivers_webhook_and_slack_bodies_with_headers(tmp_path: Path) -> None:
    async def scenario() -> None:
        with receiver("ok") as box:
            store = _store(tmp_path)
            _configure(store, box.url)
            record = Recorder()
            notifier = Notifier(store, record=record, backoff=0.01, timeout=2.0)
            rollout = _rollout({
                "notifications.argoproj.io/subscribe.on-rollout-completed.hook": "",
                "notifications.argoproj.io/subscribe.on-rollout-completed.slack": "#releases;#ops",
            }) | {"status": {"phase": "Healthy", "currentStepIndex": 2}}
            assert notifier.notify(rollout, "Normal", "RolloutCompleted",
                                   "Rollout completed update to revision 4 (abc): Initial deploy")
            assert not notifier.notify(rollout, "Normal", "RolloutPaused", "nobody subscribed to this")
            assert await notifier.join(5.0)
            await notifier.close()
            store.close()
            by_path = sorted(box.seen, key=lambda r: (r.path, r.body))
            assert [r.path for r in by_path] == ["/hook", SLACK_PATH, SLACK_PATH]
            hook = by_path[0]
            assert hook.headers["Authorization"] == f"Bearer {SECRET_TOKEN}"
            assert hook.headers["Content-Type"] == "application/json"
            assert json.loads(hook.body) == {
                "trigger": "on-rollout-completed",
                "message": "Rollout default/web completed: revision 4 is stable.",
                "recipients": [],
                "event": {"type": "Normal", "reason": "RolloutCompleted",
                          "message": "Rollout completed update to revision 4 (abc): Initial deploy"},
                "rollout": {"name": "web", "namespace": "default", "revision": "4", "step": 2, "steps": 2,
                            "phase": "Healthy", "image": "web:1"},
            }
            assert [json.loads(r.body) for r in by_path[1:]] == [
                {"text": "Rollout default/web completed: revision 4 is stable.", "channel": "#ops"},
                {"text": "Rollout default/web completed: revision 4 is stable.", "channel": "#releases"},
            ]
            assert record.calls == [("default", "web", "Normal", "RolloutCompleted", True)] * 3
            assert (notifier.stats.sent, notifier.stats.failed) == (3, 0)

    asyncio.run(scenario())


def test_custom_template_from_configmap(tmp_path: Path) -> None:
    async def scenario() -> None:
        with receiver("ok") as box:
            store = _store(tmp_path)
            _configure(store, box.url)
            cm = store.get("ConfigMap", "default", "argo-rollouts-notification-configmap")
            cm["data"]["template.on-rollout-aborted"] = (
                "message: '$rollout@{revision} aborted at step {step_number}/{steps}: {{.rollout.spec.replicas}}'\n")
            store.update(cm)
            notifier = Notifier(store, record=Recorder(), backoff=0.01, timeout=2.0)
            rollout = _rollout({"notifications.argoproj.io/subscribe.on-rollout-aborted.slack": "#ops"})
            rollout["status"] = {"currentStepIndex": 1}
            notifier.notify(rollout, "Warning", "RolloutAborted", "Rollout aborted update to revision 9: bad")
            assert await notifier.join(5.0)
            await notifier.close()
            store.close()
            assert [json.loads(r.body) for r in box.seen] == [{"text": "web@9 aborted at step 2/2: 2", "channel": "#ops"}]

    asyncio.run(scenario())


def test_failing_receiver_is_retried_then_counted_and_logged_without_secrets(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        with receiver("fail") as box:
            store = _store(tmp_path)
            _configure(store, box.url)
            record = Recorder()
            notifier = Notifier(store, record=record, attempts=3, backoff=0.05, timeout=2.0)
            rollout = _rollout({"notifications.argoproj.io/subscribe.on-analysis-run-failed.slack": "#ops"})
            started = time.monotonic()
            notifier.notify(rollout, "Warning", "AnalysisRunFailed", "Analysis Run 'web-1' Status New: 'Failed'")
            assert await notifier.join(5.0)
            elapsed = time.monotonic() - started
            await notifier.close()
            store.close()
            assert len(box.seen) == 3
            assert elapsed >= 0.05 + 0.1  # backoff 0.05 s then 0.1 s between the three tries
            assert record.calls == [("default", "web", "Warning", "AnalysisRunFailed", False)]
            assert (notifier.stats.sent, notifier.stats.failed) == (0, 1)

    with caplog.at_level(logging.INFO, logger="rollouts.notifications"):
        asyncio.run(scenario())
    failures = [r for r in caplog.records if r.getMessage() == "notification not delivered"]
    assert len(failures) == 1
    fields = failures[0].fields  # type: ignore[attr-defined]
    assert fields["error"] == "HTTP 500"
    assert fields["trigger"] == "on-analysis-run-failed"
    assert "XXXXSECRETPATH" not in json.dumps(fields) and SECRET_TOKEN not in caplog.text


def test_hanging_receiver_times_out_and_never_slows_the_controller(tmp_path: Path) -> None:
    """The loop reconciles a rollout to Healthy while every notification it triggers hangs its receiver."""

    async def scenario() -> None:
        with receiver("hang") as box:
            store = _store(tmp_path)
            _configure(store, box.url)
            record = Recorder()
            notifier = Notifier(store, record=record, attempts=2, backoff=0.01, timeout=1.0)
            store.create(_rollout({
                "notifications.argoproj.io/subscribe.on-rollout-updated.hook": "",
                "notifications.argoproj.io/subscribe.on-rollout-completed.hook": "",
            }))
            controller = Controller(store=store, observers=[notifier])
            passes: list[float] = []
            deadline = time.monotonic() + 5.0
            while store.get("Rollout", "default", "web").get("status", {}).get("phase") != "Healthy":
                assert time.monotonic() < deadline, "the rollout did not become Healthy"
                started = time.monotonic()
                await controller.run_once()
                passes.append(time.monotonic() - started)
                for rs in store.list("ReplicaSet", "default"):
                    n = rs["spec"]["replicas"]
                    store.patch("ReplicaSet", "default", rs["metadata"]["name"],
                                {"status": {"replicas": n, "readyReplicas": n, "availableReplicas": n}},
                                subresource="status")
            # Two notices wait on a receiver that never answers (2 tries x 1 s each); no pass waited for
            # them: a pass that did would take 2 s or more.
            assert max(passes) < 0.5 and sum(passes) < 1.0, passes
            assert notifier.stats.sent == 0
            assert await notifier.join(5.0)
            await notifier.close()
            store.close()
            assert len(box.seen) == 4
            assert sorted(c[3] for c in record.calls) == ["RolloutCompleted", "RolloutUpdated"]
            assert all(not c[4] for c in record.calls)

    asyncio.run(scenario())


def test_full_queue_drops_with_a_count_instead_of_blocking(tmp_path: Path) -> None:
    record = Recorder()
    notifier = Notifier(None, record=record, queue_size=2)
    rollout = _rollout({"notifications.argoproj.io/subscribe.on-rollout-updated.hook": ""})
    # No running loop: nothing is delivered, so the third notice finds the queue full.
    results = [notifier.notify(rollout, "Normal", "RolloutUpdated", f"update {i}") for i in range(3)]
    assert results == [True, True, False]
    assert notifier.stats.dropped == 1
    assert record.calls == [("default", "web", "Normal", "RolloutUpdated", False)]


def test_missing_service_counts_as_error(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = _store(tmp_path)
        record = Recorder()
        notifier = Notifier(store, record=record)
        notifier.notify(_rollout({"notifications.argoproj.io/subscribe.on-rollout-updated.teams": "x"}),
                        "Normal", "RolloutUpdated", "Rollout updated to revision 2")
        assert await notifier.join(5.0)
        await notifier.close()
        store.close()
        assert record.calls == [("default", "web", "Normal", "RolloutUpdated", False)]

    asyncio.run(scenario())


# -- 20.11: webhook user-info and secret path segments never reach a log line -------------------------------

HOOK_PASSWORD = "hook-pa55word"


@pytest.mark.parametrize(("url", "shown"), [
    ("https://hooks.slack.com/services/T0AB12/B0CD34/XXXXSECRETPATH",
     "https://hooks.slack.com/services/*****/*****/*****"),
    ("http://user:" + HOOK_PASSWORD + "@127.0.0.1:9/hook", "http://127.0.0.1:9/hook"),
    ("https://discord.com/api/webhooks/123456789/abcdefTOKEN", "https://discord.com/api/webhooks/*****/*****"),
    ("https://example.com/v1/notify?token=abc123&x=1", "https://example.com/v1/notify?token=*****&x=*****"),
    ("http://[::1]:8080/", "http://[::1]:8080/"),
    ("http://example.com", "http://example.com"),
    ("http://bad:port:x/y", "*****"),
], ids=["slack-path", "user-info", "discord-path", "query-values", "ipv6", "no-path", "unparseable"])
def test_safe_url_hides_user_info_and_secret_path_segments(url: str, shown: str) -> None:
    from rollouts.safeurl import safe_url

    assert safe_url(url) == shown


@pytest.mark.parametrize("behaviour", ["ok", "fail"])
def test_webhook_user_info_and_slack_path_redacted_in_every_log_line(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, behaviour: str) -> None:
    async def scenario() -> None:
        with receiver(behaviour) as box:
            store = _store(tmp_path)
            secret_url = box.url.replace("http://", f"http://hookuser:{HOOK_PASSWORD}@") + SLACK_PATH
            _configure(store, box.url)
            secret = store.get("Secret", "default", "argo-rollouts-notification-secret")
            secret["stringData"]["slack-url"] = secret_url
            store.update(secret)
            notifier = Notifier(store, record=Recorder(), attempts=2, backoff=0.01, timeout=2.0)
            rollout = _rollout({"notifications.argoproj.io/subscribe.on-rollout-aborted.slack": "#ops"})
            notifier.notify(rollout, "Warning", "RolloutAborted", "Rollout aborted update to revision 9: bad")
            assert await notifier.join(5.0)
            await notifier.close()
            store.close()
            assert box.seen and box.seen[0].path == SLACK_PATH  # it was really sent there

    caplog.set_level(logging.DEBUG)  # every logger, the HTTP client's own included
    asyncio.run(scenario())
    assert caplog.records, "nothing was logged"
    for text in (HOOK_PASSWORD, "hookuser", "XXXXSECRETPATH", "T000/B000"):
        assert text not in caplog.text, text
        assert all(text not in json.dumps(getattr(r, "fields", {})) for r in caplog.records), text
    wanted = "notification sent" if behaviour == "ok" else "notification not delivered"
    [line] = [r for r in caplog.records if r.getMessage() == wanted]
    assert line.fields["url"].endswith("/services/*****/*****/*****")  # type: ignore[attr-defined]
