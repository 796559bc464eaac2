"""DefaultBinder: write the pod's ``Binding`` through the registry (``pods/binding``)."""

from __future__ import annotations

from ...api.registry import Registry
from ...errors import ApiError
from ..cache import PodInfo
from ..framework import CycleState, Status

__all__ = ["NAME", "DefaultBinder", "binding"]

NAME = "DefaultBinder"


def binding(pod: PodInfo, node_name: str) -> dict[str, object]:
    """The ``Binding`` object for ``pod`` (with its uid: never bind a newer namesake)."""
    namespace, name = pod.key
    return {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": name, "namespace": namespace, "uid": pod.uid},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node_name},
    }


class DefaultBinder:
    NAME = NAME

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def bind(self, state: CycleState, pod: PodInfo, node_name: str) -> Status:
        try:
            self.registry.bind(pod.key[1], binding(pod, node_name), namespace=pod.key[0])
        except ApiError as exc:
            return Status.error(f"binding rejected: {exc}", plugin=NAME)
        return Status()
