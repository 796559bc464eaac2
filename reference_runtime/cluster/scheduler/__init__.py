"""The reference cluster's scheduler: a small framework in kube-scheduler's shape.

Layers, bottom up: ``errors``; ``quantity`` and ``requests`` (resource amounts);
``cache`` (``PodInfo``, ``NodeInfo``, ``Cache``); ``framework`` (extension-point
protocols, ``Status``, ``CycleState``, one scheduling cycle); ``plugins`` (one module
per plugin, each with a ``NAME`` and a pure ``fits``/``score`` helper); ``queue``
(active, backoff and unschedulable pods); ``informer`` (list+watch into handlers);
``scheduler`` (the threads that tie them together) on top.
"""

from __future__ import annotations

from .cache import Cache, NodeInfo, PodInfo, Taint
from .errors import PluginError, QuantityError, SchedulerError
from .framework import (
    MAX_NODE_SCORE,
    BindPlugin,
    Code,
    CycleState,
    FilterPlugin,
    Framework,
    PreFilterPlugin,
    ScheduleResult,
    ScorePlugin,
    Snapshot,
    Status,
    fit_error_message,
    num_feasible_nodes_to_find,
)
from .plugins import DEFAULT_WEIGHTS, default_plugins
from .quantity import milli_value, parse_quantity, value
from .queue import QueuedPod, SchedulingQueue
from .requests import Resources, node_allocatable, pod_non_zero_requests, pod_requests
from .scheduler import Scheduler, SchedulerConfig

__all__ = [
    "DEFAULT_WEIGHTS",
    "MAX_NODE_SCORE",
    "BindPlugin",
    "Cache",
    "Code",
    "CycleState",
    "FilterPlugin",
    "Framework",
    "NodeInfo",
    "PluginError",
    "PodInfo",
    "PreFilterPlugin",
    "QuantityError",
    "QueuedPod",
    "Resources",
    "ScheduleResult",
    "Scheduler",
    "SchedulerConfig",
    "SchedulerError",
    "SchedulingQueue",
    "ScorePlugin",
    "Snapshot",
    "Status",
    "Taint",
    "default_plugins",
    "fit_error_message",
    "milli_value",
    "node_allocatable",
    "num_feasible_nodes_to_find",
    "parse_quantity",
    "pod_non_zero_requests",
    "pod_requests",
    "value",
]
