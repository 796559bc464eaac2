"""NodeName: a pod that names its node (``spec.nodeName``) fits only that node."""

from __future__ import annotations

from ..cache import NodeInfo, PodInfo
from ..framework import CycleState, Snapshot, Status

__all__ = ["NAME", "REASON", "NodeName", "fits"]

NAME = "NodeName"
REASON = "node(s) didn't match the requested node name"


def fits(pod: PodInfo, node: NodeInfo) -> bool:
    return not pod.node_name or pod.node_name == node.name


class NodeName:
    NAME = NAME

    def pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status:
        return Status() if pod.node_name else Status.skip()

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        if fits(pod, node):
            return None
        return Status.unschedulable(REASON, plugin=NAME, resolvable=False)
