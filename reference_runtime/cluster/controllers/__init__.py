"""The reference cluster's controllers, each a level-based ``Reconciler``.

Layers, bottom up: ``errors``; ``pods`` (owner references, pod states, templates) and
``ownership`` (adopt and release by selector); ``rollout``, ``templatehash`` and
``deployment_status`` (pure rollout arithmetic, hashes, conditions); the reconcilers
``replicaset``, ``deployment``, ``nodelifecycle``, ``tainteviction``; ``hollow`` (heartbeats
and hollow kubelets for nodes without a real agent) on top. Every reconciler has
``name``, ``sources()`` (resource -> event handler that only returns keys) and
``reconcile(key) -> Result``, and runs in a ``reconcile.ControllerLoop``;
``controlplane.ControlPlane`` starts them all.
"""

from __future__ import annotations

from .deployment import DeploymentController
from .errors import ControllerError, SpecError
from .hollow import HollowKubelet, HollowNodes
from .nodelifecycle import NodeLifecycleController
from .replicaset import ReplicaSetController
from .rollout import SetCount, fenceposts, new_set_replicas, old_sets_scale_down
from .tainteviction import TaintEvictionController, eviction_delay
from .templatehash import HASH_LABEL, template_hash

__all__ = [
    "HASH_LABEL",
    "ControllerError",
    "DeploymentController",
    "HollowKubelet",
    "HollowNodes",
    "NodeLifecycleController",
    "ReplicaSetController",
    "SetCount",
    "SpecError",
    "TaintEvictionController",
    "eviction_delay",
    "fenceposts",
    "new_set_replicas",
    "old_sets_scale_down",
    "template_hash",
]
