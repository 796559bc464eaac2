"""Memory limits (config-linux.md#memory): the memory cgroup's limit, soft limit, swap
and swappiness, seen from the host and from inside, and what the limit does to the
processes in it: one allocating past it is OOM-killed and one below it survives; with
the OOM killer disabled, one past it waits.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_containers.adapters import HOST_KERNEL, HOST_PID, ExecResult
from pytest_containers.adapters.handle import Container
from pytest_containers.errors import RuntimeCommandError
from pytest_containers.requirements import not_applicable
from pytest_containers.runtime import ContainerFactory

from ._cgroups import (
    Knob,
    Seen,
    absent,
    cgroup_mounts,
    cgroup_procs,
    host_cgroups,
    host_view,
    observe,
    removing_cgroups,
    under,
    v2_controllers,
)
from ._limits import BEHAVIOUR, COSTLY, MAPPING, MiB, config_of, limited_container
from ._support import docker_lacks, needs

PAGE = os.sysconf("SC_PAGE_SIZE")


def pages(value: int) -> str:
    """A byte limit as the kernel keeps it: rounded down to whole pages."""
    return str(value // PAGE * PAGE)


def v1_unlimited() -> str:
    """What cgroup v1 shows for "no memory limit" (PAGE_COUNTER_MAX pages)."""
    v1, _ = cgroup_mounts()
    if "memory" not in v1:
        return "9223372036854771712"
    return Path(v1["memory"][0], "memory.limit_in_bytes").read_text().strip()


MEMORY_LIMIT = Knob("memory", "memory.limit_in_bytes", "memory.max")
MEMORY_SOFT = Knob("memory", "memory.soft_limit_in_bytes", "memory.low")
MEMORY_SWAP = Knob("memory", "memory.memsw.limit_in_bytes", "memory.swap.max")
SWAPPINESS = Knob("memory", "memory.swappiness", None)
OOM_CONTROL = Knob("memory", "memory.oom_control", "memory.events")


@pytest.mark.requirement("RT-CG-MEM-1")
@MAPPING
@given(limit=st.integers(16 * MiB, 4096 * MiB))
def test_the_memory_limit_is_the_cgroup_limit(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, limit: int
) -> None:
    config = config_of({"memory": {"limit": limit}})
    with limited_container(container_factory, tmp_path, rootfs, config) as handle:
        (seen,) = observe(handle, [MEMORY_LIMIT])
    seen.check("the memory limit", pages(limit), pages(limit))


@pytest.mark.requirement("RT-CG-MEM-4")
def test_a_memory_value_of_minus_one_is_unlimited(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path
) -> None:
    """The container joins a memory cgroup the test limited first (cgroupsPath), so -1
    must lift the limits: a runtime that ignored -1 would leave them."""
    adapter = container_factory.adapter
    docker_lacks(adapter, "a memory limit of -1 (the Engine says 0) and linux.cgroupsPath")
    needs(adapter, HOST_PID, HOST_KERNEL)
    prefix = container_factory.ledger.unique_name("pc")
    config = config_of({"memory": {"limit": -1, "reservation": -1, "swap": -1}})
    config["linux"]["cgroupsPath"] = f"/{prefix}"
    with removing_cgroups([prefix]):
        _limit_memory_cgroup(prefix, 64 * MiB)
        with limited_container(container_factory, tmp_path, rootfs, config) as handle:
            limit, soft, swap = observe(handle, [MEMORY_LIMIT, MEMORY_SOFT, MEMORY_SWAP])
    unlimited = v1_unlimited()
    limit.check("memory.limit -1", unlimited, "max")
    soft.check("memory.reservation -1", unlimited, "max")
    if swap.values:
        swap.check("memory.swap -1", unlimited, "max")


def _limit_memory_cgroup(name: str, limit: int) -> None:
    """Make memory cgroup /NAME with a limit, a soft limit and a swap limit."""
    v1, unified = cgroup_mounts()
    if "memory" in v1:
        directory = under(v1["memory"], f"/{name}")
        writes = [("memory.limit_in_bytes", limit), ("memory.memsw.limit_in_bytes", limit)]
        writes.append(("memory.soft_limit_in_bytes", limit // 2))
    elif unified is not None and "memory" in v2_controllers():
        directory = under(unified, f"/{name}")
        writes = [("memory.max", limit), ("memory.swap.max", 0), ("memory.low", limit // 2)]
    else:
        not_applicable("this host has no memory controller")
    directory.mkdir()
    limited = False
    for file, value in writes:
        if (directory / file).exists():
            (directory / file).write_text(str(value))
            limited = True
    if not limited:
        not_applicable(f"{directory} has no memory files: the controller is not enabled there")


@pytest.mark.requirement("RT-CG-MEM-2")
@MAPPING
@given(reservation=st.integers(8 * MiB, 1024 * MiB))
def test_the_memory_reservation_is_the_soft_limit(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, reservation: int
) -> None:
    config = config_of({"memory": {"limit": 2048 * MiB, "reservation": reservation}})
    with limited_container(container_factory, tmp_path, rootfs, config) as handle:
        (seen,) = observe(handle, [MEMORY_SOFT])
    seen.check("the memory reservation", pages(reservation), pages(reservation))


@pytest.mark.requirement("RT-CG-MEM-3")
@MAPPING
@given(limit=st.integers(16 * MiB, 512 * MiB), extra=st.integers(0, 512 * MiB))
def test_the_memory_swap_is_the_memory_and_swap_limit(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, limit: int, extra: int
) -> None:
    limit = limit // PAGE * PAGE
    swap = limit + extra // PAGE * PAGE
    config = config_of({"memory": {"limit": limit, "swap": swap}})
    with limited_container(container_factory, tmp_path, rootfs, config) as handle:
        (seen,) = observe(handle, [MEMORY_SWAP])
    absent(seen, container_factory.adapter, "this kernel has no swap accounting (no memsw file)")
    seen.check("memory plus swap", str(swap), str(swap - limit))


@pytest.mark.requirement("RT-CG-MEM-5")
@MAPPING
@given(swappiness=st.integers(0, 100))
def test_the_swappiness_is_the_cgroup_swappiness(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, swappiness: int
) -> None:
    adapter = container_factory.adapter
    docker_lacks(adapter, "memory.swappiness")
    if "memory" not in cgroup_mounts()[0]:
        not_applicable("the memory controller is on cgroup v2, which has no swappiness file")
    config = config_of({"memory": {"swappiness": swappiness}})
    with limited_container(container_factory, tmp_path, rootfs, config) as handle:
        (seen,) = observe(handle, [SWAPPINESS])
    seen.check("the swappiness", str(swappiness), None)


def _oom_kills(seen: Seen) -> dict[str, int]:
    counts = {}
    for view, (_, text) in seen.values.items():
        match = re.search(r"\boom_kill (\d+)", text)
        if match:
            counts[view] = int(match.group(1))
    return counts


@pytest.mark.requirement("RT-CG-MEM-6", "RT-OWN-MEM-OOM-1")
@BEHAVIOUR
@given(limit_mib=st.integers(32, 96))
def test_a_process_past_the_memory_limit_is_oom_killed_and_one_below_survives(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, limit_mib: int
) -> None:
    """dd's buffer is ``bs`` bytes, all of it written: half the limit fits, the limit
    plus 16 MiB does not. The kernel reports the kill in the cgroup's oom_kill count."""
    limit = limit_mib * MiB
    resources: dict[str, Any] = {"memory": {"limit": limit}}
    if _host_has_swap():
        resources["memory"]["swap"] = limit  # no swap: the allocation cannot escape
    with limited_container(container_factory, tmp_path, rootfs, config_of(resources)) as handle:
        (before,) = observe(handle, [OOM_CONTROL])
        below = _exec(handle, ["dd", "if=/dev/zero", "of=/dev/null", f"bs={limit // 2}", "count=1"])
        beyond = _exec(
            handle, ["dd", "if=/dev/zero", "of=/dev/null", f"bs={limit + 16 * MiB}", "count=1"]
        )
        status = handle.status
        (after,) = observe(handle, [OOM_CONTROL]) if status == "running" else (Seen({}),)
    assert below.exit_code == 0, f"a process below the limit failed: {below}"
    assert status == "running", f"the container died with the process past the limit: {beyond}"
    assert beyond.exit_code == 128 + 9, f"a process past the limit was not SIGKILLed: {beyond}"
    kills_before, kills_after = _oom_kills(before), _oom_kills(after)
    for view, count in kills_after.items():
        assert count > kills_before.get(view, 0), f"the cgroup's oom_kill count ({view})"


def _exec(handle: Container, argv: Sequence[str]) -> ExecResult:
    """``handle.exec``; a runtime's failure to run or wait for it is exit status -1."""
    try:
        return handle.exec(argv)
    except RuntimeCommandError as exc:
        return ExecResult(-1, "", f"exec failed: {exc.runtime_message}")


def _host_has_swap() -> bool:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("SwapTotal:"):
            return int(line.split()[1]) > 0
    return False


@pytest.mark.requirement("RT-CG-MEM-7")
@COSTLY
@given(limit_mib=st.integers(16, 64))
def test_with_the_oom_killer_disabled_a_process_past_the_limit_waits(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, limit_mib: int
) -> None:
    """Past the limit, a process faulting in memory is not killed but waits (v1
    ``under_oom 1``). Everything in the cgroup that allocates would wait too, so the
    host watches and kills it. cgroup v2 cannot disable the OOM killer."""
    adapter = container_factory.adapter
    docker_lacks(adapter, "disableOOMKiller")
    limit = limit_mib * MiB
    memory: dict[str, Any] = {"limit": limit, "disableOOMKiller": True}
    if _host_has_swap():
        memory["swap"] = limit
    # awk fills its string in user space: the faults are the process's own (a read()
    # into a buffer would fault in the kernel, which fails short instead of waiting)
    hog = ["awk", f'BEGIN {{ s = sprintf("%{limit + 16 * MiB}s", ""); print length(s) }}']
    config = config_of({"memory": memory})
    with limited_container(
        container_factory, tmp_path, rootfs, config, "disableOOMKiller"
    ) as handle:
        (control,) = observe(handle, [Knob("memory", "memory.oom_control", None)])
        absent(control, adapter, "no memory.oom_control: cgroup v2 cannot disable the OOM killer")
        for view, (_, text) in control.values.items():
            assert "oom_kill_disable 1" in text, f"memory.oom_control seen from {view}"
        if not host_view(adapter):
            not_applicable(f"{adapter.name}: the host cannot watch the container's cgroup")
        directory = host_cgroups(handle.pid)["memory"]
        result: list[Any] = []
        worker = threading.Thread(target=lambda: result.append(handle.exec(hog)), daemon=True)
        worker.start()
        try:
            held = _wait_until(
                lambda: "under_oom 1" in (directory / "memory.oom_control").read_text()
            )
            hogs = [p for p in cgroup_procs(directory) if _comm(p) == "awk"]
        finally:
            for pid in cgroup_procs(directory):
                if _comm(pid) == "awk":
                    with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
                        os.kill(pid, 9)
            worker.join(30)
        (after,) = observe(handle, [Knob("memory", "memory.oom_control", None)])
    assert held, "the process past the limit was not held (under_oom never 1)"
    assert hogs, "the process past the limit was gone while the cgroup was under OOM"
    assert result and result[0].exit_code == 128 + 9, f"the test's SIGKILL ended it: {result}"
    assert _oom_kills(after) == dict.fromkeys(after.values, 0), f"the OOM killer ran: {after}"


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except FileNotFoundError:  # exited meanwhile
        return ""


def _wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
