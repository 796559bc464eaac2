"""``delete`` (runtime.md#delete): an error unless the container is stopped; it undoes
what create made (processes, cgroup, mounts, state, the ID) and keeps what it did not
make (a bind mount's source, a joined namespace, another container's cgroup); a forced
delete kills a running container first.

Most containers run ``probe_program`` (``_probe``); each assertion message starts with
the requirement it checks.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_containers.adapters import (
    CREATED_PROCESS,
    HOST_KERNEL,
    HOST_PID,
    JOIN_NAMESPACE_PATH,
    RuntimeAdapter,
    bundle_config,
)
from pytest_containers.adapters.handle import Container
from pytest_containers.errors import ContainerNotFoundError, ContainersError
from pytest_containers.ledger import process_start_time
from pytest_containers.runtime import ContainerFactory
from reference_runtime.rootfs_builder import make_bundle

from ._cgroups import cgroup_dirs
from ._probe import PROBE, Probed, processes_in, status_of, wait_stopped
from ._support import eventually, lines, needs, refused, root_entries


@pytest.mark.parametrize("status", ["created", "running"])
@pytest.mark.requirement("RT-OP-DELETE-2", "RT-OP-DELETE-3")
def test_delete_unless_stopped_is_an_error_and_changes_nothing(
    runtime_adapter: RuntimeAdapter, probed: Callable[..., Probed], status: str
) -> None:
    if status == "created":
        needs(runtime_adapter, CREATED_PROCESS)
    made = probed(status)
    before = runtime_adapter.state(made.id)
    with refused("RT-OP-DELETE-3", f"delete (without --force) of a {status} container"):
        runtime_adapter.delete(made.id)
    after = runtime_adapter.state(made.id)
    for key in ("status", "pid", "bundle"):
        assert after.get(key) == before.get(key), (
            f"RT-OP-DELETE-2: the refused delete changed {key} from {before.get(key)!r} "
            f"to {after.get(key)!r}"
        )
    if status == "created":
        runtime_adapter.start(made.id)
        made.wait_started()
    runtime_adapter.kill(made.id, "USR1")
    eventually(
        lambda: made.signals() == ["USR1"],
        "RT-OP-DELETE-2: the container no longer takes signals after the refused delete",
    )


@pytest.mark.requirement("RT-OP-DELETE-4", "RT-LIFE-DESTROY-1")
def test_delete_undoes_what_create_made(
    runtime_adapter: RuntimeAdapter, probed: Callable[..., Probed]
) -> None:
    needs(runtime_adapter, HOST_PID)
    made = probed("running")
    pid = runtime_adapter.host_pid(made.id)
    start_time = process_start_time(pid)
    cgroups = cgroup_dirs(pid) if HOST_KERNEL not in runtime_adapter.unsupported else []
    runtime_adapter.kill(made.id, "KILL")
    wait_stopped(runtime_adapter, made.id)
    runtime_adapter.delete(made.id)
    with refused("RT-OP-DELETE-4", f"state of {made.id} after delete"):
        runtime_adapter.state(made.id)
    assert process_start_time(pid) != start_time, f"RT-OP-DELETE-4: process {pid} is still there"
    left = [str(d) for d in cgroups if d.exists()]
    assert not left, f"RT-OP-DELETE-4: the cgroups of create are still there: {left}"


@pytest.mark.parametrize("pid_namespace", [True, False], ids=["own-pid-ns", "host-pid-ns"])
@pytest.mark.requirement("RT-OWN-CLEAN-PROC-1")
def test_no_process_of_the_container_survives_delete(
    runtime_adapter: RuntimeAdapter,
    container: Callable[..., Container],
    tmp_path: Path,
    pid_namespace: bool,
) -> None:
    needs(runtime_adapter, HOST_PID)
    probe = tmp_path / "probe"
    probe.mkdir()
    kinds = ["network", "ipc", "uts", "mount", *(["pid"] if pid_namespace else [])]
    script = (
        f"sleep 3600 & echo $! >> {PROBE}/children; sleep 3600 & echo $! >> {PROBE}/children; "
        f"echo started >> {PROBE}/started; wait"
    )
    made = container(["sh", "-c", script], mounts=[(str(probe), PROBE)], namespaces=kinds)
    eventually(lambda: bool(lines(probe / "started")), f"{made.id} never ran")
    pid = runtime_adapter.host_pid(made.id)
    if pid_namespace:
        pid_ns = os.readlink(f"/proc/{pid}/ns/pid")
        family = processes_in("pid", pid_ns)
    else:  # the children's PIDs are the host's
        family = [pid, *(int(line) for line in lines(probe / "children"))]
    assert len(family) >= 3, f"expected init and two children, found {family}"
    starts = {p: process_start_time(p) for p in family}
    runtime_adapter.kill(made.id, "KILL")  # init only: without a pid namespace, not its children
    # by status, not wait(): a monitor that reaps the container's orphans (runc's) exits,
    # and so answers wait(), only once they are gone too
    eventually(
        lambda: status_of(runtime_adapter, made.id) == "stopped",
        f"RT-STATE-STATUS-4: {made.id} was killed, but its status never became stopped",
    )
    runtime_adapter.delete(made.id)
    eventually(
        lambda: all(process_start_time(p) != starts[p] for p in family),
        "RT-OWN-CLEAN-PROC-1: processes of the container survive delete: "
        + str([p for p in family if process_start_time(p) == starts[p]]),
        timeout=5,
    )


@pytest.mark.requirement("RT-OWN-CLEAN-CGROUP-1")
def test_the_container_cgroup_is_removed_by_delete(
    runtime_adapter: RuntimeAdapter, probed: Callable[..., Probed]
) -> None:
    needs(runtime_adapter, HOST_PID, HOST_KERNEL)
    made = probed("running", pids=64, memory="64m")
    dirs = cgroup_dirs(runtime_adapter.host_pid(made.id))
    assert dirs, "the running container has no cgroup of its own; with limits it must"
    runtime_adapter.kill(made.id, "KILL")
    wait_stopped(runtime_adapter, made.id)
    runtime_adapter.delete(made.id)
    eventually(
        lambda: not any(d.exists() for d in dirs),
        "RT-OWN-CLEAN-CGROUP-1: cgroups left after delete: "
        + str([str(d) for d in dirs if d.exists()]),
        timeout=5,
    )


@pytest.mark.requirement("RT-OWN-CLEAN-MOUNT-1")
def test_no_mount_of_the_container_is_left_on_the_host(
    runtime_adapter: RuntimeAdapter, probed: Callable[..., Probed]
) -> None:
    needs(runtime_adapter, HOST_KERNEL)
    made = probed("running")
    bundle = str(made.handle.bundle)
    runtime_adapter.kill(made.id, "KILL")
    wait_stopped(runtime_adapter, made.id)
    runtime_adapter.delete(made.id)
    left = [
        line
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if bundle in line or made.id in line
    ]
    assert not left, f"RT-OWN-CLEAN-MOUNT-1: mounts of the container are left: {left}"


@pytest.mark.requirement("RT-OWN-CLEAN-STATE-1", "RT-OP-DELETE-6")
def test_a_deleted_id_is_forgotten_and_can_be_used_again(
    runtime_adapter: RuntimeAdapter, fresh_id: Callable[[], str], probe_bundle: Any
) -> None:
    cid = fresh_id()
    before = root_entries(runtime_adapter)
    bundle, probe = probe_bundle()
    runtime_adapter.create(cid, bundle)
    runtime_adapter.delete(cid, force=True)
    with refused("RT-OWN-CLEAN-STATE-1", f"state of {cid} after delete"):
        runtime_adapter.state(cid)
    assert root_entries(runtime_adapter) == before, (
        "RT-OWN-CLEAN-STATE-1: delete left something in the runtime's state root"
    )
    second, second_probe = probe_bundle()
    try:
        runtime_adapter.create(cid, second)
    except ContainersError as exc:
        raise AssertionError(
            f"RT-OP-DELETE-6: the ID of a deleted container is refused: {exc}"
        ) from exc
    doc = runtime_adapter.state(cid)
    assert os.path.realpath(doc["bundle"]) == os.path.realpath(second), (
        "RT-OP-DELETE-6: the reused ID reports the bundle of the deleted container"
    )
    runtime_adapter.start(cid)
    eventually(lambda: bool(lines(second_probe / "started")), "the new container never ran")
    assert not lines(probe / "started"), "the deleted container's program ran"


@pytest.mark.requirement("RT-OP-DELETE-5")
def test_delete_keeps_the_bind_mount_source(
    runtime_adapter: RuntimeAdapter, probed: Callable[..., Probed], tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "kept").write_text("from the host\n")
    made = probed("running", mounts=[(str(shared), "/shared")])
    runtime_adapter.kill(made.id, "KILL")
    wait_stopped(runtime_adapter, made.id)
    runtime_adapter.delete(made.id)
    assert (shared / "kept").read_text() == "from the host\n", (
        "RT-OP-DELETE-5: delete removed or changed a file of a bind-mount source"
    )
    assert made.probe.is_dir() and made.started() == ["started"], (
        "RT-OP-DELETE-5: delete removed what the container wrote to a bind-mount source"
    )


@pytest.mark.requirement("RT-OP-DELETE-5")
def test_delete_keeps_a_joined_namespace(
    runtime_adapter: RuntimeAdapter,
    probed: Callable[..., Probed],
    container_factory: ContainerFactory,
) -> None:
    needs(runtime_adapter, JOIN_NAMESPACE_PATH, HOST_PID)
    name = container_factory.ledger.unique_name("pc")
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    path = f"/run/netns/{name}"
    try:
        identity = os.stat(path).st_ino
        made = probed(
            "running",
            namespaces={"pid": None, "ipc": None, "uts": None, "mount": None, "network": path},
        )
        joined = os.readlink(f"/proc/{runtime_adapter.host_pid(made.id)}/ns/net")
        assert joined == f"net:[{identity}]", f"the container did not join {path}"
        runtime_adapter.kill(made.id, "KILL")
        wait_stopped(runtime_adapter, made.id)
        runtime_adapter.delete(made.id)
        assert os.path.exists(path) and os.stat(path).st_ino == identity, (
            f"RT-OP-DELETE-5: delete removed the network namespace {path} it only joined"
        )
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False, capture_output=True)


@pytest.mark.requirement("RT-OWN-CLEAN-FORCE-1")
def test_force_delete_kills_a_running_container_and_removes_it(
    runtime_adapter: RuntimeAdapter, container: Callable[..., Container], tmp_path: Path
) -> None:
    probe = tmp_path / "probe"
    probe.mkdir()
    script = f"sleep 3600 & sleep 3600 & echo started >> {PROBE}/started; wait"
    made = container(["sh", "-c", script], mounts=[(str(probe), PROBE)], memory="64m")
    eventually(lambda: bool(lines(probe / "started")), f"{made.id} never ran")
    family: list[int] = []
    dirs: list[Path] = []
    if HOST_PID not in runtime_adapter.unsupported:
        pid = runtime_adapter.host_pid(made.id)
        family = processes_in("pid", os.readlink(f"/proc/{pid}/ns/pid"))
        if HOST_KERNEL not in runtime_adapter.unsupported:
            dirs = cgroup_dirs(pid)
    starts = {p: process_start_time(p) for p in family}
    runtime_adapter.delete(made.id, force=True)
    with refused("RT-OWN-CLEAN-FORCE-1", f"state of {made.id} after delete --force"):
        runtime_adapter.state(made.id)
    eventually(
        lambda: all(process_start_time(p) != starts[p] for p in family),
        "RT-OWN-CLEAN-FORCE-1: processes survive delete --force",
        timeout=5,
    )
    eventually(
        lambda: not any(d.exists() for d in dirs),
        "RT-OWN-CLEAN-FORCE-1: cgroups survive delete --force",
        timeout=5,
    )


@pytest.mark.requirement("RT-OWN-EXEC-MISSING-1")
def test_a_missing_executable_fails_create_or_start(
    runtime_adapter: RuntimeAdapter, fresh_id: Callable[[], str], tmp_path: Path
) -> None:
    bundle = make_bundle(tmp_path / "bundle", config=bundle_config(["/no/such/program"]))
    cid = fresh_id()
    try:
        runtime_adapter.create(cid, bundle)
    except ContainersError:
        with refused("RT-OWN-EXEC-MISSING-1", f"state of {cid} after its create failed"):
            runtime_adapter.state(cid)
        return
    pid = None
    if HOST_PID not in runtime_adapter.unsupported and CREATED_PROCESS not in (
        runtime_adapter.unsupported
    ):
        pid = runtime_adapter.host_pid(cid)
    started = process_start_time(pid) if pid else None
    with refused("RT-OWN-EXEC-MISSING-1", "create and start of a program that does not exist"):
        runtime_adapter.start(cid)
    # the container's process is gone; what is left is a stopped container or nothing
    if pid:
        eventually(
            lambda: process_start_time(pid) != started,
            f"RT-OWN-EXEC-MISSING-1: the container process {pid} lives on after start failed",
            timeout=5,
        )
    with contextlib.suppress(ContainerNotFoundError):
        assert status_of(runtime_adapter, cid) == "stopped", (
            "RT-OWN-EXEC-MISSING-1: after the failed start the container is neither gone "
            f"nor stopped but {status_of(runtime_adapter, cid)!r}"
        )
