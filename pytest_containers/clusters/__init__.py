"""Cluster adapters: one protocol, an implementation per kind of cluster.

Layers, bottom up: ``base`` (the ``ClusterAdapter`` protocol, the fault names, errors);
``client`` (the official ``kubernetes`` client from a kubeconfig, shared by both
adapters); ``kubeconfig`` (an existing cluster) and ``reference`` (a throwaway
reference cluster); ``choice`` (a ``--cluster`` value). The ``kubernetes`` package is
imported only when a client is first made.
"""

from .base import (
    FAULTS,
    NODE_FAULTS,
    ClusterAdapter,
    ClusterUnavailableError,
    FaultUnavailableError,
)
from .choice import ClusterChoice
from .client import KubeClient
from .kubeconfig import KubeconfigCluster, default_kubeconfig
from .reference import ReferenceCluster

__all__ = [
    "FAULTS",
    "NODE_FAULTS",
    "ClusterAdapter",
    "ClusterChoice",
    "ClusterUnavailableError",
    "FaultUnavailableError",
    "KubeClient",
    "KubeconfigCluster",
    "ReferenceCluster",
    "default_kubeconfig",
]
