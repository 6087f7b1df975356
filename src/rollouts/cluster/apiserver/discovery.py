"""Discovery documents: /version, /api, /api/v1, /apis, /apis/GROUP and /apis/GROUP/VERSION, over the
built-in kinds and those registered by CRDs."""

from __future__ import annotations

import platform
from typing import Any

from rollouts import __version__
from rollouts.cluster.apiserver.resources import Registry, Resource

JSONObject = dict[str, Any]


def version_info() -> JSONObject:
    return {
        "major": "1",
        "minor": "32",
        "gitVersion": f"v1.32.0+rollouts-{__version__}",
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "",
        "compiler": "python",
        "platform": f"{platform.system().lower()}/{platform.machine()}",
    }


def core_versions(address: str) -> JSONObject:
    return {"kind": "APIVersions", "apiVersion": "v1", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}]}


def _group(name: str, versions: list[str]) -> JSONObject:
    listed = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": name, "versions": listed,
            "preferredVersion": listed[0]}


def group_list(registry: Registry) -> JSONObject:
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [_group(name, versions) for name, versions in registry.group_versions().items()]}


def group(registry: Registry, name: str) -> JSONObject | None:
    versions = registry.group_versions().get(name)
    return _group(name, versions) if versions else None


def _entry(r: Resource) -> list[JSONObject]:
    main: JSONObject = {"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced, "kind": r.kind,
                        "verbs": list(r.verbs)}
    if r.short_names:
        main["shortNames"] = list(r.short_names)
    if r.categories:
        main["categories"] = list(r.categories)
    out = [main]
    if r.status:
        out.append({"name": f"{r.plural}/status", "singularName": "", "namespaced": r.namespaced, "kind": r.kind,
                    "verbs": ["get", "patch", "update"]})
    if r.scale:
        out.append({"name": f"{r.plural}/scale", "singularName": "", "namespaced": r.namespaced,
                    "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]})
    if r.log:
        out.append({"name": f"{r.plural}/log", "singularName": "", "namespaced": r.namespaced, "kind": r.kind,
                    "verbs": ["get"]})
    return out


def resource_list(registry: Registry, group_name: str, version: str) -> JSONObject | None:
    found = registry.resources_of(group_name, version)
    if not found:
        return None
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": f"{group_name}/{version}" if group_name else version,
            "resources": [entry for r in found for entry in _entry(r)]}
