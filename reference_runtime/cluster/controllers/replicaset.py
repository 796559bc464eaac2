"""The ReplicaSet controller: keep ``spec.replicas`` pods matching the selector.

Key: ``(namespace, name)``. Pod and ReplicaSet events only enqueue keys; ``reconcile``
reads the ReplicaSet and the pods of its namespace from the registry, adopts and releases
pods by selector (``ownership.claim``), creates missing pods from the template
(``generateName: <rs>-``, a controller reference), deletes surplus ones in Kubernetes'
order (unscheduled, pending, not ready first), and writes ``status`` (replicas,
fullyLabeledReplicas, readyReplicas, availableReplicas, observedGeneration) through the
status subresource, computed, like Kubernetes, from the pods it saw before acting: the
events of its own creations and deletions bring it back to count again.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterable
from typing import Any

from ..api.objects import Obj, format_time, meta
from ..api.registry import Registry
from ..api.selectors import selector_from_object
from ..errors import ApiError, ConflictError, NotFoundError
from ..reconcile import Result
from .ownership import claim
from .pods import (
    controller_ref,
    deletion_rank,
    is_active,
    is_available,
    is_ready,
    owner_reference,
    pod_from_template,
    ready_since,
)

__all__ = ["BURST", "ReplicaSetController", "replica_set_status"]

log = logging.getLogger(__name__)

BURST = 500  # pods created or deleted per reconcile at most (Kubernetes' burstReplicas)
KIND, API_VERSION = "ReplicaSet", "apps/v1"


def replica_set_status(
    rs: Obj, pods: list[Obj], now: float, failure: str = ""
) -> tuple[dict[str, Any], float | None]:
    """The status ``rs`` should have for its ``pods``, and when to look again (a ready pod
    becomes available after ``minReadySeconds``)."""
    spec = rs.get("spec") or {}
    min_ready = int(spec.get("minReadySeconds") or 0)
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    active = [p for p in pods if is_active(p)]
    available = [p for p in active if is_available(p, min_ready, now)]
    recheck: float | None = None
    for pod in active:
        since = ready_since(pod)
        if since is not None and min_ready > 0 and since + min_ready > now:
            wait = since + min_ready - now
            recheck = wait if recheck is None else min(recheck, wait)
    old = rs.get("status") or {}
    status: dict[str, Any] = {
        "replicas": len(active),
        "fullyLabeledReplicas": sum(
            1
            for p in active
            if all(meta(p).get("labels", {}).get(k) == v for k, v in template_labels.items())
        ),
        "readyReplicas": sum(1 for p in active if is_ready(p)),
        "availableReplicas": len(available),
        "observedGeneration": meta(rs).get("generation", 1),
    }
    conditions = [c for c in old.get("conditions") or [] if c.get("type") != "ReplicaFailure"]
    if failure:
        previous: dict[str, Any] = next(
            (c for c in old.get("conditions") or [] if c.get("type") == "ReplicaFailure"), {}
        )
        conditions.append(
            {
                "type": "ReplicaFailure",
                "status": "True",
                "reason": "FailedCreate",
                "message": failure,
                "lastTransitionTime": previous.get("lastTransitionTime") or format_time(now),
            }
        )
    if conditions:
        status["conditions"] = conditions
    return status, recheck


class ReplicaSetController:
    name = "replicaset-controller"

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def sources(self) -> dict[str, Any]:
        return {"replicasets": self._on_replica_set, "pods": self._on_pod}

    def _on_replica_set(self, event_type: str, rs: Obj) -> Iterable[Hashable]:
        if event_type == "DELETED":
            return []  # its pods go with the garbage collector
        m = meta(rs)
        return [(m.get("namespace"), m["name"])]

    def _on_pod(self, event_type: str, pod: Obj) -> Iterable[Hashable]:
        m = meta(pod)
        ref = controller_ref(pod)
        if ref is not None:
            return [(m.get("namespace"), ref["name"])] if ref.get("kind") == KIND else []
        if event_type == "DELETED" or not m.get("labels"):
            return []
        # An orphan: every ReplicaSet that could adopt it takes a look.
        namespace = m.get("namespace")
        try:
            sets = self.registry.list("replicasets", namespace=namespace)["items"]
        except ApiError:
            return []
        return [
            (namespace, meta(rs)["name"])
            for rs in sets
            if selector_from_object((rs.get("spec") or {}).get("selector")).matches(m["labels"])
        ]

    def reconcile(self, key: Any) -> Result:
        namespace, name = key
        try:
            rs = self.registry.get("replicasets", name, namespace=namespace)
        except NotFoundError:
            return Result()
        spec = rs.get("spec") or {}
        selector = selector_from_object(spec.get("selector"))
        ref = owner_reference(rs, API_VERSION, KIND)
        pods = self.registry.list("pods", namespace=namespace)["items"]
        owned = claim(self.registry, "pods", rs, ref, selector, pods)
        failure = ""
        if "deletionTimestamp" not in meta(rs):
            failure = self._manage(rs, ref, owned, int(spec.get("replicas", 1)))
        now = self.registry.clock()
        status, recheck = replica_set_status(rs, owned, now, failure)
        if status != (rs.get("status") or {}):
            rs["status"] = status
            self.registry.update("replicasets", rs, namespace=namespace, subresource="status")
        if failure:
            raise ApiError(f"creating pods for {namespace}/{name} failed: {failure}")
        return Result(requeue_after=recheck)

    def _manage(self, rs: Obj, ref: dict[str, Any], owned: list[Obj], replicas: int) -> str:
        """Create or delete pods towards ``replicas``; the first failure's message, if any."""
        m = meta(rs)
        namespace, name = m.get("namespace"), m["name"]
        active = [p for p in owned if is_active(p)]
        diff = len(active) - replicas
        if diff < 0:
            template = (rs.get("spec") or {}).get("template") or {}
            for _ in range(min(-diff, BURST)):
                pod = pod_from_template(template, ref, f"{name}-")
                try:
                    self.registry.create("pods", pod, namespace=namespace)
                except ApiError as exc:
                    log.info("replicaset %s/%s: cannot create a pod: %s", namespace, name, exc)
                    return str(exc)
        elif diff > 0:
            for pod in sorted(active, key=deletion_rank)[: min(diff, BURST)]:
                pm = meta(pod)
                try:
                    self.registry.delete(
                        "pods", pm["name"], namespace=namespace, preconditions={"uid": pm["uid"]}
                    )
                except (NotFoundError, ConflictError):
                    pass  # already gone, or replaced by a namesake: nothing to delete
        return ""
