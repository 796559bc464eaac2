"""Where the container's cgroup is (config-linux.md#cgroups-path): an absolute
cgroupsPath is made under each hierarchy root, the same path gives the same cgroup, a
cgroup already in use is refused or shared, and deleting one container spares the
other; and who owns the cgroups when the container has a user namespace
(config-linux.md#control-groups).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_containers.adapters import HOST_KERNEL, HOST_PID, USER_NAMESPACE
from pytest_containers.adapters.handle import Container
from pytest_containers.errors import RuntimeCommandError
from pytest_containers.requirements import not_applicable
from pytest_containers.runtime import ContainerFactory

from ._cgroups import (
    V1_CONTROLLERS,
    cgroup_mounts,
    host_cgroups,
    listed_pids,
    removing_cgroups,
    under,
)
from ._limits import MAPPING, config_of, limited_container, stop
from ._support import docker_lacks, needs

# --------------------------------------------------------------------- cgroupsPath


def _resource_hierarchies(host: dict[str, Path]) -> dict[str, Path]:
    """The hierarchies that carry resource controllers: the v1 ones (not name=...), or
    cgroup2 where the host has no v1 controller."""
    v1 = {c: d for c, d in host.items() if c in V1_CONTROLLERS}
    return v1 or {k: d for k, d in host.items() if k == ""}


@st.composite
def _cgroups_paths(draw: st.DrawFn, prefix: str) -> str:
    depth = draw(st.integers(1, 3))
    names = [prefix] + [
        draw(st.from_regex(r"[a-z][a-z0-9_-]{0,7}", fullmatch=True)) for _ in range(depth - 1)
    ]
    return "/" + "/".join(names)


def _mount_of(controller: str) -> tuple[str, str]:
    v1, unified = cgroup_mounts()
    mount = v1.get(controller) or unified
    assert mount is not None, f"no hierarchy carries {controller}"
    return mount


@pytest.mark.requirement("RT-CG-PATH-1", "RT-CG-PATH-3")
@MAPPING
@given(data=st.data())
def test_an_absolute_cgroups_path_is_made_under_each_hierarchy_root(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, data: st.DataObject
) -> None:
    adapter = container_factory.adapter
    docker_lacks(adapter, "linux.cgroupsPath")
    needs(adapter, HOST_PID, HOST_KERNEL)
    prefix = container_factory.ledger.unique_name("pc")
    path = data.draw(_cgroups_paths(prefix), label="cgroupsPath")
    config = config_of({})
    config["linux"]["cgroupsPath"] = path
    with removing_cgroups([prefix]):
        bases = {
            c: under(_mount_of(c), path) for c in _resource_hierarchies(host_cgroups(os.getpid()))
        }
        existing = [str(d) for d in bases.values() if d.exists()]
        assert not existing, f"{path} exists before the test: {existing}"
        with limited_container(container_factory, tmp_path, rootfs, config) as handle:
            pid = handle.pid
            placed = _resource_hierarchies(host_cgroups(pid))
            joined = {
                c: str(pid) in (d / "cgroup.procs").read_text().split() for c, d in placed.items()
            }
    assert placed, "the container's process is in no resource cgroup"
    for controller, directory in placed.items():
        where = controller or "cgroup2"
        assert directory == bases.get(controller), f"{where}: the process is in {directory}"
        assert joined[controller], f"{where}: {directory} does not list the container's process"


@pytest.mark.requirement("RT-CG-PATH-2")
@MAPPING
@given(data=st.data())
def test_the_same_cgroups_path_gives_the_same_cgroup(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, data: st.DataObject
) -> None:
    """Two containers in turn with one cgroupsPath, absolute or relative (whose meaning
    the runtime defines), are placed in the same cgroups."""
    adapter = container_factory.adapter
    docker_lacks(adapter, "linux.cgroupsPath")
    needs(adapter, HOST_PID, HOST_KERNEL)
    prefix = container_factory.ledger.unique_name("pc")
    path = data.draw(_cgroups_paths(prefix), label="cgroupsPath")
    if data.draw(st.booleans(), label="relative"):
        path = path.lstrip("/")
    placements = []
    with removing_cgroups([prefix]):
        for _ in range(2):
            config = config_of({})
            config["linux"]["cgroupsPath"] = path
            with limited_container(container_factory, tmp_path, rootfs, config) as handle:
                placements.append(_resource_hierarchies(host_cgroups(handle.pid)))
    first, second = placements
    assert first and first == second, f"cgroupsPath {path!r} placed the containers differently"
    assert all(prefix in d.parts for d in first.values()), f"{path!r} was not used: {first}"


@contextlib.contextmanager
def _two_in_one_cgroup(
    factory: ContainerFactory, directory: Path, rootfs: Path
) -> Iterator[tuple[Container, dict[str, Path], Container | str]]:
    """A running container in cgroupsPath /PREFIX/shared, and a second asked to be in
    the same cgroup: (first, its cgroups, the second or the runtime's refusal)."""
    adapter = factory.adapter
    docker_lacks(adapter, "linux.cgroupsPath")
    needs(adapter, HOST_PID, HOST_KERNEL)
    prefix = factory.ledger.unique_name("pc")
    config = config_of({})
    config["linux"]["cgroupsPath"] = f"/{prefix}/shared"
    second_config = json.loads(json.dumps(config))
    with (
        removing_cgroups([prefix]),
        limited_container(factory, directory, rootfs, config) as first,
    ):
        cgroups = _resource_hierarchies(host_cgroups(first.pid))
        with contextlib.ExitStack() as stack:
            second: Container | str
            try:
                second = stack.enter_context(
                    limited_container(factory, directory, rootfs, second_config)
                )
            except RuntimeCommandError as exc:
                second = exc.runtime_message
            yield first, cgroups, second


@pytest.mark.requirement("RT-CG-FIT-1")
def test_a_cgroup_already_in_use_is_refused_cleanly_or_shared(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path
) -> None:
    """A runtime may refuse a cgroup that already holds a container's processes. If it
    does, the refusal leaves the first container as it was; if not, both containers'
    processes are in that cgroup."""
    with _two_in_one_cgroup(container_factory, tmp_path, rootfs) as (first, cgroups, second):
        status = first.status
        now = _resource_hierarchies(host_cgroups(first.pid)) if status == "running" else {}
        listed = {c: listed_pids(d) for c, d in cgroups.items()}
        pids = [str(first.pid)] if status == "running" else ["(none)"]
        if isinstance(second, Container):
            pids.append(str(second.pid))
            assert _resource_hierarchies(host_cgroups(second.pid)) == cgroups, (
                "the second container is not in the cgroup it asked for"
            )
    outcome = f"refusing the cgroup ({second!r})" if isinstance(second, str) else "sharing it"
    assert status == "running", f"{outcome} stopped the first container"
    assert now == cgroups, f"{outcome} moved the first container"
    for controller, members in listed.items():
        missing = [p for p in pids if p not in members]
        assert not missing, f"{controller or 'cgroup2'}: {outcome}, {missing} not in the cgroup"


@pytest.mark.requirement("RT-OP-DELETE-5")
def test_deleting_a_container_that_shared_a_cgroup_spares_the_other(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path
) -> None:
    """The cgroup, and the first container's process in it, were not made by the second
    container: deleting the second leaves them."""
    with _two_in_one_cgroup(container_factory, tmp_path, rootfs) as (first, cgroups, second):
        if not isinstance(second, Container):
            not_applicable(f"{container_factory.adapter.name} refuses to share a cgroup: {second}")
            return
        pid = str(first.pid)
        stop(second)
        container_factory.remove(second)
        status = first.status
        listed = {c: listed_pids(d) for c, d in cgroups.items()}
    assert status == "running", "deleting the second container stopped the first"
    for controller, members in listed.items():
        assert pid in members, f"{controller or 'cgroup2'}: the first process left its cgroup"


# --------------------------------------------------------------------- ownership


def _userns_config(cgroupns: bool) -> dict[str, Any]:
    config = config_of({})
    linux = config["linux"]
    linux["namespaces"] = [
        ns for ns in linux["namespaces"] if cgroupns or ns["type"] != "cgroup"
    ] + [{"type": "user"}]
    mapping = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    linux["uidMappings"] = mapping
    linux["gidMappings"] = mapping
    for mount in config["mounts"]:
        if mount["destination"] == "/sys/fs/cgroup":  # read-write: the case for handing over
            mount["options"] = [o for o in mount.get("options", []) if o != "ro"] + ["rw"]
    return config


@pytest.mark.requirement("RT-CG-OWN-1", "RT-CG-OWN-2")
def test_cgroups_are_not_handed_to_the_container_user_without_v2_and_a_cgroup_namespace(
    container_factory: ContainerFactory, tmp_path: Path
) -> None:
    """With a user namespace mapping the container's root to host uid 100000 and a
    read-write /sys/fs/cgroup: the v1 cgroups stay root's (RT-CG-OWN-1), and without a
    cgroup namespace no cgroup is handed over (RT-CG-OWN-2)."""
    adapter = container_factory.adapter
    needs(adapter, USER_NAMESPACE, HOST_PID, HOST_KERNEL)
    # a rootfs the mapped root can reach: pytest's own temporary directories are 0700
    base = Path(tempfile.mkdtemp(prefix="userns-", dir=container_factory.base))
    os.chmod(base, 0o755)
    try:
        shared_rootfs = container_factory.make_bundle(base) / "rootfs"
        owners = {}
        for cgroupns in (True, False):
            config = _userns_config(cgroupns)
            with limited_container(
                container_factory, tmp_path, shared_rootfs, config, "user namespaces"
            ) as handle:
                host = host_cgroups(handle.pid)
                owners[cgroupns] = {
                    c: (d.stat().st_uid, (d / "cgroup.procs").stat().st_uid)
                    for c, d in host.items()
                    if not c.startswith("name=")
                }
    finally:
        shutil.rmtree(base, ignore_errors=True)
    v1 = {c: o for c, o in owners[True].items() if c in V1_CONTROLLERS}
    assert all(o == (0, 0) for o in v1.values()), f"v1 cgroups handed over: {v1}"
    assert all(o == (0, 0) for o in owners[False].values()), (
        f"cgroups handed over without a cgroup namespace: {owners[False]}"
    )
