"""The scenario file of `rollouts simulate`: what the release is, what the metrics return over time (given
values, or a traffic model whose simulated requests the traffic metrics are computed from), and what the
operator does when. Parsing and validation only; durations become seconds after the release."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from rollouts.spec.duration import DurationError, parse_duration


class ScenarioError(ValueError):
    """A scenario that cannot be simulated (the text is one line for the CLI)."""


def _seconds(value: Any) -> float:
    if not isinstance(value, str | int | float):
        raise ValueError(f"{value!r} is not a duration (use a form like 30s, 5m, 1h30m)")
    try:
        seconds = parse_duration(value)
    except DurationError as exc:
        raise ValueError(str(exc)) from None
    if seconds < 0:
        raise ValueError(f"{value!r} is negative")
    return seconds


Seconds = Annotated[float, BeforeValidator(_seconds)]

Action = Literal["promote", "promote-full", "abort", "retry", "pause", "resume", "undo", "set-image"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ValueChange(_Strict):
    """From `from` on, the metric's measurements return `value` (any JSON) or fail with `error`."""

    from_: Seconds = Field(alias="from")
    value: Any = None
    error: str | None = None

    @model_validator(mode="after")
    def _one_of(self) -> ValueChange:
        has_value = "value" in self.model_fields_set
        if has_value == (self.error is not None):
            raise ValueError("set exactly one of value or error")
        return self


class OperatorAction(_Strict):
    at: Seconds
    action: Action
    image: str | None = None
    to_revision: int = Field(default=0, alias="toRevision", ge=0)

    @model_validator(mode="after")
    def _image_for_set_image(self) -> OperatorAction:
        if self.action == "set-image" and not self.image:
            raise ValueError("set-image needs an image")
        return self


class LatencySpec(_Strict):
    """A version's latency distribution (lognormal) by its median and 95th percentile, in milliseconds."""

    p50: float = Field(gt=0)
    p95: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> LatencySpec:
        if self.p95 < self.p50:
            raise ValueError(f"p95 ({self.p95:g}) must not be below p50 ({self.p50:g})")
        return self


class VersionSpec(_Strict):
    """How the requests served by one image behave."""

    error_rate: float = Field(alias="errorRate", ge=0, le=1)
    latency_ms: LatencySpec = Field(default=LatencySpec(p50=50.0, p95=200.0), alias="latencyMs")


class TrafficSpec(_Strict):
    """`rps` requests per second to the service, split between stable and canary by the canary's weight."""

    rps: float = Field(gt=0)
    versions: dict[str, VersionSpec] = Field(min_length=1)


class Scenario(_Strict):
    release: str | None = None
    seed: int = 0
    traffic: TrafficSpec | None = None
    until: Seconds = 24 * 3600.0
    ready_after: Seconds = Field(default=5.0, alias="readyAfter")
    analysis: dict[str, list[ValueChange]] = Field(default_factory=dict)
    operator: list[OperatorAction] = Field(default_factory=list)

    def timeline(self, metric: str) -> list[ValueChange]:
        return sorted(self.analysis.get(metric, []), key=lambda change: change.from_)


def _aliases(model: type[BaseModel]) -> list[str]:
    return sorted(f.alias or name for name, f in model.model_fields.items())


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel]:
    if loc[:1] == ("traffic",):
        if len(loc) > 4 and loc[1] == "versions" and loc[3] == "latencyMs":
            return LatencySpec
        if len(loc) > 3 and loc[1] == "versions":
            return VersionSpec
        return TrafficSpec
    if loc[:1] == ("operator",) and len(loc) > 2:
        return OperatorAction
    if loc[:1] == ("analysis",) and len(loc) > 3:
        return ValueChange
    return Scenario


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _explain(source: str, exc: ValidationError) -> str:
    # An unknown key explains a missing one (a typo), so it is reported first.
    error = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")[0]
    loc = tuple(error["loc"])
    if error["type"] == "extra_forbidden":
        valid = ", ".join(_aliases(_model_at(loc)))
        return f"{source}: unknown key {_path(loc)!r} (valid keys: {valid})"
    message = str(error["msg"]).removeprefix("Value error, ")
    where = _path(loc)
    return f"{source}: {where}: {message}" if where else f"{source}: {message}"


def parse_scenario(data: Any, source: str = "scenario") -> Scenario:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ScenarioError(f"{source}: a scenario is a mapping (keys: {', '.join(_aliases(Scenario))})")
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(_explain(source, exc)) from None


def load_scenario(path: str) -> Scenario:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read the scenario ({exc.strerror or exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "invalid YAML"
        raise ScenarioError(f"{path}: not valid YAML ({first})") from None
    return parse_scenario(data, path)
