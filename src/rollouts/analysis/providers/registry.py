"""Which provider measures a metric: the built-in ones (prometheus, web, job) and the `plugin: {<name>: ...}`
providers other modules register (rollouts/traffic, rollouts/sequential)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from pydantic.alias_generators import to_camel

from rollouts.analysis.providers.base import Provider
from rollouts.analysis.providers.job import JobMetricProvider
from rollouts.analysis.providers.prometheus import PrometheusMetricProvider
from rollouts.analysis.providers.web import WebMetricProvider
from rollouts.spec.analysis import Metric

ProviderFactory = Callable[[], Provider]

_BUILTIN: dict[str, ProviderFactory] = {
    "prometheus": PrometheusMetricProvider,
    "web": WebMetricProvider,
    "job": JobMetricProvider,
}
_PLUGINS: dict[str, ProviderFactory] = {}


class ProviderNotSupported(LookupError):
    """A metric whose provider this controller cannot measure (or that names none, or several)."""


def register_plugin(name: str, factory: ProviderFactory, *, replace: bool = False) -> None:
    """Make `plugin: {<name>: config}` metrics measurable. Registering the same factory again is harmless;
    another factory under a taken name needs replace=True."""
    current = _PLUGINS.get(name)
    if current is not None and current is not factory and not replace:
        raise ValueError(f"metric provider plugin {name!r} is already registered")
    _PLUGINS[name] = factory


def unregister_plugin(name: str) -> None:
    _PLUGINS.pop(name, None)


def registered_plugins() -> tuple[str, ...]:
    return tuple(sorted(_PLUGINS))


def provider_for(metric: Metric, *, extra: Mapping[str, Provider] | None = None) -> Provider:
    """The provider that measures `metric`.

    `extra` maps a provider key (`prometheus`, `web`, `job`) or a plugin name to a ready instance and takes
    precedence over the built-ins and the registered plugins (the controller passes configured providers
    this way; tests pass their own)."""
    extra = extra or {}
    kinds = metric.provider.kinds()
    where = f"metric {metric.name!r}: provider"
    if not kinds:
        raise ProviderNotSupported(f"{where}: no provider specified (use one of {_supported()})")
    if len(kinds) > 1:
        raise ProviderNotSupported(
            f"{where}: multiple providers specified ({', '.join(to_camel(k) for k in kinds)}); "
            "keep exactly one"
        )
    kind = kinds[0]
    if kind == "plugin":
        return _plugin_for(metric, extra, where)
    if kind in extra:
        return extra[kind]
    factory = _BUILTIN.get(kind)
    if factory is None:
        raise ProviderNotSupported(
            f"{where}.{to_camel(kind)}: this provider is not supported by this controller "
            f"(supported: {_supported()})"
        )
    return factory()


def _plugin_for(metric: Metric, extra: Mapping[str, Provider], where: str) -> Provider:
    config = metric.provider.plugin or {}
    if len(config) != 1:
        names = ", ".join(sorted(config)) or "none"
        raise ProviderNotSupported(f"{where}.plugin: name exactly one plugin (found: {names})")
    name = next(iter(config))
    if name in extra:
        return extra[name]
    factory = _PLUGINS.get(name)
    if factory is None:
        raise ProviderNotSupported(
            f"{where}.plugin.{name}: no such metric plugin here (available: "
            f"{', '.join(registered_plugins()) or 'none'}); Argo's binary plugins cannot be loaded"
        )
    return factory()


def _supported() -> str:
    plugins = [f"plugin {name}" for name in registered_plugins()]
    return ", ".join([*sorted(_BUILTIN), *plugins])
