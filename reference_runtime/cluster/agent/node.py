"""The agent's Node: registration, the Lease heartbeat, the Ready condition."""

from __future__ import annotations

import datetime
import logging
import threading
import time
from typing import Any

from ..client import ApiClient
from ..errors import AlreadyExistsError, ApiError, ApiUnreachableError, NotFoundError
from ..nodes import AGENT_ANNOTATION, node_object
from .config import AgentConfig

__all__ = ["NodeStatus"]

log = logging.getLogger(__name__)

LEASES = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"


def _micro(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class NodeStatus:
    """Registers the node and keeps its Lease and Ready condition fresh."""

    def __init__(self, api: ApiClient, config: AgentConfig) -> None:
        self.api = api
        self.config = config
        self.path = f"/api/v1/nodes/{config.node}"

    def _object(self) -> dict[str, Any]:
        node = node_object(
            self.config.node,
            self.config.index,
            hollow=False,
            now=time.time(),
            address=self.config.node_ip,
        )
        node["metadata"]["annotations"] = {AGENT_ANNOTATION: self.config.node_runtime}
        node["status"]["nodeInfo"]["containerRuntimeVersion"] = (
            f"{self.config.node_runtime}://0.1.0"
        )
        return node

    def register(self) -> None:
        """Create the Node, or take over an existing one, and mark it Ready."""
        node = self._object()
        try:
            created = self.api.create("/api/v1/nodes", node)
        except AlreadyExistsError:
            created = self.api.patch(self.path, {"metadata": node["metadata"]})
            self.api.patch(self.path + "/status", {"status": node["status"]})
        self.uid = created["metadata"]["uid"]
        self.renew()

    def renew(self) -> None:
        spec = {
            "holderIdentity": self.config.node,
            "leaseDurationSeconds": self.config.timings.lease_duration,
            "renewTime": _micro(time.time()),
        }
        try:
            self.api.patch(f"{LEASES}/{self.config.node}", {"spec": spec})
        except NotFoundError:
            owner = {"apiVersion": "v1", "kind": "Node", "name": self.config.node, "uid": self.uid}
            lease = {
                "metadata": {"name": self.config.node, "ownerReferences": [owner]},
                "spec": spec,
            }
            try:
                self.api.create(LEASES, lease)
            except AlreadyExistsError:
                pass  # made meanwhile: renewed next time

    def ensure_ready(self) -> None:
        """Set the Ready condition True again if someone (the lifecycle controller) changed it."""
        node = self.api.get(self.path)
        for condition in (node.get("status") or {}).get("conditions") or []:
            if condition.get("type") == "Ready" and condition.get("status") == "True":
                return
        self.api.patch(
            self.path + "/status",
            {"status": {"conditions": self._object()["status"]["conditions"]}},
        )

    def run(self, stop: threading.Event) -> None:
        """Heartbeat until ``stop``: renew the Lease, keep Ready."""
        while not stop.wait(self.config.timings.heartbeat_interval):
            try:
                self.renew()
                self.ensure_ready()
            except (ApiError, ApiUnreachableError) as exc:
                log.warning("heartbeat failed: %s", exc)
