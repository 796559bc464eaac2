"""The reference cluster: a small Kubernetes-API-compatible control plane.

Layers, bottom up: ``errors``; ``store`` (the ``Store`` protocol, SQLite and etcd);
``api`` (resources, validation, selectors, patches, the ``Registry`` that gives the
Kubernetes semantics in-process, and the HTTP ``ApiServer`` on top of it);
``reconcile`` (work queue and controller loop for level-based controllers); ``gc``
(garbage collector, namespace controller and pod reaper, built on ``reconcile``);
``nodes``, ``kubeconfig``, ``tls``, ``testing``; ``cli`` (``reference-cluster``) on top.
See README.md here for how a scheduler or controller talks to the server.
"""

from __future__ import annotations

from .api import ApiServer, ApiWatch, DeleteResult, Registry
from .errors import (
    AlreadyExistsError,
    ApiError,
    BadRequestError,
    ClusterError,
    ConflictError,
    ForbiddenError,
    GoneError,
    InvalidError,
    NotFoundError,
    StoreError,
)
from .reconcile import ControllerLoop, Reconciler, Result, WorkQueue
from .store import EtcdStore, SqliteStore, Store, open_store

__all__ = [
    "AlreadyExistsError",
    "ApiError",
    "ApiServer",
    "ApiWatch",
    "BadRequestError",
    "ClusterError",
    "ConflictError",
    "ControllerLoop",
    "DeleteResult",
    "EtcdStore",
    "ForbiddenError",
    "GoneError",
    "InvalidError",
    "NotFoundError",
    "Reconciler",
    "Registry",
    "Result",
    "SqliteStore",
    "Store",
    "StoreError",
    "WorkQueue",
    "open_store",
]
