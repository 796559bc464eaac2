"""The ``ClusterAdapter`` protocol: how the cluster suites and fixtures reach a cluster.

An adapter is a kubeconfig plus the official ``kubernetes`` client built from it, and
an optional set of fault-injection hooks. The suites use only this surface, so the same
test checks the reference cluster or any cluster a kubeconfig reaches.

- ``kind``: ``"reference"`` or ``"kubeconfig"``; ``name``: the cluster's name.
- ``kubeconfig``: the path of a kubeconfig whose current context is the cluster (give it
  to ``kubectl`` as ``KUBECONFIG``). The adapter owns it only when it made the cluster.
- ``api_client()``: one ``kubernetes.client.ApiClient`` per adapter, made on first use
  and closed by ``close()``; ``core()`` / ``apps()`` wrap it as ``CoreV1Api`` /
  ``AppsV1Api``.
- ``server_version()``: ``/version``'s ``gitVersion``; ``node_names()``: the Nodes now;
  ``fault_nodes()``: the nodes the node faults apply to (empty without node faults).
- ``faults``: the names in ``FAULTS`` this adapter can inject. Each is a method taking a
  node name (``stop_node``, ``start_node``, ``partition_node``, ``heal_node``) or nothing
  (``restart_api_server``, ``stop_store``, ``start_store``, ``compact_store``); calling
  one that is not in ``faults`` raises ``FaultUnavailableError``. Every fault is undone
  by its pair (``start_node``, ``heal_node``, ``start_store``) or by ``close()``.
- ``synthetic_nodes``: whether a test may register Nodes through the API that nothing
  runs (the reference cluster's hollow nodes: ``HOLLOW_ANNOTATION``); a real cluster
  would try to reach such a node, so it says False.
- ``close()``: release what the adapter made (a throwaway cluster is removed whole);
  idempotent.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..errors import ContainersError

if TYPE_CHECKING:
    from kubernetes.client import ApiClient, AppsV1Api, CoreV1Api

__all__ = [
    "FAULTS",
    "NODE_FAULTS",
    "ClusterAdapter",
    "ClusterUnavailableError",
    "FaultUnavailableError",
]

NODE_FAULTS = ("stop_node", "start_node", "partition_node", "heal_node")
FAULTS = frozenset(
    (*NODE_FAULTS, "restart_api_server", "stop_store", "start_store", "compact_store")
)
"""Every fault an adapter may offer (``compact_store``: drop the store's watch history,
so that an older resourceVersion is answered with 410 Gone)."""


class ClusterUnavailableError(ContainersError):
    """The cluster cannot be started or reached; the message says what to fix."""


class FaultUnavailableError(ContainersError):
    """The cluster under test cannot inject this fault; tests needing it are skipped."""

    def __init__(self, fault: str, kind: str) -> None:
        self.fault = fault
        super().__init__(f"the {kind} cluster adapter cannot {fault.replace('_', ' ')}")


@runtime_checkable
class ClusterAdapter(Protocol):
    """A cluster under test; see the module docstring for each member."""

    kind: str
    name: str
    kubeconfig: Path
    faults: frozenset[str]
    synthetic_nodes: bool

    def api_client(self) -> ApiClient: ...

    def core(self) -> CoreV1Api: ...

    def apps(self) -> AppsV1Api: ...

    def server_version(self) -> str: ...

    def node_names(self) -> list[str]: ...

    def fault_nodes(self) -> list[str]: ...

    def stop_node(self, node: str) -> None: ...

    def start_node(self, node: str) -> None: ...

    def partition_node(self, node: str) -> None: ...

    def heal_node(self, node: str) -> None: ...

    def restart_api_server(self) -> None: ...

    def stop_store(self) -> None: ...

    def start_store(self) -> None: ...

    def compact_store(self) -> None: ...

    def close(self) -> None: ...
