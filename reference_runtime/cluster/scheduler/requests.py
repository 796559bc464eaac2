"""What a pod asks for and what a node offers, in whole units: ``Resources``.

``pod_requests`` follows kube-scheduler: the sum over containers, at least the largest
init container, plus ``spec.overhead``; a container with only ``limits`` requests its
limits (the API server defaults requests to limits). ``pod_non_zero_requests`` is what
scoring uses: a container that requests no cpu or memory counts as 100m and 200Mi, so
best-effort pods still spread. ``node_allocatable`` reads ``status.allocatable`` (or
``capacity``). CPU is in millicores, memory and ephemeral storage in bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .quantity import milli_value, value

__all__ = [
    "DEFAULT_MEMORY_REQUEST",
    "DEFAULT_MILLI_CPU_REQUEST",
    "Resources",
    "node_allocatable",
    "pod_non_zero_requests",
    "pod_requests",
]

DEFAULT_MILLI_CPU_REQUEST = 100  # kube-scheduler's non-zero defaults for scoring
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024


@dataclass(slots=True)
class Resources:
    """An amount of cpu (millicores), memory and ephemeral storage (bytes), and pods."""

    cpu: int = 0
    memory: int = 0
    storage: int = 0
    pods: int = 0

    def add(self, other: Resources, sign: int = 1) -> None:
        self.cpu += sign * other.cpu
        self.memory += sign * other.memory
        self.storage += sign * other.storage
        self.pods += sign * other.pods

    def set_max(self, other: Resources) -> None:
        self.cpu = max(self.cpu, other.cpu)
        self.memory = max(self.memory, other.memory)
        self.storage = max(self.storage, other.storage)


def _amounts(values: Mapping[str, Any]) -> Resources:
    return Resources(
        cpu=milli_value(values["cpu"]) if "cpu" in values else 0,
        memory=value(values["memory"]) if "memory" in values else 0,
        storage=value(values["ephemeral-storage"]) if "ephemeral-storage" in values else 0,
    )


def _container_requests(container: Mapping[str, Any]) -> Resources:
    resources = container.get("resources") or {}
    return _amounts({**(resources.get("limits") or {}), **(resources.get("requests") or {})})


def _containers(spec: Mapping[str, Any], group: str) -> Iterable[Mapping[str, Any]]:
    return [c for c in spec.get(group) or [] if isinstance(c, dict)]


def pod_requests(pod: Mapping[str, Any]) -> Resources:
    """What ``pod`` requests (``QuantityError`` if a quantity is malformed); ``pods=1``."""
    spec = pod.get("spec") or {}
    total = Resources(pods=1)
    for container in _containers(spec, "containers"):
        total.add(_container_requests(container))
    for container in _containers(spec, "initContainers"):
        total.set_max(_container_requests(container))
    if spec.get("overhead"):
        total.add(_amounts(spec["overhead"]))
    return total


def pod_non_zero_requests(pod: Mapping[str, Any]) -> Resources:
    """``pod_requests`` with 100m cpu and 200Mi memory for containers that ask for none."""
    spec = pod.get("spec") or {}
    total = Resources(pods=1)
    for container in _containers(spec, "containers"):
        asked = _container_requests(container)
        asked.cpu = asked.cpu or DEFAULT_MILLI_CPU_REQUEST
        asked.memory = asked.memory or DEFAULT_MEMORY_REQUEST
        total.add(asked)
    for container in _containers(spec, "initContainers"):
        total.set_max(_container_requests(container))
    if spec.get("overhead"):
        total.add(_amounts(spec["overhead"]))
    return total


def node_allocatable(node: Mapping[str, Any]) -> Resources:
    """What a Node offers pods: ``status.allocatable``, else ``status.capacity``."""
    status = node.get("status") or {}
    offered = status.get("allocatable") or status.get("capacity") or {}
    amounts = _amounts(offered)
    amounts.pods = value(offered["pods"]) if "pods" in offered else 110
    return amounts
