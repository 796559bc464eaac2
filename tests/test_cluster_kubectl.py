"""Real ``kubectl`` against the reference cluster: tables, apply, scale, delete, watch."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reference_runtime.cluster.api import ApiServer
from reference_runtime.cluster.nodes import register_nodes
from reference_runtime.cluster.testing import KUBECTL

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: IMAGE
        ports: [{containerPort: 80}]
      - name: sidecar
        image: busybox:1
"""
POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: solo
  labels: {app: solo}
spec:
  containers:
  - name: c
    image: busybox
"""
REPLICASET = """\
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: rs
spec:
  replicas: 1
  selector:
    matchLabels: {app: rs}
  template:
    metadata:
      labels: {app: rs}
    spec:
      containers: [{name: c, image: busybox}]
"""


@pytest.fixture(scope="module")
def server() -> Iterator[ApiServer]:
    with ApiServer.start() as srv:
        list(register_nodes(srv.registry, 2, 1))
        yield srv


@pytest.fixture(scope="module")
def kubectl(server: ApiServer, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    env = {
        **os.environ,
        "KUBECONFIG": str(server.kubeconfig),
        "HOME": str(tmp_path_factory.mktemp("home")),
    }

    def run(*args: str, stdin: str | None = None, check: bool = True) -> str:
        __tracebackhide__ = True
        result = subprocess.run(
            [str(KUBECTL), "--request-timeout=10s", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result.stdout if check else result.stdout + result.stderr

    run.env = env  # type: ignore[attr-defined]
    return run


def header(output: str) -> list[str]:
    return output.splitlines()[0].split()


def test_nodes_table(kubectl) -> None:  # type: ignore[no-untyped-def]
    out = kubectl("get", "nodes")
    assert header(out) == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    rows = [line.split() for line in out.splitlines()[1:]]
    assert [r[0] for r in rows] == ["hollow-node-1", "reference-node-1", "reference-node-2"]
    assert all(r[1] == "Ready" and r[2] == "<none>" for r in rows)
    wide = kubectl("get", "nodes", "-o", "wide")
    assert header(wide)[:8] == [
        "NAME",
        "STATUS",
        "ROLES",
        "AGE",
        "VERSION",
        "INTERNAL-IP",
        "EXTERNAL-IP",
        "OS-IMAGE",
    ]
    assert "KERNEL-VERSION" in wide and "CONTAINER-RUNTIME" in wide and "127.0.1." in wide
    assert kubectl("get", "no", "-o", "name").split() == [
        "node/hollow-node-1",
        "node/reference-node-1",
        "node/reference-node-2",
    ]


def test_apply_get_scale_delete(kubectl, server: ApiServer) -> None:  # type: ignore[no-untyped-def]
    assert "deployment.apps/web created" in kubectl(
        "apply", "-f", "-", stdin=DEPLOYMENT.replace("IMAGE", "busybox:1")
    )
    assert "pod/solo created" in kubectl("apply", "-f", "-", stdin=POD)
    assert "replicaset.apps/rs created" in kubectl("apply", "-f", "-", stdin=REPLICASET)
    out = kubectl("get", "deployments")
    assert header(out) == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert out.splitlines()[1].split()[:4] == ["web", "0/2", "0", "0"]
    wide = kubectl("get", "deploy", "-o", "wide")
    assert header(wide)[-3:] == ["CONTAINERS", "IMAGES", "SELECTOR"] and "app=web" in wide
    assert header(kubectl("get", "rs")) == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    pods = kubectl("get", "pods")
    assert header(pods) == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert pods.splitlines()[1].split()[:4] == ["solo", "0/1", "Pending", "0"]
    assert header(kubectl("get", "pods", "-o", "wide"))[5:] == [
        "IP",
        "NODE",
        "NOMINATED",
        "NODE",
        "READINESS",
        "GATES",
    ]
    assert header(kubectl("get", "namespaces")) == ["NAME", "STATUS", "AGE"]
    assert "No resources found" in kubectl("get", "pods", "-l", "app=nothing", check=False)
    # A second apply is a strategic merge patch: the changed container merges by name.
    out = kubectl("apply", "-f", "-", stdin=DEPLOYMENT.replace("IMAGE", "busybox:2"))
    assert "deployment.apps/web configured" in out
    web = server.registry.get("deployments", "web", namespace="default")
    containers = web["spec"]["template"]["spec"]["containers"]
    assert [(c["name"], c["image"]) for c in containers] == [
        ("web", "busybox:2"),
        ("sidecar", "busybox:1"),
    ]
    assert web["metadata"]["generation"] == 2
    assert "unchanged" in kubectl(
        "apply", "-f", "-", stdin=DEPLOYMENT.replace("IMAGE", "busybox:2")
    )
    assert "deployment.apps/web scaled" in kubectl("scale", "deployment", "web", "--replicas=4")
    assert kubectl("get", "deploy", "web", "-o", "jsonpath={.spec.replicas}") == "4"
    assert "no node agent" in kubectl("logs", "solo")
    assert 'pod "solo" deleted' in kubectl("delete", "pod", "solo", "--timeout=10s")
    assert "NotFound" in kubectl("get", "pod", "solo", check=False)
    assert 'deployment.apps "web" deleted' in kubectl("delete", "-f", "-", stdin=DEPLOYMENT)
    kubectl("delete", "rs", "rs", "--cascade=foreground", "--timeout=10s")


def test_events_and_leases_tables(kubectl, server: ApiServer) -> None:  # type: ignore[no-untyped-def]
    server.registry.create(
        "events",
        {
            "metadata": {"name": "e1"},
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
            "reason": "Tested",
            "message": "hello there",
            "type": "Normal",
        },
        namespace="default",
    )
    events = kubectl("get", "events")
    assert header(events) == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert "pod/p" in events and "hello there" in events
    leases = kubectl("get", "leases", "-n", "kube-node-lease")
    assert header(leases) == ["NAME", "HOLDER", "AGE"] and "reference-node-1" in leases


def test_get_watch(kubectl, server: ApiServer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "watch.out"
    with open(out, "w") as sink:
        proc = subprocess.Popen(
            [str(KUBECTL), "get", "pods", "-w", "--request-timeout=20s"],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=kubectl.env,
        )
    try:
        time.sleep(0.5)
        kubectl("apply", "-f", "-", stdin=POD.replace("solo", "watched"))
        deadline = time.monotonic() + 10
        while "watched" not in out.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(10)
    text = out.read_text()
    assert "watched" in text and "Pending" in text, text
    kubectl("delete", "pod", "watched", "--wait=false")
