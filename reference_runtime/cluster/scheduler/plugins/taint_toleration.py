"""TaintToleration: a node's ``NoSchedule``/``NoExecute`` taints must all be tolerated.

A toleration tolerates a taint when its effect is empty or equal, its key is empty or
equal, and either its operator is ``Exists`` or (``Equal``, the default) the values are
equal; an empty key with ``Exists`` tolerates every taint (Kubernetes' ``ToleratesTaint``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..cache import FILTER_EFFECTS, NodeInfo, PodInfo, Taint
from ..framework import CycleState, Snapshot, Status

__all__ = ["NAME", "TaintToleration", "fits", "reason", "tolerates", "untolerated"]

NAME = "TaintToleration"


def tolerates(toleration: Mapping[str, Any], taint: Taint) -> bool:
    effect, key = toleration.get("effect") or "", toleration.get("key") or ""
    if effect and effect != taint.effect:
        return False
    if key and key != taint.key:
        return False
    if toleration.get("operator") == "Exists":
        return True
    return (toleration.get("value") or "") == taint.value


def untolerated(
    tolerations: Sequence[Mapping[str, Any]],
    taints: Iterable[Taint],
    effects: frozenset[str] = FILTER_EFFECTS,
) -> Taint | None:
    """The first taint with one of ``effects`` that no toleration tolerates, if any."""
    for taint in taints:
        if taint.effect in effects and not any(tolerates(t, taint) for t in tolerations):
            return taint
    return None


def reason(taint: Taint) -> str:
    return f"node(s) had untolerated taint {{{taint.key}: {taint.value}}}"


def fits(pod: PodInfo, node: NodeInfo) -> bool:
    tolerations = [t for t in pod.spec.get("tolerations") or [] if isinstance(t, dict)]
    return untolerated(tolerations, node.taints) is None


class TaintToleration:
    NAME = NAME

    def pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status:
        if not snapshot.tainted_nodes:
            return Status.skip()  # no node has a taint this filter looks at
        tolerations = [t for t in pod.spec.get("tolerations") or [] if isinstance(t, dict)]
        state.write(NAME, tolerations)
        return Status()

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        if not node.taints:
            return None
        taint = untolerated(state.read(NAME), node.taints)
        if taint is None:
            return None
        return Status.unschedulable(reason(taint), plugin=NAME, resolvable=False)
