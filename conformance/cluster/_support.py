"""What the cluster suite's modules share: clients typed loosely (bodies are plain dicts),
bounded waits, pod manifests, Status answers and raw requests.

Pods that nothing may touch use ``schedulerName: UNSCHEDULED`` (no scheduler takes them,
no kubelet runs them), so a test owns every field of them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from kubernetes.client.exceptions import ApiException

from pytest_containers.clusters import ClusterAdapter

UNSCHEDULED = "pytest-containers-nobody"
"""A scheduler name no scheduler answers to: such pods stay unbound and untouched."""
IMAGE = "busybox"
HOLLOW_ANNOTATION = "reference-cluster.io/hollow"
AGENT_ANNOTATION = "reference-cluster.io/agent"
GROUP = "pytest-containers.io/group"
"""Label and NoSchedule taint of a test's synthetic nodes (value: its namespace)."""

T = TypeVar("T")


def core(cluster: ClusterAdapter) -> Any:
    """``CoreV1Api``, typed ``Any`` so that bodies may be plain dicts."""
    return cluster.core()


def apps(cluster: ClusterAdapter) -> Any:
    """``AppsV1Api``, typed ``Any`` so that bodies may be plain dicts."""
    return cluster.apps()


def wait_for(
    check: Callable[[], T | None], what: str, timeout: float = 30.0, interval: float = 0.1
) -> T:
    """Call ``check`` until it returns something truthy (bounded by ``timeout``)."""
    __tracebackhide__ = True
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f}s (last: {last!r})")
        time.sleep(interval)


def pod(
    name: str = "",
    *,
    generate: str = "",
    labels: dict[str, str] | None = None,
    scheduler: str | None = UNSCHEDULED,
    node_name: str | None = None,
    requests: dict[str, str] | None = None,
    node_selector: dict[str, str] | None = None,
    tolerations: list[dict[str, Any]] | None = None,
    finalizers: list[str] | None = None,
    owners: list[dict[str, Any]] | None = None,
    command: list[str] | None = None,
) -> dict[str, Any]:
    """A pod manifest with one container; ``scheduler=None`` for the default scheduler."""
    metadata: dict[str, Any] = {"labels": dict(labels or {})}
    if name:
        metadata["name"] = name
    if generate:
        metadata["generateName"] = generate
    if finalizers:
        metadata["finalizers"] = list(finalizers)
    if owners:
        metadata["ownerReferences"] = owners
    container: dict[str, Any] = {
        "name": "main",
        "image": IMAGE,
        "command": command or ["sleep", "3600"],
    }
    if requests:
        container["resources"] = {"requests": dict(requests)}
    spec: dict[str, Any] = {"containers": [container], "terminationGracePeriodSeconds": 0}
    if scheduler is not None:
        spec["schedulerName"] = scheduler
    if node_name is not None:
        spec["nodeName"] = node_name
    if node_selector:
        spec["nodeSelector"] = dict(node_selector)
    if tolerations:
        spec["tolerations"] = tolerations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def owner_ref(obj: Any, *, block: bool = False) -> dict[str, Any]:
    """An ownerReference to ``obj`` (a client model)."""
    return {
        "apiVersion": obj.api_version,
        "kind": obj.kind,
        "name": obj.metadata.name,
        "uid": obj.metadata.uid,
        "blockOwnerDeletion": block,
    }


def status_of(exc: ApiException) -> dict[str, Any]:
    """The Status object of an error answer (``{}`` if the body is not one)."""
    try:
        body = json.loads(exc.body or b"{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def api_error(call: Callable[[], object]) -> ApiException:
    """The ``ApiException`` that ``call`` raises; fails the test if it succeeds."""
    __tracebackhide__ = True
    try:
        call()
    except ApiException as exc:
        return exc
    raise AssertionError("the request succeeded; an error answer was expected")


def gone(read: Callable[[], object]) -> bool:
    """True once ``read`` answers 404."""
    try:
        read()
    except ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


def raw_request(
    cluster: ClusterAdapter,
    method: str,
    path: str,
    body: bytes | None = None,
    content_type: str = "application/json",
) -> tuple[int, bytes]:
    """One request with the client's credentials and TLS settings; (code, body)."""
    client = cluster.api_client()
    configuration = client.configuration
    headers = {"Accept": "application/json", "Content-Type": content_type}
    for auth in configuration.auth_settings().values():
        if auth.get("in") == "header" and auth.get("value"):
            headers[str(auth["key"])] = str(auth["value"])
    response = client.rest_client.pool_manager.request(
        method, configuration.host + path, body=body, headers=headers, timeout=15
    )
    return int(response.status), bytes(response.data)


def pod_names(items: list[Any]) -> set[str]:
    return {str(p.metadata.name) for p in items}


def ready_nodes(cluster: ClusterAdapter) -> list[Any]:
    """The Nodes whose Ready condition is True."""
    nodes = core(cluster).list_node(_request_timeout=15).items
    return [
        n
        for n in nodes
        if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])
    ]


@dataclass(frozen=True)
class NodeSpec:
    """A synthetic node: capacity in millicores, MiB and pods; labels; NoSchedule taints."""

    cpu: int
    memory: int
    pods: int
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[str, ...] = ()


def synthetic_node(name: str, spec: NodeSpec, group: str) -> dict[str, Any]:
    capacity = {"cpu": f"{spec.cpu}m", "memory": f"{spec.memory}Mi", "pods": str(spec.pods)}
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    taints = [{"key": GROUP, "value": group, "effect": "NoSchedule"}]
    taints += [{"key": key, "value": "true", "effect": "NoSchedule"} for key in spec.taints]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {GROUP: group, "kubernetes.io/hostname": name, **spec.labels},
            "annotations": {HOLLOW_ANNOTATION: "true"},
        },
        "spec": {"taints": taints},
        "status": {
            "capacity": capacity,
            "allocatable": dict(capacity),
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "synthetic node",
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
            ],
        },
    }
