"""NodeUnschedulable: a cordoned node (``spec.unschedulable``) takes only pods that
tolerate ``node.kubernetes.io/unschedulable:NoSchedule``."""

from __future__ import annotations

from ..cache import NodeInfo, PodInfo, Taint
from ..framework import CycleState, Snapshot, Status
from .taint_toleration import tolerates

__all__ = ["NAME", "REASON", "TAINT", "NodeUnschedulable", "fits"]

NAME = "NodeUnschedulable"
REASON = "node(s) were unschedulable"
TAINT = Taint("node.kubernetes.io/unschedulable", "", "NoSchedule")


def fits(pod: PodInfo, node: NodeInfo) -> bool:
    if not node.unschedulable:
        return True
    return any(
        tolerates(t, TAINT) for t in pod.spec.get("tolerations") or [] if isinstance(t, dict)
    )


class NodeUnschedulable:
    NAME = NAME

    def pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status:
        return Status() if snapshot.blocked_nodes else Status.skip()

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        if fits(pod, node):
            return None
        return Status.unschedulable(REASON, plugin=NAME, resolvable=False)
