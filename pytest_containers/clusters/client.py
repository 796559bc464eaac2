"""What every cluster adapter shares: the official client built from a kubeconfig, and
fault methods that say the fault is unavailable unless an adapter overrides them."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from .base import FaultUnavailableError

if TYPE_CHECKING:
    from kubernetes.client import ApiClient, AppsV1Api, CoreV1Api

__all__ = ["KubeClient"]


class KubeClient:
    """The client half of a ``ClusterAdapter``; subclasses set the attributes."""

    kind = "kubeconfig"
    name = ""
    faults: frozenset[str] = frozenset()
    synthetic_nodes = False

    def __init__(self, kubeconfig: Path, context: str | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.context = context
        self._client: ApiClient | None = None

    def api_client(self) -> ApiClient:
        if self._client is None:
            from kubernetes import config

            self._client = config.new_client_from_config(
                config_file=str(self.kubeconfig), context=self.context
            )
        return self._client

    def core(self) -> CoreV1Api:
        from kubernetes.client import CoreV1Api

        return CoreV1Api(self.api_client())

    def apps(self) -> AppsV1Api:
        from kubernetes.client import AppsV1Api

        return AppsV1Api(self.api_client())

    def server_version(self) -> str:
        from kubernetes.client import VersionApi

        return str(VersionApi(self.api_client()).get_code(_request_timeout=10).git_version)

    def node_names(self) -> list[str]:
        nodes: list[Any] = self.core().list_node(_request_timeout=10).items
        return sorted(str(n.metadata.name) for n in nodes)

    def fault_nodes(self) -> list[str]:
        return []

    def reset_client(self) -> None:
        """Drop the client's pooled connections (after the server restarted)."""
        if self._client is not None:
            with contextlib.suppress(Exception):  # a pool of dead sockets: closing may fail
                self._client.close()
            self._client = None

    def close(self) -> None:
        self.reset_client()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _unavailable(self, fault: str) -> FaultUnavailableError:
        return FaultUnavailableError(fault, self.kind)

    def stop_node(self, node: str) -> None:
        raise self._unavailable("stop_node")

    def start_node(self, node: str) -> None:
        raise self._unavailable("start_node")

    def partition_node(self, node: str) -> None:
        raise self._unavailable("partition_node")

    def heal_node(self, node: str) -> None:
        raise self._unavailable("heal_node")

    def restart_api_server(self) -> None:
        raise self._unavailable("restart_api_server")

    def stop_store(self) -> None:
        raise self._unavailable("stop_store")

    def start_store(self) -> None:
        raise self._unavailable("start_store")

    def compact_store(self) -> None:
        raise self._unavailable("compact_store")
