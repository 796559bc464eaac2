"""The node lifecycle controller: a node that stops renewing its Lease goes NotReady.

Key: the node name. Node and Lease (``kube-node-lease``) events enqueue it. A node's last
heartbeat is the newest of its Lease's ``renewTime`` and its ``Ready`` condition's
``lastHeartbeatTime``. When that is older than ``grace_period`` (Kubernetes'
``--node-monitor-grace-period``), the node's conditions become ``Unknown``
(``NodeStatusUnknown``) and its pods are marked not Ready. Separately, the node's taints
follow its ``Ready`` condition: ``Unknown`` gets ``node.kubernetes.io/unreachable:NoExecute``,
``False`` gets ``node.kubernetes.io/not-ready:NoExecute``, ``True`` neither (with
``timeAdded``, which the taint eviction controller counts from). A node that is still
fresh is looked at again when its grace period would run out. As in Kubernetes, a node
this controller has just started watching gets a whole grace period from that moment
("assuming now as a timestamp"), so a control plane restart longer than the grace
period does not mark every node Unknown.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any

from ..api.objects import Obj, format_time, meta, parse_time
from ..api.patch import MERGE_PATCH
from ..api.registry import Registry
from ..errors import ConflictError, NotFoundError
from ..reconcile import Result
from .pods import is_active

__all__ = [
    "LEASE_NAMESPACE",
    "NOT_READY_TAINT",
    "UNREACHABLE_TAINT",
    "NodeLifecycleController",
    "last_heartbeat",
    "wanted_taint",
]

LEASE_NAMESPACE = "kube-node-lease"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
_OURS = (UNREACHABLE_TAINT, NOT_READY_TAINT)
_NODE_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")


def _ready(node: Obj) -> dict[str, Any] | None:
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return dict(condition)
    return None


def last_heartbeat(node: Obj, lease: Obj | None) -> float:
    """When the node was last heard of (its creation, if never)."""
    times = [parse_time(meta(node).get("creationTimestamp") or "")]
    ready = _ready(node)
    if ready is not None:
        times.append(parse_time(ready.get("lastHeartbeatTime") or ""))
    if lease is not None:
        times.append(parse_time((lease.get("spec") or {}).get("renewTime") or ""))
    return max((t for t in times if t is not None), default=0.0)


def wanted_taint(ready_status: str) -> str | None:
    """The NoExecute taint key a node with this ``Ready`` status carries, if any."""
    return {"Unknown": UNREACHABLE_TAINT, "False": NOT_READY_TAINT}.get(ready_status)


class NodeLifecycleController:
    name = "node-lifecycle-controller"

    def __init__(self, registry: Registry, *, grace_period: float = 40.0) -> None:
        if grace_period <= 0:
            raise ValueError(f"grace_period must be positive, not {grace_period}")
        self.registry = registry
        self.grace_period = grace_period
        self._first_seen: dict[str, float] = {}  # node -> when this controller first saw it

    def sources(self) -> dict[str, Any]:
        return {"nodes": self._on_node, "leases": self._on_lease}

    def _on_node(self, event_type: str, node: Obj) -> Iterable[Hashable]:
        return [] if event_type == "DELETED" else [meta(node)["name"]]

    def _on_lease(self, event_type: str, lease: Obj) -> Iterable[Hashable]:
        m = meta(lease)
        ours = m.get("namespace") == LEASE_NAMESPACE and event_type != "DELETED"
        return [m["name"]] if ours else []

    def reconcile(self, key: Any) -> Result:
        try:
            node = self.registry.get("nodes", key)
        except NotFoundError:
            self._first_seen.pop(key, None)
            return Result()
        try:
            lease: Obj | None = self.registry.get("leases", key, namespace=LEASE_NAMESPACE)
        except NotFoundError:
            lease = None
        now = self.registry.clock()
        seen = self._first_seen.setdefault(key, now)
        age = now - max(last_heartbeat(node, lease), seen)
        ready = _ready(node)
        status = ready.get("status", "Unknown") if ready else "Unknown"
        if age > self.grace_period and (ready is None or status != "Unknown"):
            node = self._mark_unknown(node, now)
            self._mark_pods_not_ready(key, now)
            status = "Unknown"
        self._sync_taints(node, status, now)
        if age <= self.grace_period:
            return Result(requeue_after=self.grace_period - age + 0.05)
        return Result()

    def _mark_unknown(self, node: Obj, now: float) -> Obj:
        stamp = format_time(now)
        status = node.setdefault("status", {})
        conditions = [dict(c) for c in status.get("conditions") or []]
        for condition in conditions:
            if condition.get("type") in _NODE_CONDITIONS and condition.get("status") != "Unknown":
                condition.update(
                    status="Unknown",
                    reason="NodeStatusUnknown",
                    message="Kubelet stopped posting node status.",
                    lastTransitionTime=stamp,
                )
        if not any(c.get("type") == "Ready" for c in conditions):
            conditions.append(
                {
                    "type": "Ready",
                    "status": "Unknown",
                    "reason": "NodeStatusNeverUpdated",
                    "message": "Kubelet never posted node status.",
                    "lastTransitionTime": stamp,
                }
            )
        status["conditions"] = conditions
        return self.registry.update("nodes", node, subresource="status")

    def _mark_pods_not_ready(self, node_name: str, now: float) -> None:
        pods = self.registry.list("pods", field_selector=f"spec.nodeName={node_name}")["items"]
        for pod in pods:
            if not is_active(pod):
                continue
            conditions = [dict(c) for c in (pod.get("status") or {}).get("conditions") or []]
            changed = False
            for condition in conditions:
                if condition.get("type") == "Ready" and condition.get("status") != "False":
                    condition.update(status="False", lastTransitionTime=format_time(now))
                    changed = True
            if not changed:
                continue
            pod["status"]["conditions"] = conditions
            m = meta(pod)
            try:
                self.registry.update(
                    "pods", pod, namespace=m.get("namespace"), subresource="status"
                )
            except (ConflictError, NotFoundError):
                pass  # changed or gone meanwhile: its own controllers take it from there

    def _sync_taints(self, node: Obj, ready_status: str, now: float) -> None:
        want = wanted_taint(ready_status)
        taints = [dict(t) for t in (node.get("spec") or {}).get("taints") or []]
        kept = [
            t
            for t in taints
            if not (t.get("key") in _OURS and t.get("effect") == "NoExecute" and t["key"] != want)
        ]
        if want and not any(t.get("key") == want and t.get("effect") == "NoExecute" for t in kept):
            kept.append({"key": want, "effect": "NoExecute", "timeAdded": format_time(now)})
        if kept == taints:
            return
        m = meta(node)
        patch = {
            "metadata": {"resourceVersion": m["resourceVersion"]},
            "spec": {"taints": kept or None},
        }
        self.registry.patch("nodes", m["name"], patch, patch_type=MERGE_PATCH)
