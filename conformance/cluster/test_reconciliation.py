"""Reconciliation as a Hypothesis state machine: a Deployment of real pods created,
scaled, rolled out and robbed of pods while the adapter's faults strike (node agents
killed and started again, nodes cut off and healed, the API server restarted), checked
against a model of what was asked for.

At every look: never more live pods than replicas plus maxSurge (of the largest replica
count asked for since the Deployment was last stable, since scaling down is not
instant). During a rollout started from a stable Deployment with no fault: never fewer
ready pods than replicas minus maxUnavailable (a node that goes silent on its own during
the rollout is a fault too: the floor is then not asserted). ``failover``: while nodes
are lost, their pods are replaced on the others within ``FAILOVER_TIMEOUT``. ``settle``
and every example's end: the faults end, the desired state stays fixed, and within
``CONVERGE_TIMEOUT`` the Deployment reaches it and stays there (``_deployment.hold``):
ready replicas as desired, all on Ready nodes, all from the newest template, the same
pods for a while. Pods count as the API shows them: live if not terminating, ready by
their ``Ready`` condition.

Node faults strike the nodes ``fault_nodes()`` names (on the reference cluster, its three
node agents, which run the Deployment's pods as real containers); faults the adapter
lacks are not drawn. A failure prints the shrunk schedule as steps to paste.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from pytest_containers.clusters import ClusterAdapter

from ._deployment import Deployment, Goal, View, is_ready, unstable_nodes, version_of
from ._support import GROUP, NodeSpec, wait_for

requirement = pytest.mark.requirement
CONVERGE_TIMEOUT = 30.0
FAILOVER_TIMEOUT = 30.0
ROLLOUT_TIMEOUT = 30.0


class Cluster:
    """What the machine needs from the test: set by the test before each run."""

    adapter: ClusterAdapter
    namespace: str
    nodes: list[str]  # the nodes node faults strike


class Machine(RuleBasedStateMachine):
    """The rules that need no node; ``machine_for(nodes)`` adds the node faults."""

    env = Cluster()

    def __init__(self) -> None:
        super().__init__()
        self.deployment = Deployment(self.env.adapter, self.env.namespace)
        self.faults = self.env.adapter.faults
        self.nodes = list(self.env.nodes)
        self.replicas = self.ceiling = 0
        self.version = 0
        self.surge = self.unavailable = 0
        self.down: set[str] = set()  # stopped node agents
        self.cut: set[str] = set()  # partitioned nodes
        self.back: dict[str, float] = {}  # node -> when its fault ended (epoch seconds)
        self.created = False
        self.failed = False  # a step failed: the example is over

    # -- the model ----------------------------------------------------------------------

    def goal(self, avoid: frozenset[str] = frozenset()) -> Goal:
        return Goal(self.replicas, self.version, avoid, dict(self.back))

    def check_surge(self, view: View) -> None:
        bound = self.ceiling + self.surge
        live = len(view.pods)
        assert live <= bound, (
            f"{live} live pods > replicas {self.ceiling} + maxSurge {self.surge}: "
            + ", ".join(f"{p.metadata.name}@{p.spec.node_name}" for p in view.pods)
        )

    def stable(self, goal: Goal, timeout: float) -> None:
        self.hold(goal, timeout, self.check_surge)
        self.ceiling = self.replicas
        self.back.clear()

    def hold(self, goal: Goal, timeout: float, check: Callable[[View], None]) -> None:
        """``Deployment.hold``; a failure is remembered, so teardown does not wait again."""
        try:
            self.deployment.hold(goal, timeout, check)
        except AssertionError:
            self.failed = True
            raise

    def end_faults(self) -> None:
        for node in sorted(self.cut):
            self._undo("heal_node", node, self.cut)
        for node in sorted(self.down):
            self._undo("start_node", node, self.down)

    # -- rules --------------------------------------------------------------------------

    @initialize(surge=st.integers(0, 2), unavailable=st.integers(0, 1), replicas=st.integers(1, 4))
    def create(self, surge: int, unavailable: int, replicas: int) -> None:
        self.surge, self.unavailable = surge, unavailable if surge else max(1, unavailable)
        self.replicas = self.ceiling = replicas
        self.deployment.create(replicas, self.version, self.surge, self.unavailable)
        self.created = True

    @rule(replicas=st.integers(0, 5))
    def scale(self, replicas: int) -> None:
        self.replicas = replicas
        self.ceiling = max(self.ceiling, replicas)
        self.deployment.scale(replicas)

    @rule()
    def roll_out(self) -> None:
        """A new template; with no fault active, watched until done from a stable start."""
        calm = not (self.down or self.cut)
        if calm:
            self.stable(self.goal(), CONVERGE_TIMEOUT)
        self.version += 1
        started = time.time()
        self.deployment.roll_out(self.replicas, self.version, self.surge, self.unavailable)
        if not calm:
            return
        floor = self.replicas - self.unavailable

        def keeps_floor(view: View) -> None:
            self.check_surge(view)
            if unstable_nodes(self.deployment.nodes(), started):
                return  # a node went silent on its own: a fault, the floor does not hold
            ready = len(view.ready())
            assert ready >= floor, (
                f"rollout to version {self.version}: {ready} ready pods, fewer than "
                f"replicas {self.replicas} - maxUnavailable {self.unavailable}"
            )

        self.hold(self.goal(), ROLLOUT_TIMEOUT, keeps_floor)
        self.ceiling = self.replicas

    @rule(nth=st.integers(0, 4))
    def delete_pod(self, nth: int) -> None:
        """Delete the ``nth`` live pod (by name, wrapping around), if there is one."""
        pods = sorted(p.metadata.name for p in self.deployment.pods())
        if pods:
            self.deployment.delete_pod(pods[nth % len(pods)])

    @precondition(lambda self: "restart_api_server" in self.faults)
    @rule()
    def restart_api_server(self) -> None:
        self.env.adapter.restart_api_server()

    def lost_some(self) -> bool:
        """Some nodes are lost, and some are left to take their pods."""
        return bool(self.down or self.cut) and len(self.down | self.cut) < len(self.nodes)

    @precondition(lambda self: self.lost_some())
    @rule()
    def failover(self) -> None:
        """Nodes stay lost: their pods are replaced on the nodes that are left."""
        self._failover()

    def _failover(self) -> None:
        self.stable(self.goal(frozenset(self.down | self.cut)), FAILOVER_TIMEOUT)

    @rule()
    def settle(self) -> None:
        """The lost nodes' pods move first (``failover``); then the faults end and, with the
        desired state fixed, the cluster reaches it and stays there."""
        if self.lost_some():
            self._failover()
        self.end_faults()
        self.stable(self.goal(), CONVERGE_TIMEOUT)

    # -- node faults (the rules ``machine_for`` binds to the nodes) ---------------------

    def _strike(self, fault: str, node: str, faulted: set[str]) -> str:
        getattr(self.env.adapter, fault)(node)
        faulted.add(node)
        return node

    def _undo(self, undo: str, node: str, faulted: set[str]) -> None:
        """``undo`` (start_node, heal_node) a node in ``faulted``; nothing if it is not."""
        if node in faulted:
            getattr(self.env.adapter, undo)(node)
            faulted.discard(node)
            self.back[node] = time.time()

    # -- invariants ---------------------------------------------------------------------

    @invariant()
    def never_beyond_surge(self) -> None:
        if self.created:
            self.check_surge(self.deployment.look(self.goal()))

    def teardown(self) -> None:
        """Every example ends with ``settle``; then every node is back and the Deployment
        is removed."""
        try:
            if self.created and not self.failed:
                self.settle()
        finally:
            self.end_faults()
            self.deployment.remove()


def machine_for(nodes: Sequence[str]) -> type[Machine]:
    """The machine with node faults drawn over ``nodes`` (by name)."""
    node = st.sampled_from(sorted(nodes) or ["(none)"])

    def offers(fault: str) -> Any:
        return precondition(lambda self: fault in self.faults and bool(self.nodes))

    class DeploymentMachine(Machine):
        stopped = Bundle("stopped")
        cut_off = Bundle("cut_off")

        @offers("stop_node")
        @rule(target=stopped, node=node)
        def stop_node(self, node: str) -> str:
            return self._strike("stop_node", node, self.down)

        @rule(node=consumes(stopped))
        def start_node(self, node: str) -> None:
            self._undo("start_node", node, self.down)

        @offers("partition_node")
        @rule(target=cut_off, node=node)
        def partition_node(self, node: str) -> str:
            return self._strike("partition_node", node, self.cut)

        @rule(node=consumes(cut_off))
        def heal_node(self, node: str) -> None:
            self._undo("heal_node", node, self.cut)

    return DeploymentMachine


@requirement(
    "CL-REC-SURGE-1",
    "CL-REC-UNAVAILABLE-1",
    "CL-REC-CONVERGE-1",
    "CL-REC-FAILOVER-1",
    "CL-OWN-REC-STABLE-1",
)
def test_deployment_reconciles_under_faults(
    cluster: ClusterAdapter, cluster_namespace: str
) -> None:
    env = Machine.env
    env.adapter, env.namespace = cluster, cluster_namespace
    env.nodes = cluster.fault_nodes()
    current = settings()
    run_state_machine_as_test(
        machine_for(env.nodes),
        settings=settings(
            current,
            max_examples=min(current.max_examples, 3),
            stateful_step_count=min(current.stateful_step_count, 10),
        ),
    )


@requirement("CL-REC-SURGE-1", "CL-REC-UNAVAILABLE-1")
def test_rollout_keeps_surge_and_availability(
    cluster: ClusterAdapter, cluster_namespace: str
) -> None:
    """4 replicas, maxSurge 1, maxUnavailable 1: after every pod event of the rollout at
    most 5 live pods and at least 3 ready ones."""
    deployment = Deployment(cluster, cluster_namespace)
    deployment.create(4, 0, 1, 1)
    try:
        deployment.hold(Goal(4, 0), ROLLOUT_TIMEOUT)
        pods, resource_version = deployment.listed()
        started = time.time()
        deployment.roll_out(4, 1, 1, 1)

        def bounds(live: list[Any]) -> None:
            count = len(live)
            assert count <= 5, f"{count} live pods > 4 replicas + maxSurge 1"
            ready = sum(1 for p in live if is_ready(p))
            if ready < 3 and not unstable_nodes(deployment.nodes(), started):
                raise AssertionError(f"{ready} ready pods < 4 replicas - maxUnavailable 1")

        def rolled_out(live: list[Any]) -> bool:
            return len(live) == 4 and all(is_ready(p) and version_of(p) == "1" for p in live)

        deployment.follow(pods, resource_version, rolled_out, bounds, ROLLOUT_TIMEOUT)
        deployment.hold(Goal(4, 1), ROLLOUT_TIMEOUT)
    finally:
        deployment.remove()


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
    after = wait_for(lambda: two(first[0]), "the deleted pod replaced", 20.0)
    assert first[1] in after
