"""A Deployment as the reconciliation tests see it, through the API only.

``Deployment`` writes the manifest (one busybox ``sleep`` container whose ``VERSION``
variable marks the template) and looks at the cluster: the live pods (not terminating,
not finished), readiness by each pod's ``Ready`` condition, Nodes by theirs. ``look``
says whether the desired state is reached, and why not; ``hold`` waits until it is
reached and then stays reached at every look for ``STABLE_WINDOW`` seconds with the same
pods, calling a bound check (maxSurge) at every look on the way. Nodes whose fault just
ended count only once their agent has renewed its Lease since: until then the node's
agent has not taken its pods back, whatever their status still says.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

STABLE_WINDOW = 1.0
"""Seconds the desired state must hold, at every look, to count as reached."""
LOOK_INTERVAL = 0.1
TOLERATION_SECONDS = 1
"""How long the Deployment's pods stay on a lost node (``NoExecute`` tolerations)."""
LEASE_NAMESPACE = "kube-node-lease"
TOLERATIONS = [
    {
        "key": key,
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": TOLERATION_SECONDS,
    }
    for key in ("node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready")
]


def is_ready(p: Any) -> bool:
    """The pod's ``Ready`` condition is True."""
    return any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])


def is_live(p: Any) -> bool:
    """Not terminating (no deletionTimestamp) and not finished."""
    return p.metadata.deletion_timestamp is None and p.status.phase not in (
        "Succeeded",
        "Failed",
    )


def version_of(p: Any) -> str:
    """The ``VERSION`` its template gave the pod's container ("" if none)."""
    for env in p.spec.containers[0].env or []:
        if env.name == "VERSION":
            return str(env.value)
    return ""


@dataclass(frozen=True)
class Goal:
    """What the Deployment should reach: ``replicas`` ready pods of template ``version``,
    none on the ``avoid`` nodes; ``back`` maps nodes to when their last fault ended (their
    agents must have renewed their Leases since, unless they are avoided)."""

    replicas: int
    version: int
    avoid: frozenset[str] = frozenset()
    back: Mapping[str, float] = field(default_factory=dict)

    def __str__(self) -> str:
        away = f", none on {', '.join(sorted(self.avoid))}" if self.avoid else ""
        return f"{self.replicas} ready replicas of version {self.version}{away}"


@dataclass
class View:
    """One look: the live pods, the Ready nodes, and why the goal is not reached ("")."""

    pods: list[Any]
    ready_nodes: set[str]
    why: str

    @property
    def names(self) -> list[str]:
        return sorted(str(p.metadata.name) for p in self.pods)

    def ready(self) -> list[Any]:
        return [p for p in self.pods if is_ready(p)]


class Deployment:
    """The Deployment ``name`` in ``namespace``, and what the API says about it."""

    def __init__(self, adapter: Any, namespace: str, name: str = "web") -> None:
        from kubernetes.client import CoordinationV1Api

        self.v1: Any = adapter.core()
        self.apps: Any = adapter.apps()
        self.leases: Any = CoordinationV1Api(adapter.api_client())
        self.namespace = namespace
        self.name = name

    def manifest(self, replicas: int, version: int, surge: int, unavailable: int) -> dict[str, Any]:
        container = {
            "name": "main",
            "image": "busybox",
            "command": ["sleep", "3600"],
            "env": [{"name": "VERSION", "value": str(version)}],
        }
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": self.name},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": self.name}},
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable},
                },
                "template": {
                    "metadata": {"labels": {"app": self.name}},
                    "spec": {
                        "containers": [container],
                        "terminationGracePeriodSeconds": 0,
                        "tolerations": TOLERATIONS,
                    },
                },
            },
        }

    def create(self, replicas: int, version: int, surge: int, unavailable: int) -> None:
        body = self.manifest(replicas, version, surge, unavailable)
        self.apps.create_namespaced_deployment(self.namespace, body, _request_timeout=15)

    def roll_out(self, replicas: int, version: int, surge: int, unavailable: int) -> None:
        """A new template (and the same strategy) through a merge patch."""
        spec = self.manifest(replicas, version, surge, unavailable)["spec"]
        self.apps.patch_namespaced_deployment(
            self.name, self.namespace, {"spec": {"template": spec["template"]}}, _request_timeout=15
        )

    def scale(self, replicas: int) -> None:
        self.apps.patch_namespaced_deployment_scale(
            self.name, self.namespace, {"spec": {"replicas": replicas}}, _request_timeout=15
        )

    def pods(self) -> list[Any]:
        """The live pods: not terminating and not finished."""
        return self.listed()[0]

    def listed(self) -> tuple[list[Any], str]:
        """The live pods and the list's resourceVersion (to watch from)."""
        listed = self.v1.list_namespaced_pod(
            self.namespace, label_selector=f"app={self.name}", _request_timeout=15
        )
        return [p for p in listed.items if is_live(p)], str(listed.metadata.resource_version)

    def follow(
        self,
        pods: list[Any],
        resource_version: str,
        done: Callable[[list[Any]], bool],
        check: Callable[[list[Any]], None],
        timeout: float,
    ) -> None:
        """Follow every pod event from ``resource_version`` (``pods`` were live then): after
        each, ``check`` the live pods; return once ``done`` says so. Nothing between two
        looks is missed, as polling would."""
        __tracebackhide__ = True
        from kubernetes import watch

        live = {str(p.metadata.name): p for p in pods}
        deadline = time.monotonic() + timeout
        stream = watch.Watch()
        try:
            while not done(list(live.values())):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"pods not as wanted within {timeout:.0f}s")
                for event in stream.stream(
                    self.v1.list_namespaced_pod,
                    self.namespace,
                    label_selector=f"app={self.name}",
                    resource_version=resource_version,
                    timeout_seconds=max(1, int(left)),
                ):
                    p = event["object"]
                    resource_version = str(p.metadata.resource_version)
                    if event["type"] != "DELETED" and is_live(p):
                        live[str(p.metadata.name)] = p
                    else:
                        live.pop(str(p.metadata.name), None)
                    check(list(live.values()))
                    if done(list(live.values())):
                        return
        finally:
            stream.stop()

    def delete_pod(self, name: str) -> None:
        self.v1.delete_namespaced_pod(name, self.namespace, grace_period_seconds=0)

    def nodes(self) -> list[Any]:
        return list(self.v1.list_node(_request_timeout=15).items)

    def _renewed_since(self, node: str, when: float) -> bool:
        lease = self.leases.read_namespaced_lease(node, LEASE_NAMESPACE, _request_timeout=15)
        renewed = lease.spec.renew_time
        return renewed is not None and renewed.timestamp() > when

    def look(self, goal: Goal) -> View:
        """Where the Deployment stands against ``goal``."""
        nodes = self.nodes()
        ready_nodes = {
            str(n.metadata.name)
            for n in nodes
            if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])
        }
        pods = self.pods()
        view = View(pods, ready_nodes, "")
        d = self.apps.read_namespaced_deployment(self.name, self.namespace, _request_timeout=15)
        status = d.status
        usable = ready_nodes - goal.avoid
        version = str(goal.version)
        if status.observed_generation != d.metadata.generation:
            view.why = "the Deployment controller has not seen the latest spec"
        elif (status.updated_replicas or 0) != goal.replicas:
            view.why = f"status.updatedReplicas {status.updated_replicas}"
        elif (status.ready_replicas or 0) != goal.replicas:
            view.why = f"status.readyReplicas {status.ready_replicas}"
        elif len(pods) != goal.replicas:
            view.why = f"{len(pods)} live pods"
        elif not all(is_ready(p) for p in pods):
            view.why = f"{len(view.ready())} of {len(pods)} pods Ready"
        elif not all(p.spec.node_name in usable for p in pods):
            view.why = "pods on " + ", ".join(
                sorted({p.spec.node_name for p in pods if p.spec.node_name not in usable})
            )
        elif not all(version_of(p) == version for p in pods):
            view.why = "pods of older templates"
        else:
            back = [
                n
                for n, when in goal.back.items()
                if n not in goal.avoid and not self._renewed_since(n, when)
            ]
            if back:
                view.why = f"the agents of {', '.join(sorted(back))} are not back yet"
        return view

    def hold(
        self,
        goal: Goal,
        timeout: float,
        check: Callable[[View], None] = lambda view: None,
    ) -> float:
        """Wait until ``goal`` is reached and holds for ``STABLE_WINDOW`` (same pods at every
        look); ``check`` runs at every look. Returns the seconds it took to reach it."""
        __tracebackhide__ = True
        start = time.monotonic()
        reached: float | None = None
        names: list[str] = []
        while True:
            view = self.look(goal)
            check(view)
            now = time.monotonic()
            if view.why or (reached is not None and view.names != names):
                reached = None
            elif reached is None:
                reached, names = now, view.names
            elif now - reached >= STABLE_WINDOW:
                return reached - start
            if now - start > timeout:
                why = view.why or "the pods keep changing"
                raise AssertionError(f"not {goal} within {timeout:.0f}s: {why}")
            time.sleep(LOOK_INTERVAL)

    def remove(self, timeout: float = 30.0) -> None:
        """Delete the Deployment (foreground) and wait until it and every pod are gone."""
        from kubernetes.client.exceptions import ApiException

        try:
            self.apps.delete_namespaced_deployment(
                self.name, self.namespace, propagation_policy="Foreground", _request_timeout=15
            )
        except ApiException as exc:
            if exc.status != 404:  # 404: never made, or already gone
                raise
        deadline = time.monotonic() + timeout
        while self._leftovers():
            if time.monotonic() > deadline:
                raise AssertionError(f"Deployment {self.name} not gone within {timeout:.0f}s")
            time.sleep(LOOK_INTERVAL)

    def _leftovers(self) -> bool:
        pods = self.v1.list_namespaced_pod(self.namespace, _request_timeout=15).items
        sets = self.apps.list_namespaced_deployment(self.namespace, _request_timeout=15).items
        return bool(pods or sets)


def unstable_nodes(nodes: Collection[Any], since: float) -> list[str]:
    """Nodes not Ready now, or whose ``Ready`` condition changed after ``since`` (epoch
    seconds; the API keeps whole seconds, so one second of slack)."""
    found = []
    for n in nodes:
        ready = next((c for c in n.status.conditions or [] if c.type == "Ready"), None)
        changed = ready is not None and ready.last_transition_time is not None
        if (
            ready is None
            or ready.status != "True"
            or (changed and ready.last_transition_time.timestamp() >= since - 1.0)
        ):
            found.append(str(n.metadata.name))
    return found
