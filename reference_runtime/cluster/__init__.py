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

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from .api import ApiServer, ApiWatch, DeleteResult, Registry
    from .reconcile import ControllerLoop, Reconciler, Result, WorkQueue
    from .store import EtcdStore, SqliteStore, Store, open_store

# The API server, store and controllers are imported on first use, so that a node agent
# (which needs only ``errors``, ``client`` and ``agent``) starts without importing them.
_LAZY = {
    "ApiServer": "api",
    "ApiWatch": "api",
    "DeleteResult": "api",
    "Registry": "api",
    "ControllerLoop": "reconcile",
    "Reconciler": "reconcile",
    "Result": "reconcile",
    "WorkQueue": "reconcile",
    "EtcdStore": "store",
    "SqliteStore": "store",
    "Store": "store",
    "open_store": "store",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{module}", __name__), name)


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
