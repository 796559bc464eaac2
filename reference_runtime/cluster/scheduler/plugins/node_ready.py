"""NodeReady: only nodes whose ``Ready`` condition is ``True`` take new pods.

(Kubernetes gets the same effect from the ``not-ready``/``unreachable`` taints that its
node lifecycle controller adds; here the condition is read directly, so a node is
avoided from the moment it stops being Ready, taint or not.)
"""

from __future__ import annotations

from ..cache import NodeInfo, PodInfo
from ..framework import CycleState, Snapshot, Status

__all__ = ["NAME", "REASON", "NodeReady", "fits"]

NAME = "NodeReady"
REASON = "node(s) were not ready"


def fits(pod: PodInfo, node: NodeInfo) -> bool:
    return node.ready


class NodeReady:
    NAME = NAME

    def pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status:
        return Status() if snapshot.blocked_nodes else Status.skip()

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        return None if node.ready else Status.unschedulable(REASON, plugin=NAME)
