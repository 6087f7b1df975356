"""Sends Argo-style notifications for rollout events to webhook and Slack-compatible receivers.

The controller only enqueues (`observe_decision` is one of the loop's observers); worker tasks render the
messages, look up the settings (ConfigMap `argo-rollouts-notification-configmap` and Secret
`argo-rollouts-notification-secret` in the rollout's namespace, then the controller's, or a config file)
and deliver them with a per-request timeout and retries with exponential backoff. A slow, failing or
hanging receiver costs a worker's time, never the loop's: the queue is bounded and drops (with a log line)
when full. Every delivery is counted as a success or an error, and logged with secret values, webhook
user-info and secret path segments redacted."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from rollouts.controller.metrics import record_notification
from rollouts.controller.notifications_config import (
    CONFIGMAP_NAME,
    SECRET_NAME,
    NotificationConfig,
    NotificationConfigError,
    ServiceConfig,
    Subscription,
    Template,
    parse_config,
    parse_documents,
    render,
    secret_values,
    subscriptions,
    trigger_for,
)
from rollouts.controller.objects import REVISION_ANNOTATION
from rollouts.controller.observe import observe_revision
from rollouts.engine.types import Decision, EmitEvent
from rollouts.safeurl import quiet_client_logs, safe_url, scrub
from rollouts.spec.rollout import Rollout
from rollouts.store.protocol import NotFound, ObjectStore

log = logging.getLogger("rollouts.notifications")

DEFAULT_CONTROLLER_NAMESPACE = "argo-rollouts"
_RETRYABLE = frozenset({408, 425, 429})
_REVISION = re.compile(r"\brevision (\d+)\b")
# Webhook URLs are credentials (user-info, Slack's secret path): httpx must not log them on its own.
quiet_client_logs()

# (namespace, rollout, event type, event reason, delivered)
RecordFn = Callable[[str, str, str, str, bool], None]


@dataclass(frozen=True)
class Notice:
    """One event about one rollout, with the rollout as it was when the event happened."""

    namespace: str
    name: str
    trigger: str
    event_type: str
    reason: str
    message: str
    subscriptions: tuple[Subscription, ...]
    rollout: Mapping[str, Any]


@dataclass
class NotificationStats:
    sent: int = 0
    failed: int = 0
    dropped: int = 0


class Notifier:
    def __init__(
        self,
        store: ObjectStore | None,
        *,
        controller_namespace: str = DEFAULT_CONTROLLER_NAMESPACE,
        config_file: Path | None = None,
        queue_size: int = 1000,
        workers: int = 4,
        attempts: int = 3,
        backoff: float = 0.5,
        timeout: float = 5.0,
        record: RecordFn | None = None,
    ) -> None:
        self.store = store
        self.controller_namespace = controller_namespace
        self.config_file = config_file
        self.attempts = max(attempts, 1)
        self.backoff = backoff
        self.timeout = timeout
        self.stats = NotificationStats()
        self._record: RecordFn = record if record is not None else record_notification
        self._queue: asyncio.Queue[Notice] = asyncio.Queue(maxsize=queue_size)
        self._worker_count = max(workers, 1)
        self._workers: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None

    # -- the controller's side: cheap and never blocking --------------------------------------------------

    def observe_decision(self, rollout: Rollout, decision: Decision, seconds: float) -> None:
        events = [a for a in decision.actions if isinstance(a, EmitEvent)]
        if not events or not subscriptions(rollout.metadata.annotations):
            return
        snapshot = {**rollout.to_dict(), "status": decision.status.to_dict()}
        for event in events:
            self.notify(snapshot, event.type, event.reason, event.message)

    def observe_error(self, rollout: Rollout) -> None:
        return None

    def notify(self, rollout: Mapping[str, Any], event_type: str, reason: str, message: str) -> bool:
        """Queues the event for the rollout's subscribers of its trigger; False when nobody listens or the
        queue is full."""
        meta = rollout.get("metadata") or {}
        trigger = trigger_for(reason)
        wanted = tuple(s for s in subscriptions(meta.get("annotations") or {}) if s.trigger == trigger)
        if not wanted:
            return False
        notice = Notice(namespace=str(meta.get("namespace") or "default"), name=str(meta.get("name") or ""),
                        trigger=trigger, event_type=event_type, reason=reason, message=message,
                        subscriptions=wanted, rollout=rollout)
        self._ensure_started()
        try:
            self._queue.put_nowait(notice)
        except asyncio.QueueFull:
            self.stats.dropped += 1
            self._count(notice, ok=False)
            log.warning("notification dropped: queue full", extra={"fields": {
                "rollout": notice.name, "namespace": notice.namespace, "trigger": trigger,
                "queued": self._queue.qsize()}})
            return False
        return True

    # -- lifecycle ----------------------------------------------------------------------------------------

    def _ensure_started(self) -> None:
        if self._workers:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # queued now, delivered once start() runs in a loop
        self._client = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False)
        self._workers = [asyncio.create_task(self._work(), name=f"notifications-{i}")
                         for i in range(self._worker_count)]

    async def start(self) -> None:
        self._ensure_started()

    async def join(self, timeout: float) -> bool:
        """Waits until every queued notice was handled; False if that took longer than `timeout`."""
        try:
            await asyncio.wait_for(self._queue.join(), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self, drain: float = 2.0) -> None:
        if self._workers:
            await self.join(drain)
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers = []
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- workers ------------------------------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            notice = await self._queue.get()
            try:
                await self._handle(notice)
            except Exception:  # a bug here must not kill the worker and stall every later notice
                log.exception("notification failed", extra={"fields": {"rollout": notice.name,
                                                                        "trigger": notice.trigger}})
            finally:
                self._queue.task_done()

    async def _handle(self, notice: Notice) -> None:
        try:
            config = self._config(notice.namespace)
        except NotificationConfigError as exc:
            for _ in notice.subscriptions:
                self._failed(notice, "", str(exc), NotificationConfig())
            return
        fields = self._fields(notice)
        templates = config.templates_for(notice.trigger)
        for sub in notice.subscriptions:
            service = config.services.get(sub.service)
            if service is None:
                known = ", ".join(sorted(config.services)) or "none configured"
                self._failed(notice, sub.service, f"service {sub.service!r} is not configured in "
                                                  f"{CONFIGMAP_NAME} (services: {known})", config)
                continue
            for template in templates:
                for request in self._requests(service, sub, template, fields, notice):
                    await self._deliver(notice, service, config, *request)

    def _requests(self, service: ServiceConfig, sub: Subscription, template: Template,
                  fields: dict[str, Any], notice: Notice) -> list[tuple[str, str, bytes, dict[str, str]]]:
        headers = dict(service.headers)
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
        objects = {"rollout": notice.rollout}
        if service.kind == "slack":
            out = []
            for recipient in sub.recipients or (service.channel,):
                text = render(template.message, {**fields, "recipient": recipient},
                              {**objects, "recipient": recipient})
                body: dict[str, Any] = {"text": text}
                if recipient:
                    body["channel"] = recipient
                if service.username:
                    body["username"] = service.username
                if service.icon:
                    body["icon_emoji" if service.icon.startswith(":") else "icon_url"] = service.icon
                out.append(("POST", service.url, json.dumps(body).encode(), headers))
            return out
        recipient = ";".join(sub.recipients)
        values = {**fields, "recipient": recipient}
        text = render(template.message, values, {**objects, "recipient": recipient})
        custom = template.webhook.get(service.name)
        if custom is not None and custom.body is not None:
            payload = render(custom.body, values, {**objects, "recipient": recipient}).encode()
        else:
            payload = json.dumps({
                "trigger": notice.trigger, "message": text, "recipients": list(sub.recipients),
                "event": {"type": notice.event_type, "reason": notice.reason, "message": notice.message},
                "rollout": {k: fields[k] for k in ("name", "namespace", "revision", "step", "steps", "phase",
                                                   "image")},
            }).encode()
        method = custom.method if custom is not None else "POST"
        url = service.url.rstrip("/") + custom.path if custom is not None and custom.path else service.url
        return [(method, url, payload, headers)]

    async def _deliver(self, notice: Notice, service: ServiceConfig, config: NotificationConfig,
                       method: str, url: str, body: bytes, headers: dict[str, str]) -> None:
        assert self._client is not None
        error = ""
        for attempt in range(self.attempts):
            if attempt:
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                async with asyncio.timeout(self.timeout):
                    response = await self._client.request(method, url, content=body, headers=headers)
            except (TimeoutError, httpx.TimeoutException):
                error = f"no answer within {self.timeout:g}s"
                continue
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
                continue
            if response.is_success:
                self.stats.sent += 1
                self._count(notice, ok=True)
                log.info("notification sent", extra={"fields": {
                    "rollout": notice.name, "namespace": notice.namespace, "trigger": notice.trigger,
                    "service": service.name, "url": safe_url(url), "attempts": attempt + 1}})
                return
            error = f"HTTP {response.status_code}"
            if response.status_code < 500 and response.status_code not in _RETRYABLE:
                break  # the receiver refuses this request; asking again would not change its mind
        self._failed(notice, service.name, error, config, url=url)

    def _failed(self, notice: Notice, service: str, error: str, config: NotificationConfig,
                url: str = "") -> None:
        self.stats.failed += 1
        self._count(notice, ok=False)
        log.warning("notification not delivered", extra={"fields": {
            "rollout": notice.name, "namespace": notice.namespace, "trigger": notice.trigger,
            "service": service, "url": safe_url(url) if url else "", "error": config.redact(scrub(error, url))}})

    def _count(self, notice: Notice, ok: bool) -> None:
        try:
            self._record(notice.namespace, notice.name, notice.event_type, notice.reason, ok)
        except Exception:
            log.exception("notification metric update failed")

    # -- settings and message fields ---------------------------------------------------------------------

    def _config(self, namespace: str) -> NotificationConfig:
        """The file when one is given, else the ConfigMap in the rollout's namespace, else the controller's."""
        if self.config_file is not None:
            data, secrets = parse_documents(self.config_file.read_text())
            return parse_config(data, secrets.get)
        for ns in dict.fromkeys((namespace, self.controller_namespace)):
            if self.store is None:
                break
            try:
                configmap = self.store.get("ConfigMap", ns, CONFIGMAP_NAME)
            except NotFound:
                continue
            secret = self._secret(ns)
            return parse_config(configmap.get("data") or {}, secret.get)
        raise NotificationConfigError(
            f"ConfigMap {CONFIGMAP_NAME} not found in namespace {namespace} or {self.controller_namespace}")

    def _secret(self, namespace: str) -> dict[str, str]:
        assert self.store is not None
        try:
            return secret_values(self.store.get("Secret", namespace, SECRET_NAME))
        except NotFound:
            return {}

    def _fields(self, notice: Notice) -> dict[str, Any]:
        rollout = notice.rollout
        spec = rollout.get("spec") or {}
        status = rollout.get("status") or {}
        strategy = spec.get("strategy") or {}
        steps = len((strategy.get("canary") or {}).get("steps") or [])
        step = int(status.get("currentStepIndex") or 0)
        containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or [{}]
        return {
            "rollout": notice.name, "name": notice.name, "namespace": notice.namespace,
            "revision": self._revision(notice, status),
            "step": step, "step_number": min(step + 1, steps) if steps else 0, "steps": steps,
            "phase": status.get("phase", ""), "image": containers[0].get("image", ""),
            "message": notice.message, "reason": notice.reason, "type": notice.event_type,
            "trigger": notice.trigger,
        }

    def _revision(self, notice: Notice, status: Mapping[str, Any]) -> str:
        found = _REVISION.search(notice.message)
        if found:
            return found.group(1)
        annotations = (notice.rollout.get("metadata") or {}).get("annotations") or {}
        if REVISION_ANNOTATION in annotations:
            return str(annotations[REVISION_ANNOTATION])
        pod_hash = status.get("currentPodHash")
        if self.store is not None and pod_hash:
            revision = observe_revision(self.store, notice.namespace, notice.name, pod_hash)
            if revision is not None:
                return str(revision)
        return ""
