"""Idmapped mounts (config.md "Mounts": uidMappings, gidMappings) and the propagation
of the rootfs mount (config-linux.md "Rootfs Mount Propagation"): shared, slave, private
and unbindable, seen through mounts the test makes on the host after the container
started, and unmounts.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pytest_containers.adapters import HOST_KERNEL, RuntimeAdapter
from pytest_containers.adapters.handle import Container
from pytest_containers.runtime import ContainerFactory

from ._mounts import (
    SLEEPER,
    add_mounts,
    bind,
    host_mount,
    host_mountinfo,
    host_umount,
    marked_dir,
    mountinfo,
    top,
)
from ._support import Config, add_capabilities, create_error, edit_config, shell, start

# --------------------------------------------------------------------------- idmap


@pytest.mark.requirement("RT-MNT-IDMAP-1")
def test_idmapped_mount(
    bundle: Callable[..., Path], container: Callable[..., Container], tmp_path: Path
) -> None:
    """Files owned by 0:0 on the host show through an idmap mount with the mappings
    0 -> 4242 (uid) and 0 -> 4343 (gid) as owned by 4242:4343."""
    source, _ = marked_dir(tmp_path, "idmapped")
    mount = bind(source, "/pc/idmapped", "rbind", "idmap")
    mount["uidMappings"] = [{"containerID": 0, "hostID": 4242, "size": 1}]
    mount["gidMappings"] = [{"containerID": 0, "hostID": 4343, "size": 1}]
    c = start(container, edit_config(bundle(SLEEPER), add_mounts(mount)))
    owner = shell(c, "stat -c '%u:%g' /pc/idmapped/marker").strip()
    assert owner == "4242:4343", f"/pc/idmapped/marker shows as owned by {owner}"


@pytest.mark.requirement("RT-MNT-IDMAP-2")
def test_idmap_without_mappings_or_user_namespace_is_an_error(
    bundle: Callable[..., Path], container_factory: ContainerFactory, tmp_path: Path
) -> None:
    source, _ = marked_dir(tmp_path, "idmap")
    path = edit_config(bundle(SLEEPER), add_mounts(bind(source, "/pc/idmap", "rbind", "idmap")))
    create_error(container_factory, path, "an idmap mount with no mappings and no user namespace")


@pytest.mark.requirement("RT-MNT-IDMAP-3")
@pytest.mark.parametrize("only", ["uidMappings", "gidMappings"])
def test_one_of_the_mount_mappings_is_an_error(
    only: str, bundle: Callable[..., Path], container_factory: ContainerFactory, tmp_path: Path
) -> None:
    source, _ = marked_dir(tmp_path, "mapped")
    mount = bind(source, "/pc/mapped", "rbind")
    mount[only] = [{"containerID": 0, "hostID": 4242, "size": 1}]
    path = edit_config(bundle(SLEEPER), add_mounts(mount))
    create_error(container_factory, path, f"a mount with {only} alone")


# --------------------------------------------------------------------------- rootfs propagation


@contextlib.contextmanager
def shared_bundle(path: Path) -> Iterator[None]:
    """The bundle as a shared mount of its own on the host (as on a host whose / is
    shared), so that mounts the host makes under the rootfs can propagate."""
    host_mount("--bind", str(path), str(path))
    try:
        host_mount("--make-shared", str(path))
        yield
    finally:
        host_umount(path)


def propagation_bundle(bundle: Callable[..., Path], propagation: str) -> Path:
    """A bundle with ``rootfsPropagation``, CAP_SYS_ADMIN and two empty mount points."""
    path = bundle(SLEEPER)
    for name in ("pc-from-host", "pc-from-container"):
        (path / "rootfs" / name).mkdir()

    def edit(config: Config) -> None:
        config["linux"]["rootfsPropagation"] = propagation

    return edit_config(path, edit, add_capabilities("CAP_SYS_ADMIN"))


def events(c: Container, path: Path) -> tuple[bool, bool]:
    """(the container saw the host's mount under the rootfs, the host saw the container's)."""
    rootfs = path / "rootfs"
    host_mount("-t", "tmpfs", "pc-from-host", str(rootfs / "pc-from-host"))
    shell(c, "mount -t tmpfs pc-from-container /pc-from-container")
    inside = {m.point for m in mountinfo(c)}
    outside = {m.point for m in host_mountinfo()}
    return "/pc-from-host" in inside, str(rootfs / "pc-from-container") in outside


@pytest.mark.requirement("RT-FS-PROP-1")
def test_rootfs_propagation_shared(
    bundle: Callable[..., Path],
    container: Callable[..., Container],
    runtime_adapter: RuntimeAdapter,
) -> None:
    path = propagation_bundle(bundle, "shared")
    c = start(container, path)
    root = top(mountinfo(c), "/")
    group = root.tag("shared")
    assert group is not None, f"/ is not shared: {root.tags}"
    if HOST_KERNEL not in runtime_adapter.unsupported:
        host_groups = {m.tag("shared") for m in host_mountinfo()}
        assert group not in host_groups, f"/ is in the host's peer group {group}"


@pytest.mark.requirement("RT-FS-PROP-2")
def test_rootfs_propagation_slave(
    bundle: Callable[..., Path], container: Callable[..., Container]
) -> None:
    path = propagation_bundle(bundle, "slave")
    with shared_bundle(path):
        c = start(container, path)
        received, sent = events(c, path)
    assert received, "a mount the host made under the rootfs did not reach the container"
    assert not sent, "a mount the container made reached the host"


@pytest.mark.requirement("RT-FS-PROP-3")
def test_rootfs_propagation_private(
    bundle: Callable[..., Path], container: Callable[..., Container]
) -> None:
    path = propagation_bundle(bundle, "private")
    with shared_bundle(path):
        c = start(container, path)
        received, sent = events(c, path)
    root = top(mountinfo(c), "/")
    assert not received, "a mount the host made under the rootfs reached the container"
    assert not sent, "a mount the container made reached the host"
    assert not root.tag("shared") and not root.tag("master"), f"/ is not private: {root.tags}"


@pytest.mark.requirement("RT-FS-PROP-4")
def test_rootfs_propagation_unbindable(
    bundle: Callable[..., Path], container: Callable[..., Container]
) -> None:
    path = propagation_bundle(bundle, "unbindable")
    c = start(container, path)
    root = top(mountinfo(c), "/")
    assert "unbindable" in root.tags, f"/ is not unbindable: {root.tags}"
    out = shell(c, "mount --bind / /pc-from-container 2>&1 && echo bound; true")
    assert "bound" not in out, "the unbindable root could be bind-mounted"
