"""NodeResourcesFit: what a pod requests must fit in what the node has left.

Left = ``status.allocatable`` minus the requests of the pods bound (or assumed) there;
``pods`` counts one per pod. Reasons, as kube-scheduler words them: ``Too many pods``,
``Insufficient cpu``, ``Insufficient memory``, ``Insufficient ephemeral-storage``.
"""

from __future__ import annotations

from ..cache import NodeInfo, PodInfo
from ..errors import QuantityError
from ..framework import CycleState, Snapshot, Status
from ..requests import Resources, pod_requests

__all__ = ["NAME", "NodeResourcesFit", "fits", "insufficient"]

NAME = "NodeResourcesFit"


def insufficient(request: Resources, node: NodeInfo) -> list[str]:
    """Why ``request`` does not fit on ``node`` (empty when it fits)."""
    have, used = node.allocatable, node.requested
    reasons = []
    if used.pods + 1 > have.pods:
        reasons.append("Too many pods")
    if request.cpu and used.cpu + request.cpu > have.cpu:
        reasons.append("Insufficient cpu")
    if request.memory and used.memory + request.memory > have.memory:
        reasons.append("Insufficient memory")
    if request.storage and used.storage + request.storage > have.storage:
        reasons.append("Insufficient ephemeral-storage")
    return reasons


def fits(pod: PodInfo, node: NodeInfo) -> bool:
    return not insufficient(pod_requests(pod.pod), node)


class NodeResourcesFit:
    NAME = NAME

    def pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status:
        try:
            state.write(NAME, pod_requests(pod.pod))
        except QuantityError as exc:
            return Status.unschedulable(
                f"invalid resource request: {exc}", plugin=NAME, resolvable=False
            )
        return Status()

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        request: Resources = state.read(NAME)
        have, used = node.allocatable, node.requested
        if (
            used.pods < have.pods
            and used.cpu + request.cpu <= have.cpu
            and used.memory + request.memory <= have.memory
            and used.storage + request.storage <= have.storage
        ):
            return None  # the common case, without building a list
        reasons = insufficient(request, node)
        return Status.unschedulable(*reasons, plugin=NAME) if reasons else None
