"""Invalid values (config.md#valid-values): a value the spec calls invalid, a config that
is missing, not JSON or off the schema, and invalid process and resource values are
refused, and a refused create leaves nothing behind.

Each bad config is a literal edit of the default one (``_badconfig``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given, reject
from hypothesis import strategies as st

from pytest_containers.requirements import not_applicable
from pytest_containers.runtime import ContainerFactory

from ._badconfig import (
    Append,
    Change,
    ConfigFile,
    Edit,
    Fault,
    MissingRootfs,
    Remove,
    docker_maps,
    docker_reads_config,
    refuses,
    try_bundle,
    write_bundle,
)
from ._examples import FEWER
from ._support import expressible

# Values the spec calls invalid, or that no kernel can apply (config.md#valid-values,
# runtime.md#create). Some fail early (parsing), some late, after the runtime has
# made a cgroup or a process: those check the cleanup of a half-made container.
INVALID_VALUES: tuple[Edit, ...] = (
    Append(("linux", "namespaces"), {"type": "pcnosuchnamespace"}),
    Change(("process", "user", "uid"), -1),
    Change(("process", "user", "gid"), 2**32),
    Change(("process", "oomScoreAdj"), 1001),
    Change(("process", "rlimits"), [{"type": "RLIMIT_NOFILE", "soft": 2048, "hard": 1024}]),
    Change(("linux", "resources", "memory", "swappiness"), 101),
    Change(("linux", "resources", "memory", "limit"), -2),
    Change(("linux", "resources", "cpu", "cpus"), "pc-not-a-cpu-list"),
    Change(("linux", "resources", "cpu", "cpus"), "4096"),
    Change(("linux", "resources", "cpu", "mems"), "4095"),
)

# Documents that do not match the configuration schema (config-schema.json).
SCHEMA_MISMATCHES: tuple[Edit, ...] = (
    Change(("process", "args"), "sh -c true"),
    Change(("process",), ["sh"]),
    Change(("root",), "rootfs"),
    Change(("process", "user", "uid"), "0"),
    Change(("process", "env"), "PATH=/bin"),
    Change(("linux", "namespaces"), {"pid": {}}),
    Change(("linux", "resources", "pids", "limit"), "32"),
    Remove(("root",)),
    Remove(("process", "cwd")),
)


@pytest.mark.requirement("RT-CONF-VALID-1")
@pytest.mark.parametrize("edit", INVALID_VALUES, ids=repr)
def test_invalid_values_are_refused(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, edit: Edit
) -> None:
    docker_maps(container_factory.adapter, edit)
    refuses(container_factory, rootfs, tmp_path, edit)


@pytest.mark.requirement("RT-OWN-BADCONFIG-1")
@pytest.mark.parametrize(
    "fault",
    [
        ConfigFile(None),
        ConfigFile(""),
        ConfigFile("[]"),
        ConfigFile('{"ociVersion": "1.0.0",}'),
        *SCHEMA_MISMATCHES,
    ],
    ids=repr,
)
def test_a_config_that_is_missing_or_not_json_or_off_schema_is_refused(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, fault: Fault
) -> None:
    docker_reads_config(container_factory.adapter)
    refuses(container_factory, rootfs, tmp_path, fault)


@pytest.mark.requirement("RT-OWN-BADCONFIG-1")
@FEWER
@given(text=st.binary(min_size=1, max_size=60).map(lambda b: b.decode("latin-1")))
def test_a_config_that_is_not_json_is_refused(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, text: str
) -> None:
    docker_reads_config(container_factory.adapter)
    if _is_json_object(text):
        reject()  # a JSON object is another case (off schema)
    refuses(container_factory, rootfs, tmp_path, ConfigFile(text))


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


# Refusals that come late, after the runtime has made a cgroup, a namespace or a
# process, next to early ones; each must leave nothing behind.
CLEANUP_CASES: tuple[Fault, ...] = (
    MissingRootfs(),
    ConfigFile(None),
    Change(("process", "cwd"), "tmp"),
    Change(("process", "args"), []),
    Change(("process", "oomScoreAdj"), 1001),
    Change(("process", "rlimits"), [{"type": "RLIMIT_NOFILE", "soft": 2048, "hard": 1024}]),
    Change(("process", "rlimits"), [{"type": "RLIMIT_PCNOSUCH", "soft": 1, "hard": 1}]),
    Change(("linux", "resources", "cpu", "cpus"), "4096"),
    Change(("linux", "resources", "cpu", "mems"), "4095"),
    Change(("linux", "resources", "memory", "limit"), -2),
    Change(("linux", "namespaces", 0), {"type": "pid", "path": "/proc/0/ns/pid"}),
)


@pytest.mark.requirement("RT-OWN-BADCONFIG-2")
@pytest.mark.parametrize("case", CLEANUP_CASES, ids=repr)
def test_a_refused_create_leaves_nothing_behind(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, case: Fault
) -> None:
    adapter = container_factory.adapter
    docker_maps(adapter, case)
    bundle = write_bundle(tmp_path, rootfs, [case])
    with expressible():
        attempt = try_bundle(container_factory, bundle, rootfs)
    if attempt.refused_by != "create":
        not_applicable(
            f"{adapter.name} did not refuse {case!r} at create, so nothing was left to clean "
            "(whether it should have is judged by the test of that value)"
        )
    assert not attempt.leftovers, (
        f"{adapter.name} refused {case!r} at create ({attempt.message!r}) but left behind: "
        + "; ".join(attempt.leftovers)
    )


# ---------------------------------------------------------------- process values


@pytest.mark.requirement("RT-PROC-CWD-2")
@FEWER
@given(cwd=st.from_regex(r"(\.\./|\./)?[a-z]{1,8}(/[a-z]{1,8}){0,2}/?", fullmatch=True))
def test_a_relative_cwd_is_refused(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, cwd: str
) -> None:
    refuses(container_factory, rootfs, tmp_path, Change(("process", "cwd"), cwd))


@pytest.mark.requirement("RT-PROC-ARGS-3")
@pytest.mark.parametrize(
    "edit", [Change(("process", "args"), []), Remove(("process", "args"))], ids=repr
)
def test_a_process_without_args_is_refused(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, edit: Edit
) -> None:
    refuses(container_factory, rootfs, tmp_path, edit)


@pytest.mark.requirement("RT-PROC-RLIMIT-1")
@FEWER
@given(name=st.from_regex(r"RLIMIT_PC[A-Z]{1,10}", fullmatch=True))
def test_an_rlimit_type_the_kernel_does_not_know_is_refused(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, name: str
) -> None:
    rlimits = [{"type": name, "soft": 1024, "hard": 1024}]
    refuses(container_factory, rootfs, tmp_path, Change(("process", "rlimits"), rlimits))


@pytest.mark.requirement("RT-PROC-RLIMIT-4")
@FEWER
@given(
    name=st.sampled_from(["RLIMIT_NOFILE", "RLIMIT_CORE", "RLIMIT_NPROC", "RLIMIT_MSGQUEUE"]),
    first=st.integers(1024, 4096),
    second=st.integers(1024, 4096),
)
def test_two_rlimits_of_the_same_type_are_refused(
    container_factory: ContainerFactory,
    rootfs: Path,
    tmp_path: Path,
    name: str,
    first: int,
    second: int,
) -> None:
    rlimits = [
        {"type": name, "soft": first, "hard": first},
        {"type": name, "soft": second, "hard": second},
    ]
    refuses(container_factory, rootfs, tmp_path, Change(("process", "rlimits"), rlimits))


# ---------------------------------------------------------------- limits values


@pytest.mark.requirement("RT-CG-BLKIO-3")
def test_a_weight_device_without_weight_or_leaf_weight_is_refused(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path
) -> None:
    if container_factory.adapter.name == "docker":
        not_applicable("docker: the adapter hands the Engine no blockIO settings")
    major, minor = _a_block_device()
    blkio = {"weightDevice": [{"major": major, "minor": minor}]}
    refuses(container_factory, rootfs, tmp_path, Change(("linux", "resources", "blockIO"), blkio))


def _a_block_device() -> tuple[int, int]:
    for name in sorted(os.listdir("/sys/block")):
        if not name.startswith(("loop", "ram", "zram")):
            major, minor = Path(f"/sys/block/{name}/dev").read_text().split(":")
            return int(major), int(minor)
    not_applicable("this host has no block device other than loop, ram and zram devices")
    raise AssertionError("unreachable")


@pytest.mark.requirement("RT-RDT-1")
def test_intel_rdt_without_a_mounted_resctrl_is_refused(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path
) -> None:
    if container_factory.adapter.name == "docker":
        not_applicable("docker: the adapter hands the Engine no intelRdt settings")
    if "resctrl" in {f[f.index("-") + 1] for f in _mountinfo_fields()}:
        not_applicable("a resctrl filesystem is mounted on this host")
    rdt = {"closID": "pc-rdt", "l3CacheSchema": "L3:0=f"}
    refuses(container_factory, rootfs, tmp_path, Change(("linux", "intelRdt"), rdt))


_UNIFIED_KEYS = {
    "pids": ("pids.max", "64"),
    "memory": ("memory.high", "268435456"),
    "cpu": ("cpu.weight", "50"),
    "io": ("io.weight", "default 100"),
    "cpuset": ("cpuset.cpus", "0"),
}


def _mountinfo_fields() -> list[list[str]]:
    with open("/proc/self/mountinfo") as f:
        return [line.split() for line in f]


@pytest.mark.requirement("RT-CG-UNIFIED-4")
def test_unified_keys_of_a_controller_that_is_not_available_are_refused(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path
) -> None:
    """A key of a cgroup v2 controller that the host's cgroup2 hierarchy does not carry
    (on a hybrid host: those bound to v1) cannot be applied."""
    if container_factory.adapter.name == "docker":
        not_applicable("docker: the adapter hands the Engine no unified settings")
    unified = [f[4] for f in _mountinfo_fields() if f[f.index("-") + 1] == "cgroup2"]
    if not unified:
        not_applicable("this host has no cgroup2 hierarchy")
    available = set(Path(unified[0], "cgroup.controllers").read_text().split())
    missing = [c for c in _UNIFIED_KEYS if c not in available]
    if not missing:
        not_applicable("every common controller is available in this host's cgroup2 hierarchy")
    key, value = _UNIFIED_KEYS[missing[0]]
    edit = Change(("linux", "resources", "unified"), {key: value})
    refuses(container_factory, rootfs, tmp_path, edit)
