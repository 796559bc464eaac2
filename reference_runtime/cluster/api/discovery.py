"""Discovery documents: ``/version``, ``/api``, ``/apis``, ``/api/v1``, ``/apis/<g>/<v>``.

These are the legacy (unaggregated) discovery formats; kubectl 1.32 asks for aggregated
discovery first and falls back to these when the answer is plain ``application/json``.
"""

from __future__ import annotations

import hashlib
import platform
from typing import Any

from ..errors import NotFoundError
from .resources import RESOURCES, Resource, group_versions

__all__ = [
    "KUBERNETES_VERSION",
    "api_group",
    "api_group_list",
    "api_resource_list",
    "api_versions",
    "version_info",
]

KUBERNETES_VERSION = (1, 32)
_SUBRESOURCE_KIND = {"binding": ("", "v1", "Binding"), "scale": ("autoscaling", "v1", "Scale")}
_SUBRESOURCE_VERBS = {
    "status": ["get", "patch", "update"],
    "scale": ["get", "patch", "update"],
    "binding": ["create"],
    "log": ["get"],
    "finalize": ["update"],
}


def version_info() -> dict[str, Any]:
    major, minor = KUBERNETES_VERSION
    return {
        "major": str(major),
        "minor": str(minor),
        "gitVersion": f"v{major}.{minor}.0-reference",
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": f"python{platform.python_version()}",
        "compiler": "cpython",
        "platform": "linux/amd64",
    }


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def _group_entry(group: str) -> dict[str, Any]:
    versions = [
        {"groupVersion": f"{g}/{v}", "version": v} for g, v in group_versions() if g == group
    ]
    return {"name": group, "versions": versions, "preferredVersion": versions[0]}


def api_group_list() -> dict[str, Any]:
    groups: list[dict[str, Any]] = []
    for group, _ in group_versions():
        if group and all(g["name"] != group for g in groups):
            groups.append(_group_entry(group))
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(group: str) -> dict[str, Any]:
    if not group or all(g != group for g, _ in group_versions()):
        raise NotFoundError(f"the server could not find the requested resource (group {group})")
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_entry(group)}


def _entry(r: Resource) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": list(r.verbs),
        "storageVersionHash": hashlib.sha256(f"{r.api_version}/{r.kind}".encode())
        .digest()[:8]
        .hex(),
    }
    if r.short_names:
        entry["shortNames"] = list(r.short_names)
    if r.categories:
        entry["categories"] = list(r.categories)
    return entry


def api_resource_list(group: str, version: str) -> dict[str, Any]:
    served = [r for r in RESOURCES if r.group == group and r.version == version]
    if not served:
        name = f"{group}/{version}" if group else version
        raise NotFoundError(f"the server could not find the requested resource ({name})")
    resources = []
    for r in served:
        resources.append(_entry(r))
        for sub in r.subresources:
            sub_group, sub_version, kind = _SUBRESOURCE_KIND.get(sub, (r.group, r.version, r.kind))
            entry: dict[str, Any] = {
                "name": f"{r.plural}/{sub}",
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": kind,
                "verbs": _SUBRESOURCE_VERBS[sub],
            }
            if (sub_group, sub_version) != (r.group, r.version):
                entry["group"], entry["version"] = sub_group, sub_version
            resources.append(entry)
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }
