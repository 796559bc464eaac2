"""``reference-cluster up --nodes 0 --hollow-nodes 3`` with real ``kubectl``: apply, rollout
status, scale, set image, rollout history and undo -- the control plane in the daemon does
the work. (``--nodes 0``: a placeholder ``reference-node`` has no agent yet, so pods bound
to it would never run and ``rollout status`` would wait for them.)"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reference_runtime.cluster.testing import KUBECTL

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: NAME
spec:
  replicas: 3
  selector:
    matchLabels: {app: NAME}
  strategy:
    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
  template:
    metadata:
      labels: {app: NAME}
    spec:
      containers:
      - name: web
        image: busybox:1
"""

Kubectl = Callable[..., str]


@pytest.fixture(scope="module")
def kubectl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubectl]:
    state = tmp_path_factory.mktemp("state")
    cli = [sys.executable, "-m", "reference_runtime.cluster.cli", "--state-dir", str(state)]
    up = subprocess.run(
        [*cli, "up", "--nodes", "0", "--hollow-nodes", "3"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert up.returncode == 0, up.stderr
    kubeconfig = up.stdout.strip().splitlines()[-1].removeprefix("kubeconfig: ")
    env = {**os.environ, "KUBECONFIG": kubeconfig, "HOME": str(tmp_path_factory.mktemp("home"))}

    def run(*args: str, stdin: str | None = None) -> str:
        __tracebackhide__ = True
        result = subprocess.run(
            [str(KUBECTL), "--request-timeout=10s", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result.stdout

    try:
        yield run
    finally:
        down = subprocess.run(
            [*cli, "down"], capture_output=True, text=True, timeout=60, check=False
        )
        assert down.returncode == 0, down.stderr
        assert not any(Path(state).iterdir())


def pods(kubectl: Kubectl, app: str) -> list[list[str]]:
    out = kubectl("get", "pods", "-l", f"app={app}", "-o", "wide", "--no-headers")
    return [line.split() for line in out.splitlines()]


def deploy(kubectl: Kubectl, name: str) -> None:
    """Apply a 3-replica Deployment ``name`` and wait for ``kubectl rollout status``."""
    out = kubectl("apply", "-f", "-", stdin=DEPLOYMENT.replace("NAME", name))
    assert f"deployment.apps/{name} created" in out
    out = kubectl("rollout", "status", f"deployment/{name}", "--timeout=30s")
    assert f'deployment "{name}" successfully rolled out' in out


def wait_pods(kubectl: Kubectl, app: str, count: int) -> list[list[str]]:
    deadline = time.monotonic() + 10
    while len(rows := pods(kubectl, app)) != count and time.monotonic() < deadline:
        time.sleep(0.1)  # the last old pod may still be on its way out
    return rows


def test_apply_and_rollout_status(kubectl: Kubectl) -> None:
    deploy(kubectl, "web")
    rows = pods(kubectl, "web")
    assert len(rows) == 3
    assert all(r[1] == "1/1" and r[2] == "Running" for r in rows), rows
    assert {r[6] for r in rows} <= {"hollow-node-1", "hollow-node-2", "hollow-node-3"}
    assert kubectl("get", "deployment", "web", "--no-headers").split()[:4] == [
        "web",
        "3/3",
        "3",
        "3",
    ]


def test_scale_and_set_image(kubectl: Kubectl) -> None:
    deploy(kubectl, "api")
    assert "deployment.apps/api scaled" in kubectl("scale", "deployment/api", "--replicas=5")
    kubectl("rollout", "status", "deployment/api", "--timeout=30s")
    assert len(wait_pods(kubectl, "api", 5)) == 5
    kubectl("set", "image", "deployment/api", "web=busybox:2")
    out = kubectl("rollout", "status", "deployment/api", "--timeout=30s")
    assert 'deployment "api" successfully rolled out' in out
    wait_pods(kubectl, "api", 5)
    images = kubectl(
        "get", "pods", "-l", "app=api", "-o", "jsonpath={.items[*].spec.containers[0].image}"
    )
    assert images.split() == ["busybox:2"] * 5
    sets = kubectl("get", "rs", "-l", "app=api", "--no-headers").splitlines()
    assert sorted(line.split()[1] for line in sets) == ["0", "5"]
    history = kubectl("rollout", "history", "deployment/api")
    assert "1 " in history and "2 " in history
    kubectl("rollout", "undo", "deployment/api")
    kubectl("rollout", "status", "deployment/api", "--timeout=30s")
    wait_pods(kubectl, "api", 5)
    images = kubectl(
        "get", "pods", "-l", "app=api", "-o", "jsonpath={.items[*].spec.containers[0].image}"
    )
    assert images.split() == ["busybox:1"] * 5
    revision = kubectl(
        "get",
        "deployment",
        "api",
        "-o",
        "jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}",
    )
    assert revision == "3"  # the first template, new again


def test_scale_down_through_the_scale_subresource(kubectl: Kubectl) -> None:
    deploy(kubectl, "db")
    kubectl("scale", "deployment/db", "--replicas=1")
    kubectl("rollout", "status", "deployment/db", "--timeout=30s")
    assert len(wait_pods(kubectl, "db", 1)) == 1
    assert kubectl("get", "deployment", "db", "-o", "jsonpath={.status.availableReplicas}") == "1"
