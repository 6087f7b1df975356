"""Notification settings in Argo's format: which services exist (`service.webhook.<name>`, `service.slack`),
which templates a trigger sends (`trigger.<name>`, `template.<name>`), the `$key` secret references they
use, and the subscriptions a Rollout declares in its annotations.

Everything here is parsing and text substitution: no I/O. Templates only look values up (fields and
dotted paths into the rollout object), they never evaluate code."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

CONFIGMAP_NAME = "argo-rollouts-notification-configmap"
SECRET_NAME = "argo-rollouts-notification-secret"
SUBSCRIBE_PREFIX = "notifications.argoproj.io/subscribe."

ServiceKind = Literal["webhook", "slack"]


class NotificationConfigError(ValueError):
    """A ConfigMap key or subscription that cannot be used; the message names the key."""


@dataclass(frozen=True)
class ServiceConfig:
    name: str  # the name subscriptions use: "slack" or the webhook's name
    kind: ServiceKind
    url: str
    headers: tuple[tuple[str, str], ...] = ()
    channel: str = ""  # slack: default channel when the subscription names none
    username: str = ""
    icon: str = ""


@dataclass(frozen=True)
class WebhookRequest:
    method: str = "POST"
    path: str = ""
    body: str | None = None


@dataclass(frozen=True)
class Template:
    message: str
    webhook: Mapping[str, WebhookRequest] = field(default_factory=dict)


@dataclass(frozen=True)
class NotificationConfig:
    services: Mapping[str, ServiceConfig] = field(default_factory=dict)
    templates: Mapping[str, Template] = field(default_factory=dict)
    triggers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # trigger -> template names
    secrets: tuple[str, ...] = ()  # resolved secret values, for redaction

    def templates_for(self, trigger: str) -> list[Template]:
        names = self.triggers.get(trigger, (trigger,))
        found = [self.templates[n] for n in names if n in self.templates]
        if found:
            return found
        default = DEFAULT_TEMPLATES.get(trigger)
        return [Template(message=default or GENERIC_MESSAGE)]

    def redact(self, text: str) -> str:
        for value in sorted(self.secrets, key=len, reverse=True):
            if value:
                text = text.replace(value, "***")
        return text


@dataclass(frozen=True)
class Subscription:
    trigger: str
    service: str
    recipients: tuple[str, ...]


# --- triggers ----------------------------------------------------------------------------------------

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def trigger_for(reason: str) -> str:
    """The trigger an event reason fires, as Argo names them: RolloutStepCompleted -> on-rollout-step-completed."""
    return "on-" + _CAMEL.sub("-", reason).lower()


def subscriptions(annotations: Mapping[str, str]) -> list[Subscription]:
    """The `notifications.argoproj.io/subscribe.<trigger>.<service>: a;b` annotations of an object."""
    found = []
    for key, value in annotations.items():
        if not key.startswith(SUBSCRIBE_PREFIX):
            continue
        trigger, dot, service = key[len(SUBSCRIBE_PREFIX):].rpartition(".")
        if not dot or not trigger or not service:
            continue
        recipients = tuple(r.strip() for r in str(value or "").split(";") if r.strip())
        found.append(Subscription(trigger=trigger, service=service, recipients=recipients))
    return sorted(found, key=lambda s: (s.trigger, s.service))


# --- templates ---------------------------------------------------------------------------------------

GENERIC_MESSAGE = "Rollout {namespace}/{rollout}: {reason}: {message}"
DEFAULT_TEMPLATES: Mapping[str, str] = {
    "on-rollout-updated": "Rollout {namespace}/{rollout} updated to revision {revision}.",
    "on-rollout-step-completed":
        "Rollout {namespace}/{rollout} revision {revision}: step {step}/{steps} completed.",
    "on-rollout-paused": "Rollout {namespace}/{rollout} revision {revision} paused at step {step}/{steps}: {message}",
    "on-rollout-aborted": "Rollout {namespace}/{rollout} revision {revision} aborted: {message}",
    "on-rollout-completed": "Rollout {namespace}/{rollout} completed: revision {revision} is stable.",
    "on-analysis-run-failed": "Rollout {namespace}/{rollout} revision {revision}: analysis failed: {message}",
    "on-analysis-run-error": "Rollout {namespace}/{rollout} revision {revision}: analysis errored: {message}",
}

# `{{.rollout.metadata.name}}` (Argo's templates, paths only), `${field}`, `$field` and `{field}`.
_FIELD = re.compile(r"\{\{\s*\.([A-Za-z_][\w.]*)\s*\}\}|\$\{(\w+)\}|\$(\w+)|\{(\w+)\}")


def _path(root: Mapping[str, Any], path: str) -> Any:
    value: Any = root
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def render(text: str, fields: Mapping[str, Any], objects: Mapping[str, Any] | None = None) -> str:
    """Fills a template; unknown fields stay as written so a typo shows in the message, not as a crash."""

    def replace(match: re.Match[str]) -> str:
        dotted, braced, bare, formatted = match.groups()
        if dotted is not None:
            value = _path(objects or {}, dotted)
            return match.group(0) if value is None else str(value)
        name = braced or bare or formatted
        return str(fields[name]) if name in fields else match.group(0)

    return _FIELD.sub(replace, text)


# --- ConfigMap parsing -------------------------------------------------------------------------------

_SECRET_REF = re.compile(r"\$([A-Za-z0-9_][A-Za-z0-9_.-]*)")


def _yaml(key: str, text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise NotificationConfigError(f"{key}: not valid YAML: {exc}") from exc


def _headers(key: str, raw: Any) -> list[tuple[str, str]]:
    if raw is None:
        return []
    if isinstance(raw, Mapping):
        return [(str(k), str(v)) for k, v in raw.items()]
    if isinstance(raw, list):
        pairs = []
        for i, item in enumerate(raw):
            if not isinstance(item, Mapping) or "name" not in item:
                raise NotificationConfigError(f"{key}: headers[{i}] needs name and value")
            pairs.append((str(item["name"]), str(item.get("value", ""))))
        return pairs
    raise NotificationConfigError(f"{key}: headers must be a list of {{name, value}} or a mapping")


def _template(key: str, text: str) -> Template:
    body = _yaml(key, text)
    if isinstance(body, str):
        return Template(message=body)
    if not isinstance(body, Mapping) or not isinstance(body.get("message", ""), str):
        raise NotificationConfigError(f"{key}: expected a message string or a mapping with message:")
    hooks = {}
    for name, spec in (body.get("webhook") or {}).items():
        if not isinstance(spec, Mapping):
            raise NotificationConfigError(f"{key}: webhook.{name} must be a mapping (method, path, body)")
        raw_body = spec.get("body")
        hooks[str(name)] = WebhookRequest(
            method=str(spec.get("method", "POST")).upper(),
            path=str(spec.get("path", "")),
            body=None if raw_body is None else str(raw_body),
        )
    return Template(message=str(body.get("message", "")), webhook=hooks)


def _triggers(key: str, text: str) -> tuple[str, ...]:
    body = _yaml(key, text)
    names: list[str] = []
    for item in body if isinstance(body, list) else [body]:
        if not isinstance(item, Mapping) or not isinstance(item.get("send"), list):
            raise NotificationConfigError(f"{key}: expected a list of {{send: [template, ...]}}")
        names.extend(str(n) for n in item["send"])
    return tuple(names)


def parse_config(data: Mapping[str, Any], secret: Callable[[str], str | None]) -> NotificationConfig:
    """A ConfigMap's `data` as settings; `$key` in service settings is looked up with `secret`."""
    used: list[str] = []

    def resolve(key: str, value: str) -> str:
        def one(match: re.Match[str]) -> str:
            found = secret(match.group(1))
            if found is None:
                raise NotificationConfigError(
                    f"{key}: ${match.group(1)} is not a key of Secret {SECRET_NAME}")
            used.append(found)
            return found

        return _SECRET_REF.sub(one, value)

    services: dict[str, ServiceConfig] = {}
    templates: dict[str, Template] = {}
    triggers: dict[str, tuple[str, ...]] = {}
    for key, text in sorted(data.items()):
        text = str(text)
        if key.startswith("template."):
            templates[key[len("template."):]] = _template(key, text)
        elif key.startswith("trigger."):
            triggers[key[len("trigger."):]] = _triggers(key, text)
        elif key == "service.slack" or key.startswith("service.webhook."):
            body = _yaml(key, text)
            if not isinstance(body, Mapping) or not isinstance(body.get("url"), str):
                raise NotificationConfigError(f"{key}: needs url: (an http(s) address or a $secret-key)")
            url = resolve(key, body["url"])
            if not url.startswith(("http://", "https://")):
                raise NotificationConfigError(f"{key}: url must start with http:// or https://")
            headers = tuple((n, resolve(key, v)) for n, v in _headers(key, body.get("headers")))
            if key == "service.slack":
                services["slack"] = ServiceConfig(
                    name="slack", kind="slack", url=url, headers=headers,
                    channel=str(body.get("channel", "")), username=str(body.get("username", "")),
                    icon=str(body.get("icon", "")))
            else:
                name = key[len("service.webhook."):]
                services[name] = ServiceConfig(name=name, kind="webhook", url=url, headers=headers)
    return NotificationConfig(services=services, templates=templates, triggers=triggers, secrets=tuple(used))


def parse_documents(text: str) -> tuple[dict[str, Any], dict[str, str]]:
    """A config file: a ConfigMap (and optionally its Secret) as YAML documents, or a plain key mapping.

    Returns the ConfigMap data and the secret values (Secret `stringData`, or `data` base64-decoded)."""
    data: dict[str, Any] = {}
    secrets: dict[str, str] = {}
    for doc in yaml.safe_load_all(text):
        if not isinstance(doc, Mapping):
            continue
        if doc.get("kind") == "Secret":
            secrets.update(secret_values(doc))
        elif doc.get("kind") == "ConfigMap":
            data.update(doc.get("data") or {})
        elif "kind" not in doc:
            data.update(doc)
    return data, secrets


def secret_values(secret: Mapping[str, Any]) -> dict[str, str]:
    """A Secret's values: `data` base64-decoded, then `stringData` (which wins, as in Kubernetes)."""
    values = {str(k): base64.b64decode(str(v)).decode() for k, v in (secret.get("data") or {}).items()}
    values.update({str(k): str(v) for k, v in (secret.get("stringData") or {}).items()})
    return values
