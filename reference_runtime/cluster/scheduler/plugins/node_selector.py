"""NodeSelector: a pod's ``spec.nodeSelector`` labels must all be on the node, equal."""

from __future__ import annotations

from collections.abc import Mapping

from ..cache import NodeInfo, PodInfo
from ..framework import CycleState, Snapshot, Status

__all__ = ["NAME", "REASON", "NodeSelector", "fits", "matches"]

NAME = "NodeSelector"
REASON = "node(s) didn't match Pod's node affinity/selector"


def matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """Every ``key: value`` of ``selector`` is a label of the node (an empty one matches)."""
    return all(labels.get(key) == value for key, value in selector.items())


def fits(pod: PodInfo, node: NodeInfo) -> bool:
    return matches(pod.spec.get("nodeSelector") or {}, node.labels)


class NodeSelector:
    NAME = NAME

    def pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status:
        selector = pod.spec.get("nodeSelector") or {}
        if not selector:
            return Status.skip()
        state.write(NAME, dict(selector))
        return Status()

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        if matches(state.read(NAME), node.labels):
            return None
        return Status.unschedulable(REASON, plugin=NAME, resolvable=False)
