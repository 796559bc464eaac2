"""Tests of the reference runtime's cgroup manager (``reference_runtime.cgroups``).

Two kinds, in this order:

- fast unit tests: mountinfo parsing, the OCI-to-file mappings of each controller,
  validation, and the v2 manager against a fake cgroup2 tree in a temporary directory;
- real-kernel tests (root): limits that really bite (OOM kill, fork failure, CPU
  throttling), cpuset initialisation, destroy, rollback and the saved form, each on
  unique paths ``/pytest-cgroups-<pid>-<n>`` that the ``cgroup_path`` fixture removes
  from every hierarchy afterwards, even when the test fails.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reference_runtime.cgroups import (
    CgroupStats,
    HybridManager,
    Layout,
    V1Manager,
    V2Manager,
    cpu,
    cpuset,
    detect_layout,
    devices,
    discover_mounts,
    layout_of,
    manager_from_dict,
    memory,
    new_manager,
    parse_mountinfo,
    pids,
    stats,
    tree,
    validate_resources,
)
from reference_runtime.errors import CgroupError, ConfigError, UnsupportedError

REPO = Path(__file__).resolve().parent.parent
MIB = 1 << 20

# --------------------------------------------------------------------------------------
# Unit tests: layout detection from mountinfo samples
# --------------------------------------------------------------------------------------

V1_ONLY = """\
22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw
30 22 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:9 - cgroup cgroup \
rw,xattr,release_agent=/usr/lib/systemd/systemd-cgroups-agent,name=systemd
34 30 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:15 - cgroup \
cgroup rw,cpu,cpuacct
35 30 0:31 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup \
rw,memory
36 30 0:32 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup \
rw,cpuset,clone_children
37 30 0:33 / /sys/fs/cgroup/net\\040cls rw,nosuid - cgroup cgroup rw,net_cls,net_prio
38 22 0:31 / /mnt/memory-again rw,relatime - cgroup cgroup rw,memory
"""

V2_ONLY = """\
22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw
30 22 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 \
rw,nsdelegate,memory_recursiveprot
"""

HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""

V2_WITH_NAMED_V1 = V2_ONLY + (
    "40 30 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
)


def test_parse_v1_only_handles_comounted_named_and_escaped_mounts() -> None:
    mounts = parse_mountinfo(V1_ONLY)
    assert mounts.v2 is None
    assert [h.controllers for h in mounts.v1] == [
        ("name=systemd",),
        ("cpu", "cpuacct"),
        ("memory",),
        ("cpuset",),
        ("net_cls", "net_prio"),
    ]
    cpu_hierarchy = mounts.v1_for("cpuacct")
    assert cpu_hierarchy is not None
    assert cpu_hierarchy.mountpoint == "/sys/fs/cgroup/cpu,cpuacct"
    assert cpu_hierarchy.key == "cpu,cpuacct"
    memory_hierarchy = mounts.v1_for("memory")
    assert memory_hierarchy is not None
    assert memory_hierarchy.mountpoint == "/sys/fs/cgroup/memory"  # the first mount wins
    net = mounts.v1_for("net_prio")
    assert net is not None and net.mountpoint == "/sys/fs/cgroup/net cls"
    assert mounts.v1_for("pids") is None
    assert layout_of(mounts) is Layout.V1


def test_parse_v2_only() -> None:
    mounts = parse_mountinfo(V2_ONLY)
    assert mounts.v1 == ()
    assert mounts.v2 == "/sys/fs/cgroup"
    assert layout_of(mounts) is Layout.V2


def test_parse_hybrid() -> None:
    mounts = parse_mountinfo(HYBRID)
    assert mounts.v2 == "/sys/fs/cgroup/unified"
    assert [h.key for h in mounts.v1] == ["cpu", "memory", "name=systemd"]
    assert layout_of(mounts) is Layout.HYBRID


def test_v2_with_only_a_named_v1_hierarchy_is_still_v2() -> None:
    assert layout_of(parse_mountinfo(V2_WITH_NAMED_V1)) is Layout.V2


def test_no_cgroup_mount_is_an_error() -> None:
    with pytest.raises(CgroupError, match="no cgroup filesystem is mounted"):
        layout_of(parse_mountinfo("22 1 8:1 / / rw - ext4 /dev/sda1 rw\ngarbage line\n"))


def test_detect_layout_reads_a_given_mountinfo_file(tmp_path: Path) -> None:
    sample = tmp_path / "mountinfo"
    sample.write_text(V2_ONLY)
    assert detect_layout(str(sample)) is Layout.V2
    with pytest.raises(CgroupError, match="cannot read"):
        detect_layout(str(tmp_path / "missing"))


def test_new_manager_picks_the_implementation_for_the_layout() -> None:
    assert isinstance(new_manager("/x", mounts=parse_mountinfo(V1_ONLY)), V1Manager)
    assert isinstance(new_manager("/x", mounts=parse_mountinfo(V2_ONLY)), V2Manager)
    assert isinstance(new_manager("x", mounts=parse_mountinfo(HYBRID)), HybridManager)
    with pytest.raises(CgroupError, match="no cgroup v1 hierarchy"):
        new_manager("/x", Layout.V1, mounts=parse_mountinfo(V2_ONLY))


@pytest.mark.parametrize("path", ["", "/", "/a/../b", "./a", "a/\0"])
def test_new_manager_rejects_unusable_paths(path: str) -> None:
    with pytest.raises(ConfigError, match="cgroupsPath"):
        new_manager(path, mounts=parse_mountinfo(V2_ONLY))


def test_paths_of_each_layout() -> None:
    v1 = new_manager("/a/b", mounts=parse_mountinfo(V1_ONLY))
    assert v1.paths()["cpu"] == v1.paths()["cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct/a/b"
    assert v1.paths()["name=systemd"] == "/sys/fs/cgroup/systemd/a/b"
    assert new_manager("a/b", mounts=parse_mountinfo(V2_ONLY)).paths() == {"": "/sys/fs/cgroup/a/b"}
    hybrid = new_manager("/a/b", mounts=parse_mountinfo(HYBRID))
    assert hybrid.paths()["unified"] == "/sys/fs/cgroup/unified/a/b"
    assert hybrid.paths()["memory"] == "/sys/fs/cgroup/memory/a/b"


# --------------------------------------------------------------------------------------
# Unit tests: controller mappings
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shares", "weight"),
    [(2, 1), (1, 1), (1024, 39), (262144, 10000), (10**9, 10000)],
)
def test_shares_to_weight(shares: int, weight: int) -> None:
    assert cpu.shares_to_weight(shares) == weight


@pytest.mark.parametrize(
    ("quota", "period", "expected"),
    [
        (50000, 100000, "50000 100000"),
        (-1, 100000, "max 100000"),
        (None, 250000, "max 250000"),
        (20000, None, "20000"),
        (-1, None, "max"),
        (None, None, None),
        (0, None, None),
    ],
)
def test_cpu_max_value(quota: int | None, period: int | None, expected: str | None) -> None:
    assert cpu.max_value(quota, period) == expected


def test_cpu_writes_for_both_versions() -> None:
    resources = {"cpu": {"shares": 1024, "quota": 50000, "period": 100000}}
    assert cpu.v1_writes(resources, "/unused") == [
        ("cpu.shares", "1024"),
        ("cpu.cfs_period_us", "100000"),
        ("cpu.cfs_quota_us", "50000"),
    ]
    assert cpu.v2_writes(resources, "/unused") == [
        ("cpu.weight", "39"),
        ("cpu.max", "50000 100000"),
    ]


@pytest.mark.parametrize(
    ("limit", "swap", "expected"),
    [
        (100, 300, 200),  # OCI swap is memory+swap; v2 swap.max is swap alone
        (100, 100, 0),
        (100, -1, -1),
        (-1, None, -1),  # no memory limit, no swap setting: no swap limit either
        (100, None, None),
        (None, None, None),
        (-1, -1, -1),
    ],
)
def test_v2_swap_value(limit: int | None, swap: int | None, expected: int | None) -> None:
    assert memory.v2_swap_value(limit, swap) == expected


def _fake_cgroup(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, value in files.items():
        (directory / name).write_text(value)
    return directory


def test_memory_v2_writes(tmp_path: Path) -> None:
    cg = _fake_cgroup(tmp_path / "cg", {"memory.swap.max": "max"})
    resources = {"memory": {"limit": 100 * MIB, "swap": 300 * MIB, "reservation": 50 * MIB}}
    assert memory.v2_writes(resources, str(cg)) == [
        ("memory.swap.max", str(200 * MIB)),
        ("memory.max", str(100 * MIB)),
        ("memory.low", str(50 * MIB)),
    ]
    assert memory.v2_writes({"memory": {"limit": -1}}, str(cg)) == [
        ("memory.swap.max", "max"),
        ("memory.max", "max"),
    ]
    # Without swap accounting there is no memory.swap.max and nothing to limit.
    bare = _fake_cgroup(tmp_path / "bare", {})
    assert memory.v2_writes(resources, str(bare))[0] == ("memory.max", str(100 * MIB))


def test_memory_v1_orders_limit_and_memsw_so_the_kernel_accepts_them(tmp_path: Path) -> None:
    cg = _fake_cgroup(
        tmp_path / "cg",
        {"memory.limit_in_bytes": str(100 * MIB), "memory.memsw.limit_in_bytes": str(150 * MIB)},
    )
    raising = {"memory": {"limit": 200 * MIB, "swap": 300 * MIB}}
    assert [name for name, _ in memory.v1_writes(raising, str(cg))] == [
        "memory.memsw.limit_in_bytes",
        "memory.limit_in_bytes",
    ]
    lowering = {"memory": {"limit": 50 * MIB, "swap": 60 * MIB}}
    assert [name for name, _ in memory.v1_writes(lowering, str(cg))] == [
        "memory.limit_in_bytes",
        "memory.memsw.limit_in_bytes",
    ]
    unlimited = memory.v1_writes({"memory": {"limit": -1}}, str(cg))
    assert unlimited == [("memory.memsw.limit_in_bytes", "-1"), ("memory.limit_in_bytes", "-1")]
    extras = {"memory": {"reservation": 10, "swappiness": 0, "disableOOMKiller": True}}
    assert memory.v1_writes(extras, str(cg)) == [
        ("memory.soft_limit_in_bytes", "10"),
        ("memory.swappiness", "0"),
        ("memory.oom_control", "1"),
    ]
    # memsw is skipped when the kernel has no swap accounting.
    bare = _fake_cgroup(tmp_path / "bare", {"memory.limit_in_bytes": "9223372036854771712"})
    assert memory.v1_writes(raising, str(bare)) == [("memory.limit_in_bytes", str(200 * MIB))]


@pytest.mark.parametrize(("limit", "value"), [(10, "10"), (1, "1"), (0, "max"), (-1, "max")])
def test_pids_max_value(limit: int, value: str) -> None:
    assert pids.v2_writes({"pids": {"limit": limit}}, "/unused") == [("pids.max", value)]
    assert pids.v1_writes({"pids": {"limit": limit}}, "/unused") == [("pids.max", value)]


def test_cpuset_writes_and_v1_inheritance(tmp_path: Path) -> None:
    resources = {"cpu": {"cpus": "0-1,3", "mems": "0"}}
    assert cpuset.v2_writes(resources, "/unused") == [
        ("cpuset.cpus", "0-1,3"),
        ("cpuset.mems", "0"),
    ]
    assert cpuset.v1_writes({"cpu": {"cpus": ""}}, "/unused") == []
    parent = _fake_cgroup(tmp_path / "p", {"cpuset.cpus": "0-3\n", "cpuset.mems": "0\n"})
    child = _fake_cgroup(parent / "c", {"cpuset.cpus": "\n", "cpuset.mems": "0\n"})
    assert cpuset.v1_inherit_writes(str(child)) == [("cpuset.cpus", "0-3")]


def test_devices_v1_rules_deny_all_then_config_then_defaults() -> None:
    resources = {
        "devices": [
            {"allow": False, "access": "rwm"},  # runc spec's default: deny all
            {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rw"},
            {"allow": False, "type": "b", "major": 8, "minor": -1, "access": "m"},
        ]
    }
    writes = devices.v1_writes(resources, "/unused")
    assert writes[:4] == [
        ("devices.deny", "a"),
        ("devices.deny", "a *:* rwm"),
        ("devices.allow", "c 10:200 rw"),
        ("devices.deny", "b 8:* m"),
    ]
    assert writes[4:] == [
        ("devices.allow", line)
        for line in (
            "c 1:3 rwm",
            "c 1:5 rwm",
            "c 1:7 rwm",
            "c 1:8 rwm",
            "c 1:9 rwm",
            "c 5:0 rwm",
            "c 5:2 rwm",
            "c 136:* rwm",
            # mknod of any node (as runc): the runtime makes linux.devices after joining
            "c *:* m",
            "b *:* m",
        )
    ]
    assert devices.v2_writes(resources, "/unused") == []
    assert devices.ENFORCED_ON_V2 is False


def test_stats_of_missing_files_are_none(tmp_path: Path) -> None:
    assert stats.read_v2(str(tmp_path)) == CgroupStats()
    assert stats.read_v1({"memory": str(tmp_path), "cpu": str(tmp_path)}) == CgroupStats()


def test_stats_v2_from_a_fake_tree(tmp_path: Path) -> None:
    cg = _fake_cgroup(
        tmp_path / "cg",
        {
            "memory.current": "4096\n",
            "memory.peak": "8192\n",
            "memory.max": "max\n",
            "memory.events": "low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n",
            "pids.current": "3\n",
            "pids.max": "10\n",
            "cpu.stat": "usage_usec 900\nnr_periods 5\nnr_throttled 4\nthrottled_usec 70\n",
        },
    )
    assert stats.read_v2(str(cg)) == CgroupStats(
        memory_usage=4096,
        memory_peak=8192,
        memory_limit=-1,
        oom_kills=2,
        pids_current=3,
        pids_limit=10,
        cpu_usage_usec=900,
        cpu_nr_periods=5,
        cpu_nr_throttled=4,
        cpu_throttled_usec=70,
    )


# --------------------------------------------------------------------------------------
# Unit tests: validation
# --------------------------------------------------------------------------------------

INVALID: list[tuple[Any, str]] = [
    ([], "must be an object"),
    ({"memory": 5}, "memory must be an object"),
    ({"memory": {"limit": "1g"}}, "memory.limit must be an integer"),
    ({"memory": {"limit": True}}, "memory.limit must be an integer"),
    ({"memory": {"limit": -2}}, "memory.limit must be >= -1"),
    ({"memory": {"limit": 100, "swap": 50}}, r"swap \(50\) must be >= limit \(100\)"),
    ({"memory": {"swap": 100}}, "needs a memory.limit"),
    ({"memory": {"reservation": -7}}, "reservation must be >= -1"),
    ({"memory": {"swappiness": 101}}, "swappiness must be 0-100"),
    ({"memory": {"disableOOMKiller": "yes"}}, "must be true or false"),
    ({"pids": {"limit": "10"}}, "pids.limit must be an integer"),
    ({"pids": {}}, "pids.limit is required"),
    ({"cpu": {"quota": 50000, "period": 0}}, "needs a positive period"),
    ({"cpu": {"quota": 50000, "period": -100}}, "needs a positive period"),
    ({"cpu": {"period": 10}}, "needs a period of 1000-1000000"),
    ({"cpu": {"quota": 10}}, "quota must be -1 or >= 1000"),
    ({"cpu": {"quota": -5}}, "quota must be >= -1"),
    ({"cpu": {"shares": -1}}, "shares must be >= 0"),
    ({"cpu": {"cpus": "0-"}}, "cpus must look like"),
    ({"cpu": {"cpus": "a"}}, "cpus must look like"),
    ({"cpu": {"cpus": "3-1"}}, "backwards range"),
    ({"cpu": {"mems": "0,,1"}}, "mems must look like"),
    ({"cpu": {"mems": 0}}, "mems must be a string"),
    ({"devices": {"allow": False}}, "devices must be a list"),
    ({"devices": [{"access": "rwm"}]}, r"devices\[0\].allow is required"),
    ({"devices": [{"allow": True, "type": "x"}]}, "type must be"),
    ({"devices": [{"allow": True, "access": "rwq"}]}, "access must be made of"),
    ({"devices": [{"allow": True, "major": "1"}]}, "major must be a device number"),
    ({"unified": ["memory.high"]}, "unified must be an object"),
    ({"unified": {"memory.high": 5}}, "must be a string"),
    ({"unified": {"high": "5"}}, "a cgroup2 file name"),
    ({"unified": {"../pids.max": "5"}}, "a cgroup2 file name"),
    ({"unified": {"cgroup.procs": "1"}}, "moves or kills processes"),
]


@pytest.mark.parametrize(("resources", "message"), INVALID)
def test_invalid_resources_raise_config_error(resources: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        validate_resources(resources)
    assert "\n" not in str(info.value)


def test_valid_resources_and_unknown_keys_pass() -> None:
    validate_resources(None)
    validate_resources({})
    validate_resources(
        {
            "memory": {"limit": 64 * MIB, "swap": 64 * MIB, "reservation": -1, "kernel": -1},
            "pids": {"limit": -1},
            "cpu": {"shares": 1024, "quota": -1, "period": 100000, "cpus": "0", "mems": ""},
            "devices": [{"allow": False, "access": "rwm"}],
            "someFutureKnob": {"anything": 1},  # unknown keys are ignored, as the spec says
        }
    )


def test_unimplemented_or_layout_impossible_settings_are_unsupported() -> None:
    with pytest.raises(UnsupportedError, match="blockIO"):
        validate_resources({"blockIO": {"weight": 10}})
    with pytest.raises(UnsupportedError, match="swappiness"):
        validate_resources({"memory": {"swappiness": 10}}, Layout.V2)
    validate_resources({"memory": {"swappiness": 10}}, Layout.HYBRID)
    with pytest.raises(UnsupportedError, match="realtime"):
        validate_resources({"cpu": {"realtimeRuntime": 1000}}, Layout.V2)
    for layout in (Layout.V1, Layout.HYBRID):
        with pytest.raises(UnsupportedError, match="unified needs cgroup v2"):
            validate_resources({"unified": {"memory.high": "1"}}, layout)
    validate_resources({"unified": {"memory.high": "1"}}, Layout.V2)


# --------------------------------------------------------------------------------------
# Unit tests: the v2 manager on a fake cgroup2 tree
# --------------------------------------------------------------------------------------

V2_LEAF_FILES = {
    "cgroup.procs": "",
    "cgroup.subtree_control": "",
    "memory.max": "max",
    "memory.low": "0",
    "memory.swap.max": "max",
    "pids.max": "max",
    "cpu.weight": "100",
    "cpu.max": "max 100000",
    "cpuset.cpus": "",
    "cpuset.mems": "",
}


@pytest.fixture
def fake_v2(tmp_path: Path) -> Path:
    """A temporary directory shaped like a cgroup2 mount with an existing cgroup /a/b."""
    root = _fake_cgroup(
        tmp_path / "cgroup2",
        {"cgroup.controllers": "cpuset cpu io memory pids\n", "cgroup.subtree_control": ""},
    )
    _fake_cgroup(root / "a", {"cgroup.subtree_control": "memory\n", "cgroup.procs": ""})
    _fake_cgroup(root / "a" / "b", V2_LEAF_FILES)
    return root


def test_fake_v2_create_joins_enables_controllers_and_writes_limits(fake_v2: Path) -> None:
    manager = V2Manager("/a/b", str(fake_v2))
    manager.create(
        {
            "memory": {"limit": 64 * MIB, "swap": 96 * MIB, "reservation": 32 * MIB},
            "pids": {"limit": 0},
            "cpu": {"shares": 512, "quota": 20000, "period": 50000, "cpus": "1", "mems": "0"},
            "devices": [{"allow": False, "access": "rwm"}],
        }
    )
    leaf = fake_v2 / "a" / "b"
    assert manager.created == []  # joined, nothing made
    assert (fake_v2 / "cgroup.subtree_control").read_text() == "+memory +pids +cpu +cpuset"
    assert (fake_v2 / "a" / "cgroup.subtree_control").read_text() == "+pids +cpu +cpuset"
    assert {name: (leaf / name).read_text() for name in V2_LEAF_FILES} == {
        **V2_LEAF_FILES,
        "memory.max": str(64 * MIB),
        "memory.low": str(32 * MIB),
        "memory.swap.max": str(32 * MIB),
        "pids.max": "max",
        "cpu.weight": str(cpu.shares_to_weight(512)),
        "cpu.max": "20000 50000",
        "cpuset.cpus": "1",
        "cpuset.mems": "0",
    }
    assert manager.devices_enforced is False
    manager.update({"pids": {"limit": 7}, "memory": {"limit": -1}})
    assert (leaf / "pids.max").read_text() == "7"
    assert (leaf / "memory.max").read_text() == "max"
    assert (leaf / "memory.swap.max").read_text() == "max"
    manager.destroy()  # nothing inside, nothing made: joined directories stay
    assert leaf.is_dir()


def test_fake_v2_unified_keys_enable_their_controllers_and_are_written_last(
    fake_v2: Path,
) -> None:
    leaf = fake_v2 / "a" / "b"
    (leaf / "cgroup.max.depth").write_text("max")
    (leaf / "io.weight").write_text("default 100")
    manager = V2Manager("/a/b", str(fake_v2))
    unified = {"pids.max": "9", "cgroup.max.depth": "3", "io.weight": "default 50"}
    manager.create({"pids": {"limit": 5}, "unified": unified})
    assert (fake_v2 / "cgroup.subtree_control").read_text() == "+pids +io"
    assert {name: (leaf / name).read_text() for name in unified} == unified  # 9, not 5


def test_fake_v2_missing_controller_fails_before_touching_anything(fake_v2: Path) -> None:
    (fake_v2 / "cgroup.controllers").write_text("cpu\n")
    manager = V2Manager("/new/leaf", str(fake_v2))
    with pytest.raises(CgroupError, match="memory controller"):
        manager.create({"memory": {"limit": 64 * MIB}})
    assert not (fake_v2 / "new").exists()


def test_fake_v2_failed_write_removes_what_create_made(fake_v2: Path) -> None:
    # A plain directory made by mkdir has no interface files: the first write fails,
    # and the level create made is removed again.
    manager = V2Manager("/a/new", str(fake_v2))
    with pytest.raises(
        CgroupError, match=r"/a/new/pids\.max.*No such file or directory \(ENOENT\)"
    ):
        manager.create({"pids": {"limit": 5}})
    assert not (fake_v2 / "a" / "new").exists()
    assert (fake_v2 / "a" / "b").is_dir()
    assert manager.created == []


def test_destroy_refuses_to_kill_the_calling_process(fake_v2: Path) -> None:
    (fake_v2 / "a" / "b" / "cgroup.procs").write_text(f"{os.getpid()}\n")
    with pytest.raises(CgroupError, match="move it out before destroy"):
        V2Manager("/a/b", str(fake_v2)).destroy()


def test_saved_form_round_trips_and_rejects_garbage(fake_v2: Path) -> None:
    manager = new_manager("/a/b", mounts=parse_mountinfo(HYBRID))
    rebuilt = manager_from_dict(json.loads(json.dumps(manager.to_dict())))
    assert isinstance(rebuilt, HybridManager)
    assert rebuilt.paths() == manager.paths()
    for garbage in ({}, {"layout": "v3"}, {"layout": "v1", "version": 99}, [1]):
        with pytest.raises(CgroupError, match="saved cgroup state"):
            manager_from_dict(garbage)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------
# Real-kernel tests
# --------------------------------------------------------------------------------------

CGROUP2_SUPER_MAGIC = 0x63677270


def _statfs_type(path: str) -> int | None:
    """f_type of statfs(2), independently of the mountinfo parser under test."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    buf = ctypes.create_string_buffer(256)  # struct statfs; f_type is the first long
    if libc.statfs(path.encode(), buf) != 0:
        return None
    return ctypes.c_long.from_buffer(buf).value


def _expected_layout() -> Layout:
    if _statfs_type("/sys/fs/cgroup") == CGROUP2_SUPER_MAGIC:
        return Layout.V2
    if _statfs_type("/sys/fs/cgroup/unified") == CGROUP2_SUPER_MAGIC:
        return Layout.HYBRID
    return Layout.V1


def _can_use_cgroups() -> bool:
    if os.geteuid() != 0:
        return False
    try:
        discover_mounts()
        detect_layout()
    except CgroupError:
        return False
    return True


real_kernel = pytest.mark.skipif(
    not _can_use_cgroups(), reason="needs root and a mounted cgroup filesystem"
)

_serial = itertools.count()


def _mount_roots() -> list[str]:
    mounts = discover_mounts()
    roots = [h.mountpoint for h in mounts.v1]
    if mounts.v2 is not None:
        roots.append(mounts.v2)
    return roots


def _remove_everywhere(relative_top: str) -> list[str]:
    """Kill and remove ``relative_top`` in every hierarchy; return what was still there."""
    leftovers = []
    for root in _mount_roots():
        top = os.path.join(root, relative_top)
        if not os.path.exists(top):
            continue
        leftovers.append(top)
        for pid in tree.all_pids([top]):
            if pid != os.getpid():
                with contextlib.suppress(ProcessLookupError):  # already gone
                    os.kill(pid, signal.SIGKILL)
        tree.kill_all([top])
        for directory in tree.subtree(top):
            os.rmdir(directory)
    return leftovers


@pytest.fixture
def cgroup_path() -> Iterator[Callable[[str], str]]:
    """A factory of unique cgroup paths; afterwards, nothing under them is left anywhere."""
    tops: list[str] = []

    def make(suffix: str = "") -> str:
        top = f"pytest-cgroups-{os.getpid()}-{next(_serial)}"
        tops.append(top)
        return f"/{top}{suffix}"

    yield make
    for top in tops:
        _remove_everywhere(top)


def _exists_anywhere(path: str) -> list[str]:
    rel = path.strip("/")
    return [os.path.join(r, rel) for r in _mount_roots() if os.path.exists(os.path.join(r, rel))]


@pytest.fixture
def spawn() -> Iterator[Callable[[str], subprocess.Popen[bytes]]]:
    """Start ``python -c CODE`` held at a gate; ``release(proc)`` lets it run.

    The gate lets a test move the child into a cgroup before it allocates, forks or spins.
    Every child still running at the end is killed by its PID and reaped.
    """
    started: list[subprocess.Popen[bytes]] = []

    def start(code: str) -> subprocess.Popen[bytes]:
        gate = "import sys\nsys.stdin.buffer.read(1)\n"
        proc = subprocess.Popen(
            [sys.executable, "-c", gate + textwrap.dedent(code)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def release(proc: subprocess.Popen[bytes], timeout: float = 15) -> tuple[int, str]:
    """Open the gate and wait; return (returncode, stdout)."""
    out, _ = proc.communicate(b"g", timeout=timeout)
    return proc.returncode, out.decode()


SLEEPER = "import time\ntime.sleep(60)\n"


@real_kernel
def test_detect_layout_matches_statfs() -> None:
    assert detect_layout() is _expected_layout()
    print(f"this host's cgroup layout: {detect_layout().value}")


@real_kernel
def test_memory_limit_oom_kills_a_process_above_it_and_spares_one_below(
    cgroup_path: Callable[[str], str], spawn: Callable[[str], subprocess.Popen[bytes]]
) -> None:
    manager = new_manager(cgroup_path(""))
    manager.create({"memory": {"limit": 32 * MIB, "swap": 32 * MIB}})
    before = manager.stats()
    assert before.memory_limit == 32 * MIB
    assert before.oom_kills is not None

    greedy = spawn("data = b'x' * (64 << 20)\n")
    manager.add(greedy.pid)
    code, _ = release(greedy)
    assert code == -signal.SIGKILL
    after = manager.stats()
    assert after.oom_kills is not None and after.oom_kills > before.oom_kills

    modest = spawn("data = b'x' * (8 << 20)\nprint(len(data))\n")
    manager.add(modest.pid)
    assert release(modest) == (0, f"{8 * MIB}\n")
    assert manager.stats().memory_peak is not None
    manager.destroy()


@real_kernel
def test_pids_limit_makes_forks_fail_beyond_it(
    cgroup_path: Callable[[str], str], spawn: Callable[[str], subprocess.Popen[bytes]]
) -> None:
    manager = new_manager(cgroup_path(""))
    manager.create({"pids": {"limit": 4}})
    forker = spawn(
        """
        import errno, os, signal
        kids, failure = [], None
        for _ in range(10):
            try:
                pid = os.fork()
            except OSError as exc:
                failure = errno.errorcode[exc.errno]
                break
            if pid == 0:
                signal.pause()
            kids.append(pid)
        for pid in kids:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        print(len(kids), failure)
        """
    )
    manager.add(forker.pid)
    # The forker itself is one of the 4 tasks, so 3 forks succeed and the 4th fails.
    assert release(forker) == (0, "3 EAGAIN\n")
    assert manager.stats().pids_limit == 4
    manager.destroy()


@real_kernel
def test_cpu_quota_throttles_a_busy_loop(
    cgroup_path: Callable[[str], str], spawn: Callable[[str], subprocess.Popen[bytes]]
) -> None:
    manager = new_manager(cgroup_path(""))
    manager.create({"cpu": {"shares": 512, "quota": 10000, "period": 100000}})
    spinner = spawn(
        """
        import time
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            pass
        """
    )
    manager.add(spinner.pid)
    assert release(spinner)[0] == 0
    usage = manager.stats()
    assert usage.cpu_nr_periods is not None and usage.cpu_nr_periods > 0
    assert usage.cpu_nr_throttled is not None and usage.cpu_nr_throttled > 0
    assert usage.cpu_throttled_usec is not None and usage.cpu_throttled_usec > 0
    assert usage.cpu_usage_usec is not None and usage.cpu_usage_usec > 0
    manager.destroy()


@real_kernel
def test_cpuset_levels_are_initialised_and_a_process_can_join(
    cgroup_path: Callable[[str], str], spawn: Callable[[str], subprocess.Popen[bytes]]
) -> None:
    manager = new_manager(cgroup_path("/mid/leaf"))
    manager.create({"cpu": {"cpus": "0", "mems": "0"}})
    leaf = Path(manager.paths().get("cpuset") or manager.paths()[""])
    assert (leaf / "cpuset.cpus").read_text().strip() == "0"
    assert (leaf / "cpuset.mems").read_text().strip() == "0"
    if manager.layout is not Layout.V2:
        root = (leaf.parent.parent.parent / "cpuset.cpus").read_text().strip()
        assert root
        assert (leaf.parent / "cpuset.cpus").read_text().strip() == root
        assert (leaf.parent.parent / "cpuset.mems").read_text().strip() != ""
    sleeper = spawn(SLEEPER)
    manager.add(sleeper.pid)
    status = Path(f"/proc/{sleeper.pid}/status").read_text()
    assert "Cpus_allowed_list:\t0\n" in status
    assert manager.pids() == [sleeper.pid]
    manager.destroy()


@real_kernel
def test_destroy_kills_everything_and_removes_every_directory_it_made(
    cgroup_path: Callable[[str], str], spawn: Callable[[str], subprocess.Popen[bytes]]
) -> None:
    path = cgroup_path("/parent/leaf")
    manager = new_manager(path)
    manager.create({"pids": {"limit": 20}, "memory": {"limit": 64 * MIB}})
    made = manager.created
    assert len(made) == 3 * len(set(manager.paths().values()))  # 3 levels in every hierarchy
    assert all(os.path.isdir(d) for d in made)
    if manager.layout is Layout.HYBRID:
        assert manager.paths()["unified"] in made

    first, second = spawn(SLEEPER), spawn(SLEEPER)
    for proc in (first, second):
        manager.add(proc.pid)
    # A sub-cgroup the container made itself, with a process in it, goes too.
    nested = os.path.join(next(iter(manager.paths().values())), "made-by-container")
    os.mkdir(nested)
    Path(nested, "cgroup.procs").write_text(str(second.pid))
    assert manager.pids() == sorted([first.pid, second.pid])

    manager.destroy()
    assert first.wait(5) == -signal.SIGKILL
    assert second.wait(5) == -signal.SIGKILL
    assert [d for d in made if os.path.exists(d)] == []
    assert _exists_anywhere(path.split("/")[1]) == []
    assert manager.pids() == []
    manager.destroy()  # twice is fine


@real_kernel
def test_destroy_keeps_directories_it_joined(cgroup_path: Callable[[str], str]) -> None:
    top = cgroup_path("")
    for root in _mount_roots():
        os.mkdir(os.path.join(root, top.strip("/")))
    manager = new_manager(top + "/leaf")
    manager.create({})
    assert all(d.endswith("/leaf") for d in manager.created)
    manager.destroy()
    assert _exists_anywhere(top + "/leaf") == []
    assert len(_exists_anywhere(top)) == len(_mount_roots())


@real_kernel
@pytest.mark.parametrize(
    "resources",
    [
        {"memory": {"limit": 100 * MIB, "swap": 50 * MIB}},
        {"cpu": {"quota": 50000, "period": 0}},
        {"cpu": {"cpus": "zero"}},
        {"pids": {"limit": "lots"}},
    ],
)
def test_invalid_resources_leave_nothing_on_disk(
    cgroup_path: Callable[[str], str], resources: dict[str, Any]
) -> None:
    path = cgroup_path("/leaf")
    manager = new_manager(path)
    with pytest.raises(ConfigError):
        manager.validate(resources)
    with pytest.raises(ConfigError):
        manager.create(resources)
    assert _exists_anywhere(path.split("/")[1]) == []


@real_kernel
def test_a_write_the_kernel_refuses_is_undone_and_named(cgroup_path: Callable[[str], str]) -> None:
    path = cgroup_path("/leaf")
    manager = new_manager(path)
    if (
        manager.layout is Layout.V2
        and "cpuset"
        not in Path(discover_mounts().v2 or "/", "cgroup.controllers").read_text().split()
    ):
        pytest.skip("the cpuset controller is not available")
    missing_cpu = str(os.cpu_count() or 1)  # valid syntax, but no such CPU
    with pytest.raises(CgroupError, match=r"cpuset\.cpus.*\(E[A-Z]+\)"):
        manager.create({"cpu": {"cpus": missing_cpu}})
    assert manager.created == []
    assert _exists_anywhere(path.split("/")[1]) == []


@real_kernel
def test_saved_manager_is_destroyed_from_another_process(
    cgroup_path: Callable[[str], str], spawn: Callable[[str], subprocess.Popen[bytes]]
) -> None:
    path = cgroup_path("/saved")
    manager = new_manager(path)
    manager.create({"pids": {"limit": 10}})
    sleeper = spawn(SLEEPER)
    manager.add(sleeper.pid)
    saved = json.dumps(manager.to_dict())
    rebuilt = manager_from_dict(json.loads(saved))
    assert type(rebuilt) is type(manager)
    assert rebuilt.paths() == manager.paths()
    assert rebuilt.created == manager.created
    assert rebuilt.pids() == [sleeper.pid]

    delete = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, sys\n"
            "from reference_runtime.cgroups import manager_from_dict\n"
            "manager_from_dict(json.loads(sys.argv[1])).destroy()\n",
            saved,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert delete.returncode == 0, delete.stderr
    assert sleeper.wait(5) == -signal.SIGKILL
    assert _exists_anywhere(path.split("/")[1]) == []
    rebuilt.destroy()  # and again, here: already gone is fine


@real_kernel
def test_v1_specific_files(cgroup_path: Callable[[str], str]) -> None:
    manager = new_manager(cgroup_path(""))
    if manager.layout is Layout.V2:
        pytest.skip("v1 hierarchies are not mounted on this host")
    manager.create(
        {
            "memory": {"limit": 48 * MIB, "reservation": 16 * MIB},
            "cpu": {"shares": 256, "quota": 30000, "period": 60000},
            "devices": [{"allow": False, "access": "rwm"}],
        }
    )
    paths = manager.paths()
    assert Path(paths["memory"], "memory.limit_in_bytes").read_text().strip() == str(48 * MIB)
    assert Path(paths["memory"], "memory.soft_limit_in_bytes").read_text().strip() == str(16 * MIB)
    assert Path(paths["cpu"], "cpu.shares").read_text().strip() == "256"
    assert Path(paths["cpu"], "cpu.cfs_quota_us").read_text().strip() == "30000"
    assert Path(paths["cpu"], "cpu.cfs_period_us").read_text().strip() == "60000"
    listed = Path(paths["devices"], "devices.list").read_text().split("\n")
    assert "c 1:3 rwm" in listed and "c 136:* rwm" in listed and "a *:* rwm" not in listed
    assert manager.devices_enforced
    manager.update({"memory": {"limit": 40 * MIB}, "pids": {"limit": 3}})
    assert Path(paths["memory"], "memory.limit_in_bytes").read_text().strip() == str(40 * MIB)
    assert Path(paths["pids"], "pids.max").read_text().strip() == "3"
    manager.destroy()


@real_kernel
def test_v2_manager_on_this_hosts_cgroup2_mount(
    cgroup_path: Callable[[str], str], spawn: Callable[[str], subprocess.Popen[bytes]]
) -> None:
    mounts = discover_mounts()
    if mounts.v2 is None:
        pytest.skip("no cgroup2 mount on this host")
    path = cgroup_path("/v2/leaf")
    manager = V2Manager.from_mounts(path, mounts)
    manager.create({})
    directory = manager.paths()[""]
    assert len(manager.created) == 3 and manager.created[-1] == directory
    sleeper = spawn(SLEEPER)
    manager.add(sleeper.pid)
    assert manager.pids() == [sleeper.pid]
    assert f"0::/{path.strip('/')}\n" in Path(f"/proc/{sleeper.pid}/cgroup").read_text()
    assert manager.stats().cpu_usage_usec is not None  # cpu.stat exists without controllers
    manager.destroy()  # cgroup.kill where the kernel has it
    assert sleeper.wait(5) == -signal.SIGKILL
    assert _exists_anywhere(path.split("/")[1]) == []

    available = Path(mounts.v2, "cgroup.controllers").read_text().split()
    if "memory" not in available:
        with pytest.raises(CgroupError, match="memory controller"):
            manager.create({"memory": {"limit": 64 * MIB}})
        assert _exists_anywhere(path.split("/")[1]) == []


@real_kernel
def test_hybrid_undoes_the_v1_half_when_the_unified_half_fails(
    cgroup_path: Callable[[str], str], tmp_path: Path
) -> None:
    mounts = discover_mounts()
    if not mounts.v1:
        pytest.skip("no v1 hierarchy is mounted on this host")
    path = cgroup_path("/leaf")
    broken_unified = V2Manager(path, str(tmp_path / "not-a-mount"))
    manager = HybridManager(V1Manager.from_mounts(path, mounts), broken_unified)
    with pytest.raises(CgroupError, match=r"not-a-mount.*\(ENOENT\)"):
        manager.create({"pids": {"limit": 5}})
    assert manager.created == []
    assert _exists_anywhere(path.split("/")[1]) == []
