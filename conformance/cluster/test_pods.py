"""Pods on real nodes: memory limits, liveness probes, a partitioned node's pods.

These need nodes that really run containers. A node qualifies if it is not hollow and a
probe pod pinned to it reaches Running with a containerID; without one, every test here
is skipped with the reason.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest

from pytest_containers.cluster import requires_fault
from pytest_containers.clusters import ClusterAdapter

from ._support import HOLLOW_ANNOTATION, gone, pod, ready_nodes, wait_for

requirement = pytest.mark.requirement
START_TIMEOUT = 30.0


@pytest.fixture(scope="session")
def real_nodes(cluster: ClusterAdapter, v1: Any) -> list[str]:
    """Nodes that run real containers (probed once per session, all at once)."""
    candidates = [
        str(n.metadata.name)
        for n in ready_nodes(cluster)
        if HOLLOW_ANNOTATION not in (n.metadata.annotations or {})
        and not any(t.effect == "NoSchedule" for t in n.spec.taints or [])
    ]
    return _running_containers(v1, candidates)


def _running_containers(v1: Any, nodes: list[str]) -> list[str]:
    """Those of ``nodes`` on which a probe pod pinned to them reaches Running with a
    containerID within ``START_TIMEOUT``."""
    namespace = "default"
    tag = secrets.token_hex(3)  # workers probing one cluster pick different names
    probes = {node: f"pc-probe-{tag}-{node}"[:63].rstrip("-") for node in nodes}
    made: list[str] = []
    try:
        for node, name in probes.items():
            v1.create_namespaced_pod(namespace, pod(name, scheduler=None, node_name=node))
            made.append(name)
        running: set[str] = set()
        deadline = time.monotonic() + START_TIMEOUT
        while len(running) < len(probes) and time.monotonic() < deadline:
            for node, name in probes.items():
                if node not in running and _started(v1.read_namespaced_pod(name, namespace)):
                    running.add(node)
            time.sleep(0.2)
        return [node for node in nodes if node in running]
    finally:
        for name in made:
            v1.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
        wait_for(lambda: all(_gone(v1, n, namespace) for n in made), "probe pods gone")


def _gone(v1: Any, name: str, namespace: str) -> bool:
    return gone(lambda: v1.read_namespaced_pod(name, namespace))


def _started(p: Any) -> bool:
    statuses = p.status.container_statuses or []
    return bool(p.status.phase == "Running" and statuses and statuses[0].container_id)


@pytest.fixture
def real_node(real_nodes: list[str]) -> Iterator[str]:
    if not real_nodes:
        pytest.skip("no node of this cluster runs real containers (hollow or placeholder nodes)")
    yield real_nodes[0]


def _restarts(v1: Any, name: str, namespace: str) -> int:
    statuses = v1.read_namespaced_pod(name, namespace).status.container_statuses or []
    return int(statuses[0].restart_count) if statuses else 0


@requirement("CL-POD-OOM-1")
def test_memory_limit_oom_kills_and_restarts(
    v1: Any, cluster_namespace: str, real_node: str
) -> None:
    body = pod(
        "hog",
        scheduler=None,
        node_name=real_node,
        command=["sh", "-c", "x=a; while true; do x=$x$x; done"],
    )
    body["spec"]["containers"][0]["resources"] = {"limits": {"memory": "32Mi"}}
    body["spec"]["restartPolicy"] = "Always"
    v1.create_namespaced_pod(cluster_namespace, body)

    def oom_killed() -> bool:
        statuses = v1.read_namespaced_pod("hog", cluster_namespace).status.container_statuses
        for s in statuses or []:
            last = s.last_state.terminated if s.last_state else None
            now = s.state.terminated if s.state else None
            if any(t is not None and t.reason == "OOMKilled" for t in (last, now)):
                return True
        return False

    wait_for(oom_killed, "the container OOMKilled", 60.0, 0.5)
    wait_for(lambda: _restarts(v1, "hog", cluster_namespace) >= 1, "restarted", 60.0, 0.5)


@requirement("CL-POD-LIVENESS-1")
def test_failing_liveness_probe_restarts(v1: Any, cluster_namespace: str, real_node: str) -> None:
    body = pod("sick", scheduler=None, node_name=real_node)
    body["spec"]["containers"][0]["livenessProbe"] = {
        "exec": {"command": ["false"]},
        "periodSeconds": 1,
        "failureThreshold": 1,
    }
    v1.create_namespaced_pod(cluster_namespace, body)
    wait_for(lambda: _restarts(v1, "sick", cluster_namespace) >= 1, "restarted", 60.0, 0.5)


@requirement("CL-POD-PARTITION-1")
def test_partitioned_nodes_pods_are_replaced(
    cluster: ClusterAdapter, v1: Any, apps_v1: Any, cluster_namespace: str, real_nodes: list[str]
) -> None:
    requires_fault(cluster, "partition_node", "heal_node")
    usable = [n for n in cluster.fault_nodes() if n in real_nodes]
    if len(usable) < 2:
        pytest.skip("needs two nodes with node agents that run real containers")
    spec = pod("x", scheduler=None)["spec"]
    spec["tolerations"] = [
        {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2}
        for key in ("node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready")
    ]
    apps_v1.create_namespaced_replica_set(
        cluster_namespace,
        {
            "metadata": {"name": "rs"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "rs"}},
                "template": {"metadata": {"labels": {"app": "rs"}}, "spec": spec},
            },
        },
    )

    def running_on() -> dict[str, str]:
        items = v1.list_namespaced_pod(cluster_namespace, label_selector="app=rs").items
        return {
            p.metadata.name: p.spec.node_name
            for p in items
            if p.status.phase == "Running" and p.metadata.deletion_timestamp is None
        }

    def two(avoiding: str = "") -> dict[str, str] | None:
        found = running_on()
        return found if len(found) == 2 and avoiding not in found.values() else None

    before = wait_for(two, "2 pods running", START_TIMEOUT, 0.2)
    victim = next((node for node in sorted(before.values()) if node in usable), None)
    if victim is None:
        pytest.skip(f"the pods run on {sorted(before.values())}, none of which can be cut off")
    lost = {name for name, node in before.items() if node == victim}
    cluster.partition_node(victim)
    try:
        after = wait_for(lambda: two(victim), f"the pods of {victim} replaced elsewhere", 30.0, 0.2)
    finally:
        cluster.heal_node(victim)
    assert not lost & set(after), f"{sorted(lost)} still counted as running"
