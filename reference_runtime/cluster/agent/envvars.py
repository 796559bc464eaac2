"""A container's environment: ``env`` with ``value`` and ``valueFrom`` (fieldRef,
resourceFieldRef), resolved as kubelet does when the container starts.

``fieldRef``: ``metadata.name``, ``metadata.namespace``, ``metadata.uid``,
``metadata.labels['K']``, ``metadata.annotations['K']``, ``spec.nodeName``,
``spec.serviceAccountName``, ``status.podIP``, ``status.podIPs``, ``status.hostIP``,
``status.hostIPs``. ``resourceFieldRef``: ``limits.cpu``, ``limits.memory``,
``limits.ephemeral-storage``, ``requests.*`` likewise, with an optional ``divisor``; a
limit the container does not set is the node's allocatable amount. ``$(NAME)``
references to earlier variables are expanded; ``$$`` is a literal ``$``.
"""

from __future__ import annotations

import math
import os
import re
from typing import Any

from ..scheduler.quantity import milli_value, value

__all__ = ["EnvError", "resolve_env"]

_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]$")
_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class EnvError(Exception):
    """An env entry cannot be resolved (CreateContainerConfigError)."""


def _field(pod: dict[str, Any], path: str, node_ip: str) -> str:
    m, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    simple = {
        "metadata.name": m.get("name", ""),
        "metadata.namespace": m.get("namespace", ""),
        "metadata.uid": m.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": node_ip,
        "status.podIPs": node_ip,
        "status.hostIP": node_ip,
        "status.hostIPs": node_ip,
    }
    if path in simple:
        return str(simple[path])
    match = _SUBSCRIPT.match(path)
    if match:
        return str((m.get(match.group(1)) or {}).get(match.group(2), ""))
    raise EnvError(f"unsupported fieldRef fieldPath {path!r}")


def _node_allocatable(resource: str) -> int:
    if resource == "cpu":
        return (os.cpu_count() or 1) * 1000  # milli-CPUs
    if resource == "memory":
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    stat = os.statvfs("/")
    return stat.f_bavail * stat.f_frsize


def _resource(container: dict[str, Any], ref: dict[str, Any]) -> str:
    name = str(ref.get("resource") or "")
    kind, _, resource = name.partition(".")
    if kind not in ("limits", "requests") or resource not in ("cpu", "memory", "ephemeral-storage"):
        raise EnvError(f"unsupported resourceFieldRef resource {name!r}")
    res = container.get("resources") or {}
    amount = (res.get(kind) or {}).get(resource)
    if amount is None and kind == "requests":
        amount = (res.get("limits") or {}).get(resource)
    divisor = str(ref.get("divisor") or "1")
    if resource == "cpu":
        milli = milli_value(amount) if amount is not None else _node_allocatable("cpu")
        per = milli_value(divisor) or 1000
        return str(math.ceil(milli / per))
    total = value(amount) if amount is not None else _node_allocatable(resource)
    return str(math.ceil(total / (value(divisor) or 1)))


def _expand(text: str, known: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return known.get(name, match.group(0))

    return _REFERENCE.sub(one, text)


def resolve_env(pod: dict[str, Any], container: dict[str, Any], node_ip: str) -> list[str]:
    """``NAME=value`` for every ``env`` entry of ``container``, in order."""
    known: dict[str, str] = {}
    out: list[str] = []
    for entry in container.get("env") or []:
        name = entry.get("name", "")
        source = entry.get("valueFrom")
        if source is None:
            text = _expand(str(entry.get("value", "")), known)
        elif "fieldRef" in source:
            text = _field(pod, str((source["fieldRef"] or {}).get("fieldPath", "")), node_ip)
        elif "resourceFieldRef" in source:
            text = _resource(container, source["resourceFieldRef"] or {})
        else:
            kinds = ", ".join(sorted(source)) or "nothing"
            raise EnvError(
                f"env {name}: valueFrom {kinds} is not supported (fieldRef, resourceFieldRef are)"
            )
        known[name] = text
        out.append(f"{name}={text}")
    return out
