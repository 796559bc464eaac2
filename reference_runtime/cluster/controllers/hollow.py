"""Hollow nodes: Nodes kept alive without containers, for scale and controller tests.

``HollowNodes`` runs two things for every Node that has no real agent (no
``gc.AGENT_ANNOTATION``):

- a heartbeat: one thread renews each such node's Lease in ``kube-node-lease`` every
  ``interval`` seconds and, if the node is not ``Ready``, sets it Ready again (as a kubelet
  that comes back would). For the ``reference-cluster.io/hollow`` nodes this is their
  agent; for placeholder nodes registered before their real agent exists it is a stand-in
  that stops as soon as the agent announces itself.
- a hollow kubelet (``HollowKubelet``, a reconciler keyed by pod) for the hollow nodes only:
  a pod bound to one is marked ``Running`` and ``Ready`` at once, with one running status
  per container. Pods on placeholder nodes are left alone (nothing runs them).

``silence(name)`` stops both for one node, as if it had lost its network: its Lease goes
stale and the node lifecycle controller takes over; ``resume(name)`` undoes that.
"""

from __future__ import annotations

import datetime
import logging
import threading
import zlib
from collections.abc import Hashable, Iterable
from typing import Any

from ..api.objects import Obj, format_time, meta
from ..api.patch import MERGE_PATCH
from ..api.registry import Registry
from ..errors import AlreadyExistsError, ApiError, ConflictError, NotFoundError
from ..gc import AGENT_ANNOTATION
from ..nodes import HOLLOW_ANNOTATION
from ..reconcile import ControllerLoop, Result
from .nodelifecycle import LEASE_NAMESPACE
from .pods import is_active, is_ready

__all__ = ["HollowKubelet", "HollowNodes", "micro_time", "running_status"]

log = logging.getLogger(__name__)


def micro_time(seconds: float) -> str:
    """``metav1.MicroTime``: RFC 3339 in UTC with microseconds."""
    stamp = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_READY_CONDITIONS = (
    (
        "MemoryPressure",
        "False",
        "KubeletHasSufficientMemory",
        "kubelet has sufficient memory available",
    ),
    ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
)


def _ready_conditions(now: float) -> list[dict[str, str]]:
    stamp = format_time(now)
    return [
        {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": stamp,
            "lastTransitionTime": stamp,
        }
        for kind, status, reason, message in _READY_CONDITIONS
    ]


def running_status(pod: Obj, host_ip: str, now: float) -> dict[str, Any]:
    """The status a kubelet would report for ``pod`` once all its containers run."""
    stamp = format_time(now)
    m, spec = meta(pod), pod.get("spec") or {}
    old = pod.get("status") or {}
    digest = zlib.crc32(m.get("uid", "").encode())
    pod_ip = f"10.{(digest >> 16) & 255}.{(digest >> 8) & 255}.{digest & 255 or 1}"
    kept = [c for c in old.get("conditions") or [] if c.get("type") == "PodScheduled"]
    conditions = kept + [
        {"type": kind, "status": "True", "lastProbeTime": None, "lastTransitionTime": stamp}
        for kind in ("PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready")
    ]
    return {
        **{k: v for k, v in old.items() if k not in ("reason", "message")},
        "phase": "Running",
        "conditions": conditions,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": old.get("startTime") or stamp,
        "containerStatuses": [
            {
                "name": c.get("name", ""),
                "ready": True,
                "started": True,
                "restartCount": 0,
                "image": c.get("image", ""),
                "imageID": "",
                "containerID": f"hollow://{m.get('uid', '')}/{c.get('name', '')}",
                "state": {"running": {"startedAt": stamp}},
            }
            for c in spec.get("containers") or []
        ],
    }


class HollowNodes:
    """Heartbeats for agent-less nodes and hollow kubelets (see the module docstring)."""

    def __init__(
        self,
        registry: Registry,
        *,
        interval: float = 10.0,
        lease_duration: int = 40,
        kubelet: bool = True,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be positive, not {interval}")
        self.registry = registry
        self.interval = interval
        self.lease_duration = lease_duration
        self._lock = threading.Lock()
        self._hollow: set[str] = set()
        self._other: set[str] = set()
        self._silenced: set[str] = set()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.kubelet: ControllerLoop | None = None
        if kubelet:
            reconciler = HollowKubelet(registry, self)
            self.kubelet = ControllerLoop(
                reconciler,
                lambda r: registry.watch(r, allow_bookmarks=False),
                reconciler.sources(),
                workers=2,
            )

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="hollow-heartbeat", daemon=True)
        self._thread.start()
        if self.kubelet is not None:
            self.kubelet.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)
        if self.kubelet is not None:
            self.kubelet.stop()

    def silence(self, name: str) -> None:
        """Stop heartbeats and the hollow kubelet of node ``name``."""
        with self._lock:
            self._silenced.add(name)

    def resume(self, name: str) -> None:
        """Start them again (the next heartbeat comes at once; pods bound to the node
        meanwhile get their look now, as no event would bring them back)."""
        with self._lock:
            self._silenced.discard(name)
        self._wake.set()
        if self.kubelet is not None:
            pods = self.registry.list("pods", field_selector=f"spec.nodeName={name}")["items"]
            for pod in pods:
                self.kubelet.queue.add((meta(pod).get("namespace"), meta(pod)["name"]))

    def is_live_hollow(self, name: str) -> bool:
        """Whether ``name`` is a hollow node that is not silenced."""
        with self._lock:
            if name in self._silenced or name in self._other:
                return False
            if name in self._hollow:
                return True
        try:
            node = self.registry.get("nodes", name)
        except NotFoundError:
            return False
        return self._classify(node) == "hollow"

    def _classify(self, node: Obj) -> str:
        """``hollow``, ``placeholder`` (beats only) or ``agent`` (left alone); remembered."""
        m = meta(node)
        annotations = m.get("annotations") or {}
        kind = (
            "agent"
            if AGENT_ANNOTATION in annotations
            else "hollow"
            if HOLLOW_ANNOTATION in annotations
            else "placeholder"
        )
        with self._lock:
            (self._hollow if kind == "hollow" else self._other).add(m["name"])
            (self._other if kind == "hollow" else self._hollow).discard(m["name"])
        return kind

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.beat()
            except ApiError as exc:
                log.warning("hollow heartbeat failed, retrying: %s", exc)
            self._wake.wait(self.interval)
            self._wake.clear()

    def beat(self) -> None:
        """One round: renew every agent-less, non-silenced node's Lease; make it Ready."""
        for node in self.registry.list("nodes")["items"]:
            if self._stop.is_set():
                return
            name = meta(node)["name"]
            with self._lock:
                silenced = name in self._silenced
            if self._classify(node) == "agent" or silenced:
                continue
            now = self.registry.clock()
            self._renew(node, now)
            ready = next(
                (
                    c
                    for c in (node.get("status") or {}).get("conditions") or []
                    if c.get("type") == "Ready"
                ),
                None,
            )
            if ready is None or ready.get("status") != "True":
                node.setdefault("status", {})["conditions"] = _ready_conditions(now)
                try:
                    self.registry.update("nodes", node, subresource="status")
                except (ConflictError, NotFoundError):
                    pass  # changed or gone meanwhile: the next beat looks again

    def _renew(self, node: Obj, now: float) -> None:
        m = meta(node)
        spec = {
            "holderIdentity": m["name"],
            "leaseDurationSeconds": self.lease_duration,
            "renewTime": micro_time(now),
        }
        try:
            self.registry.patch(
                "leases",
                m["name"],
                {"spec": spec},
                patch_type=MERGE_PATCH,
                namespace=LEASE_NAMESPACE,
            )
        except NotFoundError:
            lease = {
                "metadata": {
                    "name": m["name"],
                    "ownerReferences": [
                        {"apiVersion": "v1", "kind": "Node", "name": m["name"], "uid": m["uid"]}
                    ],
                },
                "spec": spec,
            }
            try:
                self.registry.create("leases", lease, namespace=LEASE_NAMESPACE)
            except (AlreadyExistsError, ConflictError):
                pass  # made meanwhile: renewed next time


class HollowKubelet:
    """Marks pods bound to live hollow nodes Running and Ready. Key: ``(namespace, name)``."""

    name = "hollow-kubelet"

    def __init__(self, registry: Registry, nodes: HollowNodes) -> None:
        self.registry = registry
        self.nodes = nodes

    def sources(self) -> dict[str, Any]:
        return {"pods": self._on_pod}

    def _wants(self, pod: Obj) -> bool:
        node = str((pod.get("spec") or {}).get("nodeName") or "")
        running = (pod.get("status") or {}).get("phase") == "Running" and is_ready(pod)
        return bool(node) and is_active(pod) and not running and self.nodes.is_live_hollow(node)

    def _on_pod(self, event_type: str, pod: Obj) -> Iterable[Hashable]:
        if event_type == "DELETED" or not self._wants(pod):
            return []
        m = meta(pod)
        return [(m.get("namespace"), m["name"])]

    def reconcile(self, key: Any) -> Result:
        namespace, name = key
        try:
            pod = self.registry.get("pods", name, namespace=namespace)
        except NotFoundError:
            return Result()
        if not self._wants(pod):
            return Result()
        node_name = pod["spec"]["nodeName"]
        host_ip = "127.0.0.1"
        try:
            node = self.registry.get("nodes", node_name)
            addresses = (node.get("status") or {}).get("addresses") or []
            host_ip = next(
                (a["address"] for a in addresses if a.get("type") == "InternalIP"), host_ip
            )
        except NotFoundError:
            return Result()  # the node went: nothing runs there
        pod["status"] = running_status(pod, host_ip, self.registry.clock())
        self.registry.update("pods", pod, namespace=namespace, subresource="status")
        return Result()
