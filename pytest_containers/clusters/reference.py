"""``--cluster=reference``: a throwaway reference cluster, started and removed by us.

``ReferenceCluster.up(name, ...)`` starts one through ``ClusterHandle`` (the reference
cluster's own handle on a detached cluster: its API server, store and node agents) and
``close()`` takes it down whole. The faults are the handle's: node agents stopped,
started, partitioned and healed, the API server restarted, and, when the cluster owns an
etcd, the store stopped and started.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .base import NODE_FAULTS, ClusterUnavailableError
from .client import KubeClient

__all__ = ["AGENT_ANNOTATION", "ReferenceCluster", "handle_class"]

AGENT_ANNOTATION = "reference-cluster.io/agent"
"""Set on a Node by the node agent that runs it (hollow and placeholder nodes have none)."""


def handle_class() -> Any:
    """``reference_runtime.cluster.handle.ClusterHandle``, or a clear error without it."""
    try:
        from reference_runtime.cluster.handle import ClusterHandle
    except ImportError as exc:
        raise ClusterUnavailableError(
            f"the reference cluster handle is not available ({exc}); use --cluster=kubeconfig:PATH"
        ) from None
    return ClusterHandle


class ReferenceCluster(KubeClient):
    """A reference cluster this process started; every fault its handle offers."""

    kind = "reference"
    synthetic_nodes = True

    def __init__(self, handle: Any, store: str = "sqlite") -> None:
        super().__init__(Path(handle.kubeconfig))
        self.handle = handle
        self.name = str(handle.name)
        self.store = store
        self.faults = _faults_of(handle, store, bool(self.fault_nodes()))
        self._closed = False

    @classmethod
    def up(
        cls,
        name: str,
        *,
        state_dir: Path,
        nodes: int = 1,
        hollow_nodes: int = 0,
        store: str = "sqlite",
        timeout: float = 60.0,
        progress: Callable[[str], None] | None = None,
        **options: Any,
    ) -> ReferenceCluster:
        """Start a cluster; on failure nothing is left (the handle removes it).

        ``options`` go to ``ClusterHandle.up`` as they are (``timings``, ``node_runtime``).
        """
        handle = handle_class().up(
            name,
            state_dir=state_dir,
            nodes=nodes,
            hollow_nodes=hollow_nodes,
            store=store,
            timeout=timeout,
            progress=progress,
            **options,
        )
        return cls(handle, store)

    @property
    def state_dir(self) -> Path:
        return Path(self.handle.state_dir)

    def node_names(self) -> list[str]:
        return sorted(self.handle.node_names) or super().node_names()

    def fault_nodes(self) -> list[str]:
        """The nodes the node faults apply to: those run by a node agent."""
        nodes: list[Any] = self.core().list_node(_request_timeout=10).items
        return sorted(
            str(n.metadata.name)
            for n in nodes
            if AGENT_ANNOTATION in (n.metadata.annotations or {})
            and str(n.metadata.name) in self.handle.node_names
        )

    def host_resources(self) -> list[str]:
        """What the cluster holds on this host (processes, directories, cgroups)."""
        return list(self.handle.host_resources())

    def stop_node(self, node: str) -> None:
        self._fault("stop_node")(node)

    def start_node(self, node: str) -> None:
        self._fault("start_node")(node)

    def partition_node(self, node: str) -> None:
        self._fault("partition_node")(node)

    def heal_node(self, node: str) -> None:
        self._fault("heal_node")(node)

    def restart_api_server(self) -> None:
        self._fault("restart_api_server")()

    def stop_store(self) -> None:
        self._fault("stop_store")()

    def start_store(self) -> None:
        self._fault("start_store")()

    def compact_store(self) -> None:
        """Drop the store's history up to now, then restart the API server so that its
        watch window starts afresh: a watch from an older resourceVersion then gets 410."""
        if "compact_store" not in self.faults:
            raise self._unavailable("compact_store")
        if callable(getattr(self.handle, "compact_store", None)):
            self.handle.compact_store()
            return
        config = json.loads((self.state_dir / self.name / "cluster.json").read_text())
        store = str(config.get("etcd_url") or config["store"])
        if store.startswith("etcd://"):
            url = urllib.parse.urlsplit(store)
            base = f"http://{url.hostname}:{url.port}"
            revision = _etcd_call(base, "/v3/kv/range", {"key": "AA=="})["header"]["revision"]
            _etcd_call(base, "/v3/kv/compaction", {"revision": revision, "physical": True})
        else:
            from reference_runtime.cluster.store import SqliteStore

            opened = SqliteStore(store.removeprefix("sqlite:"))
            try:
                opened.compact(opened.revision())
            finally:
                opened.close()
        self.restart_api_server()

    def _fault(self, fault: str) -> Callable[..., None]:
        __tracebackhide__ = True
        if fault not in self.faults:
            raise self._unavailable(fault)
        method: Callable[..., None] = getattr(self.handle, fault)
        return method

    def close(self) -> None:
        """Close the client and take the cluster down (idempotent)."""
        super().close()
        if not self._closed:
            self._closed = True
            self.handle.down()


def _etcd_call(base: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:  # loopback only
        return dict(json.loads(response.read()))


def _faults_of(handle: Any, store: str, agents: bool) -> frozenset[str]:
    """What this cluster can do: node faults need node agents, store faults its own etcd."""
    offered = (
        {"restart_api_server"} if callable(getattr(handle, "restart_api_server", None)) else set()
    )
    if agents:
        offered |= {f for f in NODE_FAULTS if callable(getattr(handle, f, None))}
    if offered and store in ("sqlite", "etcd"):  # a store of its own: it may compact it
        offered.add("compact_store")
    if store == "etcd":  # an etcd the cluster started itself: it may stop it
        offered |= {f for f in ("stop_store", "start_store") if callable(getattr(handle, f, None))}
    return frozenset(offered)
