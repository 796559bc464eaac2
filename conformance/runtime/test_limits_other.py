"""Block I/O (config-linux.md#block-io), huge pages (#huge-page-limits), network
classes and priorities (#network) and cgroup v2 unified keys (#unified), seen in the
container's cgroup. A runtime that lacks one of these settings is not applicable when it
refuses it with an error (config.md#valid-values) and fails the test when it accepts it
and the cgroup does not show it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_containers.requirements import not_applicable
from pytest_containers.runtime import ContainerFactory

from ._cgroups import Knob, cgroup_mounts, host_cgroups, host_view, observe, v2_controllers
from ._limits import MAPPING, config_of, limited_container
from ._support import docker_lacks

# --------------------------------------------------------------------- block I/O


def _block_device() -> tuple[str, int, int]:
    for name in sorted(os.listdir("/sys/block")):
        if not name.startswith(("loop", "ram", "zram")):
            major, minor = Path(f"/sys/block/{name}/dev").read_text().split(":")
            return name, int(major), int(minor)
    not_applicable("this host has no block device other than loop, ram and zram devices")
    raise AssertionError("unreachable")


@pytest.mark.requirement("RT-CG-BLKIO-1")
@MAPPING
@given(weight=st.integers(10, 1000))
def test_the_blkio_weight_is_the_cgroup_io_weight(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, weight: int
) -> None:
    docker_lacks(container_factory.adapter, "blockIO.weight")
    v1, _ = cgroup_mounts()
    names = [
        f
        for f in ("blkio.weight", "blkio.bfq.weight")
        if "blkio" in v1 and Path(v1["blkio"][0], f).exists()
    ]
    if not names and not ({"io"} & v2_controllers()):
        not_applicable("this host has no block I/O weight file (no BFQ or CFQ scheduler)")
    config = config_of({"blockIO": {"weight": weight}})
    with limited_container(container_factory, tmp_path, rootfs, config, "blockIO.weight") as handle:
        knobs = [Knob("blkio", name, "io.bfq.weight") for name in names] or [
            Knob("blkio", None, "io.weight")
        ]
        seen = observe(handle, knobs)
    # v2's io.weight runs 1-10000: runc and crun convert blockIO's 10-1000 into it
    converted = str(1 + (weight - 10) * 9999 // 990)
    for knob, one in zip(knobs, seen, strict=True):
        one.values = {k: (layout, v.split()[-1]) for k, (layout, v) in one.values.items()}
        if knob.v2 == "io.weight":
            one.values = {
                k: (layout, str(weight) if layout == "v2" and v == converted else v)
                for k, (layout, v) in one.values.items()
            }
        one.check(f"block I/O weight ({knob.v1 or knob.v2})", str(weight), str(weight))


@dataclass(frozen=True)
class Throttle:
    """``blockIO.throttle*Device`` rates of one device."""

    read_bps: int
    write_bps: int
    read_iops: int
    write_iops: int


@pytest.mark.requirement("RT-CG-BLKIO-2")
@MAPPING
@given(
    throttle=st.builds(
        Throttle,
        st.integers(1 << 20, 1 << 40),
        st.integers(1 << 20, 1 << 40),
        st.integers(10, 1 << 20),
        st.integers(10, 1 << 20),
    )
)
def test_blkio_throttles_are_the_cgroup_io_limits(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, throttle: Throttle
) -> None:
    docker_lacks(container_factory.adapter, "blockIO.throttle*")
    _, major, minor = _block_device()
    device = {"major": major, "minor": minor}
    blkio = {
        "throttleReadBpsDevice": [{**device, "rate": throttle.read_bps}],
        "throttleWriteBpsDevice": [{**device, "rate": throttle.write_bps}],
        "throttleReadIOPSDevice": [{**device, "rate": throttle.read_iops}],
        "throttleWriteIOPSDevice": [{**device, "rate": throttle.write_iops}],
    }
    knobs = [
        Knob("blkio", "blkio.throttle.read_bps_device", "io.max"),
        Knob("blkio", "blkio.throttle.write_bps_device", "io.max"),
        Knob("blkio", "blkio.throttle.read_iops_device", "io.max"),
        Knob("blkio", "blkio.throttle.write_iops_device", "io.max"),
    ]
    with limited_container(
        container_factory, tmp_path, rootfs, config_of({"blockIO": blkio}), "blockIO"
    ) as handle:
        seen = observe(handle, knobs)
    rates = (throttle.read_bps, throttle.write_bps, throttle.read_iops, throttle.write_iops)
    io_max = (
        f"{major}:{minor} rbps={throttle.read_bps} wbps={throttle.write_bps} "
        f"riops={throttle.read_iops} wiops={throttle.write_iops}"
    )
    for knob, one, rate in zip(knobs, seen, rates, strict=True):
        one.check(str(knob.v1), f"{major}:{minor} {rate}", io_max)


# --------------------------------------------------------------------- huge pages, net


def _hugepage_sizes() -> list[tuple[str, int]]:
    """("2MB", 2097152) for each huge page size the kernel has, as the spec spells them."""
    sizes = []
    entries = os.listdir("/sys/kernel/mm/hugepages")
    for entry in sorted(
        entries, key=lambda e: int(e.removeprefix("hugepages-").removesuffix("kB"))
    ):
        kib = int(entry.removeprefix("hugepages-").removesuffix("kB"))
        name = f"{kib // 1024 // 1024}GB" if kib >= 1 << 20 else f"{kib // 1024}MB"
        sizes.append((name, kib * 1024))
    return sizes


@pytest.mark.requirement("RT-CG-HUGETLB-1")
@MAPPING
@given(data=st.data())
def test_hugepage_limits_are_the_cgroup_hugetlb_limits(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, data: st.DataObject
) -> None:
    adapter = container_factory.adapter
    docker_lacks(adapter, "hugepageLimits")
    sizes = _hugepage_sizes()
    if not sizes:
        not_applicable("this kernel has no huge pages")
    name, size = data.draw(st.sampled_from(sizes), label="pageSize")
    limit = data.draw(st.integers(0, 64), label="pages") * size
    config = config_of({"hugepageLimits": [{"pageSize": name, "limit": limit}]})
    with limited_container(container_factory, tmp_path, rootfs, config, "hugepageLimits") as handle:
        if not host_view(adapter):
            not_applicable(f"{adapter.name}: the host cannot see the container's cgroups")
        host = host_cgroups(handle.pid)
        files = []
        if "hugetlb" in host:
            files = [
                host["hugetlb"] / f"hugetlb.{name}.{k}"
                for k in ("limit_in_bytes", "rsvd.limit_in_bytes")
            ]
        elif "" in host:
            files = [host[""] / f"hugetlb.{name}.{k}" for k in ("max", "rsvd.max")]
        values = {str(f): f.read_text().strip() for f in files if f.exists()}
    assert values, (
        f"{adapter.name} accepted hugepageLimits but the container's cgroup has no "
        f"hugetlb.{name} file to hold the limit (its cgroups: {host})"
    )
    assert str(limit) in values.values(), f"the hugetlb limit files: {values}"


@pytest.mark.requirement("RT-CG-NET-1")
@MAPPING
@given(class_id=st.integers(1, 2**32 - 1), priority=st.integers(0, 1000))
def test_network_class_and_priorities_are_the_net_cls_and_net_prio_settings(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, class_id: int, priority: int
) -> None:
    adapter = container_factory.adapter
    docker_lacks(adapter, "network.classID")
    network = {"classID": class_id, "priorities": [{"name": "lo", "priority": priority}]}
    config = config_of({"network": network})
    with limited_container(container_factory, tmp_path, rootfs, config, "network") as handle:
        classid, ifpriomap = observe(
            handle,
            [
                Knob("net_cls", "net_cls.classid", None),
                Knob("net_prio", "net_prio.ifpriomap", None),
            ],
        )
    assert classid.values or ifpriomap.values, (
        f"{adapter.name} accepted network.classID and priorities but the container has "
        "no net_cls or net_prio cgroup to hold them"
    )
    classid.check("net_cls.classid", str(class_id), None)
    for view, (_, text) in ifpriomap.values.items():
        found = re.search(rf"\blo {priority}\b", text)
        assert found, f"net_prio.ifpriomap seen from {view}: {text!r}"


# --------------------------------------------------------------------- unified


@pytest.mark.requirement("RT-CG-UNIFIED-1", "RT-CG-UNIFIED-3")
@MAPPING
@given(descendants=st.integers(1, 1000), depth=st.integers(1, 100))
def test_unified_keys_are_written_to_the_cgroup_v2_files(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, descendants: int, depth: int
) -> None:
    """``cgroup.max.descendants`` and ``cgroup.max.depth`` belong to no controller: a
    runtime knows them or writes them as it writes any unknown key."""
    adapter = container_factory.adapter
    docker_lacks(adapter, "unified")
    if cgroup_mounts()[1] is None:
        not_applicable("this host has no cgroup2 hierarchy")
    unified = {"cgroup.max.descendants": str(descendants), "cgroup.max.depth": str(depth)}
    config = config_of({"unified": unified})
    with limited_container(container_factory, tmp_path, rootfs, config, "unified") as handle:
        seen = observe(
            handle,
            [
                Knob("unified", None, "cgroup.max.descendants"),
                Knob("unified", None, "cgroup.max.depth"),
            ],
        )
        host = host_cgroups(handle.pid) if host_view(adapter) else {}
        if "" in host:
            for key, value in unified.items():
                assert (host[""] / key).read_text().strip() == value, f"{key} (host)"
    for key, one in zip(unified, seen, strict=True):  # inside only: the host read above
        if one.values:
            one.check(key, None, unified[key])
    if "" not in host and not any(one.values for one in seen):
        not_applicable("neither the host nor the container can read the cgroup2 files here")


@pytest.mark.requirement("RT-CG-UNIFIED-2")
def test_the_controllers_unified_keys_need_are_enabled(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path
) -> None:
    """A key of a controller the cgroup2 hierarchy carries but has not enabled for the
    container's parent: the runtime must enable it to write the key."""
    adapter = container_factory.adapter
    docker_lacks(adapter, "unified")
    carried = v2_controllers()
    sizes = _hugepage_sizes()
    key, value = ("pids.max", "77") if "pids" in carried else ("", "")
    if not key and "hugetlb" in carried and sizes:
        key, value = f"hugetlb.{sizes[0][0]}.max", str(3 * sizes[0][1])
    if not key:
        not_applicable("this host's cgroup2 hierarchy carries neither pids nor hugetlb")
    config = config_of({"unified": {key: value}})
    with limited_container(container_factory, tmp_path, rootfs, config, f"unified {key}") as handle:
        if not host_view(adapter):
            not_applicable(f"{adapter.name}: the host cannot see the container's cgroups")
        host = host_cgroups(handle.pid)
        assert "" in host, (
            f"{adapter.name} accepted unified {key} but put the container in no cgroup2 cgroup"
        )
        assert (host[""] / key).exists(), (
            f"{key.split('.')[0]} is not enabled for the container's cgroup"
        )
        assert (host[""] / key).read_text().strip() == value, f"{key} (host)"
