"""Resource limits (config-linux.md#control-groups and the sections after it): what the
container's cgroup says, seen from the host and from inside, and what the limits do to
the processes in it.

The host finds the container's cgroup through ``/proc/PID/cgroup`` of its process
(``HOST_PID``) and the host's mount table, and reads the v1 file or the v2 file of each
setting, whichever layout the container is on; the container reads its own cgroup
files under /sys/fs/cgroup (its cgroup namespace root). A setting is checked in every
view that exists; a runtime whose cgroup files no view can reach makes the test not
applicable, never passed.

Behaviour: a process allocating past the memory limit is OOM-killed and one below it
survives; forks beyond pids.max fail while the running processes stay; a busy process
under a CPU quota gets no more CPU time than the quota allows and the cgroup reports
throttling. Values are chosen by Hypothesis; settings a runtime may lack (burst, idle,
realtime, block I/O, huge pages, net_cls, unified) make the test not applicable when the
runtime refuses them with an error (config.md#valid-values) and fail it when the runtime
accepts them and they are not in the cgroup.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from pytest_containers.adapters import (
    HOST_KERNEL,
    HOST_PID,
    USER_NAMESPACE,
    ExecResult,
    RuntimeAdapter,
    bundle_config,
    require,
)
from pytest_containers.adapters.handle import Container
from pytest_containers.errors import ContainersError, RuntimeCommandError
from pytest_containers.requirements import not_applicable
from pytest_containers.runtime import ContainerFactory

from ._support import expressible

# Every example makes a container: shrinking a failure would cost tens of seconds of
# containers for little gain, so failures are reported as generated.
FIRST_FAILURE = settings(phases=[Phase.explicit, Phase.reuse, Phase.generate])


def _share(fraction: float) -> settings:
    """A share of the profile's examples (``ci`` 5, ``thorough`` 60), at least one."""
    return settings(FIRST_FAILURE, max_examples=max(1, round(settings().max_examples * fraction)))


# How a setting maps to its cgroup file rarely depends on the value: 2 examples in ci.
MAPPING = _share(0.4)
# Workloads under a limit (OOM, forks): 3 in ci.
BEHAVIOUR = _share(0.6)
# Workloads that run for a while (a CPU quota window, a stalled OOM): 1 in ci.
COSTLY = _share(0.2)

MiB = 1 << 20
PAGE = os.sysconf("SC_PAGE_SIZE")
V1_CONTROLLERS = frozenset(
    {"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "net_cls", "net_prio"}
    | {"blkio", "perf_event", "hugetlb", "pids", "rdma", "misc"}
)

# --------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def rootfs(
    container_factory: ContainerFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """One root filesystem for the module's bundles, named by absolute path
    (config.md#root); configs keep ``root.readonly``."""
    base = tmp_path_factory.mktemp("rootfs")
    yield container_factory.make_bundle(base) / "rootfs"
    shutil.rmtree(base, ignore_errors=True)


# --------------------------------------------------------------------- containers


def _docker_lacks(adapter: RuntimeAdapter, what: str) -> None:
    """The docker adapter turns config.json into Engine options (adapters/engine.py) and
    has none for ``what``: it would silently run without it."""
    __tracebackhide__ = True
    if adapter.name == "docker":
        not_applicable(f"docker: the adapter hands the Engine no option for {what}")


def _config(resources: dict[str, Any], command: Sequence[str] = ("sleep", "600")) -> dict[str, Any]:
    config = bundle_config(command)
    config["linux"]["resources"].update(resources)
    return config


@contextlib.contextmanager
def _running(
    factory: ContainerFactory,
    directory: Path,
    rootfs: Path,
    config: dict[str, Any],
    optional: str = "",
) -> Iterator[Container]:
    """A started container of ``config``, deleted afterwards. With ``optional``, the
    setting it names may be one a runtime lacks: a refusal makes the test not applicable
    (config.md#valid-values asks such a runtime for an error), with the runtime's words."""
    __tracebackhide__ = True
    config["root"]["path"] = str(rootfs)
    bundle = Path(tempfile.mkdtemp(prefix="bundle-", dir=directory))
    (bundle / "config.json").write_text(json.dumps(config))
    try:
        with expressible():
            try:
                handle = factory.make_container(directory, bundle=bundle)
            except RuntimeCommandError as exc:
                if not optional:
                    raise
                not_applicable(f"{factory.adapter.name} refuses {optional}: {exc.runtime_message}")
        try:
            yield handle
        finally:
            _stop(handle)
            factory.remove(handle)
    finally:
        shutil.rmtree(bundle)


def _stop(handle: Container) -> None:
    """SIGKILL and reap the container's process: a runtime deletes a stopped container
    much faster than it force-deletes a running one (runc: 20 ms against 120 ms)."""
    with contextlib.suppress(ContainersError, TimeoutError):  # stopped or gone already
        handle.kill(9)
        handle.wait(5)


def _host_view(adapter: RuntimeAdapter) -> bool:
    return HOST_PID not in adapter.unsupported and HOST_KERNEL not in adapter.unsupported


# --------------------------------------------------------------------- cgroup files


@dataclass(frozen=True)
class Knob:
    """One cgroup setting by its file name on cgroup v1 and on v2 (None: no such file)."""

    controller: str
    v1: str | None
    v2: str | None


def _mounts() -> tuple[dict[str, tuple[str, str]], tuple[str, str] | None]:
    """The host's cgroup mounts: v1 controller -> (mount point, root), and cgroup2's."""
    v1: dict[str, tuple[str, str]] = {}
    unified = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            dash = fields.index("-")
            fstype, options = fields[dash + 1], fields[dash + 3]
            if fstype == "cgroup":
                for option in options.split(","):
                    if option in V1_CONTROLLERS or option.startswith("name="):
                        v1.setdefault(option, (fields[4], fields[3]))
            elif fstype == "cgroup2" and unified is None:
                unified = (fields[4], fields[3])
    return v1, unified


def _under(mount: tuple[str, str], path: str) -> Path:
    point, root = mount
    relative = path[len(root) :] if root != "/" and path.startswith(root) else path
    return Path(point, relative.lstrip("/"))


def host_cgroups(pid: int) -> dict[str, Path]:
    """Controller -> the host directory of ``pid``'s cgroup ("" for its cgroup2 one)."""
    v1, unified = _mounts()
    dirs = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        number, controllers, path = line.split(":", 2)
        if number == "0" and not controllers:
            if unified is not None:
                dirs[""] = _under(unified, path)
            continue
        for controller in controllers.split(","):
            if controller in v1:
                dirs[controller] = _under(v1[controller], path)
    return dirs


def v2_controllers() -> set[str]:
    """The controllers this host's cgroup2 hierarchy carries (none on a v1 host)."""
    _, unified = _mounts()
    if unified is None:
        return set()
    return set(Path(unified[0], "cgroup.controllers").read_text().split())


@dataclass
class Seen:
    """One setting as each view saw it: layout ("v1"/"v2") and value, by view."""

    values: dict[str, tuple[str, str]]  # view -> (layout, value)

    def check(self, what: str, v1: str | None, v2: str | None) -> None:
        __tracebackhide__ = True
        if not self.values:
            not_applicable(f"neither the host nor the container can read {what} here")
        for view, (layout, value) in self.values.items():
            expected = v1 if layout == "v1" else v2
            assert expected is not None, f"{what}: cgroup {layout} has no such file ({view})"
            seen = " ".join(value.split())
            assert seen == expected, (
                f"{what} seen from {view} ({layout}): {seen!r}, not {expected!r}"
            )


def observe(handle: Container, knobs: Sequence[Knob]) -> list[Seen]:
    """Each knob's file, read from the host (where it can see) and from inside."""
    adapter = handle.adapter
    host: dict[str, Path] = host_cgroups(handle.pid) if _host_view(adapter) else {}
    carried = v2_controllers()
    seen = [Seen({}) for _ in knobs]
    for knob, result in zip(knobs, seen, strict=True):
        if knob.controller in host and knob.v1:
            with contextlib.suppress(FileNotFoundError):  # not on this kernel
                result.values["host"] = ("v1", (host[knob.controller] / knob.v1).read_text())
        elif "" in host and knob.v2 and knob.controller in carried:
            with contextlib.suppress(FileNotFoundError):
                result.values["host"] = ("v2", (host[""] / knob.v2).read_text())
    # one exec reads every candidate file inside: "PATH=VALUE" per readable file
    candidates = []
    for knob in knobs:
        if knob.v1:
            candidates.append(f"/sys/fs/cgroup/{knob.controller}/{knob.v1}")
        if knob.v2:
            candidates.append(f"/sys/fs/cgroup/{knob.v2}")
    script = 'for f; do v=$(cat "$f" 2>/dev/null) && echo "$f=$v" | tr "\\n" " " && echo; done'
    inside = handle.exec(["sh", "-c", script, "sh", *candidates])
    found = dict(line.partition("=")[::2] for line in inside.stdout.splitlines() if "=" in line)
    for knob, result in zip(knobs, seen, strict=True):
        v1_path = f"/sys/fs/cgroup/{knob.controller}/{knob.v1}"
        if knob.v1 and v1_path in found:
            result.values["inside"] = ("v1", found[v1_path])
        elif knob.v2 and f"/sys/fs/cgroup/{knob.v2}" in found:
            result.values["inside"] = ("v2", found[f"/sys/fs/cgroup/{knob.v2}"])
    return seen


def _absent(seen: Seen, adapter: RuntimeAdapter, reason: str) -> None:
    """Nothing was read: the kernel lacks the file (``reason``), or no view reaches it."""
    __tracebackhide__ = True
    if seen.values:
        return
    if _host_view(adapter):
        not_applicable(reason)
    not_applicable(f"{adapter.name}: neither the host nor the container can read the cgroup files")


def _pages(value: int) -> str:
    """A byte limit as the kernel keeps it: rounded down to whole pages."""
    return str(value // PAGE * PAGE)


def _v1_unlimited() -> str:
    """What cgroup v1 shows for "no memory limit" (PAGE_COUNTER_MAX pages)."""
    v1, _ = _mounts()
    if "memory" not in v1:
        return "9223372036854771712"
    return Path(v1["memory"][0], "memory.limit_in_bytes").read_text().strip()


# --------------------------------------------------------------------- memory

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
    config = _config({"memory": {"limit": limit}})
    with _running(container_factory, tmp_path, rootfs, config) as handle:
        (seen,) = observe(handle, [MEMORY_LIMIT])
    seen.check("the memory limit", _pages(limit), _pages(limit))


@pytest.mark.requirement("RT-CG-MEM-4")
def test_a_memory_value_of_minus_one_is_unlimited(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path
) -> None:
    """The container joins a memory cgroup the test limited first (cgroupsPath), so -1
    must lift the limits: a runtime that ignored -1 would leave them."""
    adapter = container_factory.adapter
    _docker_lacks(adapter, "a memory limit of -1 (the Engine says 0) and linux.cgroupsPath")
    with expressible():
        require(adapter, HOST_PID)
        require(adapter, HOST_KERNEL)
    prefix = container_factory.ledger.unique_name("pc")
    config = _config({"memory": {"limit": -1, "reservation": -1, "swap": -1}})
    config["linux"]["cgroupsPath"] = f"/{prefix}"
    with _removing_cgroups([prefix]):
        _limit_memory_cgroup(prefix, 64 * MiB)
        with _running(container_factory, tmp_path, rootfs, config) as handle:
            limit, soft, swap = observe(handle, [MEMORY_LIMIT, MEMORY_SOFT, MEMORY_SWAP])
    unlimited = _v1_unlimited()
    limit.check("memory.limit -1", unlimited, "max")
    soft.check("memory.reservation -1", unlimited, "max")
    if swap.values:
        swap.check("memory.swap -1", unlimited, "max")


def _limit_memory_cgroup(name: str, limit: int) -> None:
    """Make memory cgroup /NAME with a limit, a soft limit and a swap limit."""
    v1, unified = _mounts()
    if "memory" in v1:
        directory = _under(v1["memory"], f"/{name}")
        writes = [("memory.limit_in_bytes", limit), ("memory.memsw.limit_in_bytes", limit)]
        writes.append(("memory.soft_limit_in_bytes", limit // 2))
    elif unified is not None and "memory" in v2_controllers():
        directory = _under(unified, f"/{name}")
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
    config = _config({"memory": {"limit": 2048 * MiB, "reservation": reservation}})
    with _running(container_factory, tmp_path, rootfs, config) as handle:
        (seen,) = observe(handle, [MEMORY_SOFT])
    seen.check("the memory reservation", _pages(reservation), _pages(reservation))


@pytest.mark.requirement("RT-CG-MEM-3")
@MAPPING
@given(limit=st.integers(16 * MiB, 512 * MiB), extra=st.integers(0, 512 * MiB))
def test_the_memory_swap_is_the_memory_and_swap_limit(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, limit: int, extra: int
) -> None:
    limit = limit // PAGE * PAGE
    swap = limit + extra // PAGE * PAGE
    config = _config({"memory": {"limit": limit, "swap": swap}})
    with _running(container_factory, tmp_path, rootfs, config) as handle:
        (seen,) = observe(handle, [MEMORY_SWAP])
    _absent(seen, container_factory.adapter, "this kernel has no swap accounting (no memsw file)")
    seen.check("memory plus swap", str(swap), str(swap - limit))


@pytest.mark.requirement("RT-CG-MEM-5")
@MAPPING
@given(swappiness=st.integers(0, 100))
def test_the_swappiness_is_the_cgroup_swappiness(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, swappiness: int
) -> None:
    adapter = container_factory.adapter
    _docker_lacks(adapter, "memory.swappiness")
    if "memory" not in _mounts()[0]:
        not_applicable("the memory controller is on cgroup v2, which has no swappiness file")
    config = _config({"memory": {"swappiness": swappiness}})
    with _running(container_factory, tmp_path, rootfs, config) as handle:
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
    with _running(container_factory, tmp_path, rootfs, _config(resources)) as handle:
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
    _docker_lacks(adapter, "disableOOMKiller")
    limit = limit_mib * MiB
    memory: dict[str, Any] = {"limit": limit, "disableOOMKiller": True}
    if _host_has_swap():
        memory["swap"] = limit
    # awk fills its string in user space: the faults are the process's own (a read()
    # into a buffer would fault in the kernel, which fails short instead of waiting)
    hog = ["awk", f'BEGIN {{ s = sprintf("%{limit + 16 * MiB}s", ""); print length(s) }}']
    config = _config({"memory": memory})
    with _running(container_factory, tmp_path, rootfs, config, "disableOOMKiller") as handle:
        (control,) = observe(handle, [Knob("memory", "memory.oom_control", None)])
        _absent(control, adapter, "no memory.oom_control: cgroup v2 cannot disable the OOM killer")
        for view, (_, text) in control.values.items():
            assert "oom_kill_disable 1" in text, f"memory.oom_control seen from {view}"
        if not _host_view(adapter):
            not_applicable(f"{adapter.name}: the host cannot watch the container's cgroup")
        directory = host_cgroups(handle.pid)["memory"]
        result: list[Any] = []
        worker = threading.Thread(target=lambda: result.append(handle.exec(hog)), daemon=True)
        worker.start()
        try:
            held = _wait_until(
                lambda: "under_oom 1" in (directory / "memory.oom_control").read_text()
            )
            hogs = [p for p in _procs(directory) if _comm(p) == "awk"]
        finally:
            for pid in _procs(directory):
                if _comm(pid) == "awk":
                    with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
                        os.kill(pid, 9)
            worker.join(30)
        (after,) = observe(handle, [Knob("memory", "memory.oom_control", None)])
    assert held, "the process past the limit was not held (under_oom never 1)"
    assert hogs, "the process past the limit was gone while the cgroup was under OOM"
    assert result and result[0].exit_code == 128 + 9, f"the test's SIGKILL ended it: {result}"
    assert _oom_kills(after) == dict.fromkeys(after.values, 0), f"the OOM killer ran: {after}"


def _listed(directory: Path) -> list[str]:
    """The PIDs in a cgroup, or [] when the directory is gone."""
    try:
        return (directory / "cgroup.procs").read_text().split()
    except FileNotFoundError:  # removed: it lists nobody
        return []


def _procs(directory: Path) -> list[int]:
    return [int(p) for p in (directory / "cgroup.procs").read_text().split()]


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


# --------------------------------------------------------------------- cpu

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
    config = _config({"cpu": {"shares": shares}})
    with _running(container_factory, tmp_path, rootfs, config) as handle:
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
    config = _config({"cpu": {"quota": quota, "period": period}})
    with _running(container_factory, tmp_path, rootfs, config) as handle:
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
    config = _config({"cpu": cpu}, ["sh", "-c", "while :; do :; done"])
    window = max(0.4, 4 * bandwidth.period / 1e6)
    with _running(container_factory, tmp_path, rootfs, config) as handle:
        host = host_cgroups(handle.pid) if _host_view(adapter) else {}
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
    _docker_lacks(container_factory.adapter, "cpu.burst")
    quota = data.draw(st.integers(10_000, 200_000), label="quota")
    burst = data.draw(st.integers(0, quota), label="burst")
    config = _config({"cpu": {"quota": quota, "period": 100_000, "burst": burst}})
    with _running(container_factory, tmp_path, rootfs, config, "cpu.burst") as handle:
        (seen,) = observe(handle, [CPU_BURST])
    seen.check("cpu burst", str(burst), str(burst))


@pytest.mark.requirement("RT-CG-CPU-4")
@MAPPING
@given(period=st.integers(100_000, 1_000_000), runtime_us=st.integers(1000, 10_000))
def test_realtime_runtime_and_period_are_the_cgroup_rt_bandwidth(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, period: int, runtime_us: int
) -> None:
    _docker_lacks(container_factory.adapter, "cpu.realtimeRuntime")
    config = _config({"cpu": {"realtimePeriod": period, "realtimeRuntime": runtime_us}})
    with _running(container_factory, tmp_path, rootfs, config, "cpu.realtime*") as handle:
        seen_runtime, seen_period = observe(handle, [RT_RUNTIME, RT_PERIOD])
    _absent(seen_runtime, container_factory.adapter, "no cpu.rt_runtime_us (cgroup v2 has none)")
    seen_runtime.check("realtime runtime", str(runtime_us), None)
    seen_period.check("realtime period", str(period), None)


@pytest.mark.requirement("RT-CG-CPU-5")
def test_cpu_idle_makes_the_cgroup_idle(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path
) -> None:
    _docker_lacks(container_factory.adapter, "cpu.idle")
    config = _config({"cpu": {"idle": 1}})
    with _running(container_factory, tmp_path, rootfs, config, "cpu.idle") as handle:
        (seen,) = observe(handle, [CPU_IDLE])
    _absent(seen, container_factory.adapter, "this kernel has no cpu.idle file (Linux < 5.15)")
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
    config = _config({"cpu": {"cpus": spelling}})
    with _running(container_factory, tmp_path, rootfs, config) as handle:
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
    config = _config({"cpu": {"mems": spelling}})
    with _running(container_factory, tmp_path, rootfs, config) as handle:
        (seen,) = observe(handle, [CPUSET_MEMS])
        status = handle.exec(["grep", "Mems_allowed_list", "/proc/1/status"])
    if seen.values:
        seen.check("cpuset.mems", expected, expected)
    assert status.stdout.split()[-1] == expected, "the memory nodes of the container's process"


# --------------------------------------------------------------------- pids

PIDS_MAX = Knob("pids", "pids.max", "pids.max")


@pytest.mark.requirement("RT-CG-PIDS-1")
@MAPPING
@given(limit=st.integers(8, 1 << 16))
def test_the_pids_limit_is_the_cgroup_pids_max(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, limit: int
) -> None:
    with _running(
        container_factory, tmp_path, rootfs, _config({"pids": {"limit": limit}})
    ) as handle:
        (seen,) = observe(handle, [PIDS_MAX])
    seen.check("pids.max", str(limit), str(limit))


@pytest.mark.requirement("RT-OWN-PIDS-FORK-1")
@BEHAVIOUR
@given(limit=st.integers(8, 16))
def test_forks_beyond_the_pids_limit_fail_and_the_running_processes_stay(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, limit: int
) -> None:
    """An exec'd shell starts a spawner shell, which forks sleepers until a fork fails
    (busybox sh then exits) and counts the processes after each fork with a glob, which
    needs no fork. The outer shell then counts what is left and reads pids.current,
    with builtins only: the cgroup was full when the fork failed, less the spawner."""
    adapter = container_factory.adapter
    attempts = limit + 4
    spawner = (
        # the sleepers must not hold exec's stdout, or an exec through pipes never ends
        f"i=0; while [ $i -lt {attempts} ]; do sleep 600 </dev/null >/dev/null 2>&1 & "
        "i=$((i+1)); "
        'set -- /proc/[0-9]*; echo "live $#"; done; echo "forked all"'
    )
    outer = (
        'sh -c "$1"; echo "spawner $?"; set -- /proc/[0-9]*; echo "after $#"; '
        "for f in /sys/fs/cgroup/pids/pids.current /sys/fs/cgroup/pids.current; do "
        '[ -r $f ] && read c < $f && echo "current $c"; done; exit 0'
    )
    config = _config({"pids": {"limit": limit}})
    with _running(container_factory, tmp_path, rootfs, config) as handle:
        ran = handle.exec(["sh", "-c", outer, "outer", spawner])
        host = host_cgroups(handle.pid) if _host_view(adapter) else {}
        # init and every sleeper (some may not have exec'd sleep yet: count them all)
        procs = len(_procs(host["pids"])) if "pids" in host else None
        status = handle.status
    lines = ran.stdout.splitlines()
    live = [int(line.split()[1]) for line in lines if line.startswith("live ")]
    after = [int(line.split()[1]) for line in lines if line.startswith("after ")]
    current = [int(line.split()[1]) for line in lines if line.startswith("current ")]
    assert "forked all" not in lines, f"{attempts} forks all succeeded under pids.max {limit}"
    assert any(line.startswith("spawner ") and line != "spawner 0" for line in lines), ran
    assert live and max(live) <= limit, f"more than {limit} processes ran: {live}"
    if current:
        # the spawner's forks went on until the cgroup was full; it has since exited
        assert current == [limit - 1], f"pids.current after the failed fork: {current}"
    else:  # no view of pids.current: the container's init, two shells, maybe one helper
        assert len(live) >= limit - 4, f"forks below the limit failed: {len(live)} succeeded"
    assert after == [live[-1] - 1], f"running processes went away: {live[-1]} -> {after}"
    if procs is not None:
        assert procs == len(live) + 1, f"the sleepers and the init seen from the host: {procs}"
    assert status == "running", "the container's own process did not survive"


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
    _docker_lacks(container_factory.adapter, "blockIO.weight")
    v1, _ = _mounts()
    names = [
        f
        for f in ("blkio.weight", "blkio.bfq.weight")
        if "blkio" in v1 and Path(v1["blkio"][0], f).exists()
    ]
    if not names and not ({"io"} & v2_controllers()):
        not_applicable("this host has no block I/O weight file (no BFQ or CFQ scheduler)")
    config = _config({"blockIO": {"weight": weight}})
    with _running(container_factory, tmp_path, rootfs, config, "blockIO.weight") as handle:
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
    _docker_lacks(container_factory.adapter, "blockIO.throttle*")
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
    with _running(
        container_factory, tmp_path, rootfs, _config({"blockIO": blkio}), "blockIO"
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
    _docker_lacks(adapter, "hugepageLimits")
    sizes = _hugepage_sizes()
    if not sizes:
        not_applicable("this kernel has no huge pages")
    name, size = data.draw(st.sampled_from(sizes), label="pageSize")
    limit = data.draw(st.integers(0, 64), label="pages") * size
    config = _config({"hugepageLimits": [{"pageSize": name, "limit": limit}]})
    with _running(container_factory, tmp_path, rootfs, config, "hugepageLimits") as handle:
        if not _host_view(adapter):
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
    _docker_lacks(adapter, "network.classID")
    network = {"classID": class_id, "priorities": [{"name": "lo", "priority": priority}]}
    config = _config({"network": network})
    with _running(container_factory, tmp_path, rootfs, config, "network") as handle:
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
    _docker_lacks(adapter, "unified")
    if _mounts()[1] is None:
        not_applicable("this host has no cgroup2 hierarchy")
    unified = {"cgroup.max.descendants": str(descendants), "cgroup.max.depth": str(depth)}
    config = _config({"unified": unified})
    with _running(container_factory, tmp_path, rootfs, config, "unified") as handle:
        seen = observe(
            handle,
            [
                Knob("unified", None, "cgroup.max.descendants"),
                Knob("unified", None, "cgroup.max.depth"),
            ],
        )
        host = host_cgroups(handle.pid) if _host_view(adapter) else {}
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
    _docker_lacks(adapter, "unified")
    carried = v2_controllers()
    sizes = _hugepage_sizes()
    key, value = ("pids.max", "77") if "pids" in carried else ("", "")
    if not key and "hugetlb" in carried and sizes:
        key, value = f"hugetlb.{sizes[0][0]}.max", str(3 * sizes[0][1])
    if not key:
        not_applicable("this host's cgroup2 hierarchy carries neither pids nor hugetlb")
    config = _config({"unified": {key: value}})
    with _running(container_factory, tmp_path, rootfs, config, f"unified {key}") as handle:
        if not _host_view(adapter):
            not_applicable(f"{adapter.name}: the host cannot see the container's cgroups")
        host = host_cgroups(handle.pid)
        assert "" in host, (
            f"{adapter.name} accepted unified {key} but put the container in no cgroup2 cgroup"
        )
        assert (host[""] / key).exists(), (
            f"{key.split('.')[0]} is not enabled for the container's cgroup"
        )
        assert (host[""] / key).read_text().strip() == value, f"{key} (host)"


# --------------------------------------------------------------------- cgroupsPath


def _resource_hierarchies(host: dict[str, Path]) -> dict[str, Path]:
    """The hierarchies that carry resource controllers: the v1 ones (not name=...), or
    cgroup2 where the host has no v1 controller."""
    v1 = {c: d for c, d in host.items() if c in V1_CONTROLLERS}
    return v1 or {k: d for k, d in host.items() if k == ""}


@contextlib.contextmanager
def _removing_cgroups(names: Sequence[str]) -> Iterator[None]:
    """Remove, at the end, any directory named in ``names`` that a runtime left in a
    cgroup hierarchy (deepest first; only empty ones, which is all a runtime leaves)."""
    try:
        yield
    finally:
        v1, unified = _mounts()
        points = {m[0] for m in v1.values()} | ({unified[0]} if unified else set())
        for point in points:
            for directory, _, _ in sorted(os.walk(point), key=lambda d: -d[0].count("/")):
                if set(names) & set(Path(directory).parts):
                    with contextlib.suppress(OSError):  # busy, or gone already
                        os.rmdir(directory)


@st.composite
def _cgroups_paths(draw: st.DrawFn, prefix: str) -> str:
    depth = draw(st.integers(1, 3))
    names = [prefix] + [
        draw(st.from_regex(r"[a-z][a-z0-9_-]{0,7}", fullmatch=True)) for _ in range(depth - 1)
    ]
    return "/" + "/".join(names)


def _mount_of(controller: str) -> tuple[str, str]:
    v1, unified = _mounts()
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
    _docker_lacks(adapter, "linux.cgroupsPath")
    with expressible():
        require(adapter, HOST_PID)
        require(adapter, HOST_KERNEL)
    prefix = container_factory.ledger.unique_name("pc")
    path = data.draw(_cgroups_paths(prefix), label="cgroupsPath")
    config = _config({})
    config["linux"]["cgroupsPath"] = path
    with _removing_cgroups([prefix]):
        bases = {
            c: _under(_mount_of(c), path) for c in _resource_hierarchies(host_cgroups(os.getpid()))
        }
        existing = [str(d) for d in bases.values() if d.exists()]
        assert not existing, f"{path} exists before the test: {existing}"
        with _running(container_factory, tmp_path, rootfs, config) as handle:
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
    _docker_lacks(adapter, "linux.cgroupsPath")
    with expressible():
        require(adapter, HOST_PID)
        require(adapter, HOST_KERNEL)
    prefix = container_factory.ledger.unique_name("pc")
    path = data.draw(_cgroups_paths(prefix), label="cgroupsPath")
    if data.draw(st.booleans(), label="relative"):
        path = path.lstrip("/")
    placements = []
    with _removing_cgroups([prefix]):
        for _ in range(2):
            config = _config({})
            config["linux"]["cgroupsPath"] = path
            with _running(container_factory, tmp_path, rootfs, config) as handle:
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
    _docker_lacks(adapter, "linux.cgroupsPath")
    with expressible():
        require(adapter, HOST_PID)
        require(adapter, HOST_KERNEL)
    prefix = factory.ledger.unique_name("pc")
    config = _config({})
    config["linux"]["cgroupsPath"] = f"/{prefix}/shared"
    second_config = json.loads(json.dumps(config))
    with (
        _removing_cgroups([prefix]),
        _running(factory, directory, rootfs, config) as first,
    ):
        cgroups = _resource_hierarchies(host_cgroups(first.pid))
        with contextlib.ExitStack() as stack:
            second: Container | str
            try:
                second = stack.enter_context(_running(factory, directory, rootfs, second_config))
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
        listed = {c: _listed(d) for c, d in cgroups.items()}
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
        _stop(second)
        container_factory.remove(second)
        status = first.status
        listed = {c: _listed(d) for c, d in cgroups.items()}
    assert status == "running", "deleting the second container stopped the first"
    for controller, members in listed.items():
        assert pid in members, f"{controller or 'cgroup2'}: the first process left its cgroup"


# --------------------------------------------------------------------- ownership


def _userns_config(cgroupns: bool) -> dict[str, Any]:
    config = _config({})
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
    with expressible():
        require(adapter, USER_NAMESPACE)
        require(adapter, HOST_PID)
        require(adapter, HOST_KERNEL)
    # a rootfs the mapped root can reach: pytest's own temporary directories are 0700
    base = Path(tempfile.mkdtemp(prefix="userns-", dir=container_factory.base))
    os.chmod(base, 0o755)
    try:
        shared_rootfs = container_factory.make_bundle(base) / "rootfs"
        owners = {}
        for cgroupns in (True, False):
            config = _userns_config(cgroupns)
            with _running(
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
