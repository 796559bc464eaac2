"""CPU limits (config-linux.md#cpu): shares, quota and period, burst, realtime
bandwidth, idle and cpusets, seen from the host and from inside; a busy process under a
CPU quota gets no more CPU time than the quota allows and the cgroup reports throttling.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_containers.adapters import HOST_KERNEL, require
from pytest_containers.adapters.handle import Container
from pytest_containers.requirements import not_applicable
from pytest_containers.runtime import ContainerFactory

from ._cgroups import Knob, absent, host_cgroups, host_view, observe
from ._limits import COSTLY, MAPPING, config_of, limited_container
from ._support import docker_lacks, expressible

CPU_SHARES = Knob("cpu", "cpu.shares", "cpu.weight")
CPU_QUOTA = Knob("cpu", "cpu.cfs_quota_us", "cpu.max")
CPU_PERIOD = Knob("cpu", "cpu.cfs_period_us", "cpu.max")
CPU_BURST = Knob("cpu", "cpu.cfs_burst_us", "cpu.max.burst")
CPU_IDLE = Knob("cpu", "cpu.idle", "cpu.idle")
RT_RUNTIME = Knob("cpu", "cpu.rt_runtime_us", None)
RT_PERIOD = Knob("cpu", "cpu.rt_period_us", None)
CPUSET_CPUS = Knob("cpuset", "cpuset.cpus", "cpuset.cpus")
CPUSET_MEMS = Knob("cpuset", "cpuset.mems", "cpuset.mems")


def _weights(shares: int) -> set[str]:
    """cpu.weight for cpu.shares: the spec names no formula; these are runc's and crun's,
    the linear one of runc 1.x and the quadratic one crun and runc adopted later."""
    shares = min(max(shares, 2), 262144)
    linear = 1 + ((shares - 2) * 9999) // 262142
    if shares == 2:
        return {str(linear), "1"}
    exponent = (math.log10(shares) ** 2 + 125 * math.log10(shares)) / 612.0 - 7.0 / 34.0
    return {str(linear), str(math.ceil(10**exponent))}


@pytest.mark.requirement("RT-CG-CPU-1")
@MAPPING
@given(shares=st.sampled_from([2, 1024, 262144]) | st.integers(2, 262144))
def test_cpu_shares_are_the_cgroup_shares(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, shares: int
) -> None:
    config = config_of({"cpu": {"shares": shares}})
    with limited_container(container_factory, tmp_path, rootfs, config) as handle:
        (seen,) = observe(handle, [CPU_SHARES])
    for view, (layout, value) in list(seen.values.items()):
        if layout == "v2":
            assert value.strip() in _weights(shares), f"cpu.weight for shares {shares} ({view})"
            seen.values.pop(view)
    if seen.values:
        seen.check("cpu.shares", str(shares), None)


@pytest.mark.requirement("RT-CG-CPU-2")
@MAPPING
@given(
    period=st.integers(1000, 1_000_000),
    quota=st.sampled_from([-1]) | st.integers(1000, 4_000_000),
)
def test_cpu_quota_and_period_are_the_cgroup_bandwidth(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, period: int, quota: int
) -> None:
    config = config_of({"cpu": {"quota": quota, "period": period}})
    with limited_container(container_factory, tmp_path, rootfs, config) as handle:
        seen_quota, seen_period = observe(handle, [CPU_QUOTA, CPU_PERIOD])
    v2 = f"{'max' if quota == -1 else quota} {period}"
    seen_quota.check("cpu quota", str(quota), v2)
    seen_period.check("cpu period", str(period), v2)


def _cpu_time(handle: Container, host: dict[str, Path]) -> float:
    """Seconds of CPU the container's cgroup has used (host view), or its init (inside)."""
    if "cpuacct" in host:
        return int((host["cpuacct"] / "cpuacct.usage").read_text()) / 1e9
    if "" in host and (host[""] / "cpu.stat").exists():
        for line in (host[""] / "cpu.stat").read_text().splitlines():
            if line.startswith("usage_usec "):
                return int(line.split()[1]) / 1e6
    ran = handle.exec(["cat", "/proc/1/stat"])
    fields = ran.stdout[ran.stdout.rindex(")") + 2 :].split()
    return (int(fields[14 - 3]) + int(fields[15 - 3])) / os.sysconf("SC_CLK_TCK")


def _throttled(text: str) -> int:
    match = re.search(r"\bnr_throttled (\d+)", text)
    return int(match.group(1)) if match else -1


@dataclass(frozen=True)
class Bandwidth:
    """``linux.resources.cpu``: ``quota`` microseconds of CPU in every ``period``."""

    quota: int
    period: int


@st.composite
def _bandwidths(draw: st.DrawFn) -> Bandwidth:
    period = draw(st.integers(20_000, 200_000))
    share = draw(st.floats(0.1, 0.5))
    return Bandwidth(max(1000, round(share * period)), period)


@pytest.mark.requirement("RT-OWN-CPU-THROTTLE-1")
@COSTLY
@given(bandwidth=_bandwidths())
def test_a_busy_process_gets_no_more_cpu_than_the_quota(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, bandwidth: Bandwidth
) -> None:
    """The container's process spins; over a window of several periods it may use at
    most the quota of each period it touches, plus the scheduler's 5 ms slice per CPU
    (or 2 clock ticks where only the process's own times can be read)."""
    adapter = container_factory.adapter
    with expressible():  # elsewhere the CPU times are the runtime's own accounting
        require(adapter, HOST_KERNEL)
    cpu = {"quota": bandwidth.quota, "period": bandwidth.period}
    config = config_of({"cpu": cpu}, ["sh", "-c", "while :; do :; done"])
    window = max(0.4, 4 * bandwidth.period / 1e6)
    with limited_container(container_factory, tmp_path, rootfs, config) as handle:
        host = host_cgroups(handle.pid) if host_view(adapter) else {}
        (stat_before,) = observe(handle, [Knob("cpu", "cpu.stat", "cpu.stat")])
        used_before, started = _cpu_time(handle, host), time.monotonic()
        time.sleep(window)
        used_after, ended = _cpu_time(handle, host), time.monotonic()
        (stat_after,) = observe(handle, [Knob("cpu", "cpu.stat", "cpu.stat")])
    wall = ended - started
    used = used_after - used_before
    periods = wall / (bandwidth.period / 1e6) + 1
    slack = 0.005 * (os.cpu_count() or 1) if host else 2 / os.sysconf("SC_CLK_TCK")
    allowed = periods * bandwidth.quota / 1e6 + slack
    assert 0 < used <= allowed, (
        f"{used:.3f}s of CPU in {wall:.3f}s under {bandwidth}: at most {allowed:.3f}s allowed"
    )
    if not stat_after.values:
        not_applicable("the CPU time was within the quota, but no view shows cpu.stat")
    for view, (_, text) in stat_after.values.items():
        before = _throttled(stat_before.values.get(view, ("", ""))[1])
        assert _throttled(text) > max(before, 0), f"cpu.stat nr_throttled ({view})"


@pytest.mark.requirement("RT-CG-CPU-3")
@MAPPING
@given(data=st.data())
def test_cpu_burst_is_the_cgroup_burst(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, data: st.DataObject
) -> None:
    docker_lacks(container_factory.adapter, "cpu.burst")
    quota = data.draw(st.integers(10_000, 200_000), label="quota")
    burst = data.draw(st.integers(0, quota), label="burst")
    config = config_of({"cpu": {"quota": quota, "period": 100_000, "burst": burst}})
    with limited_container(container_factory, tmp_path, rootfs, config, "cpu.burst") as handle:
        (seen,) = observe(handle, [CPU_BURST])
    seen.check("cpu burst", str(burst), str(burst))


@pytest.mark.requirement("RT-CG-CPU-4")
@MAPPING
@given(period=st.integers(100_000, 1_000_000), runtime_us=st.integers(1000, 10_000))
def test_realtime_runtime_and_period_are_the_cgroup_rt_bandwidth(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, period: int, runtime_us: int
) -> None:
    docker_lacks(container_factory.adapter, "cpu.realtimeRuntime")
    config = config_of({"cpu": {"realtimePeriod": period, "realtimeRuntime": runtime_us}})
    with limited_container(container_factory, tmp_path, rootfs, config, "cpu.realtime*") as handle:
        seen_runtime, seen_period = observe(handle, [RT_RUNTIME, RT_PERIOD])
    absent(seen_runtime, container_factory.adapter, "no cpu.rt_runtime_us (cgroup v2 has none)")
    seen_runtime.check("realtime runtime", str(runtime_us), None)
    seen_period.check("realtime period", str(period), None)


@pytest.mark.requirement("RT-CG-CPU-5")
def test_cpu_idle_makes_the_cgroup_idle(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path
) -> None:
    docker_lacks(container_factory.adapter, "cpu.idle")
    config = config_of({"cpu": {"idle": 1}})
    with limited_container(container_factory, tmp_path, rootfs, config, "cpu.idle") as handle:
        (seen,) = observe(handle, [CPU_IDLE])
    absent(seen, container_factory.adapter, "this kernel has no cpu.idle file (Linux < 5.15)")
    seen.check("cpu.idle", "1", "1")


def _cpu_list(cpus: Sequence[int]) -> str:
    """The kernel's form of a CPU list: ascending, with ranges."""
    parts: list[str] = []
    for cpu in sorted(cpus):
        if parts and parts[-1].split("-")[-1] == str(cpu - 1):
            parts[-1] = f"{parts[-1].split('-')[0]}-{cpu}"
        else:
            parts.append(str(cpu))
    return ",".join(parts)


def _online(name: str) -> list[int]:
    text = Path(f"/sys/devices/system/{name}/online").read_text().strip()
    numbers: list[int] = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        numbers.extend(range(int(low), int(high or low) + 1))
    return numbers


@st.composite
def _cpu_list_spellings(draw: st.DrawFn, available: Sequence[int]) -> str:
    """A non-empty subset of ``available``, spelt with commas and ranges in any order."""
    chosen = sorted(draw(st.sets(st.sampled_from(available), min_size=1)))
    runs: list[list[int]] = []
    for cpu in chosen:
        if runs and runs[-1][-1] == cpu - 1 and draw(st.booleans()):
            runs[-1].append(cpu)
        else:
            runs.append([cpu])
    parts = [str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs]
    return ",".join(draw(st.permutations(parts)))


@pytest.mark.requirement("RT-CG-CPUSET-1")
@MAPPING
@given(data=st.data())
def test_cpus_restrict_the_container_to_those_cpus(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, data: st.DataObject
) -> None:
    available = os.sched_getaffinity(0)
    spelling = data.draw(_cpu_list_spellings(sorted(available)), label="cpus")
    expected = _cpu_list([int(n) for part in spelling.split(",") for n in _expand(part)])
    config = config_of({"cpu": {"cpus": spelling}})
    with limited_container(container_factory, tmp_path, rootfs, config) as handle:
        (seen,) = observe(handle, [CPUSET_CPUS])
        inside = handle.exec(
            ["sh", "-c", "echo nproc $(nproc); grep Cpus_allowed_list /proc/1/status"]
        )
    if seen.values:
        seen.check("cpuset.cpus", expected, expected)
    said = {}
    for line in inside.stdout.splitlines():  # "nproc 2", "Cpus_allowed_list:\t0-1"
        key, _, value = line.replace(":", " ").partition(" ")
        said[key] = value.strip()
    count = str(len(_expand_list(expected)))
    assert said.get("nproc") == count, f"nproc inside: {inside}"
    allowed = said.get("Cpus_allowed_list")
    if allowed is None:
        assert HOST_KERNEL in container_factory.adapter.unsupported, (
            f"no Cpus_allowed_list: {inside}"
        )
    elif HOST_KERNEL in container_factory.adapter.unsupported:  # its own CPU numbers
        assert str(len(_expand_list(allowed))) == count, "Cpus_allowed_list inside"
    else:
        assert allowed == expected, "the CPUs the container's process may run on"


def _expand(part: str) -> list[int]:
    low, _, high = part.partition("-")
    return list(range(int(low), int(high or low) + 1))


def _expand_list(text: str) -> list[int]:
    return [n for part in text.split(",") for n in _expand(part)]


@pytest.mark.requirement("RT-CG-CPUSET-2")
@MAPPING
@given(data=st.data())
def test_mems_restrict_the_container_to_those_memory_nodes(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, data: st.DataObject
) -> None:
    nodes = _online("node")
    if len(nodes) < 2:
        not_applicable(
            f"this host has {len(nodes)} memory node: a mems list cannot differ from the default"
        )
    spelling = data.draw(_cpu_list_spellings(nodes), label="mems")
    expected = _cpu_list(_expand_list(spelling))
    config = config_of({"cpu": {"mems": spelling}})
    with limited_container(container_factory, tmp_path, rootfs, config) as handle:
        (seen,) = observe(handle, [CPUSET_MEMS])
        status = handle.exec(["grep", "Mems_allowed_list", "/proc/1/status"])
    if seen.values:
        seen.check("cpuset.mems", expected, expected)
    assert status.stdout.split()[-1] == expected, "the memory nodes of the container's process"
