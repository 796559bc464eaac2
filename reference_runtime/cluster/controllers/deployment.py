"""The Deployment controller: ReplicaSets per pod template, rolled out by strategy.

Key: ``(namespace, name)``. Events of Deployments, of their ReplicaSets and of deleted
pods only enqueue keys. ``reconcile`` reads the Deployment, the ReplicaSets and pods of
its namespace, adopts and releases ReplicaSets by selector, and finds the *new* one: the
set whose template equals the Deployment's but for the ``pod-template-hash`` label
(created as ``<name>-<hash>`` when missing, with the next ``deployment.kubernetes.io/revision``).
Then one step, the events of which bring it back for the next:

- ``RollingUpdate``: scale the new set up within ``replicas + maxSurge`` pods, else scale
  old sets down while ``replicas - maxUnavailable`` pods stay available (``rollout``);
- ``Recreate``: scale old sets to zero, wait until their pods are gone, then the new one.

Pod counts come from the pods themselves, not the sets' status, so the bounds hold while
ReplicaSet controllers lag. Status and conditions (``deployment_status``) are written
through the status subresource; once complete, old sets beyond ``revisionHistoryLimit``
are deleted. A paused Deployment (``spec.paused``) only has its status kept. Unlike
Kubernetes, a change of ``replicas`` in the middle of a rollout is not spread
proportionally over the sets: the new set is capped at ``replicas`` and the old ones
shrink by the availability rule above.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..api.objects import Obj, meta, parse_time
from ..api.patch import MERGE_PATCH
from ..api.registry import Registry
from ..api.selectors import selector_from_object
from ..errors import AlreadyExistsError, ApiError, ConflictError, NotFoundError
from ..reconcile import Result
from . import deployment_status as ds
from .ownership import claim
from .pods import controller_ref, is_active, is_available, is_ready, owner_reference
from .rollout import SetCount, fenceposts, new_set_replicas, old_sets_scale_down
from .templatehash import HASH_LABEL, equal_ignoring_hash, template_hash, with_hash

__all__ = ["DESIRED_REPLICAS", "MAX_REPLICAS", "REVISION", "DeploymentController"]

log = logging.getLogger(__name__)

REVISION = "deployment.kubernetes.io/revision"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
KIND, API_VERSION = "Deployment", "apps/v1"


@dataclass
class _Set:
    """One owned ReplicaSet and what its pods look like now."""

    rs: Obj
    count: SetCount
    ready: int = 0
    pods: int = 0  # pods not finished, including those being deleted

    @property
    def name(self) -> str:
        return str(meta(self.rs)["name"])

    @property
    def revision(self) -> int:
        try:
            return int((meta(self.rs).get("annotations") or {}).get(REVISION, "0"))
        except ValueError:
            return 0


@dataclass
class _Plan:
    """What one reconcile found; ``created`` if it made the new set."""

    deployment: Obj
    new: _Set | None
    old: list[_Set] = field(default_factory=list)
    created: bool = False


class DeploymentController:
    name = "deployment-controller"

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def sources(self) -> dict[str, Any]:
        return {
            "deployments": self._on_deployment,
            "replicasets": self._on_replica_set,
            "pods": self._on_pod,
        }

    def _on_deployment(self, event_type: str, d: Obj) -> Iterable[Hashable]:
        m = meta(d)
        return [] if event_type == "DELETED" else [(m.get("namespace"), m["name"])]

    def _on_replica_set(self, event_type: str, rs: Obj) -> Iterable[Hashable]:
        m = meta(rs)
        namespace = m.get("namespace")
        ref = controller_ref(rs)
        if ref is not None:
            return [(namespace, ref["name"])] if ref.get("kind") == KIND else []
        if event_type == "DELETED":
            return []
        try:
            deployments = self.registry.list("deployments", namespace=namespace)["items"]
        except ApiError:
            return []
        labels = m.get("labels")
        return [
            (namespace, meta(d)["name"])
            for d in deployments
            if selector_from_object((d.get("spec") or {}).get("selector")).matches(labels)
        ]

    def _on_pod(self, event_type: str, pod: Obj) -> Iterable[Hashable]:
        # Only a pod going away matters (Recreate waits for the old ones to be gone).
        m = meta(pod)
        if event_type != "DELETED" and "deletionTimestamp" not in m:
            return []
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return []
        try:
            rs = self.registry.get("replicasets", ref["name"], namespace=m.get("namespace"))
        except NotFoundError:
            return []
        owner = controller_ref(rs)
        return [(m.get("namespace"), owner["name"])] if owner and owner["kind"] == KIND else []

    # -- reconcile ---------------------------------------------------------------------------

    def reconcile(self, key: Any) -> Result:
        namespace, name = key
        try:
            d = self.registry.get("deployments", name, namespace=namespace)
        except NotFoundError:
            return Result()
        if "deletionTimestamp" in meta(d):
            return Result()  # the garbage collector takes its ReplicaSets away
        plan = self._observe(d)
        spec = d.get("spec") or {}
        desired = int(spec.get("replicas", 1))
        strategy = spec.get("strategy") or {}
        rolling = strategy.get("type", "RollingUpdate") == "RollingUpdate"
        surge, unavailable = 0, 0
        if rolling:
            knobs = strategy.get("rollingUpdate") or {}
            surge, unavailable = fenceposts(
                knobs.get("maxSurge", "25%"), knobs.get("maxUnavailable", "25%"), desired
            )
        if not spec.get("paused"):
            if rolling:
                self._roll(plan, desired, surge, unavailable)
            else:
                self._recreate(plan, desired)
        return self._sync_status(plan, desired, unavailable if desired else 0)

    def _observe(self, d: Obj) -> _Plan:
        m = meta(d)
        namespace = m.get("namespace")
        selector = selector_from_object((d.get("spec") or {}).get("selector"))
        ref = owner_reference(d, API_VERSION, KIND)
        sets = self.registry.list("replicasets", namespace=namespace)["items"]
        owned = claim(self.registry, "replicasets", d, ref, selector, sets)
        by_uid: dict[str, list[Obj]] = {meta(rs)["uid"]: [] for rs in owned}
        for pod in self.registry.list("pods", namespace=namespace)["items"]:
            pod_ref = controller_ref(pod)
            if pod_ref is not None and pod_ref.get("uid") in by_uid:
                by_uid[pod_ref["uid"]].append(pod)
        now = self.registry.clock()
        observed = []
        for rs in owned:
            rs_spec = rs.get("spec") or {}
            min_ready = int(rs_spec.get("minReadySeconds") or 0)
            pods = [
                p
                for p in by_uid[meta(rs)["uid"]]
                if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
            ]
            active = [p for p in pods if is_active(p)]
            count = SetCount(
                meta(rs)["name"],
                int(rs_spec.get("replicas", 0)),
                active=len(active),
                available=sum(1 for p in active if is_available(p, min_ready, now)),
            )
            ready = sum(1 for p in active if is_ready(p))
            observed.append(_Set(rs, count, ready=ready, pods=len(pods)))
        observed.sort(
            key=lambda s: (parse_time(meta(s.rs).get("creationTimestamp", "")) or 0.0, s.name)
        )
        template = (d.get("spec") or {}).get("template") or {}
        new = next(
            (s for s in observed if equal_ignoring_hash(s.rs["spec"].get("template"), template)),
            None,
        )
        return _Plan(d, new, [s for s in observed if s is not new])

    # -- strategies --------------------------------------------------------------------------

    def _roll(self, plan: _Plan, desired: int, surge: int, unavailable: int) -> None:
        counts = [s.count for s in plan.old]
        if plan.new is None:
            empty = SetCount("", 0)
            self._create_new(plan, new_set_replicas(desired, surge, empty, counts), surge)
            return
        target = new_set_replicas(desired, surge, plan.new.count, [*counts, plan.new.count])
        if target != plan.new.count.replicas:
            self._scale(plan.new.rs, target, desired, surge)
            return
        sizes = old_sets_scale_down(desired, unavailable, plan.new.count, counts)
        for s in plan.old:
            if s.name in sizes:
                self._scale(s.rs, sizes[s.name], desired, surge)

    def _recreate(self, plan: _Plan, desired: int) -> None:
        running_old = [s for s in plan.old if s.count.replicas > 0]
        for s in running_old:
            self._scale(s.rs, 0, desired, 0)
        if running_old or any(s.pods for s in plan.old):
            return  # old pods first go; their deletion events bring us back
        if plan.new is None:
            self._create_new(plan, desired, 0)
        elif plan.new.count.replicas != desired:
            self._scale(plan.new.rs, desired, desired, 0)

    # -- writes ------------------------------------------------------------------------------

    def _create_new(self, plan: _Plan, replicas: int, surge: int) -> None:
        d = plan.deployment
        m, spec = meta(d), d.get("spec") or {}
        namespace = m.get("namespace")
        collisions = int((d.get("status") or {}).get("collisionCount") or 0)
        template = spec.get("template") or {}
        value = template_hash(template, collisions)
        selector = dict(spec.get("selector") or {})
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), HASH_LABEL: value}
        desired = int(spec.get("replicas", 1))
        revision = max((s.revision for s in plan.old), default=0) + 1
        labelled = with_hash(template, value)
        rs: dict[str, Any] = {
            "metadata": {
                "name": f"{m['name']}-{value}",
                "labels": dict((labelled.get("metadata") or {}).get("labels") or {}),
                "annotations": {
                    REVISION: str(revision),
                    DESIRED_REPLICAS: str(desired),
                    MAX_REPLICAS: str(desired + surge),
                },
                "ownerReferences": [owner_reference(d, API_VERSION, KIND)],
            },
            "spec": {
                "replicas": replicas,
                "minReadySeconds": int(spec.get("minReadySeconds") or 0),
                "selector": selector,
                "template": labelled,
            },
        }
        try:
            created = self.registry.create("replicasets", rs, namespace=namespace)
        except AlreadyExistsError:
            existing = self.registry.get("replicasets", rs["metadata"]["name"], namespace=namespace)
            ref = controller_ref(existing)
            ours = ref is not None and ref.get("uid") == m["uid"]
            if ours and equal_ignoring_hash(existing["spec"].get("template"), template):
                return  # made by an earlier reconcile that failed later: next time it is found
            # A hash collision: count it, and the next reconcile tries another name.
            status = dict(d.get("status") or {})
            status["collisionCount"] = collisions + 1
            d["status"] = status
            self.registry.update("deployments", d, namespace=namespace, subresource="status")
            raise ConflictError(f"replicaset name {rs['metadata']['name']} is taken") from None
        plan.new = _Set(created, SetCount(meta(created)["name"], replicas))
        plan.created = True

    def _scale(self, rs: Obj, replicas: int, desired: int, surge: int) -> None:
        m = meta(rs)
        patch = {
            "metadata": {
                "resourceVersion": m["resourceVersion"],
                "annotations": {
                    DESIRED_REPLICAS: str(desired),
                    MAX_REPLICAS: str(desired + surge),
                },
            },
            "spec": {"replicas": replicas},
        }
        self.registry.patch(
            "replicasets", m["name"], patch, patch_type=MERGE_PATCH, namespace=m.get("namespace")
        )

    # -- status ------------------------------------------------------------------------------

    def _sync_status(self, plan: _Plan, desired: int, max_unavailable: int) -> Result:
        d = plan.deployment
        m = meta(d)
        namespace = m.get("namespace")
        now = self.registry.clock()
        sets = [*plan.old, *([plan.new] if plan.new else [])]
        if plan.new is not None:
            d = self._sync_revision(d, plan)
        old_status = d.get("status") or {}
        status: dict[str, Any] = {
            "observedGeneration": m.get("generation", 1),
            "replicas": sum(s.count.active for s in sets),
            "updatedReplicas": plan.new.count.active if plan.new else 0,
            "readyReplicas": sum(s.ready for s in sets),
            "availableReplicas": sum(s.count.available for s in sets),
            "unavailableReplicas": max(
                sum(s.count.replicas for s in sets) - sum(s.count.available for s in sets), 0
            ),
        }
        if old_status.get("collisionCount"):
            status["collisionCount"] = old_status["collisionCount"]
        if old_status.get("conditions"):
            status["conditions"] = [dict(c) for c in old_status["conditions"]]
        ds.available(status, desired, max_unavailable, now)
        if plan.new is not None:
            ds.progressing(d, old_status, status, plan.new.name, created=plan.created, now=now)
        if status != old_status:
            d["status"] = status
            self.registry.update("deployments", d, namespace=namespace, subresource="status")
        if ds.complete(d, status):
            self._clean_up(d, plan)
            return Result()
        left = ds.deadline_left(d, status, now)
        return Result(requeue_after=left + 0.1 if left is not None and left > 0 else None)

    def _sync_revision(self, d: Obj, plan: _Plan) -> Obj:
        """The new set has the highest revision, and the Deployment says which it is."""
        assert plan.new is not None
        newest = max((s.revision for s in plan.old), default=0)
        revision = plan.new.revision
        if revision <= newest:  # an old template came back (a rollback): it is new again
            revision = newest + 1
            rs_meta = meta(plan.new.rs)
            patch = {"metadata": {"annotations": {REVISION: str(revision)}}}
            self.registry.patch(
                "replicasets",
                rs_meta["name"],
                patch,
                patch_type=MERGE_PATCH,
                namespace=rs_meta.get("namespace"),
            )
        m = meta(d)
        if (m.get("annotations") or {}).get(REVISION) == str(revision):
            return d
        patch = {
            "metadata": {
                "resourceVersion": m["resourceVersion"],
                "annotations": {REVISION: str(revision)},
            }
        }
        return self.registry.patch(
            "deployments", m["name"], patch, patch_type=MERGE_PATCH, namespace=m.get("namespace")
        )

    def _clean_up(self, d: Obj, plan: _Plan) -> None:
        """Delete the oldest idle old sets beyond ``revisionHistoryLimit``."""
        limit = int((d.get("spec") or {}).get("revisionHistoryLimit", 10))
        idle = [s for s in plan.old if s.count.replicas == 0 and s.pods == 0]
        idle.sort(key=lambda s: s.revision)
        for s in idle[: max(len(idle) - limit, 0)]:
            rs_meta = meta(s.rs)
            try:
                self.registry.delete(
                    "replicasets",
                    rs_meta["name"],
                    namespace=rs_meta.get("namespace"),
                    preconditions={"uid": rs_meta["uid"]},
                )
            except (NotFoundError, ConflictError):
                pass  # already gone
