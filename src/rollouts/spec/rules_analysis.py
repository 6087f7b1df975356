"""Semantic rules for analysis: metrics (one provider, durations, count and limits, conditions), and the
specs of AnalysisTemplate, ClusterAnalysisTemplate and AnalysisRun. Values holding `{{args.…}}` are only
known after substitution, so they are not judged here."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from rollouts.spec.analysis import AnalysisRunSpec, AnalysisTemplateSpec, Metric, MetricProvider
from rollouts.spec.duration import DurationError, parse_duration
from rollouts.spec.intorstr import IntOrStr
from rollouts.spec.problems import FieldPath, Finding, error, warning
from rollouts.spec.ranges import GO_DURATION_MAX_SECONDS, INT32_MAX, int32_message
from rollouts.spec.rollout import DryRun, MeasurementRetention

SUPPORTED_PROVIDERS = ("prometheus", "web", "job", "plugin")
BUILTIN_PLUGINS = ("rollouts/traffic", "rollouts/sequential")

_Compiler = Callable[[str], Any]


def _load_compiler() -> _Compiler | None:
    try:
        from rollouts.analysis.expr import compile_expr
    except ImportError:
        return None
    return compile_expr  # type: ignore[no-any-return]


def is_templated(value: object) -> bool:
    """Whether a value holds a `{{…}}` placeholder resolved only when a run is created."""
    return isinstance(value, str) and "{{" in value


def provider_alias(name: str) -> str:
    info = MetricProvider.model_fields[name]
    return info.alias or name


def int_setting(value: IntOrStr | None, path: FieldPath, findings: list[Finding]) -> int | None:
    """An int-or-string setting as a number; None when unset or templated (a bad string is a finding)."""
    if value is None or is_templated(value):
        return None
    if isinstance(value, int):
        number = value
    else:
        try:
            number = int(value.strip())
        except ValueError:
            findings.append(error(path, f'"{value}" is not an integer (use a number or "{{{{args.NAME}}}}")'))
            return None
    if abs(number) > INT32_MAX:
        findings.append(error(path, int32_message(number)))
        return None
    return number


def check_duration(value: str | None, path: FieldPath, findings: list[Finding]) -> float | None:
    """A Go duration (unit required); None when unset or templated."""
    if value is None or value == "" or is_templated(value):
        return None
    try:
        seconds = parse_duration(value, bare_number_is_seconds=False)
    except DurationError:
        findings.append(error(path, f'"{value}" is not a duration (use a form like 30s, 5m, 1h30m)'))
        return None
    if seconds < 0:
        findings.append(error(path, f'"{value}" is negative (use a positive duration such as 30s)'))
    if seconds > GO_DURATION_MAX_SECONDS:
        findings.append(error(path, f'"{value}" is too long (at most 2562047h, the longest Go duration)'))
        return None
    return seconds


def _check_provider(metric: Metric, path: FieldPath) -> list[Finding]:
    findings: list[Finding] = []
    provider = metric.provider
    ppath = (*path, "provider")
    set_keys = provider.kinds()
    count = sum(len(provider.plugin) if key == "plugin" and provider.plugin else 1 for key in set_keys)
    supported = ", ".join(SUPPORTED_PROVIDERS)
    if count == 0:
        return [error(ppath, f"no provider specified (set exactly one of {supported})")]
    if count > 1:
        names = ", ".join(provider_alias(k) for k in set_keys)
        return [error(ppath, f"multiple providers specified ({names}); set exactly one")]
    key = set_keys[0]
    if key not in SUPPORTED_PROVIDERS:
        findings.append(
            warning(
                (*ppath, provider_alias(key)),
                f"the {provider_alias(key)} provider is parsed but not measured by this version "
                f"(supported: {supported})",
            )
        )
    if provider.prometheus is not None and not provider.prometheus.query.strip():
        # Argo's schema accepts it (one of its own e2e manifests has none); each measurement then errors.
        findings.append(
            warning((*ppath, "prometheus", "query"), "not set: every measurement will be an Error (set a PromQL query)")
        )
    if provider.web is not None:
        web = provider.web
        if not web.url.strip():
            findings.append(error((*ppath, "web", "url"), "required (the URL to fetch)"))
        if web.body is not None and web.json_body is not None:
            findings.append(error((*ppath, "web", "jsonBody"), "set either body or jsonBody, not both"))
        if (web.body is not None or web.json_body is not None) and (web.method or "GET") == "GET":
            findings.append(error((*ppath, "web", "method"), "a request body needs method POST or PUT"))
    if provider.job is not None and not provider.job.spec.template.spec.containers:
        findings.append(
            error((*ppath, "job", "spec", "template", "spec", "containers"), "at least one container is required")
        )
    if provider.plugin:
        for name in provider.plugin:
            if name not in BUILTIN_PLUGINS:
                findings.append(
                    warning(
                        (*ppath, "plugin", name),
                        f'metric plugin "{name}" is not built in here (built in: {", ".join(BUILTIN_PLUGINS)})',
                    )
                )
    return findings


def check_metric(metric: Metric, path: FieldPath, compiler: _Compiler | None = None) -> list[Finding]:
    """Argo's rules for one metric (reference 2.3), plus that conditions compile."""
    findings = _check_provider(metric, path)
    interval = check_duration(metric.interval, (*path, "interval"), findings)
    check_duration(metric.initial_delay, (*path, "initialDelay"), findings)
    count = int_setting(metric.count, (*path, "count"), findings)
    failure = int_setting(metric.failure_limit, (*path, "failureLimit"), findings)
    inconclusive = int_setting(metric.inconclusive_limit, (*path, "inconclusiveLimit"), findings)
    errors_ = int_setting(metric.consecutive_error_limit, (*path, "consecutiveErrorLimit"), findings)
    successes = int_setting(metric.consecutive_success_limit, (*path, "consecutiveSuccessLimit"), findings)
    if interval is not None and interval == 0:
        findings.append(error((*path, "interval"), "must be greater than 0 (e.g. 30s)"))
    if count is not None and count < 0:
        findings.append(error((*path, "count"), f"{count} is negative (use 0 or more)"))
    if count is not None and count > 1 and not metric.interval:
        findings.append(error((*path, "count"), f"count {count} needs an interval between measurements (e.g. 30s)"))
    if failure is not None and failure < -1:
        findings.append(error((*path, "failureLimit"), f"{failure} is not valid (use -1 to disable, or 0 or more)"))
    for value, name in ((inconclusive, "inconclusiveLimit"), (errors_, "consecutiveErrorLimit"),
                        (successes, "consecutiveSuccessLimit")):
        if value is not None and value < 0:
            findings.append(error((*path, name), f"{value} is negative (use 0 or more)"))
    if failure == -1 and not (successes and successes > 0):
        findings.append(
            error(
                (*path, "failureLimit"),
                "-1 (never fail) needs consecutiveSuccessLimit > 0, otherwise the metric can neither fail nor "
                "succeed early",
            )
        )
    if count is not None and count > 0:
        fail_at = failure if failure is not None else 0
        succeed_at = successes if successes is not None else 0
        if fail_at >= 0 and succeed_at >= 0 and count < fail_at + succeed_at:
            findings.append(
                error(
                    (*path, "count"),
                    f"{count} is less than failureLimit + consecutiveSuccessLimit ({fail_at + succeed_at})",
                )
            )
        if inconclusive is not None and count < inconclusive:
            findings.append(error((*path, "count"), f"{count} is less than inconclusiveLimit ({inconclusive})"))
    if compiler is not None:
        for attr, wire in (("success_condition", "successCondition"), ("failure_condition", "failureCondition")):
            text = getattr(metric, attr)
            if text is None or not text.strip() or is_templated(text):
                continue
            try:
                compiler(text)
            except Exception as exc:  # the compiler's own error type is not known here
                findings.append(error((*path, wire), f"does not compile: {_first_line(exc)}"))
    return findings


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def runs_indefinitely(metric: Metric, args: dict[str, str] | None = None) -> bool:
    """Whether a metric would measure until terminated: interval set and no positive count."""
    if not metric.interval:
        return False
    count: IntOrStr | None = metric.count
    if isinstance(count, str) and is_templated(count):
        match = re.fullmatch(r"\{\{\s*args\.([\w.-]+)\s*\}\}", count.strip())
        if match is None or args is None or match.group(1) not in args:
            return False  # unknown until the run is created
        count = args[match.group(1)]
    if count is None:
        return True
    try:
        return int(count) <= 0
    except ValueError:
        return False


def _check_regex_refs(
    items: list[DryRun] | list[MeasurementRetention] | None, path: FieldPath
) -> list[Finding]:
    entries: list[DryRun | MeasurementRetention] = list(items or [])
    findings: list[Finding] = []
    for index, item in enumerate(entries):
        try:
            re.compile(item.metric_name)
        except re.error as exc:
            findings.append(error((*path, index, "metricName"), f"not a valid regular expression: {exc}"))
        if isinstance(item, MeasurementRetention) and item.limit < 0:
            findings.append(error((*path, index, "limit"), f"{item.limit} is negative (use 0 or more)"))
    return findings


def check_analysis_spec(
    spec: AnalysisTemplateSpec | AnalysisRunSpec, *, compiler: _Compiler | None = None, path: FieldPath = ("spec",)
) -> list[Finding]:
    """Rules for a template's or a run's spec: metrics present, unique, each valid; args well formed."""
    findings: list[Finding] = []
    nested = getattr(spec, "templates", None)
    if not spec.metrics and not nested:
        findings.append(error((*path, "metrics"), "at least one metric is required"))
    seen: dict[str, int] = {}
    for index, metric in enumerate(spec.metrics):
        mpath = (*path, "metrics", index)
        if metric.name in seen:
            findings.append(
                error((*mpath, "name"), f'"{metric.name}" is also the name of metrics[{seen[metric.name]}] '
                      "(metric names must be unique)")
            )
        else:
            seen[metric.name] = index
        if not metric.name:
            findings.append(error((*mpath, "name"), "required (a metric name)"))
        findings.extend(check_metric(metric, mpath, compiler))
    arg_seen: set[str] = set()
    for index, arg in enumerate(spec.args or []):
        apath = (*path, "args", index)
        if arg.name in arg_seen:
            findings.append(error((*apath, "name"), f'argument "{arg.name}" is declared twice'))
        arg_seen.add(arg.name)
        if arg.value is not None and arg.value_from is not None:
            findings.append(error(apath, "set either value or valueFrom, not both"))
        if arg.value_from is not None and arg.value_from.secret_key_ref is None and arg.value_from.field_ref is None:
            findings.append(error((*apath, "valueFrom"), "set secretKeyRef or fieldRef"))
    findings.extend(_check_regex_refs(spec.dry_run, (*path, "dryRun")))
    findings.extend(_check_regex_refs(spec.measurement_retention, (*path, "measurementRetention")))
    return findings


def compiler() -> _Compiler | None:
    """The condition compiler when the expression module is available."""
    return _load_compiler()
