"""LeastAllocated: prefer the node with the most cpu and memory left after the pod.

Per resource, ``(allocatable - requested) * 100 / allocatable`` with the pod counted in
(0 when it would not fit), averaged with the resource weights (cpu 1, memory 1). Requests
are the non-zero ones (a container that asks for nothing counts as 100m and 200Mi), so
best-effort pods spread too. Scores are already in ``0..MAX_NODE_SCORE``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..cache import NodeInfo, PodInfo
from ..framework import MAX_NODE_SCORE, CycleState

__all__ = ["DEFAULT_RESOURCE_WEIGHTS", "NAME", "LeastAllocated", "score", "scores"]

NAME = "NodeResourcesLeastAllocated"
DEFAULT_RESOURCE_WEIGHTS: Mapping[str, int] = {"cpu": 1, "memory": 1}


def scores(
    pod: PodInfo,
    nodes: Sequence[NodeInfo],
    weights: Mapping[str, int] = DEFAULT_RESOURCE_WEIGHTS,
) -> list[int]:
    """The score of each of ``nodes`` for ``pod``, in order (one loop: this runs per cycle)."""
    cpu_weight, memory_weight = weights.get("cpu", 0), weights.get("memory", 0)
    total_weight = (cpu_weight + memory_weight) or 1
    asked_cpu, asked_memory = pod.non_zero.cpu, pod.non_zero.memory
    result = []
    for node in nodes:
        have, used = node.allocatable, node.non_zero
        cpu, memory = used.cpu + asked_cpu, used.memory + asked_memory
        cpu_score = (have.cpu - cpu) * MAX_NODE_SCORE // have.cpu if 0 <= cpu <= have.cpu else 0
        memory_score = (
            (have.memory - memory) * MAX_NODE_SCORE // have.memory
            if 0 <= memory <= have.memory and have.memory
            else 0
        )
        result.append((cpu_weight * cpu_score + memory_weight * memory_score) // total_weight)
    return result


def score(
    pod: PodInfo, node: NodeInfo, weights: Mapping[str, int] = DEFAULT_RESOURCE_WEIGHTS
) -> int:
    return scores(pod, [node], weights)[0]


class LeastAllocated:
    NAME = NAME

    def __init__(self, weights: Mapping[str, int] = DEFAULT_RESOURCE_WEIGHTS) -> None:
        self.weights = dict(weights)

    def score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]:
        return scores(pod, nodes, self.weights)
