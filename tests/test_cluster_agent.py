"""Node agents on the real kernel: pods run as real containers in the nodes' namespaces.

One cluster of three nodes with short periods (the reference runtime) serves the module,
and one of two nodes with runc as the node runtime serves the flows that run on both
(``Flow``); the last tests take them down and check that no process, namespace, link,
cgroup or state is left.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from reference_runtime.cluster.agent.podstatus import merge_status
from reference_runtime.cluster.handle import ClusterHandle
from reference_runtime.cluster.nodehost import cgroup_mounts
from reference_runtime.cluster.testing import KUBECTL
from reference_runtime.cluster.timings import Timings

pytestmark = pytest.mark.skipif(not Path("/run").is_dir() or os.geteuid() != 0, reason="needs root")


def _up(factory: pytest.TempPathFactory, runtime: str, nodes: int) -> ClusterHandle:
    state = factory.mktemp(f"agents-{runtime}")
    name = f"agt-{runtime}-{os.getpid()}"  # concurrent runs of this module must not collide
    return ClusterHandle.up(
        name, state_dir=state, nodes=nodes, timings=Timings.fast(), node_runtime=runtime
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterHandle]:
    handle = _up(tmp_path_factory, "reference", 3)
    yield handle
    handle.down()


@pytest.fixture(scope="module")
def runc_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterHandle]:
    if shutil.which("runc") is None:
        pytest.skip("runc is not installed")
    handle = _up(tmp_path_factory, "runc", 2)
    yield handle
    handle.down()


@pytest.fixture(scope="module")
def core(cluster: ClusterHandle) -> client.CoreV1Api:
    return _client(cluster)


def _client(cluster: ClusterHandle) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config(config_file=str(cluster.kubeconfig)))


@dataclass
class Flow:
    """A cluster whose nodes run one node runtime, and a client of it."""

    runtime: str
    cluster: ClusterHandle
    core: client.CoreV1Api


@pytest.fixture(params=["reference", "runc"])
def flow(request: pytest.FixtureRequest) -> Flow:
    name = "cluster" if request.param == "reference" else "runc_cluster"
    handle = request.getfixturevalue(name)
    return Flow(request.param, handle, _client(handle))


def _until(check: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached within {timeout}s")


def _pod(name: str, command: list[str], **container: Any) -> dict[str, Any]:
    extra = container.pop("pod", {})
    spec = {"containers": [{"name": "c", "image": "busybox", "command": command, **container}]}
    spec["terminationGracePeriodSeconds"] = 1
    spec.update(extra)
    return {"metadata": {"name": name}, "spec": spec}


def _status(core: client.CoreV1Api, name: str) -> Any:
    return core.read_namespaced_pod(name, "default").status


def test_pod_runs_in_node_netns_with_memory_limit(flow: Flow) -> None:
    cluster, core = flow.cluster, flow.core
    core.create_namespaced_pod(
        "default",
        _pod(
            "net",
            ["sh", "-c", "cat /proc/net/fib_trie | grep -c 10.; sleep 60"],
            resources={"limits": {"memory": "48Mi", "cpu": "500m"}},
        ),
    )
    status = _until(
        lambda: (s := _status(core, "net")).phase == "Running" and s.pod_ip and s, what="Running"
    )
    node = core.read_namespaced_pod("net", "default").spec.node_name
    agent = cluster._config["agents"][node]["host"]
    assert status.pod_ip == status.host_ip == agent["node_ip"]
    runtime, _, container_id = status.container_statuses[0].container_id.partition("://")
    assert runtime == flow.runtime
    memory = [m for m in cgroup_mounts() if (m / "memory.limit_in_bytes").exists()]
    if memory:
        limit = memory[0] / agent["cgroup"] / container_id / "memory.limit_in_bytes"
        assert int(limit.read_text()) == 48 * 1024 * 1024
    pids = Path("/sys/fs/cgroup/pids") / agent["cgroup"] / container_id / "cgroup.procs"
    pid = int(pids.read_text().split()[0])
    netns = Path(f"/run/netns/{agent['netns']}").stat().st_ino
    assert Path(f"/proc/{pid}/ns/net").stat().st_ino == netns
    core.delete_namespaced_pod("net", "default", grace_period_seconds=1)
    _until(lambda: not pids.parent.exists(), what="container gone")
    _until(
        lambda: not core.list_namespaced_pod("default", field_selector="metadata.name=net").items
    )


def test_exit_1_restarts_with_backoff(flow: Flow) -> None:
    core = flow.core
    core.create_namespaced_pod("default", _pod("crash", ["sh", "-c", "echo boom; exit 1"]))
    status = _until(
        lambda: (
            (s := _status(core, "crash")).container_statuses
            and s.container_statuses[0].restart_count >= 2
            and s
        ),
        what="two restarts",
    )
    c = status.container_statuses[0]
    assert c.last_state.terminated.exit_code == 1 and c.last_state.terminated.reason == "Error"
    core.delete_namespaced_pod("crash", "default", grace_period_seconds=0)


def test_never_completed_and_oomkilled(flow: Flow) -> None:
    core = flow.core
    never = {"pod": {"restartPolicy": "Never"}}
    core.create_namespaced_pod("default", _pod("done", ["true"], **never))
    hog = "x=a; while true; do x=$x$x$x$x; done"
    core.create_namespaced_pod(
        "default",
        _pod("oom", ["sh", "-c", hog], resources={"limits": {"memory": "16Mi"}}, **never),
    )
    done = _until(lambda: (s := _status(core, "done")).phase == "Succeeded" and s, what="done")
    assert done.container_statuses[0].state.terminated.reason == "Completed"
    oom = _until(lambda: (s := _status(core, "oom")).phase == "Failed" and s, what="OOM")
    assert oom.container_statuses[0].state.terminated.reason == "OOMKilled"
    for name in ("done", "oom"):
        core.delete_namespaced_pod(name, "default", grace_period_seconds=0)


def test_probes(flow: Flow) -> None:
    core = flow.core
    probe = {"periodSeconds": 1, "failureThreshold": 1}
    core.create_namespaced_pod(
        "default",
        _pod(
            "probed",
            ["sh", "-c", "sleep 60"],
            livenessProbe={"exec": {"command": ["test", "-e", "/tmp/missing"]}, **probe},
        ),
    )
    core.create_namespaced_pod(
        "default",
        _pod(
            "gated",
            ["sh", "-c", "sleep 2; touch /tmp/ready; sleep 60"],
            readinessProbe={"exec": {"command": ["test", "-e", "/tmp/ready"]}, **probe},
        ),
    )
    _until(
        lambda: (
            (s := _status(core, "gated")).phase == "Running" and s.container_statuses[0].started
        ),
        what="gated running",
    )
    ready = {c.type: c.status for c in _status(core, "gated").conditions}
    assert ready["Ready"] == "False"
    _until(
        lambda: {c.type: c.status for c in _status(core, "gated").conditions}["Ready"] == "True",
        what="readiness",
    )
    _until(
        lambda: (
            (s := _status(core, "probed")).container_statuses
            and s.container_statuses[0].restart_count >= 1
        ),
        what="liveness restart",
    )
    for name in ("probed", "gated"):
        core.delete_namespaced_pod(name, "default", grace_period_seconds=0)


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
def test_kubectl_logs_and_wide(flow: Flow) -> None:
    cluster, core = flow.cluster, flow.core
    core.create_namespaced_pod("default", _pod("talk", ["sh", "-c", "echo hello; sleep 60"]))
    _until(lambda: _status(core, "talk").phase == "Running", what="talk running")

    def kubectl(*args: str) -> str:
        result = subprocess.run(
            [str(KUBECTL), "--kubeconfig", str(cluster.kubeconfig), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return result.stdout

    _until(lambda: kubectl("logs", "talk") == "hello\n", what="logs")
    wide = kubectl("get", "pods", "talk", "-o", "wide")
    assert "Running" in wide and "reference-node-" in wide
    core.delete_namespaced_pod("talk", "default", grace_period_seconds=0)


def test_image_not_found(core: client.CoreV1Api) -> None:
    pod = _pod("noimg", ["true"])
    pod["spec"]["containers"][0]["image"] = "no-such-image:1"
    core.create_namespaced_pod("default", pod)
    waiting = _until(
        lambda: (
            (s := _status(core, "noimg")).container_statuses
            and s.container_statuses[0].state.waiting
        ),
        what="waiting",
    )
    assert waiting.reason in ("ErrImagePull", "ImagePullBackOff")
    assert "no-such-image:1" in waiting.message
    core.delete_namespaced_pod("noimg", "default", grace_period_seconds=0)


def _deployment(name: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "600"]}],
                },
            },
        },
    }


def _ready_pods(core: client.CoreV1Api, app: str) -> list[Any]:
    pods = core.list_namespaced_pod("default", label_selector=f"app={app}").items
    return [
        p
        for p in pods
        if p.metadata.deletion_timestamp is None
        and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
    ]


def _node_ready(core: client.CoreV1Api, node: str) -> str:
    conditions = core.read_node(node).status.conditions
    return next(c.status for c in conditions if c.type == "Ready")


def test_deployment_survives_node_crash(flow: Flow) -> None:
    cluster, core = flow.cluster, flow.core
    apps = client.AppsV1Api(config.new_client_from_config(config_file=str(cluster.kubeconfig)))
    apps.create_namespaced_deployment("default", _deployment("web", 3))
    pods = _until(lambda: len(p := _ready_pods(core, "web")) == 3 and p, what="3 ready")
    victim = pods[0].spec.node_name
    cluster.stop_node(victim)
    _until(lambda: _node_ready(core, victim) == "Unknown", what="node NotReady")
    _until(
        lambda: (
            len(p := _ready_pods(core, "web")) == 3 and all(x.spec.node_name != victim for x in p)
        ),
        timeout=30,
        what="pods replaced on other nodes",
    )
    cluster.start_node(victim)
    _until(lambda: _node_ready(core, victim) == "True", what="node Ready again")
    apps.delete_namespaced_deployment("web", "default")


def test_partition_and_heal(cluster: ClusterHandle, core: client.CoreV1Api) -> None:
    node = cluster.node_names[1]
    cluster.partition_node(node)
    try:
        _until(lambda: _node_ready(core, node) == "Unknown", what="partitioned node NotReady")
    finally:
        cluster.heal_node(node)
    _until(lambda: _node_ready(core, node) == "True", what="healed node Ready")


def _readiness(core: client.CoreV1Api, name: str) -> tuple[str, str, bool]:
    """The pod's Ready and ContainersReady conditions and its container's ``ready``."""
    status = _status(core, name)
    conditions = {c.type: c.status for c in status.conditions or []}
    ready = bool(status.container_statuses) and status.container_statuses[0].ready
    return conditions.get("Ready", ""), conditions.get("ContainersReady", ""), ready


def test_merge_status_writes_only_differences() -> None:
    since = "2024-01-01T00:00:00Z"
    api = {
        "phase": "Running",
        "conditions": [
            {"type": "Ready", "status": "False", "lastTransitionTime": since},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": since},
            {"type": "example.com/gate", "status": "True"},
        ],
        "containerStatuses": [{"name": "c", "ready": True, "lastState": {}}],
    }
    wanted = {
        "phase": "Running",
        "conditions": {"Ready": "False", "PodScheduled": "True"},
        "containerStatuses": [{"name": "c", "ready": True, "lastState": {}, "x": None}],
    }
    assert merge_status(wanted, api, 0.0) is None
    merged = merge_status(
        {**wanted, "conditions": {"Ready": "True", "PodScheduled": "True"}}, api, 0.0
    )
    assert merged is not None
    conditions = {
        c["type"]: (c["status"], c.get("lastTransitionTime")) for c in merged["conditions"]
    }
    assert conditions == {
        "Ready": ("True", "1970-01-01T00:00:00Z"),
        "PodScheduled": ("True", since),
        "example.com/gate": ("True", None),
    }
    assert merge_status({**wanted, "phase": "Failed"}, api, 0.0) is not None


@pytest.mark.parametrize("fault", ["partition", "stop"])
def test_pod_ready_again_after_node_heals(
    cluster: ClusterHandle, core: client.CoreV1Api, fault: str
) -> None:
    name = f"stay-{fault}"
    stay = [{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}]
    core.create_namespaced_pod("default", _pod(name, ["sleep", "600"], pod={"tolerations": stay}))
    _until(lambda: _readiness(core, name) == ("True", "True", True), what="pod Ready")
    node = core.read_namespaced_pod(name, "default").spec.node_name
    cut, mend = (
        (cluster.partition_node, cluster.heal_node)
        if fault == "partition"
        else (cluster.stop_node, cluster.start_node)
    )
    cut(node)
    try:
        _until(lambda: _readiness(core, name)[0] == "False", what="pod marked NotReady")
    finally:
        mend(node)
    healed = time.monotonic()
    _until(lambda: _readiness(core, name) == ("True", "True", True), what="pod Ready again")
    assert time.monotonic() - healed < 10
    pod = core.read_namespaced_pod(name, "default")
    assert pod.status.container_statuses[0].restart_count == 0
    time.sleep(2.5)  # over two periodic status syncs: an equal status is not written again
    assert core.read_namespaced_pod(name, "default").metadata.resource_version == (
        pod.metadata.resource_version
    )
    core.delete_namespaced_pod(name, "default", grace_period_seconds=0)


def test_status_changed_by_another_writer_is_put_back(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod("default", _pod("back", ["sleep", "600"]))
    _until(lambda: _readiness(core, "back") == ("True", "True", True), what="pod Ready")
    conditions = _status(core, "back").conditions
    for condition in conditions:
        condition.status = "False" if condition.type == "Ready" else condition.status
    body = {"status": {"conditions": conditions}}  # as the node lifecycle controller does
    patched = core.patch_namespaced_pod_status("back", "default", body)
    assert {c.type: c.status for c in patched.status.conditions}["Ready"] == "False"
    _until(lambda: _readiness(core, "back") == ("True", "True", True), 5, "pod Ready again")
    core.delete_namespaced_pod("back", "default", grace_period_seconds=0)


def test_restart_api_server_agents_reconnect(
    cluster: ClusterHandle, core: client.CoreV1Api
) -> None:
    core.create_namespaced_pod("default", _pod("before", ["sleep", "60"]))
    _until(lambda: _status(core, "before").phase == "Running", what="before running")
    cluster.restart_api_server()
    core.create_namespaced_pod("default", _pod("after", ["sleep", "60"]))
    _until(lambda: _status(core, "after").phase == "Running", what="after running")
    assert _status(core, "before").phase == "Running"
    for name in ("before", "after"):
        core.delete_namespaced_pod(name, "default", grace_period_seconds=0)


def _container_pids(cluster: ClusterHandle, node: str, container_id: str) -> list[int]:
    cgroup = cluster._config["agents"][node]["host"]["cgroup"]
    procs = Path("/sys/fs/cgroup/pids") / cgroup / container_id / "cgroup.procs"
    try:
        return [int(pid) for pid in procs.read_text().split()]
    except FileNotFoundError:
        return []


def test_restarted_agent_adopts_running_containers(flow: Flow) -> None:
    cluster, core = flow.cluster, flow.core
    wait_quit = "echo one; while [ ! -e /tmp/quit ]; do sleep 0.1; done; echo two; exit 3"
    never = {"pod": {"restartPolicy": "Never"}}
    core.create_namespaced_pod("default", _pod("kept", ["sh", "-c", wait_quit], **never))
    core.create_namespaced_pod("default", _pod("orphan", ["sleep", "600"], **never))
    running = _until(
        lambda: all(_status(core, n).phase == "Running" for n in ("kept", "orphan")),
        what="both running",
    )
    assert running
    pods = {n: core.read_namespaced_pod(n, "default") for n in ("kept", "orphan")}
    ids = {
        n: p.status.container_statuses[0].container_id.partition("://")[2] for n, p in pods.items()
    }
    node = pods["kept"].spec.node_name
    orphan_node = pods["orphan"].spec.node_name
    kept_pid = _container_pids(cluster, node, ids["kept"])[0]
    stopped = {node, orphan_node}
    for name in stopped:
        cluster.stop_node(name)
    core.delete_namespaced_pod("orphan", "default", grace_period_seconds=0)  # while it is down
    _until(
        lambda: not core.list_namespaced_pod("default", field_selector="metadata.name=orphan").items
    )
    for name in stopped:
        cluster.start_node(name)
    for name in stopped:
        _until(lambda name=name: _node_ready(core, name) == "True", what="node Ready again")
    _until(lambda: not _container_pids(cluster, orphan_node, ids["orphan"]), what="orphan removed")
    kept = _status(core, "kept")
    assert kept.phase == "Running", kept
    c = kept.container_statuses[0]
    assert c.container_id.endswith(ids["kept"]) and c.restart_count == 0 and c.state.running
    assert _container_pids(cluster, node, ids["kept"])[0] == kept_pid  # the same process
    Path(f"/proc/{kept_pid}/root/tmp/quit").touch()
    done = _until(lambda: (s := _status(core, "kept")).phase == "Failed" and s, what="exit 3")
    terminated = done.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (3, "Error")
    assert done.container_statuses[0].restart_count == 0
    log = core.read_namespaced_pod_log("kept", "default")
    assert log == "one\ntwo\n"  # the adopted run's output went on into the same log
    core.delete_namespaced_pod("kept", "default", grace_period_seconds=0)


def test_hanging_probe_times_out_and_is_killed(flow: Flow) -> None:
    cluster, core = flow.cluster, flow.core
    hang = {"exec": {"command": ["sleep", "30"]}, "periodSeconds": 1, "timeoutSeconds": 1}
    core.create_namespaced_pod(
        "default", _pod("hang", ["sleep", "600"], readinessProbe={**hang, "failureThreshold": 1})
    )
    _until(lambda: _status(core, "hang").phase == "Running", what="hang running")
    pod = core.read_namespaced_pod("hang", "default")
    container_id = pod.status.container_statuses[0].container_id.partition("://")[2]
    time.sleep(4)  # four probes: each killed after its second
    pids = _container_pids(cluster, pod.spec.node_name, container_id)
    # the container, and at most one probe with the (up to three) processes of its exec
    assert 1 <= len(pids) <= 4, pids
    assert {c.type: c.status for c in _status(core, "hang").conditions}["Ready"] == "False"
    started = time.monotonic()
    core.delete_namespaced_pod("hang", "default", grace_period_seconds=1)
    _until(
        lambda: not core.list_namespaced_pod("default", field_selector="metadata.name=hang").items,
        what="deleted",
    )
    assert time.monotonic() - started < 10  # the worker was not held by the probe


def test_env_from_fields_and_startup_probe(cluster: ClusterHandle, core: client.CoreV1Api) -> None:
    env = [
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {
            "name": "MEM",
            "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}},
        },
        {"name": "GREETING", "value": "hi $(POD)"},
    ]
    startup = {"exec": {"command": ["test", "-e", "/tmp/up"]}, "periodSeconds": 1}
    core.create_namespaced_pod(
        "default",
        _pod(
            "envy",
            [
                "sh",
                "-c",
                "echo $POD $NS $IP $NODE $MEM $GREETING; sleep 3; touch /tmp/up; sleep 600",
            ],
            env=env,
            resources={"limits": {"memory": "64Mi"}},
            startupProbe={**startup, "failureThreshold": 30},
        ),
    )
    _until(lambda: _status(core, "envy").phase == "Running", what="envy running")
    early = _status(core, "envy").container_statuses[0]
    assert early.started is False and early.ready is False
    late = _until(
        lambda: (c := _status(core, "envy").container_statuses[0]).started and c, what="started"
    )
    assert late.ready and late.restart_count == 0
    pod = core.read_namespaced_pod("envy", "default")
    log = core.read_namespaced_pod_log("envy", "default")
    assert log == f"envy default {pod.status.pod_ip} {pod.spec.node_name} 64 hi envy\n"
    core.delete_namespaced_pod("envy", "default", grace_period_seconds=0)


def test_down_leaves_nothing(flow: Flow) -> None:
    cluster = flow.cluster
    hosts = [a["host"] for a in cluster._config["agents"].values()]
    cluster.down()
    assert cluster.host_resources() == []
    for host in hosts:
        assert not Path(f"/run/netns/{host['netns']}").exists()
        assert not any((m / host["cgroup"]).exists() for m in cgroup_mounts())
    assert not cluster.dir.exists()
