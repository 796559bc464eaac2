"""The taint eviction controller: pods leave nodes with ``NoExecute`` taints they do not
tolerate (Kubernetes' taint manager).

Key: the node name. Node events and events of pods bound to a node enqueue it. For each
active pod on a node with ``NoExecute`` taints, each taint gives a delay counted from its
``timeAdded``: the smallest ``tolerationSeconds`` of the tolerations that tolerate it,
never if one of them has no ``tolerationSeconds``, and, with none, ``0`` -- except for the
``not-ready``/``unreachable`` taints, which get ``default_toleration_seconds``, as
Kubernetes' DefaultTolerationSeconds admission gives every pod (300 s). The pod is deleted
(evicted, with a ``TaintManagerEviction`` event) when the first delay runs out; the
controller looks again when the next one will. ``timeAdded`` has whole seconds, so a delay
counts from the later of it and the moment this controller first saw the taint.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

from ..api.objects import Obj, format_time, meta, parse_time
from ..api.registry import Registry
from ..errors import ApiError, ConflictError, NotFoundError
from ..reconcile import Result
from ..scheduler.cache import Taint
from ..scheduler.plugins.taint_toleration import tolerates
from .nodelifecycle import NOT_READY_TAINT, UNREACHABLE_TAINT
from .pods import is_active

__all__ = ["TaintEvictionController", "eviction_delay"]

log = logging.getLogger(__name__)


def eviction_delay(
    tolerations: Sequence[dict[str, Any]], taint: Taint, default_toleration_seconds: float
) -> float | None:
    """Seconds a pod may stay after ``taint`` was added (``None``: forever)."""
    matching = [t for t in tolerations if tolerates(t, taint)]
    if not matching:
        if taint.key in (UNREACHABLE_TAINT, NOT_READY_TAINT):
            return default_toleration_seconds
        return 0.0
    if any(t.get("tolerationSeconds") is None for t in matching):
        return None
    return float(max(min(int(t["tolerationSeconds"]) for t in matching), 0))


class TaintEvictionController:
    name = "taint-eviction-controller"

    def __init__(self, registry: Registry, *, default_toleration_seconds: float = 300.0) -> None:
        self.registry = registry
        self.default_toleration_seconds = default_toleration_seconds
        self._first_seen: dict[tuple[str, str, str], float] = {}
        self._lock = threading.Lock()

    def sources(self) -> dict[str, Any]:
        return {"nodes": self._on_node, "pods": self._on_pod}

    def _on_node(self, event_type: str, node: Obj) -> Iterable[Hashable]:
        taints = (node.get("spec") or {}).get("taints") or []
        tainted = any(t.get("effect") == "NoExecute" for t in taints)
        return [meta(node)["name"]] if event_type != "DELETED" and tainted else []

    def _on_pod(self, event_type: str, pod: Obj) -> Iterable[Hashable]:
        node = (pod.get("spec") or {}).get("nodeName")
        return [node] if node and event_type != "DELETED" and is_active(pod) else []

    def reconcile(self, key: Any) -> Result:
        try:
            node = self.registry.get("nodes", key)
        except NotFoundError:
            return Result()
        now = self.registry.clock()
        taints = [
            (Taint(t.get("key", ""), t.get("value", ""), "NoExecute"), t.get("timeAdded") or "")
            for t in (node.get("spec") or {}).get("taints") or []
            if t.get("effect") == "NoExecute"
        ]
        with self._lock:
            seen = {k: v for k, v in self._first_seen.items() if k[0] != key}
            for taint, added in taints:
                since = self._first_seen.get((key, taint.key, added), now)
                seen[(key, taint.key, added)] = since
            self._first_seen = seen
            starts = [max(parse_time(a) or now, seen[(key, t.key, a)]) for t, a in taints]
        if not taints:
            return Result()
        pods = self.registry.list("pods", field_selector=f"spec.nodeName={key}")["items"]
        recheck: float | None = None
        for pod in pods:
            if not is_active(pod):
                continue
            tolerations = [
                t for t in (pod.get("spec") or {}).get("tolerations") or [] if isinstance(t, dict)
            ]
            due: float | None = None
            for (taint, _), start in zip(taints, starts, strict=True):
                delay = eviction_delay(tolerations, taint, self.default_toleration_seconds)
                if delay is not None:
                    due = start + delay if due is None else min(due, start + delay)
            if due is None:
                continue
            if due <= now:
                self._evict(pod, key, now)
            else:
                recheck = due - now if recheck is None else min(recheck, due - now)
        return Result(requeue_after=recheck + 0.05 if recheck is not None else None)

    def _evict(self, pod: Obj, node: str, now: float) -> None:
        m = meta(pod)
        namespace, name = m.get("namespace"), m["name"]
        try:
            self.registry.delete("pods", name, namespace=namespace, preconditions={"uid": m["uid"]})
        except (NotFoundError, ConflictError):
            return  # already gone, or a namesake
        stamp = format_time(now)
        event = {
            "metadata": {"generateName": f"{name}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "namespace": namespace,
                "name": name,
                "uid": m["uid"],
            },
            "reason": "TaintManagerEviction",
            "message": f"Marking for deletion Pod {namespace}/{name}",
            "type": "Normal",
            "count": 1,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "source": {"component": "taint-eviction-controller", "host": node},
            "reportingComponent": "taint-eviction-controller",
        }
        try:
            self.registry.create("events", event, namespace=namespace)
        except ApiError as exc:
            log.debug("cannot record the eviction of %s/%s: %s", namespace, name, exc)
