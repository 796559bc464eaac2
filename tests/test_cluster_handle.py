"""``ClusterHandle``: up, attach, restart the API server, an owned etcd, down leaves nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from reference_runtime.cluster.errors import ApiError, ClusterError
from reference_runtime.cluster.handle import ClusterHandle
from reference_runtime.cluster.testing import ETCD
from reference_runtime.cluster.timings import Timings


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    state = tmp_path / "state"
    yield state
    for cluster in state.glob("*") if state.exists() else []:
        ClusterHandle.from_state(state, cluster.name).down()  # a failed test leaves nothing


def _core(handle: ClusterHandle) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config(config_file=str(handle.kubeconfig)))


def test_up_attach_restart_down(state: Path) -> None:
    lines: list[str] = []
    handle = ClusterHandle.up(
        "h1",
        state_dir=state,
        nodes=0,
        hollow_nodes=2,
        progress=lines.append,
        timings=Timings.fast(),
    )
    assert handle.node_names == ["hollow-node-1", "hollow-node-2"]
    assert any(line.startswith("cluster h1 is up at https://127.0.0.1:") for line in lines)
    core = _core(handle)
    assert {n.metadata.name for n in core.list_node().items} == set(handle.node_names)
    attached = ClusterHandle.attach("h1", state_dir=state)
    assert (attached.url, attached.token, attached.kubeconfig) == (
        handle.url,
        handle.token,
        handle.kubeconfig,
    )
    core.create_namespace({"metadata": {"name": "survivor"}})
    url = handle.url
    handle.restart_api_server()
    assert handle.url == url
    assert _core(handle).read_namespace("survivor").status.phase == "Active"
    with pytest.raises(ClusterError, match="no node agent"):
        handle.stop_node("hollow-node-1")
    with pytest.raises(ClusterError, match="has no node 'nope'"):
        handle.partition_node("nope")
    with pytest.raises(ClusterError, match="does not own its store"):
        handle.stop_store()
    assert handle.host_resources()
    handle.down()
    assert handle.host_resources() == []
    assert not (state / "h1").exists()
    handle.down()  # idempotent
    with pytest.raises(ClusterError, match="no cluster named h1"):
        ClusterHandle.attach("h1", state_dir=state)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"nodes": -1}, "nodes must be 0 or more"),
        ({"store": "mysql://x"}, "a store is sqlite, sqlite:PATH, etcd or etcd://HOST:PORT"),
        ({"store": "etcd://127.0.0.1:1"}, "etcd at 127.0.0.1:1 is unreachable"),
        ({"node_runtime": "crun"}, "node_runtime is 'reference' or 'runc'"),
    ],
)
def test_bad_input(state: Path, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ClusterError, match=message) as info:
        ClusterHandle.up("bad", state_dir=state, **kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)
    assert not (state / "bad").exists()


def test_bad_name(state: Path) -> None:
    with pytest.raises(ClusterError, match="a cluster name is a plain name"):
        ClusterHandle.up("../x", state_dir=state)


@pytest.mark.skipif(ETCD is None, reason="etcd is not installed (Debian package etcd-server)")
def test_owned_etcd_stops_and_starts(state: Path) -> None:
    handle = ClusterHandle.up("e1", state_dir=state, nodes=0, hollow_nodes=1, store="etcd")
    etcd = [r for r in handle.host_resources() if "(etcd)" in r]
    assert len(etcd) == 1
    core = _core(handle)
    core.create_namespace({"metadata": {"name": "kept"}})
    handle.stop_store()
    assert not [r for r in handle.host_resources() if "(etcd)" in r]
    with pytest.raises(ApiError):
        handle.client(timeout=5).get("/api/v1/namespaces/kept")
    handle.start_store()
    assert core.read_namespace("kept").status.phase == "Active"
    handle.down()
    assert handle.host_resources() == []
