"""What cgroup v2 brings that v1 lacks, on the real kernel: the reference runtime's v2
manager, a container's cgroup namespace and the ``cgroup_budget`` fixture.

Only on a host whose one cgroup hierarchy is cgroup2, unified at /sys/fs/cgroup (the
cgroup v2 lane boots such a guest: ``scripts/cgroup2-lane``); skipped elsewhere, with
the reason. Every cgroup is made under a unique ``/pc-v2-<pid>-<n>`` that the
``v2_path`` fixture kills and removes afterwards, even when the test fails.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from pytest_containers.cgroups import CgroupBudgetFactory
from reference_runtime.cgroups import (
    Layout,
    V2Manager,
    detect_layout,
    discover_mounts,
    validate_resources,
)
from reference_runtime.cgroups import cpu as cgroup_cpu
from reference_runtime.cgroups import fs as cgroup_fs
from reference_runtime.cgroups import tree as cgroup_tree
from reference_runtime.errors import CgroupError, ConfigError, UnsupportedError

MIB = 1 << 20
NOBODY = 65534


def _unified_root() -> str | None:
    """The cgroup2 mount point when it is the host's only cgroup hierarchy."""
    try:
        if detect_layout() is not Layout.V2:
            return None
    except CgroupError:
        return None
    return discover_mounts().v2


ROOT = _unified_root()
pytestmark = [
    pytest.mark.needs_root,
    pytest.mark.skipif(
        ROOT is None,
        reason="needs a unified cgroup2 hierarchy (cgroup v2 only); run scripts/cgroup2-lane",
    ),
]
_serial = itertools.count()


@pytest.fixture
def v2_path() -> Iterator[Callable[[], str]]:
    """A factory of unique top-level cgroup paths; everything under them is removed after."""
    made: list[str] = []

    def make() -> str:
        made.append(f"pc-v2-{os.getpid()}-{next(_serial)}")
        return "/" + made[-1]

    yield make
    assert ROOT is not None
    for top in (os.path.join(ROOT, name) for name in made):
        cgroup_tree.kill_all([top])
        for directory in cgroup_tree.subtree(top):
            os.rmdir(directory)


@pytest.fixture
def started() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """``start(argv, join=manager)``: a process born in ``manager``'s cgroup; killed after."""
    procs: list[subprocess.Popen[str]] = []

    def start(argv: Sequence[str], join: V2Manager | None = None) -> subprocess.Popen[str]:
        preexec = None if join is None else (lambda: join.add(os.getpid()))
        proc = subprocess.Popen(
            list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            preexec_fn=preexec,
        )  # fmt: skip
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def _read(manager: V2Manager, name: str) -> str:
    return Path(manager.directory, name).read_text().strip()


def _keyed(manager: V2Manager, name: str) -> dict[str, int]:
    return cgroup_fs.read_keyed(os.path.join(manager.directory, name)) or {}


def _made(path: str, resources: dict[str, Any] | None = None) -> V2Manager:
    assert ROOT is not None
    manager = V2Manager(path, ROOT)
    manager.create(resources or {})
    return manager


# ------------------------------------------------------------------ memory


def test_memory_max_kills_past_the_limit_and_memory_events_counts_it(
    v2_path: Callable[[], str], started: Callable[..., subprocess.Popen[str]]
) -> None:
    manager = _made(v2_path(), {"memory": {"limit": 32 * MIB, "swap": 32 * MIB}})
    assert _read(manager, "memory.max") == str(32 * MIB)
    if os.path.exists(os.path.join(manager.directory, "memory.swap.max")):
        assert _read(manager, "memory.swap.max") == "0"  # OCI swap is memory+swap
    greedy = started(["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"], join=manager)
    assert greedy.wait(120) == -signal.SIGKILL
    events = _keyed(manager, "memory.events")
    assert events["oom_kill"] >= 1 and events["max"] >= 1, events
    assert manager.stats().oom_kills == events["oom_kill"]
    modest = started(["dd", "if=/dev/zero", "of=/dev/null", "bs=8M", "count=1"], join=manager)
    assert modest.wait(120) == 0
    manager.destroy()


def test_memory_high_from_unified_throttles_without_killing(
    v2_path: Callable[[], str], started: Callable[..., subprocess.Popen[str]]
) -> None:
    manager = _made(v2_path(), {"unified": {"memory.high": str(16 * MIB)}})
    assert (_read(manager, "memory.high"), _read(manager, "memory.max")) == (str(16 * MIB), "max")
    over = started(["dd", "if=/dev/zero", "of=/dev/null", "bs=18M", "count=1"], join=manager)
    assert over.wait(120) == 0  # memory.high is never a hard limit
    events = _keyed(manager, "memory.events")
    assert events["high"] >= 1 and events["oom_kill"] == 0, events
    manager.destroy()


def test_unified_keys_are_checked_and_refused_off_v2(v2_path: Callable[[], str]) -> None:
    manager = V2Manager(v2_path(), ROOT or "/sys/fs/cgroup")
    with pytest.raises(ConfigError, match="not a limit"):
        manager.validate({"unified": {"cgroup.procs": "1"}})
    with pytest.raises(ConfigError, match="cgroup2 file name"):
        manager.validate({"unified": {"../memory.max": "1"}})
    with pytest.raises(UnsupportedError, match="needs cgroup v2 only"):
        validate_resources({"unified": {"memory.high": "1"}}, Layout.HYBRID)
    made = _made(v2_path(), {"unified": {"pids.max": "7", "cgroup.max.depth": "2"}})
    assert (_read(made, "pids.max"), _read(made, "cgroup.max.depth")) == ("7", "2")
    made.destroy()


# ------------------------------------------------------------------ pids and cpu


def test_pids_max_refuses_forks_and_pids_events_counts_them(
    v2_path: Callable[[], str], started: Callable[..., subprocess.Popen[str]]
) -> None:
    manager = _made(v2_path(), {"pids": {"limit": 4}})
    assert _read(manager, "pids.max") == "4"
    forker = started(
        ["sh", "-c", "for i in 1 2 3 4 5 6 7 8; do sleep 1 & done 2>/dev/null; wait"],
        join=manager,
    )
    forker.communicate(timeout=120)
    assert _keyed(manager, "pids.events")["max"] >= 1
    assert manager.stats().pids_limit == 4
    manager.destroy()


def test_cpu_max_and_weight_throttle_a_busy_loop_as_cpu_stat_reports(
    v2_path: Callable[[], str], started: Callable[..., subprocess.Popen[str]]
) -> None:
    quota, period = 20_000, 100_000
    manager = _made(v2_path(), {"cpu": {"shares": 2048, "quota": quota, "period": period}})
    assert _read(manager, "cpu.max") == f"{quota} {period}"
    assert _read(manager, "cpu.weight") == str(cgroup_cpu.shares_to_weight(2048))
    begin = time.monotonic()
    spinner = started(["timeout", "1.5", "sh", "-c", "while :; do :; done"], join=manager)
    spinner.wait(120)
    wall = time.monotonic() - begin
    stat = _keyed(manager, "cpu.stat")
    assert stat["nr_throttled"] > 0 and stat["throttled_usec"] > 0, stat
    # At most 20% of one CPU over the wall time, give or take a period either side.
    assert stat["usage_usec"] <= (quota / period) * wall * 1e6 + 2 * period, (stat, wall)
    usage = manager.stats()
    assert usage.cpu_nr_throttled == stat["nr_throttled"]
    manager.destroy()


# ------------------------------------------------------------------ the tree's rules


def test_no_internal_processes_a_busy_parent_refuses_a_limited_child(
    v2_path: Callable[[], str], started: Callable[..., subprocess.Popen[str]]
) -> None:
    top = v2_path()
    parent = _made(top)
    sleeper = started(["sleep", "60"], join=parent)
    child = V2Manager(f"{top}/leaf", parent.mountpoint)
    # Enabling memory (a domain controller) for the child's sake would make the parent
    # both hold a process and distribute it, which the kernel refuses.
    with pytest.raises(CgroupError, match=r"cgroup\.subtree_control.*\(EBUSY\)"):
        child.create({"memory": {"limit": 64 * MIB}})
    assert child.created == [] and not os.path.exists(child.directory)
    # pids is a threaded controller, which the rule does not cover...
    _made(f"{top}/pids", {"pids": {"limit": 5}}).destroy()
    # ...but now the busy parent counts as a thread root: no domain controller below it.
    with pytest.raises(CgroupError, match=r"cgroup\.subtree_control.*\(ENOTSUP\)"):
        child.create({"memory": {"limit": 64 * MIB}})
    assert child.created == [] and not os.path.exists(child.directory)
    assert parent.pids() == [sleeper.pid]
    parent.destroy()
    assert sleeper.wait(10) == -signal.SIGKILL

    # The other way round: a parent that distributes memory admits no process.
    other = v2_path()
    leaf = _made(f"{other}/leaf", {"memory": {"limit": 64 * MIB}})
    joined = V2Manager(other, leaf.mountpoint)
    lone = started(["sleep", "60"])
    with pytest.raises(CgroupError, match=r"cgroup\.procs.*\(EBUSY\)"):
        joined.add(lone.pid)
    leaf.destroy()


def test_destroy_kills_and_removes_threaded_sub_cgroups(
    v2_path: Callable[[], str], started: Callable[..., subprocess.Popen[str]]
) -> None:
    manager = _made(v2_path(), {"pids": {"limit": 20}})
    code = (
        "import threading, time\n"
        "t = threading.Thread(target=time.sleep, args=(60,), daemon=True)\n"
        "t.start()\nprint(t.native_id, flush=True)\nt.join()\n"
    )
    proc = started([sys.executable, "-c", code], join=manager)
    assert proc.stdout is not None
    tid = int(proc.stdout.readline())
    threaded = os.path.join(manager.directory, "workers")
    os.mkdir(threaded)
    Path(threaded, "cgroup.type").write_text("threaded")
    Path(threaded, "cgroup.threads").write_text(str(tid))
    assert _read(manager, "cgroup.type") == "domain threaded"
    with pytest.raises(OSError):  # the kernel lists no processes in a threaded cgroup
        Path(threaded, "cgroup.procs").read_text()
    assert manager.pids() == [proc.pid]
    manager.destroy()
    assert proc.wait(10) == -signal.SIGKILL
    assert not os.path.exists(threaded) and not os.path.exists(manager.directory)


# ------------------------------------------------------------------ delegation


def test_a_delegated_subtree_is_managed_by_its_non_root_owner(
    v2_path: Callable[[], str], started: Callable[..., subprocess.Popen[str]]
) -> None:
    top = v2_path()
    delegated = _made(top, {"pids": {"limit": 20}})  # pids is enabled at the root
    home = _made(f"{top}/home")
    delegated.delegate(NOBODY, NOBODY)
    d = delegated.directory
    script = (
        f"mkdir {d}/sub && echo +pids > {d}/cgroup.subtree_control && "
        f"echo 3 > {d}/sub/pids.max && echo $$ > {d}/sub/cgroup.procs && "
        "cat /proc/self/cgroup; "
        f"(echo 100 > {d}/pids.max) 2>/dev/null && echo limit-written || echo limit-denied; "
        f"(echo $$ > {delegated.mountpoint}/cgroup.procs) 2>/dev/null && echo out || echo kept-in"
    )

    def as_nobody() -> None:  # in the child: join the delegated home, then drop root
        home.add(os.getpid())
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)

    proc = subprocess.run(
        ["sh", "-c", script], preexec_fn=as_nobody, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [f"0::{top}/sub", "limit-denied", "kept-in"], proc.stdout
    assert os.stat(f"{d}/sub").st_uid == NOBODY
    assert (_read(delegated, "pids.max"), Path(d, "sub", "pids.max").read_text().strip()) == (
        "20",
        "3",
    )
    delegated.destroy()  # takes the delegatee's sub-cgroups too
    assert not os.path.exists(d)


# ------------------------------------------------------------------ inside a container


def test_the_cgroup_namespace_shows_only_the_containers_own_cgroup(
    busybox_bundle: Callable[..., Path], run_capture: Callable[[Path], tuple[int, str]]
) -> None:
    def limits(config: dict[str, Any]) -> None:
        config["linux"]["resources"].update(memory={"limit": 48 * MIB}, pids={"limit": 20})

    script = (
        "cat /proc/self/cgroup; cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max;"
        " echo dirs=$(find /sys/fs/cgroup -mindepth 1 -type d | wc -l);"
        ' awk \'$5 == "/sys/fs/cgroup" { for (i = 7; i <= NF; i++) if ($i == "-")'
        " print $4, $(i + 1) }' /proc/self/mountinfo"
    )
    code, out = run_capture(busybox_bundle(["sh", "-c", script], edit=limits))
    assert code == 0, out
    lines = out.split("\n")
    assert lines[:4] == ["0::/", str(48 * MIB), "20", "dirs=0"], out
    assert lines[4] == "/ cgroup2", out  # the namespace's root, and no v1 hierarchy


# ------------------------------------------------------------------ the fixture


def test_a_budget_is_one_cgroup2_directory(cgroup_budget: CgroupBudgetFactory) -> None:
    budget = cgroup_budget(memory="40M", pids=9, cpu=0.5)
    directory = budget.path("memory")
    assert {budget.path(c) for c in ("pids", "cpu")} == {directory}
    assert budget.paths() == {"": directory}
    values = {n: Path(directory, n).read_text().strip() for n in ("memory.max", "pids.max")}
    assert values == {"memory.max": str(40 * MIB), "pids.max": "9"}
    assert Path(directory, "cpu.max").read_text().split() == ["50000", "100000"]
    parent = Path(directory).parent / "cgroup.subtree_control"
    assert {"memory", "pids", "cpu"} <= set(parent.read_text().split())
    with contextlib.suppress(FileNotFoundError):  # no swap accounting: nothing to limit
        assert Path(directory, "memory.swap.max").read_text().strip() == "0"
    budget.close()
    assert not os.path.exists(directory)
