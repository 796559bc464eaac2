"""Reconciliation as a Hypothesis state machine: a Deployment scaled, rolled out and
robbed of pods while the adapter's faults (API server restarts, node agents stopped or
partitioned) strike, checked against a model of what was asked for.

At every step: never more live pods than replicas plus maxSurge (of the larger of the
last two replica counts, since scaling down is not instant). During a rollout started
from a stable Deployment with no fault: never fewer ready pods than replicas minus
maxUnavailable. ``settle`` ends the faults and, with the desired state fixed, the
Deployment reaches it within ``CONVERGE_TIMEOUT``: ready replicas as desired, all on
Ready nodes, all from the newest template, and the same pods a moment later.

Faults the adapter lacks are not drawn. On a cluster with synthetic nodes the
Deployment runs on Nodes of the test's own (hollow on the reference cluster).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from pytest_containers.clusters import ClusterAdapter

from ._support import GROUP, NodeSpec, ready_nodes, wait_for

requirement = pytest.mark.requirement
NAME = "web"
CONVERGE_TIMEOUT = 40.0
ROLLOUT_TIMEOUT = 40.0


class Cluster:
    """What the machine needs from the test: set by the test before each run."""

    adapter: ClusterAdapter
    v1: Any
    apps: Any
    namespace: str
    group: str | None  # synthetic nodes' group label, or None to run anywhere


class DeploymentMachine(RuleBasedStateMachine):
    env = Cluster()

    def __init__(self) -> None:
        super().__init__()
        self.replicas = 2
        self.previous = 2
        self.version = 0
        self.surge = 1
        self.unavailable = 1
        self.down: set[str] = set()  # stopped node agents
        self.cut: set[str] = set()  # partitioned nodes
        self.faults = self.env.adapter.faults
        self.nodes = self.env.adapter.fault_nodes()

    # -- the system ---------------------------------------------------------------------

    def _deployment(self) -> dict[str, Any]:
        template_spec: dict[str, Any] = {
            "containers": [
                {
                    "name": "main",
                    "image": "busybox",
                    "command": ["sleep", "3600"],
                    "env": [{"name": "VERSION", "value": str(self.version)}],
                }
            ],
            "terminationGracePeriodSeconds": 0,
            "tolerations": [  # a lost node's pods move within seconds
                {
                    "key": "node.kubernetes.io/unreachable",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 2,
                },
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 2,
                },
            ],
        }
        group = self.env.group
        if group is not None:
            template_spec["nodeSelector"] = {GROUP: group}
            template_spec["tolerations"].append(
                {"key": GROUP, "operator": "Equal", "value": group, "effect": "NoSchedule"}
            )
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": NAME},
            "spec": {
                "replicas": self.replicas,
                "selector": {"matchLabels": {"app": NAME}},
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": self.surge, "maxUnavailable": self.unavailable},
                },
                "template": {"metadata": {"labels": {"app": NAME}}, "spec": template_spec},
            },
        }

    def _pods(self) -> list[Any]:
        items = self.env.v1.list_namespaced_pod(
            self.env.namespace, label_selector=f"app={NAME}", _request_timeout=15
        ).items
        return [p for p in items if p.metadata.deletion_timestamp is None]

    @staticmethod
    def _ready(p: Any) -> bool:
        return any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])

    def _converged(self) -> list[Any] | None:
        d = self.env.apps.read_namespaced_deployment(NAME, self.env.namespace)
        pods = self._pods()
        good = {n.metadata.name for n in ready_nodes(self.env.adapter)}
        version = str(self.version)
        ok = (
            d.status.observed_generation == d.metadata.generation
            and (d.status.updated_replicas or 0) == self.replicas
            and (d.status.ready_replicas or 0) == self.replicas
            and len(pods) == self.replicas
            and all(self._ready(p) and p.spec.node_name in good for p in pods)
            and all(_version(p) == version for p in pods)
        )
        return pods or [True] if ok else None

    # -- rules --------------------------------------------------------------------------

    @initialize(surge=st.integers(0, 2), unavailable=st.integers(0, 1), replicas=st.integers(1, 4))
    def create(self, surge: int, unavailable: int, replicas: int) -> None:
        self.surge, self.unavailable = surge, unavailable if surge else max(1, unavailable)
        self.replicas = self.previous = replicas
        self.env.apps.create_namespaced_deployment(self.env.namespace, self._deployment())

    @rule(replicas=st.integers(0, 5))
    def scale(self, replicas: int) -> None:
        self.previous, self.replicas = self.replicas, replicas
        self.env.apps.patch_namespaced_deployment_scale(
            NAME, self.env.namespace, {"spec": {"replicas": replicas}}
        )

    @rule()
    def roll_out(self) -> None:
        """A new template; with no fault active, watched until done from a stable start."""
        calm = not (self.down or self.cut)
        if calm:
            wait_for(self._converged, "stable before the rollout", CONVERGE_TIMEOUT, 0.2)
        self.version += 1
        self.env.apps.patch_namespaced_deployment(
            NAME, self.env.namespace, {"spec": self._deployment()["spec"]}
        )
        if not calm:
            return
        floor = self.replicas - self.unavailable
        deadline = time.monotonic() + ROLLOUT_TIMEOUT
        while self._converged() is None:
            ready = [p for p in self._pods() if self._ready(p)]
            assert len(ready) >= floor, (
                f"rollout to version {self.version}: {len(ready)} ready pods, fewer than "
                f"replicas {self.replicas} - maxUnavailable {self.unavailable}"
            )
            assert time.monotonic() < deadline, f"rollout not done in {ROLLOUT_TIMEOUT:.0f}s"
            time.sleep(0.1)

    @rule(data=st.data())
    def delete_pod(self, data: st.DataObject) -> None:
        pods = sorted(p.metadata.name for p in self._pods())
        if pods:
            victim = data.draw(st.sampled_from(pods), label="pod")
            self.env.v1.delete_namespaced_pod(victim, self.env.namespace, grace_period_seconds=0)

    @precondition(lambda self: "restart_api_server" in self.faults)
    @rule()
    def restart_api_server(self) -> None:
        self.env.adapter.restart_api_server()

    @precondition(lambda self: "stop_node" in self.faults and len(self.nodes) > 1)
    @rule(data=st.data())
    def stop_node(self, data: st.DataObject) -> None:
        node = data.draw(st.sampled_from(self.nodes), label="node")
        if node not in self.down:
            self.env.adapter.stop_node(node)
            self.down.add(node)

    @precondition(lambda self: bool(self.down))
    @rule(data=st.data())
    def start_node(self, data: st.DataObject) -> None:
        node = data.draw(st.sampled_from(sorted(self.down)), label="node")
        self.env.adapter.start_node(node)
        self.down.discard(node)

    @precondition(lambda self: "partition_node" in self.faults and len(self.nodes) > 1)
    @rule(data=st.data())
    def partition_node(self, data: st.DataObject) -> None:
        node = data.draw(st.sampled_from(self.nodes), label="node")
        if node not in self.cut:
            self.env.adapter.partition_node(node)
            self.cut.add(node)

    @precondition(lambda self: bool(self.cut))
    @rule(data=st.data())
    def heal_node(self, data: st.DataObject) -> None:
        node = data.draw(st.sampled_from(sorted(self.cut)), label="node")
        self.env.adapter.heal_node(node)
        self.cut.discard(node)

    @rule()
    def settle(self) -> None:
        """Faults end; the desired state stays fixed: the cluster reaches it and stays."""
        self._heal_all()
        wait_for(self._converged, f"converged to {self._goal()}", CONVERGE_TIMEOUT, 0.2)
        self.previous = self.replicas
        before = sorted(p.metadata.name for p in self._pods())
        time.sleep(1.0)
        after = self._converged()
        assert after is not None, f"left the reconciled state {self._goal()}"
        assert sorted(p.metadata.name for p in self._pods()) == before, "pods churned"

    # -- invariants ---------------------------------------------------------------------

    @invariant()
    def never_beyond_surge(self) -> None:
        live = len(self._pods())
        bound = max(self.replicas, self.previous) + self.surge
        assert live <= bound, (
            f"{live} live pods > replicas {max(self.replicas, self.previous)} + maxSurge "
            f"{self.surge}"
        )

    def _goal(self) -> str:
        return f"{self.replicas} ready replicas of version {self.version}"

    def _heal_all(self) -> None:
        for node in sorted(self.cut):
            self.env.adapter.heal_node(node)
        for node in sorted(self.down):
            self.env.adapter.start_node(node)
        self.cut.clear()
        self.down.clear()

    def teardown(self) -> None:
        try:
            self._heal_all()
        finally:
            self.env.apps.delete_namespaced_deployment(
                NAME, self.env.namespace, propagation_policy="Foreground"
            )
            wait_for(lambda: not self._all_pods(), "the Deployment's pods gone", 30.0)
            wait_for(lambda: not self._deployments(), "the Deployment gone", 30.0)

    def _all_pods(self) -> list[Any]:
        return list(self.env.v1.list_namespaced_pod(self.env.namespace).items)

    def _deployments(self) -> list[Any]:
        return list(self.env.apps.list_namespaced_deployment(self.env.namespace).items)


def _version(p: Any) -> str:
    for env in p.spec.containers[0].env or []:
        if env.name == "VERSION":
            return str(env.value)
    return ""


@requirement("CL-REC-SURGE-1", "CL-REC-UNAVAILABLE-1", "CL-REC-CONVERGE-1", "CL-OWN-REC-STABLE-1")
def test_deployment_reconciles_under_faults(
    cluster: ClusterAdapter, v1: Any, apps_v1: Any, cluster_namespace: str, synthetic_nodes: Any
) -> None:
    env = DeploymentMachine.env
    env.adapter, env.v1, env.apps, env.namespace = cluster, v1, apps_v1, cluster_namespace
    env.group = None
    if cluster.synthetic_nodes:
        synthetic_nodes([NodeSpec(cpu=4000, memory=4096, pods=20) for _ in range(3)])
        env.group = cluster_namespace
    current = settings()
    run_state_machine_as_test(
        DeploymentMachine,
        settings=settings(
            current,
            max_examples=min(current.max_examples, 3),
            stateful_step_count=min(current.stateful_step_count, 8),
        ),
    )


@requirement("CL-REC-REPLACE-1")
def test_deleted_pod_is_replaced(
    cluster: ClusterAdapter, v1: Any, apps_v1: Any, cluster_namespace: str, synthetic_nodes: Any
) -> None:
    group = None
    if cluster.synthetic_nodes:
        synthetic_nodes([NodeSpec(cpu=4000, memory=4096, pods=20)])
        group = cluster_namespace
    spec: dict[str, Any] = {
        "containers": [{"name": "main", "image": "busybox", "command": ["sleep", "3600"]}],
        "terminationGracePeriodSeconds": 0,
    }
    if group is not None:
        spec["nodeSelector"] = {GROUP: group}
        spec["tolerations"] = [{"key": GROUP, "operator": "Exists", "effect": "NoSchedule"}]
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

    def live() -> list[str]:
        items = v1.list_namespaced_pod(cluster_namespace, label_selector="app=rs").items
        return sorted(p.metadata.name for p in items if p.metadata.deletion_timestamp is None)

    def two(without: str = "") -> list[str] | None:
        names = live()
        return names if len(names) == 2 and without not in names else None

    first = wait_for(two, "2 pods", 30.0)
    v1.delete_namespaced_pod(first[0], cluster_namespace, grace_period_seconds=0)
    after = wait_for(lambda: two(first[0]), "the deleted pod replaced", 30.0)
    assert first[1] in after
