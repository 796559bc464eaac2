"""BalancedAllocation: prefer the node whose cpu and memory use stay in proportion.

With the pod counted in, each resource's fraction ``requested / allocatable`` (capped at
1); the score is ``(1 - standard deviation of the fractions) * MAX_NODE_SCORE``, so a node
left at 50% cpu and 50% memory scores 100 and one at 100%/0% scores 50. Requests are the
real ones (kube-scheduler's ``useRequested``), not the non-zero defaults.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..cache import NodeInfo, PodInfo
from ..framework import MAX_NODE_SCORE, CycleState

__all__ = ["NAME", "BalancedAllocation", "score", "scores"]

NAME = "NodeResourcesBalancedAllocation"


def scores(pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]:
    """The score of each of ``nodes`` for ``pod``, in order (one loop: this runs per cycle)."""
    asked_cpu, asked_memory = pod.requests.cpu, pod.requests.memory
    result = []
    for node in nodes:  # plain comparisons, not min()/abs(): this loop is the hot path
        have, used = node.allocatable, node.requested
        cpu = (used.cpu + asked_cpu) / have.cpu if have.cpu > 0 else 1.0
        memory = (used.memory + asked_memory) / have.memory if have.memory > 0 else 1.0
        spread = (cpu if cpu < 1.0 else 1.0) - (memory if memory < 1.0 else 1.0)
        deviation = (spread if spread > 0 else -spread) / 2  # the std deviation of two values
        result.append(int((1.0 - deviation) * MAX_NODE_SCORE))
    return result


def score(pod: PodInfo, node: NodeInfo) -> int:
    return scores(pod, [node])[0]


class BalancedAllocation:
    NAME = NAME

    def score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]:
        return scores(pod, nodes)
