"""Scheduling properties over Hypothesis-chosen nodes and pods.

Each example registers its own synthetic Nodes through the API (hollow on the reference
cluster: nothing runs their pods), labelled and tainted with the test's namespace so that
only the test's pods land there, then creates pods with drawn requests, nodeSelectors and
tolerations and waits until every pod is bound or reported Unschedulable. A small model
then checks the result: no node beyond its allocatable cpu, memory or pod count; every
binding respects nodeSelector and taints; no unschedulable pod fits anywhere.

Clusters whose adapter cannot register synthetic Nodes (a real cluster would try to reach
them) skip these tests, with the reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ._support import GROUP, NodeSpec, pod, wait_for

requirement = pytest.mark.requirement
SETTLE_TIMEOUT = 30.0
MI = 1024 * 1024


@dataclass(frozen=True)
class PodSpec:
    """A pod: requests in millicores and MiB, a nodeSelector, tolerated taint keys."""

    cpu: int
    memory: int
    selector: dict[str, str] = field(default_factory=dict)
    tolerates: tuple[str, ...] = ()


ZONES = st.sampled_from(["a", "b"])
TAINTS = ("dedicated", "gpu")

node_specs = st.builds(
    NodeSpec,
    cpu=st.sampled_from([1000, 2000, 4000]),
    memory=st.sampled_from([1024, 2048, 4096]),
    pods=st.integers(1, 4),
    labels=st.dictionaries(st.just("zone"), ZONES, max_size=1),
    taints=st.lists(st.sampled_from(TAINTS), max_size=1, unique=True).map(tuple),
)
pod_specs = st.builds(
    PodSpec,
    cpu=st.sampled_from([100, 500, 900, 1500, 3000]),
    memory=st.sampled_from([128, 512, 1024, 3072]),
    selector=st.dictionaries(st.just("zone"), ZONES, max_size=1),
    tolerates=st.lists(st.sampled_from(TAINTS), max_size=2, unique=True).map(tuple),
)


def _pod(name: str, spec: PodSpec, group: str) -> dict[str, Any]:
    tolerations = [{"key": GROUP, "operator": "Equal", "value": group, "effect": "NoSchedule"}]
    tolerations += [
        {"key": key, "operator": "Exists", "effect": "NoSchedule"} for key in spec.tolerates
    ]
    return pod(
        name,
        scheduler=None,
        requests={"cpu": f"{spec.cpu}m", "memory": f"{spec.memory}Mi"},
        node_selector={GROUP: group, **spec.selector},
        tolerations=tolerations,
    )


def _unschedulable(p: Any) -> bool:
    return any(
        c.type == "PodScheduled" and c.status == "False" and c.reason == "Unschedulable"
        for c in (p.status.conditions or [])
    )


def _settle(
    v1: Any, namespace: str, count: int, stuck: Callable[[list[Any]], list[str]]
) -> list[Any]:
    """Wait until every pod is bound or reported Unschedulable and none of the
    Unschedulable ones fits anywhere (``stuck`` names those that do): such a pod may
    have been tried before the scheduler saw the nodes, and is retried when the
    cluster changes, so only "eventually bound" is required. On timeout, the last
    pods, for the assertions to name what is wrong."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        pods = v1.list_namespaced_pod(namespace).items
        done = len(pods) == count and all(p.spec.node_name or _unschedulable(p) for p in pods)
        if done and not stuck(pods):
            return pods
        if time.monotonic() > deadline:
            assert len(pods) == count, f"{len(pods)} of {count} pods exist"
            return pods
        time.sleep(0.2)


def _fits(p: PodSpec, n: NodeSpec, used: tuple[int, int, int]) -> bool:
    """The model of filtering: selector, taints and room left."""
    cpu, memory, count = used
    return (
        all(n.labels.get(k) == v for k, v in p.selector.items())
        and set(n.taints) <= set(p.tolerates)
        and cpu + p.cpu <= n.cpu
        and memory + p.memory <= n.memory
        and count + 1 <= n.pods
    )


@requirement(
    "CL-SCHED-FIT-1",
    "CL-SCHED-SELECTOR-1",
    "CL-SCHED-TAINT-1",
    "CL-SCHED-BIND-1",
    "CL-SCHED-UNSCHED-1",
)
@given(
    nodes=st.lists(node_specs, min_size=1, max_size=3),
    pods=st.lists(pod_specs, min_size=1, max_size=6),
)
def test_placement_respects_capacity_selectors_and_taints(
    synthetic_nodes: Any,
    v1: Any,
    cluster_namespace: str,
    nodes: list[NodeSpec],
    pods: list[PodSpec],
) -> None:
    synthetic_nodes.clear()
    names = synthetic_nodes(nodes)
    node_of = dict(zip(names, nodes, strict=True))
    for i, spec in enumerate(pods):
        v1.create_namespaced_pod(cluster_namespace, _pod(f"p{i}", spec, cluster_namespace))

    def usage(placed: list[Any]) -> dict[str, tuple[int, int, int]]:
        used = {name: (0, 0, 0) for name in names}
        for p in placed:
            node = p.spec.node_name
            if node in used:
                cpu, memory, count = used[node]
                spec = pods[int(p.metadata.name[1:])]
                used[node] = (cpu + spec.cpu, memory + spec.memory, count + 1)
        return used

    def stuck(placed: list[Any]) -> list[str]:
        used = usage(placed)
        return [
            p.metadata.name
            for p in placed
            if not p.spec.node_name
            and any(
                _fits(pods[int(p.metadata.name[1:])], n, used[node]) for node, n in node_of.items()
            )
        ]

    placed = _settle(v1, cluster_namespace, len(pods), stuck)
    pod_of = {p.metadata.name: pods[int(p.metadata.name[1:])] for p in placed}
    used = usage(placed)
    for p in placed:
        node = p.spec.node_name
        if not node:
            continue
        assert node in node_of, f"{p.metadata.name} bound to {node}, not a node of the test"
        spec, n = pod_of[p.metadata.name], node_of[node]
        assert all(n.labels.get(k) == v for k, v in spec.selector.items()), (
            f"{p.metadata.name} {spec!r} on {n!r}: nodeSelector not met"
        )
        assert set(n.taints) <= set(spec.tolerates), (
            f"{p.metadata.name} {spec!r} on {n!r}: a NoSchedule taint not tolerated"
        )
    for node, (cpu, memory, count) in used.items():
        n = node_of[node]
        assert cpu <= n.cpu and memory <= n.memory and count <= n.pods, (
            f"{node} {n!r} committed beyond allocatable: cpu {cpu}m, memory {memory}Mi, "
            f"{count} pods"
        )
    for p in placed:
        if p.spec.node_name:
            continue
        spec = pod_of[p.metadata.name]
        assert _unschedulable(p), f"{p.metadata.name} {spec!r} neither bound nor Unschedulable"
        assert p.status.phase == "Pending"
        room = [node for node, n in node_of.items() if _fits(spec, n, used[node])]
        assert not room, f"{p.metadata.name} {spec!r} left Unschedulable but fits on {room}"


@requirement("CL-SCHED-UNSCHED-1")
def test_a_pod_that_fits_nowhere_is_unschedulable(
    synthetic_nodes: Any, v1: Any, cluster_namespace: str
) -> None:
    synthetic_nodes([NodeSpec(cpu=1000, memory=1024, pods=4)])
    v1.create_namespaced_pod(
        cluster_namespace, _pod("big", PodSpec(cpu=2000, memory=128), cluster_namespace)
    )
    got = wait_for(
        lambda: _unschedulable(p := v1.read_namespaced_pod("big", cluster_namespace)) and p,
        "PodScheduled=False, Unschedulable",
        SETTLE_TIMEOUT,
    )
    assert got.status.phase == "Pending" and not got.spec.node_name


@requirement("CL-SCHED-SPREAD-1")
@given(count=st.integers(2, 4), per_node=st.integers(1, 2))
def test_identical_pods_spread_evenly(
    synthetic_nodes: Any, v1: Any, cluster_namespace: str, count: int, per_node: int
) -> None:
    synthetic_nodes.clear()
    names = synthetic_nodes([NodeSpec(cpu=4000, memory=4096, pods=10) for _ in range(count)])
    spec = PodSpec(cpu=500, memory=512)
    for i in range(count * per_node):
        v1.create_namespaced_pod(cluster_namespace, _pod(f"p{i}", spec, cluster_namespace))
        name = f"p{i}"  # one at a time: each sees the ones before it

        def bound(name: str = name) -> str:
            return str(v1.read_namespaced_pod(name, cluster_namespace).spec.node_name or "")

        wait_for(bound, f"{name} bound", SETTLE_TIMEOUT)
    on: dict[str, int] = dict.fromkeys(names, 0)
    for p in v1.list_namespaced_pod(cluster_namespace).items:
        on[p.spec.node_name] += 1
    assert sorted(on.values()) == [per_node] * count, f"placement {on}"
