"""The scheduler's plugins, one module each, and the default profile.

Layers: every plugin module depends only on ``..cache``, ``..framework`` and
``..requests`` (``default_binder`` also on the registry); ``taint_toleration``'s helpers
are shared by ``node_unschedulable``. ``default_plugins`` lists them in kube-scheduler's
filter order: cheap, decisive checks first, resources last.
"""

from __future__ import annotations

from ...api.registry import Registry
from .balanced_allocation import BalancedAllocation
from .default_binder import DefaultBinder
from .least_allocated import LeastAllocated
from .node_name import NodeName
from .node_ready import NodeReady
from .node_resources_fit import NodeResourcesFit
from .node_selector import NodeSelector
from .node_unschedulable import NodeUnschedulable
from .taint_toleration import TaintToleration

__all__ = [
    "DEFAULT_WEIGHTS",
    "BalancedAllocation",
    "DefaultBinder",
    "LeastAllocated",
    "NodeName",
    "NodeReady",
    "NodeResourcesFit",
    "NodeSelector",
    "NodeUnschedulable",
    "TaintToleration",
    "default_plugins",
]

DEFAULT_WEIGHTS = {LeastAllocated.NAME: 1, BalancedAllocation.NAME: 1}


def default_plugins(registry: Registry) -> list[object]:
    """The default profile: filters in order, then scorers, then the binder."""
    return [
        NodeUnschedulable(),
        NodeReady(),
        NodeName(),
        TaintToleration(),
        NodeSelector(),
        NodeResourcesFit(),
        LeastAllocated(),
        BalancedAllocation(),
        DefaultBinder(registry),
    ]
