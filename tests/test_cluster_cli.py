"""``reference-cluster up/down``: a detached cluster, its state, its errors."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from reference_runtime.cluster.testing import ETCD, running_etcd

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Run]:
    state = tmp_path / "state"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "reference_runtime.cluster.cli",
                "--state-dir",
                str(state),
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    yield run
    for cluster in state.glob("*") if state.exists() else []:
        run("down", "--name", cluster.name)  # a failed test must not leave a daemon behind
    assert not state.exists() or not any(state.iterdir())


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (an exited one not yet reaped is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _core(kubeconfig: str) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))


def _kubeconfig(result: subprocess.CompletedProcess[str]) -> str:
    line = result.stdout.strip().splitlines()[-1]
    assert line.startswith("kubeconfig: "), result.stdout
    return line.removeprefix("kubeconfig: ")


def test_up_and_down(cli: Run, tmp_path: Path) -> None:
    up = cli("up", "--nodes", "3", "--hollow-nodes", "1")
    assert up.returncode == 0, up.stderr
    assert "node reference-node-3 Ready" in up.stdout and "node hollow-node-1 Ready" in up.stdout
    kubeconfig = _kubeconfig(up)
    nodes = _core(kubeconfig).list_node().items
    assert len(nodes) == 4
    assert all(
        any(c.type == "Ready" and c.status == "True" for c in n.status.conditions) for n in nodes
    )
    state = tmp_path / "state" / "default"
    assert (
        (state / "pid").exists()
        and (state / "server.log").exists()
        and (state / "store.db").exists()
    )
    pid = int((state / "pid").read_text())
    assert cli("status").returncode == 0
    again = cli("up")
    assert again.returncode == 1 and again.stderr.count("\n") == 1 and "already up" in again.stderr
    down = cli("down")
    assert down.returncode == 0, down.stderr
    assert not state.exists() and not _running(pid)
    gone = cli("down")
    assert gone.returncode == 1 and gone.stderr.startswith(
        "reference-cluster: no cluster named default"
    )
    assert cli("status").returncode == 1


def test_user_store_is_kept_and_reused(cli: Run, tmp_path: Path) -> None:
    db = tmp_path / "cluster.db"
    kubeconfig = tmp_path / "kc"
    up = cli("up", "--name", "keep", "--store", f"sqlite:{db}", "--kubeconfig", str(kubeconfig))
    assert up.returncode == 0, up.stderr
    assert _kubeconfig(up) == str(kubeconfig)
    _core(str(kubeconfig)).create_namespace({"metadata": {"name": "survivor"}})
    assert cli("down", "--name", "keep").returncode == 0
    assert db.exists() and not kubeconfig.exists()
    up = cli("up", "--name", "keep", "--store", f"sqlite:{db}", "--kubeconfig", str(kubeconfig))
    assert up.returncode == 0, up.stderr
    assert _core(str(kubeconfig)).read_namespace("survivor").status.phase == "Active"
    assert cli("down", "--name", "keep").returncode == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["up", "--nodes", "-1"], "nodes must be 0 or more"),
        (
            ["up", "--store", "mysql://x"],
            "a store is sqlite, sqlite:PATH, etcd or etcd://HOST:PORT",
        ),
        (["up", "--store", "etcd://127.0.0.1:1"], "etcd at 127.0.0.1:1 is unreachable"),
        (["up", "--port", "70000"], "port must be 0-65535"),
        (["up", "--name", "../x"], "a cluster name is a plain name"),
        (["up", "--bogus"], "unrecognized arguments"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_errors_are_one_line(cli: Run, tmp_path: Path, args: list[str], message: str) -> None:
    if args[0] == "up" and "--name" not in args:
        # not the default name: node namespaces are host-wide, and another test (another
        # xdist worker) may have a cluster named "default" up right now
        args = [*args, "--name", f"bad{os.getpid()}"]
    result = cli(*args)
    assert result.returncode == 1
    assert result.stderr.startswith("reference-cluster: ") and result.stderr.count("\n") == 1, (
        result.stderr
    )
    assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
    state = tmp_path / "state"
    assert not state.exists() or not any(state.iterdir())  # nothing left behind


@pytest.mark.skipif(ETCD is None, reason="etcd is not installed (Debian package etcd-server)")
def test_up_on_etcd(cli: Run) -> None:
    with running_etcd() as url:
        up = cli("up", "--name", "etcd", "--store", f"{url}/reference", "--nodes", "2")
        assert up.returncode == 0, up.stderr
        core = _core(_kubeconfig(up))
        assert len(core.list_node().items) == 2
        assert cli("down", "--name", "etcd").returncode == 0


@pytest.mark.skipif(shutil.which("runc") is None, reason="runc is not installed")
def test_runc_node_runtime_survives_agent_restart(cli: Run, tmp_path: Path) -> None:
    up = cli("up", "--name", "rn", "--nodes", "1", "--node-runtime", "runc")
    assert up.returncode == 0, up.stderr
    core = _core(_kubeconfig(up))
    spec = {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "600"]}]}
    core.create_namespaced_pod("default", {"metadata": {"name": "s"}, "spec": spec})
    deadline = time.monotonic() + 30
    while core.read_namespaced_pod("s", "default").status.phase != "Running":
        assert time.monotonic() < deadline, "pod not Running in time"
        time.sleep(0.1)
    before = core.read_namespaced_pod("s", "default").status.container_statuses[0]
    assert before.container_id.startswith("runc://")
    for action in ("stop", "start"):
        result = cli("node", action, "reference-node-1", "--name", "rn")
        assert result.returncode == 0, result.stderr
    agent_log = tmp_path / "state" / "rn" / "nodes" / "reference-node-1" / "agent.log"
    deadline = time.monotonic() + 20
    while "adopted container" not in agent_log.read_text():
        assert time.monotonic() < deadline, "the new agent did not adopt the container"
        time.sleep(0.1)
    after = core.read_namespaced_pod("s", "default").status.container_statuses[0]
    assert (after.container_id, after.restart_count) == (before.container_id, 0)
    runc_root = tmp_path / "state" / "rn" / "nodes" / "reference-node-1" / "runc"
    assert (runc_root / before.container_id.removeprefix("runc://")).is_dir()
    assert cli("down", "--name", "rn").returncode == 0
    assert not (tmp_path / "state" / "rn").exists()
