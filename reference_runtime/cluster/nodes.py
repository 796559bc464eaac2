"""Node objects for nodes that have no agent yet: registered Ready, with real capacity.

``--nodes N`` registers ``reference-node-<i>`` with this machine's CPU and memory;
``--hollow-nodes N`` registers ``hollow-node-<i>`` with a fixed capacity and the
``reference-cluster.io/hollow`` annotation. Each gets a ``Lease`` in ``kube-node-lease``.
Node agents, when they come, take over these objects (and set ``gc.AGENT_ANNOTATION``).
"""

from __future__ import annotations

import datetime
import os
import platform
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ApiError

if TYPE_CHECKING:
    from .api.registry import Registry

__all__ = ["AGENT_ANNOTATION", "HOLLOW_ANNOTATION", "format_time", "node_object", "register_nodes"]

AGENT_ANNOTATION = "reference-cluster.io/agent"  # set by a node's real agent
HOLLOW_ANNOTATION = "reference-cluster.io/hollow"
KUBELET_VERSION = "v1.32.0-reference"


def format_time(seconds: float) -> str:
    """RFC 3339 in UTC at second precision (``metav1.Time``)."""
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _memory_kib() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass  # not Linux, or an unexpected format: fall back to a nominal size
    return 4 * 1024 * 1024


def _os_image() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass  # no os-release: say what Python knows
    return platform.platform()


def node_object(
    name: str, index: int, *, hollow: bool, now: float, address: str | None = None
) -> dict[str, Any]:
    """A Ready Node; its InternalIP is ``address`` or, by default, 127.0.1.<index>."""
    if hollow:
        capacity = {"cpu": "4", "memory": "16Gi", "pods": "110", "ephemeral-storage": "100Gi"}
    else:
        capacity = {
            "cpu": str(os.cpu_count() or 1),
            "memory": f"{_memory_kib()}Ki",
            "pods": "110",
            "ephemeral-storage": "100Gi",
        }
    stamp = format_time(now)

    def condition(kind: str, status: str, reason: str, message: str) -> dict[str, str]:
        return {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": stamp,
            "lastTransitionTime": stamp,
        }

    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux",
                "beta.kubernetes.io/arch": "amd64",
            },
            "annotations": {HOLLOW_ANNOTATION: "true"} if hollow else {},
        },
        "spec": {},
        "status": {
            "capacity": capacity,
            "allocatable": dict(capacity),
            "conditions": [
                condition(
                    "MemoryPressure",
                    "False",
                    "KubeletHasSufficientMemory",
                    "kubelet has sufficient memory available",
                ),
                condition(
                    "DiskPressure",
                    "False",
                    "KubeletHasNoDiskPressure",
                    "kubelet has no disk pressure",
                ),
                condition(
                    "PIDPressure",
                    "False",
                    "KubeletHasSufficientPID",
                    "kubelet has sufficient PID available",
                ),
                condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": address or f"127.0.1.{index % 254 + 1}"},
                {"type": "Hostname", "address": name},
            ],
            "nodeInfo": {
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": KUBELET_VERSION,
                "osImage": "hollow" if hollow else _os_image(),
                "kernelVersion": platform.release(),
                "containerRuntimeVersion": "reference://0.1.0",
                "operatingSystem": "linux",
                "architecture": "amd64",
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
        },
    }


def register_nodes(registry: Registry, nodes: int, hollow_nodes: int) -> Iterator[str]:
    """Create (or refresh) the Node objects and their Leases; yield each name once Ready."""
    now = registry.clock()
    wanted = [(f"reference-node-{i}", i, False) for i in range(1, nodes + 1)]
    wanted += [(f"hollow-node-{i}", nodes + i, True) for i in range(1, hollow_nodes + 1)]
    for name, index, hollow in wanted:
        node = node_object(name, index, hollow=hollow, now=now)
        try:
            created = registry.create("nodes", node)
        except ApiError as exc:
            if exc.code != 409:
                raise
            created = registry.get("nodes", name)  # kept from an earlier run: mark it Ready again
            created["status"] = node["status"]
            created = registry.update("nodes", created, subresource="status")
        lease = {
            "metadata": {
                "name": name,
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "Node",
                        "name": name,
                        "uid": created["metadata"]["uid"],
                    }
                ],
            },
            "spec": {
                "holderIdentity": name,
                "leaseDurationSeconds": 40,
                "renewTime": format_time(now).replace("Z", ".000000Z"),
            },
        }
        registry.update("leases", lease, namespace="kube-node-lease", name=name)
        yield name
