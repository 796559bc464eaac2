"""The pids limit (config-linux.md#pids): it is the cgroup's pids.max, and forks
beyond it fail while the running processes stay.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_containers.runtime import ContainerFactory

from ._cgroups import Knob, cgroup_procs, host_cgroups, host_view, observe
from ._limits import BEHAVIOUR, MAPPING, config_of, limited_container

PIDS_MAX = Knob("pids", "pids.max", "pids.max")


@pytest.mark.requirement("RT-CG-PIDS-1")
@MAPPING
@given(limit=st.integers(8, 1 << 16))
def test_the_pids_limit_is_the_cgroup_pids_max(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, limit: int
) -> None:
    with limited_container(
        container_factory, tmp_path, rootfs, config_of({"pids": {"limit": limit}})
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
    config = config_of({"pids": {"limit": limit}})
    with limited_container(container_factory, tmp_path, rootfs, config) as handle:
        ran = handle.exec(["sh", "-c", outer, "outer", spawner])
        host = host_cgroups(handle.pid) if host_view(adapter) else {}
        # init and every sleeper (some may not have exec'd sleep yet: count them all)
        procs = len(cgroup_procs(host["pids"])) if "pids" in host else None
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
