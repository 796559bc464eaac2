"""Deletion semantics that need a controller: garbage collection, namespaces, pod endings.

Three level-based reconcilers over the in-process ``Registry``:

- ``GarbageCollector`` (key: ``(resource, namespace, name)``): a dependent whose owners
  (``metadata.ownerReferences``, matched by uid) are all gone is deleted (background
  propagation); dangling references next to live owners are removed. An owner marked
  for deletion with the ``foregroundDeletion`` finalizer has its dependents deleted and
  loses the finalizer once none is left; one with the ``orphan`` finalizer has its
  reference removed from every dependent, then loses the finalizer.
- ``NamespaceController`` (key: namespace name): a terminating namespace has everything
  in it deleted, then its ``kubernetes`` finalizer removed, so it goes.
- ``PodReaper`` (key: ``(namespace, name)``): a terminating pod on a node without a node
  agent (no ``reference-cluster.io/agent`` annotation on its Node) is deleted for good at
  once; on an agent's node, after its grace period if the agent has not done so.

``Collectors`` starts and stops all three.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Hashable, Iterable
from typing import Any

from .api.deletion import FOREGROUND, NAMESPACE_FINALIZER, ORPHAN
from .api.objects import Obj, meta, parse_time
from .api.registry import Registry
from .api.resources import RESOURCES, Resource, find_resource, resource_for_kind
from .errors import ApiError, ConflictError, NotFoundError
from .nodes import AGENT_ANNOTATION
from .reconcile import ControllerLoop, Result

__all__ = ["AGENT_ANNOTATION", "Collectors", "GarbageCollector", "NamespaceController", "PodReaper"]

ObjKey = tuple[str, str | None, str]

_WATCHED = tuple(r for r in RESOURCES if "watch" in r.verbs)


def _key(r: Resource, obj: Obj) -> ObjKey:
    m = meta(obj)
    return (r.plural, m.get("namespace") if r.namespaced else None, m["name"])


class GarbageCollector:
    """Owner references: background, foreground and orphan propagation."""

    name = "garbage-collector"

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._lock = threading.Lock()
        self._by_uid: dict[str, ObjKey] = {}
        self._dependents: defaultdict[str, set[ObjKey]] = defaultdict(set)
        self._owners_of: dict[ObjKey, set[str]] = {}

    def sources(self) -> dict[str, Any]:
        return {r.plural: self._handler(r) for r in _WATCHED}

    def _handler(self, r: Resource) -> Any:
        def handle(event_type: str, obj: Obj) -> Iterable[Hashable]:
            key = _key(r, obj)
            m = meta(obj)
            uid = m.get("uid", "")
            owners = {ref.get("uid", "") for ref in m.get("ownerReferences") or []}
            with self._lock:
                for owner in self._owners_of.pop(key, set()):
                    self._dependents[owner].discard(key)
                if event_type == "DELETED":
                    self._by_uid.pop(uid, None)
                else:
                    self._by_uid[uid] = key
                    self._owners_of[key] = owners
                    for owner in owners:
                        self._dependents[owner].add(key)
                dependents = list(self._dependents.get(uid, ()))
                owner_keys = [self._by_uid[o] for o in owners if o in self._by_uid]
            keys: list[Hashable] = []
            if event_type != "DELETED" and (owners or "deletionTimestamp" in m):
                keys.append(key)
            if event_type == "DELETED" or "deletionTimestamp" in m:
                keys.extend(dependents)
                keys.extend(owner_keys)  # a foreground owner waits for this one to go
            return keys

        return handle

    def dependents_of(self, uid: str) -> list[ObjKey]:
        with self._lock:
            return sorted(self._dependents.get(uid, ()), key=str)

    def reconcile(self, key: Any) -> Result:
        plural, namespace, name = key
        try:
            obj = self.registry.get(plural, name, namespace=namespace)
        except NotFoundError:
            return Result()
        m = meta(obj)
        finalizers = m.get("finalizers") or []
        if "deletionTimestamp" in m and ORPHAN in finalizers:
            return self._orphan(plural, obj)
        if "deletionTimestamp" in m and FOREGROUND in finalizers:
            return self._foreground(plural, obj)
        refs = m.get("ownerReferences") or []
        if not refs or "deletionTimestamp" in m:
            return Result()
        alive = [ref for ref in refs if self._owner_exists(ref, namespace)]
        if not alive:
            try:
                self.registry.delete(
                    plural,
                    name,
                    namespace=namespace,
                    propagation_policy="Background",
                    preconditions={"uid": m["uid"]},
                )
            except (NotFoundError, ConflictError):
                pass  # already gone, or replaced by a new object of the same name
            return Result()
        if len(alive) < len(refs):
            self._set_owner_refs(plural, namespace, name, m["uid"], alive)
        return Result()

    def _owner_exists(self, ref: dict[str, Any], namespace: str | None) -> bool:
        r = resource_for_kind(ref.get("apiVersion", ""), ref.get("kind", ""))
        if r is None:
            return True  # a kind this server does not serve: we cannot tell, so keep it
        if r.namespaced and namespace is None:
            return True  # invalid: a cluster-scoped object cannot be owned by a namespaced one
        try:
            owner = self.registry.get(
                r, ref.get("name", ""), namespace=namespace if r.namespaced else None
            )
        except (NotFoundError, ApiError):
            return False
        return meta(owner).get("uid") == ref.get("uid")

    def _live_dependents(self, uid: str, namespace: str | None = None) -> list[tuple[ObjKey, Obj]]:
        """The objects that name ``uid`` as an owner, read from the store.

        The index built from watch events can lag behind the store (a dependent made
        just before its owner is deleted): orphaning or waiting on a partial list would
        lose a dependent, so the store is listed as well.
        """
        found: dict[ObjKey, Obj] = {}
        for key in self.dependents_of(uid):
            plural, dep_ns, name = key
            try:
                dep = self.registry.get(plural, name, namespace=dep_ns)
            except NotFoundError:
                continue
            if _owned_by(dep, uid):
                found[key] = dep
        for r in _WATCHED:
            if namespace is None and r.namespaced:
                continue  # a cluster-scoped owner cannot have namespaced dependents
            listed = self.registry.list(r, namespace=namespace if r.namespaced else None)
            for dep in listed.get("items") or []:
                if _owned_by(dep, uid):
                    found[_key(r, dep)] = dep
        return sorted(found.items(), key=lambda item: str(item[0]))

    def _foreground(self, plural: str, owner: Obj) -> Result:
        m = meta(owner)
        remaining = self._live_dependents(m["uid"], m.get("namespace"))
        for (dep_plural, dep_ns, dep_name), dep in remaining:
            if "deletionTimestamp" not in meta(dep):
                try:
                    self.registry.delete(
                        dep_plural, dep_name, namespace=dep_ns, propagation_policy="Foreground"
                    )
                except NotFoundError:
                    pass  # went by itself meanwhile
        if remaining:
            return Result(requeue_after=0.5)  # dependents' events also bring us back
        self._drop_finalizer(plural, owner, FOREGROUND)
        return Result()

    def _orphan(self, plural: str, owner: Obj) -> Result:
        uid = meta(owner)["uid"]
        for (dep_plural, dep_ns, dep_name), dep in self._live_dependents(
            uid, meta(owner).get("namespace")
        ):
            dm = meta(dep)
            kept = [ref for ref in dm.get("ownerReferences") or [] if ref.get("uid") != uid]
            self._set_owner_refs(dep_plural, dep_ns, dep_name, dm["uid"], kept)
        self._drop_finalizer(plural, owner, ORPHAN)
        return Result()

    def _set_owner_refs(
        self, plural: str, namespace: str | None, name: str, uid: str, refs: list[dict[str, Any]]
    ) -> None:
        # A JSON patch with a uid test: never touch a newer object of the same name.
        ops = [
            {"op": "test", "path": "/metadata/uid", "value": uid},
            {"op": "replace", "path": "/metadata/ownerReferences", "value": refs},
        ]
        if not refs:
            ops[1] = {"op": "remove", "path": "/metadata/ownerReferences"}
        try:
            self.registry.patch(
                plural, name, ops, patch_type="application/json-patch+json", namespace=namespace
            )
        except NotFoundError:
            pass  # gone meanwhile: nothing to orphan

    def _drop_finalizer(self, plural: str, obj: Obj, finalizer: str) -> None:
        m = meta(obj)
        kept = [f for f in m.get("finalizers") or [] if f != finalizer]
        try:
            self.registry.patch(
                plural,
                m["name"],
                {"metadata": {"finalizers": kept or None, "resourceVersion": m["resourceVersion"]}},
                patch_type="application/merge-patch+json",
                namespace=m.get("namespace"),
            )
        except NotFoundError:
            pass  # already gone


class NamespaceController:
    """Empties a terminating namespace, then lets it go."""

    name = "namespace-controller"

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def sources(self) -> dict[str, Any]:
        def on_namespace(event_type: str, obj: Obj) -> Iterable[Hashable]:
            m = meta(obj)
            return [m["name"]] if event_type != "DELETED" and "deletionTimestamp" in m else []

        return {"namespaces": on_namespace}

    def reconcile(self, key: Any) -> Result:
        try:
            ns = self.registry.get("namespaces", key)
        except NotFoundError:
            return Result()
        if "deletionTimestamp" not in meta(ns):
            return Result()
        remaining = 0
        for r in RESOURCES:
            if not r.namespaced or "list" not in r.verbs:
                continue
            for item in self.registry.list(r, namespace=key)["items"]:
                remaining += 1
                if "deletionTimestamp" in meta(item):
                    continue
                try:
                    self.registry.delete(
                        r, meta(item)["name"], namespace=key, propagation_policy="Background"
                    )
                except NotFoundError:
                    pass  # gone meanwhile
        if remaining:
            return Result(requeue_after=0.2)
        spec_finalizers = (ns.get("spec") or {}).get("finalizers") or []
        if NAMESPACE_FINALIZER in spec_finalizers:
            ns["spec"]["finalizers"] = [f for f in spec_finalizers if f != NAMESPACE_FINALIZER]
            try:
                self.registry.update("namespaces", ns, subresource="finalize")
            except NotFoundError:
                pass  # gone meanwhile
        return Result()


class PodReaper:
    """Ends graceful pod deletion where no node agent will (see the module docstring)."""

    name = "pod-reaper"

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._pods = find_resource("pods")

    def sources(self) -> dict[str, Any]:
        def on_pod(event_type: str, obj: Obj) -> Iterable[Hashable]:
            m = meta(obj)
            if event_type != "DELETED" and "deletionTimestamp" in m:
                return [(m.get("namespace"), m["name"])]
            return []

        return {"pods": on_pod}

    def reconcile(self, key: Any) -> Result:
        namespace, name = key
        try:
            pod = self.registry.get(self._pods, name, namespace=namespace)
        except NotFoundError:
            return Result()
        m = meta(pod)
        if "deletionTimestamp" not in m or m.get("finalizers"):
            return Result()
        deadline = parse_time(m["deletionTimestamp"]) or 0.0
        if self._has_agent((pod.get("spec") or {}).get("nodeName", "")):
            wait = deadline - self.registry.clock()
            if wait > 0:
                return Result(requeue_after=wait + 0.05)
        try:
            self.registry.delete(
                self._pods,
                name,
                namespace=namespace,
                grace_period_seconds=0,
                preconditions={"uid": m["uid"]},
            )
        except (NotFoundError, ConflictError):
            pass  # already gone, or a new pod of the same name
        return Result()

    def _has_agent(self, node: str) -> bool:
        if not node:
            return False
        try:
            obj = self.registry.get("nodes", node)
        except NotFoundError:
            return False
        return AGENT_ANNOTATION in (meta(obj).get("annotations") or {})


class Collectors:
    """The three reconcilers above, each in its own ``ControllerLoop``."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.gc = GarbageCollector(registry)
        self.namespaces = NamespaceController(registry)
        self.reaper = PodReaper(registry)
        self._loops = [
            ControllerLoop(c, self._watch, c.sources(), workers=w)
            for c, w in ((self.gc, 2), (self.namespaces, 1), (self.reaper, 1))
        ]

    def _watch(self, resource: str) -> Any:
        return self.registry.watch(resource, allow_bookmarks=False)

    def start(self) -> None:
        for loop in self._loops:
            loop.start()

    def stop(self) -> None:
        for loop in self._loops:
            loop.stop()

    def idle(self, timeout: float = 5.0) -> bool:
        """Wait until no work is queued (for tests); ``False`` if still busy at ``timeout``."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if all(len(loop.queue) == 0 for loop in self._loops):
                return True
            time.sleep(0.01)
        return False


def _owned_by(obj: Obj, uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in meta(obj).get("ownerReferences") or [])
