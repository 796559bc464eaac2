"""The controllers: rollout arithmetic and helpers as tables, then each controller
against an in-process API server with hollow nodes and a short-period control plane."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from reference_runtime.cluster.api import ApiServer, Registry
from reference_runtime.cluster.controllers import (
    SetCount,
    SpecError,
    eviction_delay,
    fenceposts,
    new_set_replicas,
    old_sets_scale_down,
    template_hash,
)
from reference_runtime.cluster.controllers import deployment_status as ds
from reference_runtime.cluster.controllers.nodelifecycle import last_heartbeat, wanted_taint
from reference_runtime.cluster.controllers.pods import deletion_rank, scaled_value
from reference_runtime.cluster.controlplane import ControlPlane, ControlPlaneConfig
from reference_runtime.cluster.nodes import register_nodes
from reference_runtime.cluster.scheduler import SchedulerConfig, Taint

NS = "default"

# -- tables --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "total", "up", "down"),
    [
        (3, 10, 3, 3),
        ("25%", 10, 3, 2),
        ("25%", 4, 1, 1),
        ("0%", 5, 0, 0),
        ("100%", 3, 3, 3),
        ("33%", 10, 4, 3),
        ("7", 10, 7, 7),
    ],
)
def test_scaled_value(value: Any, total: int, up: int, down: int) -> None:
    assert scaled_value(value, total, round_up=True) == up
    assert scaled_value(value, total, round_up=False) == down


@pytest.mark.parametrize("bad", ["25", "x%", "-1%", 1.5, True, None])
def test_scaled_value_rejects_what_is_not_an_int_or_percent(bad: Any) -> None:
    if bad == "25":
        assert scaled_value(bad, 10, round_up=True) == 25  # a digit string is an int
        return
    with pytest.raises(SpecError, match="percentage like '25%'"):
        scaled_value(bad, 10, round_up=True)


@pytest.mark.parametrize(
    ("surge", "unavailable", "desired", "expected"),
    [
        ("25%", "25%", 10, (3, 2)),
        (1, 0, 5, (1, 0)),
        (0, 0, 5, (0, 1)),
        ("10%", "10%", 3, (1, 0)),
        ("0%", "10%", 3, (0, 1)),
        (2, "50%", 3, (2, 1)),
    ],
)
def test_fenceposts(surge: Any, unavailable: Any, desired: int, expected: tuple[int, int]) -> None:
    assert fenceposts(surge, unavailable, desired) == expected


@pytest.mark.parametrize(
    ("desired", "surge", "new", "old", "expected"),
    [
        (4, 1, (0, 0), [(4, 4)], 1),  # room for one more pod
        (4, 1, (1, 1), [(4, 4)], 1),  # at desired + surge: wait
        (4, 1, (1, 1), [(3, 4)], 1),  # the old set still deletes its surplus pod: wait
        (4, 1, (1, 1), [(3, 3)], 2),
        (4, 2, (0, 0), [], 4),  # a first rollout: straight to desired
        (4, 4, (0, 0), [(4, 4)], 4),
        (4, 1, (6, 6), [], 4),  # scaled down
    ],
)
def test_new_set_replicas(
    desired: int, surge: int, new: tuple[int, int], old: list[tuple[int, int]], expected: int
) -> None:
    new_set = SetCount("new", new[0], active=new[1])
    old_sets = [SetCount(f"old{i}", r, active=a) for i, (r, a) in enumerate(old)]
    assert new_set_replicas(desired, surge, new_set, [*old_sets, new_set]) == expected


@pytest.mark.parametrize(
    ("desired", "unavailable", "new", "old", "expected"),
    [
        (4, 1, (1, 0), [(4, 4)], {"old0": 3}),  # one may go while the new pod starts
        (4, 0, (1, 0), [(4, 4)], {}),  # none may go until the new pod is available
        (4, 0, (1, 1), [(4, 4)], {"old0": 3}),
        (4, 1, (2, 2), [(3, 3)], {"old0": 1}),
        (4, 1, (4, 4), [(1, 1)], {"old0": 0}),
        (4, 1, (1, 0), [(4, 2)], {"old0": 3}),  # unhealthy old pods first, within budget
        (4, 1, (1, 1), [(4, 2)], {"old0": 2}),
        (4, 1, (1, 0), [(2, 2), (2, 2)], {"old0": 1}),  # the oldest set first
        (4, 2, (2, 2), [(2, 2), (2, 2)], {"old0": 0, "old1": 0}),
    ],
)
def test_old_sets_scale_down(
    desired: int,
    unavailable: int,
    new: tuple[int, int],
    old: list[tuple[int, int]],
    expected: dict[str, int],
) -> None:
    new_set = SetCount("new", new[0], active=new[0], available=new[1])
    old_sets = [SetCount(f"old{i}", r, active=r, available=a) for i, (r, a) in enumerate(old)]
    assert old_sets_scale_down(desired, unavailable, new_set, old_sets) == expected


def test_template_hash_is_stable_and_safe() -> None:
    template = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c"}]}}
    same = {"spec": {"containers": [{"name": "c"}]}, "metadata": {"labels": {"app": "web"}}}
    value = template_hash(template)
    assert value == template_hash(same) and value != template_hash(template, 1)
    assert set(value) <= set("bcdfghjklmnpqrstvwxz2456789") and 1 <= len(value) <= 10


@pytest.mark.parametrize(
    ("tolerations", "taint", "default", "expected"),
    [
        ([], Taint("node.kubernetes.io/unreachable", "", "NoExecute"), 300, 300),
        ([], Taint("node.kubernetes.io/not-ready", "", "NoExecute"), 5, 5),
        ([], Taint("maintenance", "", "NoExecute"), 300, 0),
        (
            [{"key": "maintenance", "operator": "Exists"}],
            Taint("maintenance", "", "NoExecute"),
            300,
            None,
        ),
        (
            [
                {"operator": "Exists", "tolerationSeconds": 30},
                {"key": "maintenance", "operator": "Exists", "tolerationSeconds": 10},
            ],
            Taint("maintenance", "", "NoExecute"),
            300,
            10,
        ),
        ([{"key": "other", "operator": "Exists"}], Taint("maintenance", "", "NoExecute"), 300, 0),
    ],
)
def test_eviction_delay(
    tolerations: list[dict[str, Any]], taint: Taint, default: float, expected: float | None
) -> None:
    assert eviction_delay(tolerations, taint, default) == expected


def test_deletion_rank_prefers_unscheduled_pending_unready_young_pods() -> None:
    def pod(name: str, *, node: str = "", phase: str = "Pending", ready: str | None = None) -> Any:
        status: dict[str, Any] = {"phase": phase}
        if ready:
            status["conditions"] = [
                {"type": "Ready", "status": "True", "lastTransitionTime": ready}
            ]
        return {
            "metadata": {"name": name, "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"nodeName": node} if node else {},
            "status": status,
        }

    pods = [
        pod("old-ready", node="n", phase="Running", ready="2024-01-01T00:00:00Z"),
        pod("new-ready", node="n", phase="Running", ready="2024-01-01T00:05:00Z"),
        pod("running", node="n", phase="Running"),
        pod("pending", node="n"),
        pod("unscheduled"),
    ]
    order = [p["metadata"]["name"] for p in sorted(pods, key=deletion_rank)]
    assert order == ["unscheduled", "pending", "running", "new-ready", "old-ready"]


def test_deployment_conditions() -> None:
    d = {"metadata": {"generation": 2}, "spec": {"replicas": 3, "progressDeadlineSeconds": 10}}
    status: dict[str, Any] = {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3}
    assert not ds.complete(d, status)
    status["availableReplicas"] = 3
    assert ds.complete(d, status)
    assert ds.made_progress({"updatedReplicas": 1}, {"updatedReplicas": 2})
    assert not ds.made_progress(
        {"replicas": 4, "updatedReplicas": 2}, {"replicas": 4, "updatedReplicas": 2}
    )
    fresh: dict[str, Any] = {}
    ds.progressing(d, {}, fresh, "web-1", created=True, now=100.0)
    assert fresh["conditions"][0]["reason"] == "NewReplicaSetCreated"
    stuck = {**fresh, "replicas": 3, "updatedReplicas": 1}
    ds.progressing(d, stuck, stuck, "web-1", created=False, now=105.0)
    assert stuck["conditions"][0]["reason"] == "NewReplicaSetCreated"  # not yet timed out
    ds.progressing(d, stuck, stuck, "web-1", created=False, now=111.0)
    condition = stuck["conditions"][0]
    assert (condition["status"], condition["reason"]) == ("False", "ProgressDeadlineExceeded")
    assert condition["message"] == 'ReplicaSet "web-1" has timed out progressing.'


def test_node_heartbeat_and_taints() -> None:
    node = {
        "metadata": {"creationTimestamp": "2024-01-01T00:00:00Z"},
        "status": {"conditions": [{"type": "Ready", "lastHeartbeatTime": "2024-01-01T00:00:10Z"}]},
    }
    lease = {"spec": {"renewTime": "2024-01-01T00:00:20.500000Z"}}
    assert last_heartbeat(node, None) == 1704067210.0
    assert last_heartbeat(node, lease) == 1704067220.5
    assert [wanted_taint(s) for s in ("True", "False", "Unknown")] == [
        None,
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ]


# -- against a server ----------------------------------------------------------------------


def wait_for(check: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    __tracebackhide__ = True
    end = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


FAST = ControlPlaneConfig(
    scheduler=SchedulerConfig(initial_backoff=0.02, max_backoff=0.2),
    node_grace_period=1.5,
    default_toleration_seconds=0.5,
    heartbeat_interval=0.3,
)


@pytest.fixture
def cluster() -> Iterator[tuple[Registry, ControlPlane]]:
    with ApiServer.start(tls=False) as server:
        list(register_nodes(server.registry, 0, 3))
        with ControlPlane(server.registry, FAST) as control_plane:
            yield server.registry, control_plane


def workload(kind: str, name: str, replicas: int, image: str = "busybox:1", **spec: Any) -> Any:
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image}]},
            },
            **spec,
        },
    }


def pods_of(reg: Registry, app: str, *, active: bool = True) -> list[dict[str, Any]]:
    pods = reg.list("pods", namespace=NS, label_selector=f"app={app}")["items"]
    return [p for p in pods if not active or "deletionTimestamp" not in p["metadata"]]


def running(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return pod["status"].get("phase") == "Running" and any(
        c["type"] == "Ready" and c["status"] == "True" for c in conditions
    )


def test_replica_set_creates_replaces_and_scales(cluster: tuple[Registry, ControlPlane]) -> None:
    reg, _ = cluster
    rs = reg.create("replicasets", workload("ReplicaSet", "rs", 3), namespace=NS)
    wait_for(lambda: len([p for p in pods_of(reg, "rs") if running(p)]) == 3, what="3 running")
    pods = pods_of(reg, "rs")
    for pod in pods:
        assert pod["metadata"]["generateName"] == "rs-"
        (ref,) = pod["metadata"]["ownerReferences"]
        assert (
            ref["uid"] == rs["metadata"]["uid"]
            and ref["controller"]
            and ref["kind"] == "ReplicaSet"
        )
    wait_for(
        lambda: (
            reg.get("replicasets", "rs", namespace=NS)["status"]
            == {
                "replicas": 3,
                "fullyLabeledReplicas": 3,
                "readyReplicas": 3,
                "availableReplicas": 3,
                "observedGeneration": 1,
            }
        ),
        what="the status",
    )
    victim = pods[0]["metadata"]["name"]
    reg.delete("pods", victim, namespace=NS)
    wait_for(
        lambda: (
            len(pods_of(reg, "rs")) == 3
            and victim not in {p["metadata"]["name"] for p in pods_of(reg, "rs")}
        ),
        what="a replacement",
    )
    reg.patch(
        "replicasets",
        "rs",
        {"spec": {"replicas": 1}},
        patch_type="application/merge-patch+json",
        namespace=NS,
    )
    wait_for(lambda: len(pods_of(reg, "rs", active=False)) == 1, what="scaled to 1")
    status = wait_for(
        lambda: (s := reg.get("replicasets", "rs", namespace=NS)["status"])["replicas"] == 1 and s
    )
    assert status["observedGeneration"] == 2


def test_replica_set_adopts_and_releases_by_selector(
    cluster: tuple[Registry, ControlPlane],
) -> None:
    reg, _ = cluster
    orphan = {
        "metadata": {"name": "orphan", "labels": {"app": "adopt"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    reg.create("pods", orphan, namespace=NS)
    rs = reg.create("replicasets", workload("ReplicaSet", "adopt", 2), namespace=NS)
    wait_for(lambda: len(pods_of(reg, "adopt")) == 2, what="2 pods")
    adopted = reg.get("pods", "orphan", namespace=NS)
    assert adopted["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"]
    adopted["metadata"]["labels"] = {"app": "elsewhere"}
    reg.update("pods", adopted, namespace=NS)
    wait_for(
        lambda: not reg.get("pods", "orphan", namespace=NS)["metadata"].get("ownerReferences"),
        what="the release",
    )
    wait_for(lambda: len(pods_of(reg, "adopt")) == 2, what="a replacement for the released pod")


class PodWatcher:
    """Counts active and available pods of one app after every event, in a thread."""

    def __init__(self, reg: Registry, app: str) -> None:
        self.pods: dict[str, dict[str, Any]] = {}
        self.max_active = 0
        self.min_available: int | None = None
        self.images: set[frozenset[str]] = set()
        self._watch = reg.watch("pods", namespace=NS, label_selector=f"app={app}")
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._watch.done:
            event = self._watch.next(0.2)
            if event is None:
                continue
            pod = event["object"]
            if event["type"] == "DELETED" or "deletionTimestamp" in pod["metadata"]:
                self.pods.pop(pod["metadata"]["name"], None)
            else:
                self.pods[pod["metadata"]["name"]] = pod
            available = sum(1 for p in self.pods.values() if running(p))
            self.max_active = max(self.max_active, len(self.pods))
            if self.min_available is not None:
                self.min_available = min(self.min_available, available)
            self.images.add(
                frozenset(p["spec"]["containers"][0]["image"] for p in self.pods.values())
            )

    def start_counting_available(self) -> None:
        self.min_available = sum(1 for p in self.pods.values() if running(p))

    def close(self) -> None:
        self._watch.close()
        self._thread.join(2)


def rolled_out(reg: Registry, name: str, replicas: int) -> bool:
    d = reg.get("deployments", name, namespace=NS)
    s = d.get("status") or {}
    return (
        s.get("observedGeneration") == d["metadata"]["generation"]
        and s.get("updatedReplicas") == replicas
        and s.get("replicas") == replicas
        and s.get("availableReplicas") == replicas
    )


@pytest.mark.parametrize(("surge", "unavailable"), [("25%", "25%"), (1, 0), (0, 2)])
def test_rolling_update_keeps_within_surge_and_unavailability(
    cluster: tuple[Registry, ControlPlane], surge: Any, unavailable: Any
) -> None:
    reg, _ = cluster
    replicas = 8
    strategy = {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable},
    }
    reg.create(
        "deployments", workload("Deployment", "web", replicas, strategy=strategy), namespace=NS
    )
    wait_for(lambda: rolled_out(reg, "web", replicas), what="the first rollout")
    max_surge, max_unavailable = fenceposts(surge, unavailable, replicas)
    watcher = PodWatcher(reg, "web")
    try:
        wait_for(lambda: len(watcher.pods) == replicas, what="the watcher to see the pods")
        watcher.start_counting_available()
        d = reg.get("deployments", "web", namespace=NS)
        d["spec"]["template"]["spec"]["containers"][0]["image"] = "busybox:2"
        reg.update("deployments", d, namespace=NS)
        wait_for(lambda: rolled_out(reg, "web", replicas), what="the rolling update")
        wait_for(
            lambda: (
                {p["spec"]["containers"][0]["image"] for p in watcher.pods.values()}
                == {"busybox:2"}
            )
        )
    finally:
        watcher.close()
    assert watcher.max_active <= replicas + max_surge
    assert watcher.min_available is not None
    assert watcher.min_available >= replicas - max_unavailable
    d = reg.get("deployments", "web", namespace=NS)
    conditions = {c["type"]: (c["status"], c["reason"]) for c in d["status"]["conditions"]}
    assert conditions == {
        "Available": ("True", "MinimumReplicasAvailable"),
        "Progressing": ("True", "NewReplicaSetAvailable"),
    }
    sets = reg.list("replicasets", namespace=NS)["items"]
    revisions = sorted(
        (s["metadata"]["annotations"]["deployment.kubernetes.io/revision"], s["spec"]["replicas"])
        for s in sets
    )
    assert revisions == [("1", 0), ("2", replicas)]
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    for s in sets:
        value = s["metadata"]["labels"]["pod-template-hash"]
        assert s["metadata"]["name"] == f"web-{value}"
        assert s["spec"]["selector"]["matchLabels"]["pod-template-hash"] == value


def test_recreate_never_runs_old_and_new_together(cluster: tuple[Registry, ControlPlane]) -> None:
    reg, _ = cluster
    reg.create(
        "deployments", workload("Deployment", "db", 3, strategy={"type": "Recreate"}), namespace=NS
    )
    wait_for(lambda: rolled_out(reg, "db", 3), what="the first rollout")
    watcher = PodWatcher(reg, "db")
    try:
        d = reg.get("deployments", "db", namespace=NS)
        d["spec"]["template"]["spec"]["containers"][0]["image"] = "busybox:2"
        reg.update("deployments", d, namespace=NS)
        wait_for(lambda: rolled_out(reg, "db", 3), what="the recreate rollout")
    finally:
        watcher.close()
    assert all(len(images) <= 1 for images in watcher.images), watcher.images
    assert watcher.max_active <= 3


def test_deleting_a_deployment_takes_its_replica_sets_and_pods(
    cluster: tuple[Registry, ControlPlane],
) -> None:
    reg, _ = cluster
    reg.create("deployments", workload("Deployment", "gone", 2), namespace=NS)
    wait_for(lambda: rolled_out(reg, "gone", 2), what="the rollout")
    reg.delete("deployments", "gone", namespace=NS, propagation_policy="Background")
    wait_for(
        lambda: (
            not reg.list("replicasets", namespace=NS)["items"]
            and not pods_of(reg, "gone", active=False)
        ),
        what="the garbage collector",
    )


def test_a_silent_node_goes_not_ready_and_its_pods_are_replaced(
    cluster: tuple[Registry, ControlPlane],
) -> None:
    reg, control_plane = cluster
    reg.create("deployments", workload("Deployment", "app", 6), namespace=NS)
    wait_for(lambda: rolled_out(reg, "app", 6), what="the rollout")
    victim = pods_of(reg, "app")[0]["spec"]["nodeName"]
    assert control_plane.hollow is not None
    control_plane.hollow.silence(victim)

    def ready(node: str) -> str:
        conditions = reg.get("nodes", node)["status"]["conditions"]
        return next(c["status"] for c in conditions if c["type"] == "Ready")

    wait_for(lambda: ready(victim) == "Unknown", what=f"{victim} Unknown")
    taints = reg.get("nodes", victim)["spec"]["taints"]
    assert [(t["key"], t["effect"]) for t in taints] == [
        ("node.kubernetes.io/unreachable", "NoExecute")
    ]
    wait_for(
        lambda: (
            all(p["spec"].get("nodeName") != victim for p in pods_of(reg, "app", active=False))
            and rolled_out(reg, "app", 6)
        ),
        what="the pods replaced elsewhere",
    )
    events = reg.list("events", namespace=NS, field_selector="reason=TaintManagerEviction")["items"]
    assert events and all(
        e["message"].startswith("Marking for deletion Pod default/app-") for e in events
    )
    control_plane.hollow.resume(victim)
    wait_for(lambda: ready(victim) == "True", what=f"{victim} Ready again")
    wait_for(lambda: not reg.get("nodes", victim)["spec"].get("taints"), what="the taint removed")
