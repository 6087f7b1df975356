"""Choosing the provider for a metric: built-ins, registered plugins, overrides, and clear refusals."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from rollouts.analysis.outcome import MeasurementOutcome
from rollouts.analysis.providers import (
    JobMetricProvider,
    MeasureContext,
    PrometheusMetricProvider,
    ProviderNotSupported,
    WebMetricProvider,
    provider_for,
    register_plugin,
    registered_plugins,
    unregister_plugin,
)
from rollouts.spec.analysis import PROVIDER_TYPE_LABELS, Metric
from tests.providers.conftest import make_ctx, metric, run


class Fixed:
    type_label = "RPCPlugin"

    def __init__(self, value: float = 1.0) -> None:
        self.value = value

    async def measure(self, metric: Metric, ctx: MeasureContext) -> MeasurementOutcome:
        return MeasurementOutcome(value=self.value, printed=str(self.value))


@pytest.fixture
def traffic_plugin() -> Iterator[str]:
    register_plugin("example/traffic", Fixed)
    yield "example/traffic"
    unregister_plugin("example/traffic")


JOB = {"spec": {"template": {"spec": {"containers": [{"name": "c", "command": ["true"]}]}}}}


@pytest.mark.parametrize(("provider", "cls", "label"), [
    pytest.param({"prometheus": {"query": "up"}}, PrometheusMetricProvider, "Prometheus", id="prometheus"),
    pytest.param({"web": {"url": "http://x"}}, WebMetricProvider, "Web", id="web"),
    pytest.param({"job": JOB}, JobMetricProvider, "Job", id="job"),
])
def test_builtins(provider: dict[str, Any], cls: type, label: str) -> None:
    chosen = provider_for(metric(**provider))
    assert isinstance(chosen, cls)
    assert chosen.type_label == label == PROVIDER_TYPE_LABELS[next(iter(provider))]


def test_registered_plugin_is_used(traffic_plugin: str) -> None:
    chosen = provider_for(metric(plugin={traffic_plugin: {"maxErrorRate": 0.01}}))
    assert isinstance(chosen, Fixed) and chosen.type_label == "RPCPlugin"
    assert traffic_plugin in registered_plugins()
    assert run(chosen.measure(metric(plugin={traffic_plugin: {}}), make_ctx())).value == 1.0


def test_extra_overrides_builtins_and_plugins(traffic_plugin: str) -> None:
    mine = Fixed(7.0)
    assert provider_for(metric(prometheus={"query": "up"}), extra={"prometheus": mine}) is mine
    assert provider_for(metric(plugin={traffic_plugin: {}}), extra={traffic_plugin: mine}) is mine
    assert provider_for(metric(plugin={"only/extra": {}}), extra={"only/extra": mine}) is mine


def test_registering_another_factory_under_a_taken_name_needs_replace(traffic_plugin: str) -> None:
    register_plugin(traffic_plugin, Fixed)  # the same factory again: harmless
    with pytest.raises(ValueError, match="already registered"):
        register_plugin(traffic_plugin, lambda: Fixed(2.0))
    register_plugin(traffic_plugin, lambda: Fixed(2.0), replace=True)
    chosen = provider_for(metric(plugin={traffic_plugin: {}}))
    assert isinstance(chosen, Fixed) and chosen.value == 2.0


@pytest.mark.parametrize(("provider", "fragments"), [
    pytest.param({}, ["no provider specified", "prometheus"], id="none"),
    pytest.param({"prometheus": {"query": "up"}, "web": {"url": "http://x"}},
                 ["multiple providers specified", "prometheus, web"], id="several"),
    pytest.param({"datadog": {"query": "avg:x"}},
                 ["provider.datadog", "not supported", "job, prometheus, web"],
                 id="datadog"),
    pytest.param({"newRelic": {"query": "SELECT 1"}}, ["provider.newRelic"], id="camel-case-name"),
    pytest.param({"plugin": {"argoproj-labs/sample-prometheus": {}}},
                 ["plugin.argoproj-labs/sample-prometheus", "no such metric plugin", "binary plugins"],
                 id="unknown-plugin"),
    pytest.param({"plugin": {"a/b": {}, "c/d": {}}}, ["name exactly one plugin", "a/b, c/d"],
                 id="two-plugins"),
])
def test_refusals_are_clear(provider: dict[str, Any], fragments: list[str]) -> None:
    with pytest.raises(ProviderNotSupported) as caught:
        provider_for(metric("error-rate", **provider))
    message = str(caught.value)
    assert message.startswith("metric 'error-rate': provider")
    for fragment in fragments:
        assert fragment in message
