"""Analysis arguments: merging template and rollout arguments, resolving their values (rollout fields,
pod template hashes, secrets through a callback) and substituting `{{args.name}}` into metrics.

Pure: secrets are read through a caller-supplied function, never from the cluster directly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from rollouts.spec.analysis import Argument, Metric, ValueFrom
from rollouts.spec.rollout import AnalysisRunArgument, Rollout

# (namespace, secret name, key) -> the secret's value; raises SecretNotFound / SecretKeyNotFound.
SecretLookup = Callable[[str, str, str], str]

# Stands in for secret values when metrics are resolved only to be validated or scheduled.
SECRET_PLACEHOLDER = "temp-for-secret"

_OPEN, _CLOSE = "{{", "}}"


class ArgsError(ValueError):
    """An argument that cannot be merged, resolved or substituted. The text is Argo's wording."""


class SecretNotFound(LookupError):
    """Raised by a SecretLookup when the Secret does not exist."""

    def __init__(self, name: str) -> None:
        super().__init__(f'secrets "{name}" not found')


class SecretKeyNotFound(LookupError):
    """Raised by a SecretLookup when the Secret exists but lacks the key."""

    def __init__(self, name: str, key: str) -> None:
        super().__init__(f"key '{key}' does not exist in secret '{name}'")


# --- merging ---------------------------------------------------------------------------------------


def flatten_template_args(arg_lists: Iterable[Sequence[Argument] | None]) -> list[Argument]:
    """Arguments of several templates as one list.

    The same name in two templates is fine when at most one gives a default or both give the same
    default; a default is never replaced by a later declaration without one.
    """
    combined: list[Argument] = []
    for args in arg_lists:
        for arg in args or []:
            for i, prev in enumerate(combined):
                if prev.name != arg.name:
                    continue
                if prev.value is not None and arg.value is not None and prev.value != arg.value:
                    raise ArgsError(
                        f"Argument `{arg.name}` specified multiple times with different values: "
                        f"'{prev.value}', '{arg.value}'"
                    )
                if prev.value is None:
                    combined[i] = arg
                break
            else:
                combined.append(arg)
    return combined


def merge_args(incoming: Sequence[Argument], template_args: Sequence[Argument]) -> list[Argument]:
    """Template arguments with values supplied by the caller (the rollout) taking precedence.

    Incoming arguments the templates do not declare are ignored; every declared argument must end
    with a value or a valueFrom, else `args.<name> was not resolved`.
    """
    merged = list(template_args)
    for arg in incoming:
        for i, existing in enumerate(merged):
            if existing.name != arg.name:
                continue
            if arg.value is not None:
                merged[i] = existing.model_copy(update={"value": arg.value, "value_from": None})
            elif arg.value_from is not None:
                merged[i] = existing.model_copy(update={"value_from": arg.value_from})
    for arg in merged:
        if arg.value is None and arg.value_from is None:
            raise ArgsError(f"args.{arg.name} was not resolved")
    return merged


# --- rollout-side values ---------------------------------------------------------------------------

_LABEL_OR_ANNOTATION = re.compile(r"^metadata\.(labels|annotations)\['(.*)'\]$")


def _format_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _metadata_field(rollout: Rollout, path: str) -> str:
    meta = rollout.metadata
    match = _LABEL_OR_ANNOTATION.match(path)
    if match:
        source = meta.labels if match.group(1) == "labels" else meta.annotations
        return source.get(match.group(2), "")
    if path == "metadata.name":
        return meta.name or ""
    if path == "metadata.namespace":
        return rollout.namespace
    if path == "metadata.uid":
        return meta.uid or ""
    if path in ("metadata.labels", "metadata.annotations"):
        source = meta.labels if path.endswith("labels") else meta.annotations
        return "\n".join(f'{k}="{v}"' for k, v in sorted(source.items()))
    raise ArgsError(f"unsupported fieldPath: {path}")


def _rollout_field(rollout: Rollout, path: str) -> str:
    node: Any = rollout.to_dict()
    for section in re.split(r"[.\[\]]+", path):
        if section == "":
            continue
        if isinstance(node, list):
            if not section.isdigit():
                raise ArgsError(f"invalid index '{section}'")
            index = int(section)
            if index >= len(node):
                raise ArgsError(f"index {index} out of range")
            node = node[index]
        elif isinstance(node, dict):
            node = node.get(section)
        else:
            raise ArgsError(f"invalid path {path} in rollout")
    if node is None:
        raise ArgsError(f"invalid path {path} in rollout")
    if isinstance(node, list | dict):
        raise ArgsError(f"path {path} in rollout must terminate in a primitive value")
    return _format_scalar(node)


def field_path_value(rollout: Rollout, path: str) -> str:
    """The value at a fieldRef path: downward-API `metadata.*` forms, or any path into the rollout
    (`spec.template.metadata.labels.version`, `status.canary.weights.canary.weight`)."""
    if path.startswith("metadata"):
        return _metadata_field(rollout, path)
    return _rollout_field(rollout, path)


def rollout_argument_values(
    args: Sequence[AnalysisRunArgument] | None,
    rollout: Rollout,
    *,
    stable_hash: str | None,
    latest_hash: str,
) -> list[Argument]:
    """The rollout's analysis arguments as plain values (pod template hashes and rollout fields read now)."""
    out: list[Argument] = []
    for arg in args or []:
        value = arg.value if arg.value is not None else ""
        source = arg.value_from
        if source is not None and source.pod_template_hash_value is not None:
            if source.pod_template_hash_value == "Latest":
                value = latest_hash
            elif stable_hash is None:
                raise ArgsError(
                    f"args.{arg.name}: valueFrom.podTemplateHashValue is Stable but the rollout has no "
                    "stable ReplicaSet yet"
                )
            else:
                value = stable_hash
        elif source is not None and source.field_ref is not None:
            value = field_path_value(rollout, source.field_ref.field_path)
        out.append(Argument(name=arg.name, value=value))
    return out


def resolve_field_refs(args: Sequence[Argument], rollout: Rollout) -> list[Argument]:
    """Template arguments whose default comes from `valueFrom.fieldRef`, read from the rollout."""
    out: list[Argument] = []
    for arg in args:
        ref = arg.value_from.field_ref if arg.value_from is not None else None
        if arg.value is None and ref is not None:
            arg = Argument(name=arg.name, value=field_path_value(rollout, ref.field_path))
        out.append(arg)
    return out


# --- run-time values -------------------------------------------------------------------------------


def _secret_ref(arg: Argument) -> tuple[str, str] | None:
    source: ValueFrom | None = arg.value_from
    if source is None or source.secret_key_ref is None:
        return None
    return source.secret_key_ref.name, source.secret_key_ref.key


def resolve_args(
    run_args: Sequence[Argument] | None, secret_lookup: SecretLookup, *, namespace: str = ""
) -> dict[str, str]:
    """Every run argument's value, reading `secretKeyRef` arguments through `secret_lookup`.

    Raises ArgsError with the lookup's message (`secrets "x" not found`,
    `key 'k' does not exist in secret 'x'`).
    """
    values: dict[str, str] = {}
    for arg in run_args or []:
        ref = _secret_ref(arg)
        if ref is not None:
            try:
                values[arg.name] = secret_lookup(namespace, ref[0], ref[1])
            except LookupError as exc:
                raise ArgsError(str(exc.args[0]) if exc.args else repr(exc)) from exc
        elif arg.value is not None:
            values[arg.name] = arg.value
    return values


def args_without_secrets(run_args: Sequence[Argument] | None) -> dict[str, str]:
    """Argument values with secrets replaced by a placeholder: enough to validate and schedule."""
    values: dict[str, str] = {}
    for arg in run_args or []:
        if _secret_ref(arg) is not None:
            values[arg.name] = SECRET_PLACEHOLDER
        elif arg.value is not None:
            values[arg.name] = arg.value
    return values


def secret_values(run_args: Sequence[Argument] | None, resolved: Mapping[str, str]) -> frozenset[str]:
    """The resolved values that came from Secrets (to be redacted from every message)."""
    return frozenset(
        resolved[arg.name]
        for arg in run_args or []
        if _secret_ref(arg) is not None and resolved.get(arg.name)
    )


# --- substitution ----------------------------------------------------------------------------------


def substitute(template: str, args: Mapping[str, str], *, quoted: bool = False) -> str:
    """`template` with `{{args.name}}` placeholders (whitespace inside the braces allowed) replaced.

    With `quoted`, values are JSON-string-escaped first (the template is JSON text). Every `{{...}}`
    must name a known argument, else ArgsError `failed to resolve {{...}}`.
    """
    out: list[str] = []
    pos = 0
    unresolved: str | None = None
    while True:
        start = template.find(_OPEN, pos)
        if start < 0:
            out.append(template[pos:])
            break
        end = template.find(_CLOSE, start + len(_OPEN))
        if end < 0:
            raise ArgsError(f'failed to resolve {template[start:]}: no closing "}}}}"')
        out.append(template[pos:start])
        tag = template[start + len(_OPEN) : end]
        name = tag.strip()
        if name.startswith("args.") and name[len("args.") :] in args:
            value = args[name[len("args.") :]]
            out.append(json.dumps(value, ensure_ascii=False)[1:-1] if quoted else value)
        else:
            unresolved = tag
        pos = end + len(_CLOSE)
    if unresolved is not None:
        raise ArgsError(f"failed to resolve {{{{{unresolved}}}}}")
    return "".join(out)


def substitute_metric(metric: Metric, args: Mapping[str, str]) -> Metric:
    """The metric with arguments substituted into every string (provider config, conditions, count and
    limits), done as Argo does: on the metric's JSON text with JSON-escaped values."""
    text = json.dumps(metric.to_dict(), ensure_ascii=False)
    if _OPEN not in text:
        return metric
    resolved = substitute(text, args, quoted=True)
    return Metric.model_validate(json.loads(resolved))
