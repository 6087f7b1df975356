"""Fixed-threshold gates that sit within noise of the live baseline: the finding `rollouts lint` prints and
`rollouts doctor` can call (`noisy_gates`), from the same estimate as `rollouts gate check`.

A metric is judged once per way a Rollout among the given objects uses its template (the Rollout's
analysis args with a value, its gated steps and the canary weight at each of them); a
template no Rollout uses is judged with its own defaults, and skipped when a required argument has none.
Nothing is said unless a Prometheus answers: the template's address (or `prometheus_address`, which
replaces it; or ROLLOUTS_PROMETHEUS_ADDRESS when the metric names none) is probed once with a short
timeout, and a gate whose baseline cannot be read is left out. Linting stays quiet and fast offline.
An address that names a cluster Service (`http://prometheus.prometheus.svc:9090`, as the shipped templates
do) is reached through a `resolver` over the local cluster when one is given (`connectable`), as the
gates themselves reach it; without one such a name simply does not answer.
"""

from __future__ import annotations

import json
import math
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from rollouts.analysis import noise
from rollouts.analysis.gate_shape import GateShape, NotAGate, gate_shape, prom_duration

if TYPE_CHECKING:
    from rollouts.analysis.gate_baseline import Baseline
    from rollouts.kube.dns import ClusterResolver

# The prometheus provider's fallbacks (providers.prometheus.ADDRESS_ENV_VARS), spelled here so that lint
# does not load an HTTP client before a Prometheus answered.
ADDRESS_ENV_VARS = ("ROLLOUTS_PROMETHEUS_ADDRESS", "ARGO_ROLLOUTS_PROMETHEUS_ADDRESS")

TEMPLATE_KINDS = ("AnalysisTemplate", "ClusterAnalysisTemplate")
DEFAULT_TARGET = 0.01
DEFAULT_LOOKBACK = "7d"
DEFAULT_CANARY_WEIGHT = 10.0
PROBE_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class Usage:
    """How one Rollout runs a template: its args with values, gated steps, canary weight at the first, and
    the weight at every gated step in order (empty: all at `canary_weight`)."""

    args: Mapping[str, str] = field(default_factory=dict)
    gates: int = 1
    canary_weight: float = DEFAULT_CANARY_WEIGHT
    rollout: str | None = None
    step_weights: tuple[float, ...] = ()

    @property
    def weights(self) -> float | tuple[float, ...]:
        return self.step_weights if len(set(self.step_weights)) > 1 else self.canary_weight


@dataclass(frozen=True)
class NoisyGate:
    kind: str
    template: str
    metric_index: int
    metric: str
    message: str  # the gate check line, plus which rollout's use of the template it is about
    release_probability: float  # chance a healthy release is rolled back by this gate

    @property
    def path(self) -> str:
        return f"spec.metrics[{self.metric_index}]"


def _pct(value: float) -> str:
    if value >= 0.995 or value == 0:
        return f"{value * 100:.0f} %"
    return f"{value * 100:.2g} %" if value < 0.1 else f"{value * 100:.0f} %"


def _share(value: float) -> str:
    return f"{value * 100:.2f} %"


def _window_gate(shape: GateShape, baseline: Baseline, canary_weight: float) -> noise.WindowGate:
    share_of_traffic = canary_weight / 100 if shape.canary_scoped else 1.0
    requests = round(baseline.rps * share_of_traffic * shape.window_seconds)
    return noise.WindowGate(requests, shape.bad_share_limit, shape.fails_at_equal, shape.count,
                            shape.failure_limit, shape.window_seconds, shape.interval_seconds,
                            shape.consecutive_success_limit)


def _release_probability(runs: Sequence[float]) -> float:
    """P(at least one of independent step gates fails), each with its own run probability."""
    kept = 1.0
    for run in runs:
        kept *= 1.0 - run
    return 1.0 - kept


def _loosest_limit_per_step(gates: Sequence[noise.WindowGate], baseline: float, *, target: float,
                            step: float = 0.0005) -> float | None:
    """noise.loosest_safe_limit for gates whose windows differ (one canary weight per gated step): the
    smallest bad-share limit above the current one, on the same grid, at which a healthy release is
    rolled back at most `target` of the time over all of them."""
    current = gates[0].bad_share_limit
    limit = math.floor(round(current / step, 9)) * step
    while limit <= 0.5:
        if limit > current + 1e-12:
            # As noise.loosest_safe_limit's search: fewer replays per candidate, the grid is coarse.
            runs = [noise.run_fail_probability(baseline, replace(g, bad_share_limit=limit), replays=4_000)
                    for g in gates]
            if _release_probability(runs) <= target:
                return round(limit, 6)
        limit += step
    return None


def check_line(shape: GateShape, baseline: Baseline, *, gates: int, target: float,
               canary_weight: float | Sequence[float]) -> tuple[str, bool, float]:
    """`rollouts gate check`'s line for one metric, whether it is flagged (a healthy release is rolled back
    more often than `target`), and that release-level probability.

    `canary_weight` is one weight for every gate, or one per gated step (as many as `gates`): a metric on
    the canary's own requests then sees a larger window at each later step, and the release figure
    combines the steps' own probabilities. The line's other figures are the first step's."""
    weights = [float(canary_weight)] if isinstance(canary_weight, int | float) else [float(w) for w in canary_weight]
    if len(weights) not in (1, gates):
        raise ValueError(f"{len(weights)} canary weights for {gates} gates: give one, or one per gate")
    per_step = len(weights) > 1 and len(set(weights)) > 1 and shape.canary_scoped
    first_weight = weights[0]
    gate = _window_gate(shape, baseline, first_weight)
    requests = gate.requests
    run = noise.run_fail_probability(baseline.bad_share, gate)
    step_gates = [_window_gate(shape, baseline, w) for w in weights] if per_step else [gate]
    if per_step:
        release = _release_probability([run] + [noise.run_fail_probability(baseline.bad_share, g)
                                                for g in step_gates[1:]])
    else:
        release = noise.release_fail_probability(run, gates)
    latency = shape.quantile is not None
    rate_text = (f"{_share(baseline.bad_share)} of requests slower than {shape.threshold.bound:g}" if latency
                 else f"{_share(baseline.bad_share)} error rate")
    at = f" at {' / '.join(f'{w:g}' for w in weights)} %" if per_step else ""
    over = f" ({_pct(release)} over {gates} gates{at})" if gates > 1 else ""
    canary_weight = first_weight
    scope = f", the canary's {canary_weight:g} %" if shape.canary_scoped else ""
    line = (f"{shape.name} {shape.describe().split(' ', 1)[1]}: a healthy release fails it {_pct(run)} of the time"
            f"{over} at today's {rate_text} ({requests:,} requests a window{scope})")
    detect = noise.detectable_bad_share(gate, baseline.bad_share)
    if detect is not None:
        what = "slow requests" if latency else "errors"
        line += f"; it catches {_share(detect)} {what} 9 times in 10"
        if not shape.canary_scoped and canary_weight < 100:
            canary = baseline.bad_share + (detect - baseline.bad_share) * 100 / canary_weight
            line += f" (a canary at {canary_weight:g} % must reach {_share(min(canary, 1.0))})"
    flagged = release > target
    if flagged:
        advice = "consider rollouts/sequential"
        if not latency:
            if per_step:
                limit = _loosest_limit_per_step(step_gates, baseline.bad_share, target=target)
            else:
                better = noise.loosest_safe_limit(gate, baseline.bad_share, gates=gates, target=target)
                limit = better.bad_share_limit if better is not None else None
            if limit is not None:
                bound = 1 - limit if shape.value_is_good_share else limit
                advice += f" or a threshold of {bound:.4g}"
        line += f"; {advice}"
    return line, flagged, release


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _given_args(analysis: Mapping[str, Any]) -> dict[str, str]:
    # valueFrom args (pod-template hashes, field refs) have no value before the release: left out, so
    # gate_shape drops the label matchers that need them (the canary's pods), as gate check does.
    return {str(a.get("name")): str(a["value"]) for a in map(_map, _list(analysis.get("args")))
            if a.get("name") and a.get("value") is not None}


def _names(analysis: Mapping[str, Any]) -> list[str]:
    return [str(t.get("templateName")) for t in map(_map, _list(analysis.get("templates"))) if t.get("templateName")]


def template_usages(objects: Iterable[Mapping[str, Any]]) -> dict[str, list[Usage]]:
    """Template name -> how the Rollouts among `objects` use it."""
    usages: dict[str, list[Usage]] = {}
    for obj in objects:
        if obj.get("kind") != "Rollout":
            continue
        name = str(_map(obj.get("metadata")).get("name") or "")
        strategy = _map(_map(obj.get("spec")).get("strategy"))
        canary, blue_green = _map(strategy.get("canary")), _map(strategy.get("blueGreen"))
        weight = 0.0
        first: dict[str, tuple[float, dict[str, str]]] = {}
        weights: dict[str, list[float]] = {}
        for step in map(_map, _list(canary.get("steps"))):
            if isinstance(step.get("setWeight"), int | float):
                weight = float(step["setWeight"])
            analysis = _map(step.get("analysis"))
            for template in _names(analysis):
                weights.setdefault(template, []).append(weight or DEFAULT_CANARY_WEIGHT)
                first.setdefault(template, (weight or DEFAULT_CANARY_WEIGHT, _given_args(analysis)))
        for template, (at, args) in first.items():
            usages.setdefault(template, []).append(
                Usage(args, len(weights[template]), at, name, tuple(weights[template])))
        background = _map(canary.get("analysis"))
        for template in _names(background):
            usages.setdefault(template, []).append(Usage(_given_args(background), 1, DEFAULT_CANARY_WEIGHT, name))
        for key in ("prePromotionAnalysis", "postPromotionAnalysis"):
            analysis = _map(blue_green.get(key))
            for template in _names(analysis):
                usages.setdefault(template, []).append(Usage(_given_args(analysis), 1, 100.0, name))
    return usages


def prometheus_reachable(address: str, timeout: float = PROBE_TIMEOUT_SECONDS) -> bool:
    """Whether a Prometheus query API answers at `address` within `timeout` seconds."""
    url = address.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": "1"})
    if not url.startswith(("http://", "https://")):
        return False
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - http(s) only, checked above
            body = json.loads(response.read(65536))
    except (OSError, ValueError):  # URLError, timeouts and refused connections are OSErrors
        return False
    return isinstance(body, dict) and body.get("status") == "success"


def connectable(address: str, namespace: str, resolver: ClusterResolver | None) -> str:
    """`address` as this process can connect to it: a cluster Service name mapped by `resolver` (over the
    local cluster) to that Service's local listener, as a pod in `namespace` would mean it; unchanged
    without a resolver or for any other host. Prometheus does not read the Host header, so the mapped URL
    is enough. Raises rollouts.kube.dns.ResolveError for a cluster name with no Service or listener."""
    if resolver is None:
        return address
    return resolver.resolve(address, namespace).url


def _address(shape: GateShape, override: str | None, env: Mapping[str, str]) -> str | None:
    if override:
        return override
    if shape.address:
        return shape.address
    return next((env[name] for name in ADDRESS_ENV_VARS if env.get(name)), None)


def noisy_gates(
    objects: Iterable[Mapping[str, Any]],
    *,
    prometheus_address: str | None = None,
    lookback: str = DEFAULT_LOOKBACK,
    target: float = DEFAULT_TARGET,
    probe_timeout: float = PROBE_TIMEOUT_SECONDS,
    env: Mapping[str, str] | None = None,
    resolver: ClusterResolver | None = None,
) -> list[NoisyGate]:
    """The fixed-threshold gates of the templates among `objects` (manifests or stored objects) that roll
    back more than `target` of healthy releases at the live baseline; [] when no Prometheus answers.
    `resolver` maps cluster Service names in the addresses to the local cluster's listeners."""
    from rollouts.spec.analysis import AnalysisTemplate

    items = list(objects)
    if not any(obj.get("kind") in TEMPLATE_KINDS for obj in items):
        return []
    env = os.environ if env is None else env
    lookback_seconds = prom_duration(lookback)
    usages = template_usages(items)
    reachable: dict[str, bool] = {}
    found: list[NoisyGate] = []
    for obj in items:
        kind = str(obj.get("kind") or "")
        if kind not in TEMPLATE_KINDS:
            continue
        try:
            spec = AnalysisTemplate.model_validate({**obj, "kind": "AnalysisTemplate"})
        except ValueError:
            continue  # lint reports the invalid template itself
        name = spec.metadata.name or ""
        defaults = {a.name: a.value for a in spec.spec.args or [] if a.value is not None}
        required = {a.name for a in spec.spec.args or [] if a.value is None and a.value_from is None}
        uses = usages.get(name) or [Usage()]
        for index, metric in enumerate(spec.spec.metrics):
            for use in uses:
                args = {**defaults, **use.args}
                if use.rollout is None and required - set(args):
                    continue  # no Rollout gives the required args: which service it gates is unknown
                try:
                    shape = gate_shape(metric, args)
                except (NotAGate, ValueError):
                    continue
                address = _address(shape, prometheus_address, env)
                if address is None:
                    continue
                from rollouts.kube.dns import ResolveError

                try:
                    address = connectable(address, spec.metadata.namespace or "default", resolver)
                except ResolveError:
                    continue  # no such Service on the local cluster: nothing answers there
                if address not in reachable:
                    reachable[address] = prometheus_reachable(address, probe_timeout)
                if not reachable[address]:
                    continue
                from rollouts.analysis.gate_baseline import BaselineUnavailable, prometheus_baseline

                try:
                    baseline = prometheus_baseline(replace(shape, address=address), address, lookback,
                                                   lookback_seconds)
                except (BaselineUnavailable, RuntimeError):
                    continue
                line, flagged, release = check_line(shape, baseline, gates=use.gates, target=target,
                                                    canary_weight=use.weights)
                if not flagged:
                    continue
                where = f" (as Rollout {use.rollout} runs it)" if use.rollout else ""
                found.append(NoisyGate(kind, name, index, metric.name,
                                       f"threshold within noise of the live baseline{where}: {line}", release))
    return found


__all__ = ["NoisyGate", "Usage", "check_line", "connectable", "noisy_gates", "prometheus_reachable",
           "template_usages"]
