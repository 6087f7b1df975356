"""Metric providers: taking one measurement of an analysis metric (Prometheus query, web request, job
process, registered plugins), each behind the `Provider` interface, chosen by `provider_for`."""

from rollouts.analysis.providers.base import MeasureContext, Provider, redact
from rollouts.analysis.providers.job import JobMetricProvider
from rollouts.analysis.providers.prometheus import PrometheusMetricProvider
from rollouts.analysis.providers.registry import (
    ProviderNotSupported,
    provider_for,
    register_plugin,
    registered_plugins,
    unregister_plugin,
)
from rollouts.analysis.providers.web import WebMetricProvider

__all__ = [
    "JobMetricProvider",
    "MeasureContext",
    "PrometheusMetricProvider",
    "Provider",
    "ProviderNotSupported",
    "WebMetricProvider",
    "provider_for",
    "redact",
    "register_plugin",
    "registered_plugins",
    "unregister_plugin",
]
