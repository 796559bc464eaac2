"""The scheduler's view of the cluster: ``PodInfo``, ``NodeInfo`` and the ``Cache``.

Watch handlers keep the cache current: every Node becomes a ``NodeInfo`` (its labels,
taints, readiness, allocatable resources) and every pod bound to a node adds its requests
to that node. A pod the scheduler has chosen a node for is *assumed* there at once, so the
next cycle already counts it; the pod's own watch event later confirms it, and a failed
binding ``forget``s it. The cache is not thread-safe: the scheduler holds its lock around
every call, and a scheduling cycle reads it under the same lock (it is the cycle's
snapshot). Objects handed in are owned by the cache afterwards; nobody mutates them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .errors import QuantityError
from .requests import Resources, node_allocatable, pod_non_zero_requests, pod_requests

__all__ = ["Cache", "NodeInfo", "PodInfo", "PodKey", "Taint"]

Obj = dict[str, Any]
PodKey = tuple[str, str]  # (namespace, name)

FILTER_EFFECTS = frozenset({"NoSchedule", "NoExecute"})


class Taint(NamedTuple):
    key: str
    value: str
    effect: str


@dataclass(slots=True, eq=False)
class PodInfo:
    """A pod as the scheduler sees it, parsed once per version of the pod."""

    pod: Obj
    key: PodKey
    uid: str
    node_name: str
    requests: Resources
    non_zero: Resources
    error: str = ""  # why the pod cannot be parsed (a malformed quantity), if it cannot

    @classmethod
    def from_pod(cls, pod: Obj) -> PodInfo:
        m = pod.get("metadata") or {}
        error = ""
        try:
            requests, non_zero = pod_requests(pod), pod_non_zero_requests(pod)
        except QuantityError as exc:
            requests, non_zero, error = Resources(pods=1), Resources(pods=1), str(exc)
        return cls(
            pod=pod,
            key=(m.get("namespace", ""), m.get("name", "")),
            uid=m.get("uid", ""),
            node_name=(pod.get("spec") or {}).get("nodeName", ""),
            requests=requests,
            non_zero=non_zero,
            error=error,
        )

    @property
    def spec(self) -> Obj:
        spec: Obj = self.pod.get("spec") or {}
        return spec


@dataclass(slots=True, eq=False)
class NodeInfo:
    """A node and what the pods on it (bound or assumed) request."""

    name: str
    node: Obj | None = None  # None while only pods bound to it are known
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    ready: bool = False
    unschedulable: bool = False
    allocatable: Resources = field(default_factory=Resources)
    requested: Resources = field(default_factory=Resources)
    non_zero: Resources = field(default_factory=Resources)
    pods: dict[PodKey, PodInfo] = field(default_factory=dict)

    @property
    def blocked(self) -> bool:
        """Not Ready, or cordoned: filtered out by ``NodeReady``/``NodeUnschedulable``."""
        return not self.ready or self.unschedulable

    @property
    def tainted(self) -> bool:
        return any(t.effect in FILTER_EFFECTS for t in self.taints)

    def set_node(self, node: Obj) -> bool:
        """Take ``node``'s scheduling facts; ``True`` if any of them changed."""
        spec, status = node.get("spec") or {}, node.get("status") or {}
        labels = dict((node.get("metadata") or {}).get("labels") or {})
        taints = tuple(
            Taint(t.get("key", ""), t.get("value", ""), t.get("effect", ""))
            for t in spec.get("taints") or []
            if isinstance(t, dict)
        )
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        try:
            allocatable = node_allocatable(node)
        except QuantityError:
            allocatable = Resources()  # a node that cannot say what it offers gets no pods
        unschedulable = bool(spec.get("unschedulable"))
        changed = self.node is None or (
            labels != self.labels
            or taints != self.taints
            or ready != self.ready
            or unschedulable != self.unschedulable
            or allocatable != self.allocatable
        )
        self.node, self.labels, self.taints = node, labels, taints
        self.ready, self.unschedulable, self.allocatable = ready, unschedulable, allocatable
        return changed

    def add_pod(self, info: PodInfo) -> None:
        self.pods[info.key] = info
        self.requested.add(info.requests)
        self.non_zero.add(info.non_zero)

    def remove_pod(self, key: PodKey) -> PodInfo | None:
        info = self.pods.pop(key, None)
        if info is not None:
            self.requested.add(info.requests, -1)
            self.non_zero.add(info.non_zero, -1)
        return info


class Cache:
    """Nodes and the pods on them; ``nodes`` lists the known nodes in a stable order."""

    def __init__(self) -> None:
        self._infos: dict[str, NodeInfo] = {}
        self.nodes: list[NodeInfo] = []
        self._pod_node: dict[PodKey, str] = {}
        self._assumed: set[PodKey] = set()
        self.tainted_nodes = 0  # nodes with a NoSchedule or NoExecute taint
        self.blocked_nodes = 0  # nodes that are not Ready or are cordoned

    def __len__(self) -> int:
        return len(self.nodes)

    def get(self, name: str) -> NodeInfo | None:
        info = self._infos.get(name)
        return info if info is not None and info.node is not None else None

    # -- nodes ---------------------------------------------------------------------------

    def update_node(self, node: Obj) -> bool:
        """Add or update a Node; ``True`` if something a filter or score reads changed."""
        name = (node.get("metadata") or {}).get("name", "")
        info = self._infos.get(name)
        if info is None:
            info = self._infos[name] = NodeInfo(name)
        if info.node is None:
            self.nodes.append(info)
        else:
            self._count(info, -1)
        changed = info.set_node(node)
        self._count(info, 1)
        return changed

    def remove_node(self, name: str) -> None:
        info = self._infos.get(name)
        if info is None or info.node is None:
            return
        self._count(info, -1)
        self.nodes.remove(info)
        if info.pods:
            self._infos[name] = NodeInfo(
                name, pods=info.pods, requested=info.requested, non_zero=info.non_zero
            )
        else:
            del self._infos[name]

    def _count(self, info: NodeInfo, sign: int) -> None:
        self.tainted_nodes += sign * info.tainted
        self.blocked_nodes += sign * info.blocked

    # -- pods ----------------------------------------------------------------------------

    def add_pod(self, info: PodInfo) -> None:
        """A pod bound to ``info.node_name`` (confirms an assumed pod)."""
        self._place(info, info.node_name)
        self._assumed.discard(info.key)

    def confirm(self, pod: Obj) -> bool:
        """The bound version of an assumed pod arrived: keep the assumed ``PodInfo`` (no
        re-parsing) with the new object; ``False`` if ``pod`` is not the assumed one."""
        m = pod.get("metadata") or {}
        key = (m.get("namespace", ""), m.get("name", ""))
        node_name = (pod.get("spec") or {}).get("nodeName", "")
        if key not in self._assumed or self._pod_node.get(key) != node_name:
            return False
        info = self._infos[node_name].pods[key]
        if info.uid != m.get("uid"):
            return False
        info.pod, info.node_name = pod, node_name
        self._assumed.discard(key)
        return True

    def assume(self, info: PodInfo, node_name: str) -> None:
        """Count ``info`` on ``node_name`` before its binding is written."""
        self._place(info, node_name)
        self._assumed.add(info.key)

    def forget(self, key: PodKey) -> None:
        """Undo ``assume`` (the binding failed); a confirmed pod stays."""
        if key in self._assumed:
            self.remove_pod(key)

    def is_assumed(self, key: PodKey) -> bool:
        return key in self._assumed

    def remove_pod(self, key: PodKey) -> bool:
        """Drop a pod (deleted, finished); ``True`` if it was counted on a node."""
        self._assumed.discard(key)
        node_name = self._pod_node.pop(key, None)
        if node_name is None:
            return False
        info = self._infos.get(node_name)
        if info is not None:
            info.remove_pod(key)
            if info.node is None and not info.pods:
                del self._infos[node_name]
        return True

    def node_of(self, key: PodKey) -> str | None:
        return self._pod_node.get(key)

    def _place(self, pod: PodInfo, node_name: str) -> None:
        if self._pod_node.get(pod.key) is not None:
            self.remove_pod(pod.key)
        info = self._infos.get(node_name)
        if info is None:
            info = self._infos[node_name] = NodeInfo(node_name)
        info.add_pod(pod)
        self._pod_node[pod.key] = node_name
