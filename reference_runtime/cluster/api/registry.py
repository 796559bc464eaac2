"""The Kubernetes API semantics over a ``Store``, in-process: the ``Registry``.

Everything the HTTP server serves goes through here, and so should every in-process
client (scheduler, controllers, node agents): it validates, defaults, keeps
``metadata`` (uid, creationTimestamp, generation, resourceVersion) and implements
optimistic concurrency, finalizers, deletion propagation and namespace lifecycle.
Objects are plain JSON dicts; every method returns a fresh copy the caller may change.
Errors are ``ApiError``s (``NotFoundError``, ``ConflictError``, ``InvalidError``...).

Resources are named by plural (``"pods"``), ``"deployments.apps"`` or a ``Resource``.

The verbs live in one module per concept, each a base of ``Registry``, bottom up:
``registry_base`` (the store, the clock and the request checks every verb makes),
``reads`` (get, list, watch), ``deletion`` (preconditions, grace periods, finalizers,
propagation), ``writes`` (create, update, patch, binding; every write goes through one
read-modify-write loop) and ``scale`` (the scale subresource).
"""

from __future__ import annotations

from ..errors import ApiError
from .deletion import DeleteResult, RegistryDeletion
from .reads import RegistryReads
from .registry_base import ResourceRef
from .scale import RegistryScale
from .writes import RegistryWrites

__all__ = ["DeleteResult", "Registry", "ResourceRef"]


class Registry(RegistryScale, RegistryWrites, RegistryDeletion, RegistryReads):
    """Kubernetes API semantics over ``store``. Thread-safe."""

    def bootstrap(self) -> None:
        """Create the namespaces every cluster has (idempotent)."""
        for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
            try:
                self.create("namespaces", {"metadata": {"name": name}})
            except ApiError as exc:
                if exc.code != 409:
                    raise
