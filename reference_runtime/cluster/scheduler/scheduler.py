"""The scheduler: informers feed the cache and the queue; one thread runs the cycles.

``Scheduler(registry).start()`` watches Nodes and Pods (``Informer``), keeps the
``Cache`` of nodes and bound pods, and queues every pending pod whose
``spec.schedulerName`` is its own. The scheduling thread pops a pod, runs the
``Framework`` over the cache (under the scheduler's lock, so the cycle sees one
consistent state), assumes the chosen node, and binds through the binding subresource.

A pod no node can take gets ``PodScheduled=False`` with ``reason: Unschedulable`` and
kube-scheduler's message (plus a ``FailedScheduling`` event), written only when the
message changes, and waits in the queue until the cluster changes: a node added, a node's
labels, taints, readiness or allocatable changed, a bound pod deleted or finished.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..api.objects import Obj, format_time, meta
from ..api.registry import Registry
from ..errors import ApiError, ConflictError, NotFoundError
from .cache import Cache, PodInfo
from .framework import CycleState, Framework, ScheduleResult
from .informer import Informer
from .plugins import DEFAULT_WEIGHTS, default_plugins
from .queue import QueuedPod, SchedulingQueue

__all__ = ["Scheduler", "SchedulerConfig"]

log = logging.getLogger(__name__)

TERMINAL_PHASES = ("Succeeded", "Failed")


@dataclass(frozen=True)
class SchedulerConfig:
    """Knobs, named after kube-scheduler's configuration where it has them."""

    scheduler_name: str = "default-scheduler"
    percentage_of_nodes_to_score: int = 0  # 0: kube-scheduler's adaptive percentage
    initial_backoff: float = 1.0  # podInitialBackoffSeconds
    max_backoff: float = 10.0  # podMaxBackoffSeconds
    max_unschedulable: float = 300.0  # podMaxInUnschedulablePodsDuration
    events: bool = True  # write FailedScheduling events
    seed: int | None = None  # for the random choice between equally good nodes


class Scheduler:
    def __init__(
        self,
        registry: Registry,
        config: SchedulerConfig | None = None,
        *,
        plugins: Sequence[object] | None = None,
        weights: dict[str, int] | None = None,
    ) -> None:
        self.registry = registry
        self.config = config or SchedulerConfig()
        self.cache = Cache()
        self.queue = SchedulingQueue(
            initial_backoff=self.config.initial_backoff,
            max_backoff=self.config.max_backoff,
            max_unschedulable=self.config.max_unschedulable,
        )
        self.framework = Framework(
            default_plugins(registry) if plugins is None else plugins,
            weights=DEFAULT_WEIGHTS if weights is None and plugins is None else weights,
            percentage_of_nodes_to_score=self.config.percentage_of_nodes_to_score,
            rng=random.Random(self.config.seed),
        )
        self.stats = {"scheduled": 0, "unschedulable": 0, "errors": 0}
        self._lock = threading.Lock()  # guards the cache; a cycle holds it while it runs
        self._stop = threading.Event()
        self._informers = [
            Informer(registry, "nodes", self._on_node, self._stop),
            Informer(registry, "pods", self._on_pod, self._stop),
        ]
        self._threads: list[threading.Thread] = []

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        for informer in self._informers:
            self._spawn(f"scheduler-watch-{informer.resource}", informer.run)
        self._spawn("scheduler", self._run)

    def _spawn(self, name: str, target: Any) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def wait_for_sync(self, timeout: float = 10.0) -> bool:
        """Whether both informers have delivered the initial state within ``timeout``."""
        return all(i.synced.wait(timeout) for i in self._informers)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.queue.close()
        for informer in self._informers:
            informer.close()
        for thread in self._threads:
            thread.join(timeout)

    def _run(self) -> None:
        for informer in self._informers:
            while not self._stop.is_set() and not informer.synced.wait(0.5):
                pass  # schedule against a complete picture of the nodes, not half of it
        while not self._stop.is_set():
            popped = self.queue.pop(0.5)
            if popped is None:
                continue
            try:
                self.schedule_one(popped)
            except Exception:  # the API failing under us: log it, retry, keep scheduling
                log.exception("scheduling %s/%s failed", *popped.info.key)
                self.queue.requeue_error(popped)

    # -- event handlers (informer threads) -----------------------------------------------

    def _on_node(self, event_type: str, node: Obj) -> None:
        name = meta(node).get("name", "")
        with self._lock:
            if event_type == "DELETED":
                self.cache.remove_node(name)
                return
            changed = self.cache.update_node(node)
        if changed:
            self.queue.move_all()

    def _on_pod(self, event_type: str, pod: Obj) -> None:
        m = meta(pod)
        key = (m.get("namespace", ""), m.get("name", ""))
        spec, status = pod.get("spec") or {}, pod.get("status") or {}
        if event_type == "DELETED" or status.get("phase") in TERMINAL_PHASES:
            self.queue.delete(key)
            with self._lock:
                freed = self.cache.remove_pod(key)
            if freed:
                self.queue.move_all()
            return
        if spec.get("nodeName"):
            self.queue.delete(key)
            with self._lock:
                if self.cache.confirm(pod):
                    return  # our own binding: already counted
            info = PodInfo.from_pod(pod)
            with self._lock:
                self.cache.add_pod(info)
            return
        if spec.get("schedulerName") != self.config.scheduler_name or "deletionTimestamp" in m:
            self.queue.delete(key)
            return
        with self._lock:
            if self.cache.node_of(key) is not None:
                return  # assumed: a binding for it is being written
        old = self.queue.get(key)
        info = PodInfo.from_pod(pod)
        if old is None or _scheduling_changed(old.pod, pod):
            self.queue.add(info)
        else:
            self.queue.refresh(info)

    # -- one cycle (scheduling thread) ---------------------------------------------------

    def schedule_one(self, popped: QueuedPod) -> ScheduleResult | None:
        """Find a node for ``popped`` and bind it there; the result, or None on error."""
        info = popped.info
        state = CycleState()
        try:
            with self._lock:
                result = self.framework.schedule(state, info, self.cache)
                if result.node is not None:
                    self.cache.assume(info, result.node)
        except Exception:  # a plugin bug: log it, retry the pod later, keep scheduling
            log.exception("scheduling %s/%s failed", *info.key)
            self.stats["errors"] += 1
            self.queue.requeue_error(popped)
            return None
        if result.node is None:
            self.stats["unschedulable"] += 1
            self.queue.requeue_unschedulable(popped)
            self._report_unschedulable(info, result.message())
            return result
        status = self.framework.bind(state, info, result.node)
        if status.ok:
            self.stats["scheduled"] += 1
            self.queue.done(info.key)
            return result
        log.info("binding %s/%s to %s failed: %s", *info.key, result.node, status.reasons)
        self.stats["errors"] += 1
        with self._lock:
            self.cache.forget(info.key)
        self.queue.requeue_error(popped)
        return None

    def _report_unschedulable(self, info: PodInfo, message: str) -> None:
        namespace, name = info.key
        condition = _condition(info.pod)
        if condition.get("reason") == "Unschedulable" and condition.get("message") == message:
            return  # said already: write only when the reason changes
        try:
            pod = self.registry.get("pods", name, namespace=namespace)
        except NotFoundError:
            return  # gone: nothing to report
        except ApiError as exc:
            log.warning("cannot report %s/%s unschedulable: %s", namespace, name, exc)
            return
        if meta(pod).get("uid") != info.uid or (pod.get("spec") or {}).get("nodeName"):
            return  # a newer pod of the same name, or bound meanwhile
        now = format_time(self.registry.clock())
        status = pod.setdefault("status", {})
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        conditions.append(
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": message,
                "lastProbeTime": None,
                "lastTransitionTime": now,
            }
        )
        status["conditions"] = conditions
        try:
            self.registry.update("pods", pod, namespace=namespace, subresource="status")
        except (ConflictError, NotFoundError):
            return  # changed or gone meanwhile: its watch event brings it back if need be
        except ApiError as exc:
            log.warning("cannot report %s/%s unschedulable: %s", namespace, name, exc)
            return
        if self.config.events:
            self._event(info, message, now)

    def _event(self, info: PodInfo, message: str, now: str) -> None:
        namespace, name = info.key
        event = {
            "metadata": {"generateName": f"{name}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "namespace": namespace,
                "name": name,
                "uid": info.uid,
            },
            "reason": "FailedScheduling",
            "message": message,
            "type": "Warning",
            "count": 1,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "source": {"component": self.config.scheduler_name},
            "reportingComponent": self.config.scheduler_name,
        }
        try:
            self.registry.create("events", event, namespace=namespace)
        except ApiError as exc:
            log.debug("cannot record FailedScheduling for %s/%s: %s", namespace, name, exc)


def _condition(pod: Obj) -> dict[str, Any]:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled":
            return dict(condition)
    return {}


def _scheduling_changed(old: Obj, new: Obj) -> bool:
    """Whether an update to a pending pod can change where (or whether) it fits."""
    return old.get("spec") != new.get("spec") or meta(old).get("labels") != meta(new).get("labels")
