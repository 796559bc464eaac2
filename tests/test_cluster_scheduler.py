"""The scheduler against an in-process API server: binding, reasons, retries, spreading."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client, config

from reference_runtime.cluster.api import ApiServer, Registry
from reference_runtime.cluster.nodes import node_object
from reference_runtime.cluster.scheduler import Scheduler, SchedulerConfig

NS = "default"


def wait_for(check: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> Any:
    __tracebackhide__ = True
    end = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def add_node(
    reg: Registry,
    name: str,
    *,
    cpu: str = "4",
    memory: str = "16Gi",
    labels: dict[str, str] | None = None,
    taints: list[dict[str, str]] | None = None,
) -> None:
    node = node_object(name, 1, hollow=True, now=reg.clock())
    node["status"]["capacity"].update(cpu=cpu, memory=memory)
    node["status"]["allocatable"].update(cpu=cpu, memory=memory)
    node["metadata"]["labels"].update(labels or {})
    if taints:
        node["spec"]["taints"] = taints
    reg.create("nodes", node)


def add_pod(reg: Registry, name: str, *, cpu: str = "", **spec: Any) -> None:
    resources = {"requests": {"cpu": cpu}} if cpu else {}
    body = {
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox", "resources": resources}], **spec},
    }
    reg.create("pods", body, namespace=NS)


def node_of(reg: Registry, name: str) -> str:
    return str(reg.get("pods", name, namespace=NS)["spec"].get("nodeName") or "")


def scheduled_condition(reg: Registry, name: str) -> dict[str, Any]:
    for c in reg.get("pods", name, namespace=NS).get("status", {}).get("conditions") or []:
        if c["type"] == "PodScheduled":
            return dict(c)
    return {}


@pytest.fixture
def cluster() -> Iterator[tuple[ApiServer, Scheduler]]:
    with ApiServer.start(tls=False) as server:
        sched = Scheduler(
            server.registry, SchedulerConfig(initial_backoff=0.02, max_backoff=0.2, seed=7)
        )
        sched.start()
        try:
            assert sched.wait_for_sync(5)
            yield server, sched
        finally:
            sched.stop()


def test_a_pod_that_fits_is_bound_through_the_binding(
    cluster: tuple[ApiServer, Scheduler],
) -> None:
    server, _ = cluster
    reg = server.registry
    add_node(reg, "n1")
    add_pod(reg, "web", cpu="500m")
    wait_for(lambda: node_of(reg, "web") == "n1", what="web on n1")
    assert scheduled_condition(reg, "web")["status"] == "True"
    api = config.new_client_from_config(config_file=str(server.kubeconfig))
    pod = client.CoreV1Api(api).read_namespaced_pod("web", NS)
    assert pod.spec is not None and pod.status is not None
    assert pod.spec.node_name == "n1" and pod.status.phase == "Pending"  # no kubelet here


def test_a_pod_that_fits_nowhere_stays_pending_with_the_reason_until_a_node_comes(
    cluster: tuple[ApiServer, Scheduler],
) -> None:
    server, sched = cluster
    reg = server.registry
    add_node(reg, "small-1", cpu="1")
    add_node(reg, "small-2", cpu="2", labels={"disk": "ssd"})
    add_node(reg, "other", cpu="8")
    # The scheduler learns of nodes and pods through separate watches: let it see all
    # three nodes first, or its first attempt says "0/1 nodes" (then retries, rightly).
    wait_for(lambda: len(sched.cache) == 3, what="the scheduler to see 3 nodes")
    add_pod(reg, "big", cpu="4", nodeSelector={"disk": "ssd"})
    message = (
        "0/3 nodes are available: 1 Insufficient cpu,"
        " 2 node(s) didn't match Pod's node affinity/selector."
    )
    wait_for(lambda: scheduled_condition(reg, "big").get("message") == message, what=message)
    condition = scheduled_condition(reg, "big")
    assert condition["status"] == "False" and condition["reason"] == "Unschedulable"
    events = reg.list("events", namespace=NS, field_selector="involvedObject.name=big")["items"]
    assert [(e["reason"], e["type"], e["message"]) for e in events] == [
        ("FailedScheduling", "Warning", message)
    ]
    time.sleep(0.3)
    assert node_of(reg, "big") == "" and sched.queue.counts()["unschedulable"] == 1
    attempts = sched.stats["unschedulable"]
    time.sleep(0.5)
    assert sched.stats["unschedulable"] == attempts  # parked: no retries without a change
    add_node(reg, "big-ssd", cpu="8", labels={"disk": "ssd"})  # a cluster change: retried
    wait_for(lambda: node_of(reg, "big") == "big-ssd", what="big on big-ssd")
    assert scheduled_condition(reg, "big")["status"] == "True"


def test_a_deleted_pod_makes_room_for_a_waiting_one(cluster: tuple[ApiServer, Scheduler]) -> None:
    server, _ = cluster
    reg = server.registry
    add_node(reg, "n1", cpu="2")
    add_pod(reg, "first", cpu="1500m")
    wait_for(lambda: node_of(reg, "first"), what="first bound")
    add_pod(reg, "second", cpu="1")
    wait_for(
        lambda: (
            scheduled_condition(reg, "second").get("message")
            == "0/1 nodes are available: 1 Insufficient cpu."
        ),
        what="second unschedulable",
    )
    reg.delete("pods", "first", namespace=NS)  # no agent on the node: gone at once
    wait_for(lambda: node_of(reg, "second") == "n1", what="second bound after the delete")


def test_a_node_update_that_matters_retries_pending_pods(
    cluster: tuple[ApiServer, Scheduler],
) -> None:
    server, _ = cluster
    reg = server.registry
    add_node(reg, "n1", taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}])
    add_pod(reg, "p")
    wait_for(
        lambda: (
            scheduled_condition(reg, "p").get("message")
            == "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}."
        ),
        what="p unschedulable",
    )
    node = reg.get("nodes", "n1")
    node["spec"].pop("taints")
    reg.update("nodes", node)
    wait_for(lambda: node_of(reg, "p") == "n1", what="p bound once the taint is gone")


def test_selectors_taints_readiness_and_cordons_are_respected(
    cluster: tuple[ApiServer, Scheduler],
) -> None:
    server, sched = cluster
    reg = server.registry
    add_node(reg, "ssd", labels={"disk": "ssd"})
    add_node(reg, "gpu", taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}])
    add_node(reg, "plain")
    add_node(reg, "cordoned")
    cordoned = reg.get("nodes", "cordoned")
    cordoned["spec"]["unschedulable"] = True
    reg.update("nodes", cordoned)
    add_node(reg, "sick")
    sick = reg.get("nodes", "sick")
    for c in sick["status"]["conditions"]:
        if c["type"] == "Ready":
            c["status"] = "False"
    reg.update("nodes", sick, subresource="status")
    wait_for(lambda: len(sched.cache) == 5 and sched.cache.blocked_nodes == 2, what="5 nodes seen")
    gpu_toleration = [{"key": "dedicated", "operator": "Equal", "value": "gpu"}]
    for i in range(6):
        add_pod(reg, f"any-{i}")
        add_pod(reg, f"ssd-{i}", nodeSelector={"disk": "ssd"})
        add_pod(
            reg,
            f"gpu-{i}",
            nodeSelector={"kubernetes.io/hostname": "gpu"},
            tolerations=gpu_toleration,
        )
    names = [f"{kind}-{i}" for kind in ("any", "ssd", "gpu") for i in range(6)]
    wait_for(lambda: all(node_of(reg, n) for n in names), what="every pod bound")
    placed = {n: node_of(reg, n) for n in names}
    assert {placed[f"ssd-{i}"] for i in range(6)} == {"ssd"}
    assert {placed[f"gpu-{i}"] for i in range(6)} == {"gpu"}
    assert {placed[f"any-{i}"] for i in range(6)} <= {"ssd", "plain"}


def test_identical_pods_spread_evenly(cluster: tuple[ApiServer, Scheduler]) -> None:
    server, sched = cluster
    reg = server.registry
    for i in range(3):
        add_node(reg, f"n{i}")
    wait_for(lambda: len(sched.cache) == 3, what="the scheduler to see 3 nodes")
    for i in range(9):
        add_pod(reg, f"p{i}", cpu="200m")
    wait_for(lambda: all(node_of(reg, f"p{i}") for i in range(9)), what="9 pods bound")
    assert sorted(Counter(node_of(reg, f"p{i}") for i in range(9)).values()) == [3, 3, 3]


def test_capacity_is_never_exceeded_under_a_burst(cluster: tuple[ApiServer, Scheduler]) -> None:
    server, sched = cluster
    reg = server.registry
    for i in range(4):
        add_node(reg, f"n{i}", cpu="1", memory="1Gi")
    wait_for(lambda: len(sched.cache) == 4, what="the scheduler to see 4 nodes")
    sizes = ["100m", "300m", "450m", "700m"]
    for i in range(40):
        add_pod(reg, f"p{i}", cpu=sizes[i % len(sizes)])

    def settled() -> bool:
        counts = sched.queue.counts()
        bound = sum(1 for i in range(40) if node_of(reg, f"p{i}"))
        idle = counts["active"] + counts["backoff"] + counts["in_flight"] == 0
        return idle and bound + counts["unschedulable"] == 40

    wait_for(settled, what="every pod bound or parked as unschedulable")
    used: Counter[str] = Counter()
    for pod in reg.list("pods", namespace=NS)["items"]:
        if pod["spec"].get("nodeName"):
            used[pod["spec"]["nodeName"]] += int(
                pod["spec"]["containers"][0]["resources"]["requests"]["cpu"].rstrip("m")
            )
    assert all(v <= 1000 for v in used.values()), used
    assert sum(used.values()) >= 3000  # the nodes are mostly full, not idle
    pending = [p for p in reg.list("pods", namespace=NS)["items"] if not p["spec"].get("nodeName")]
    smallest_pending = min(
        int(p["spec"]["containers"][0]["resources"]["requests"]["cpu"].rstrip("m")) for p in pending
    )
    assert all(1000 - v < smallest_pending for v in used.values())  # nothing pending would fit


def test_pods_for_another_scheduler_or_already_placed_are_left_alone(
    cluster: tuple[ApiServer, Scheduler],
) -> None:
    server, sched = cluster
    reg = server.registry
    add_node(reg, "n1")
    add_pod(reg, "theirs", schedulerName="other-scheduler")
    add_pod(reg, "placed", nodeName="n1")
    add_pod(reg, "ours")
    wait_for(lambda: node_of(reg, "ours") == "n1", what="ours bound")
    time.sleep(0.2)
    assert node_of(reg, "theirs") == "" and scheduled_condition(reg, "theirs") == {}
    assert sched.stats["errors"] == 0
