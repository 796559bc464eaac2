"""Resource limits of the process (config.md#posix-process, rlimits): getrlimit returns
the configured soft and hard values.

Each example runs one container whose program reports about itself (``_process``).
"""

from __future__ import annotations

import resource
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_containers.runtime import ContainerFactory

from ._examples import FIRST_FAILURE
from ._process import (
    RLIM_INFINITY,
    furnished_rootfs,  # noqa: F401 (the module's rootfs fixture)  # noqa: F401 (the module's rootfs fixture)
    have_sys_resource,
    process_config,
    run_config,
)


@dataclass(frozen=True)
class Rlimit:
    """One ``process.rlimits`` entry."""

    type: str
    soft: int
    hard: int

    def as_config(self) -> dict[str, Any]:
        return {"type": self.type, "soft": self.soft, "hard": self.hard}


# type -> (kernel number, busybox ulimit option, its unit in bytes or counts, lowest soft,
# highest hard): the bounds keep the shell itself working (files, stack, output size).
_RLIMITS = {
    "RLIMIT_CPU": (0, "-t", 1, 300, 1 << 31),
    "RLIMIT_FSIZE": (1, "-f", 512, 1 << 22, 1 << 42),
    "RLIMIT_DATA": (2, "-d", 1024, 1 << 29, 1 << 42),
    "RLIMIT_STACK": (3, "-s", 1024, 1 << 21, 1 << 32),
    "RLIMIT_CORE": (4, "-c", 512, 0, 1 << 40),
    "RLIMIT_RSS": (5, "-m", 1024, 0, 1 << 40),
    "RLIMIT_NPROC": (6, "-u", 1, 64, 1 << 31),
    "RLIMIT_NOFILE": (7, "-n", 1, 64, 1 << 20),
    "RLIMIT_MEMLOCK": (8, "-l", 1024, 0, 1 << 40),
    "RLIMIT_AS": (9, "-v", 1024, 1 << 31, 1 << 46),
    "RLIMIT_LOCKS": (10, "-x", 1, 0, 1 << 31),
    "RLIMIT_SIGPENDING": (11, "-i", 1, 64, 1 << 20),
    "RLIMIT_MSGQUEUE": (12, "-q", 1, 0, 1 << 30),
    "RLIMIT_NICE": (13, "-e", 1, 0, 40),
    "RLIMIT_RTPRIO": (14, "-r", 1, 0, 99),
}


def _hard_ceiling(kind: str) -> int:
    """The highest hard value a runtime started by this process can set: without
    CAP_SYS_RESOURCE, no hard limit can be raised above the one it inherits from us."""
    number, _, _, _, high = _RLIMITS[kind]
    if kind == "RLIMIT_NOFILE":
        high = min(high, int(Path("/proc/sys/fs/nr_open").read_text()))
    if have_sys_resource():
        return RLIM_INFINITY
    own = resource.getrlimit(number)[1]
    return RLIM_INFINITY if own == resource.RLIM_INFINITY else min(own, high)


@st.composite
def _rlimit(draw: st.DrawFn, kind: str, infinity: bool) -> Rlimit:
    _, _, unit, low, high = _RLIMITS[kind]
    ceiling = _hard_ceiling(kind)
    high = min(high, ceiling)
    low = min(low, high)
    units = st.integers(-(-low // unit), high // unit).map(lambda n: n * unit)
    if infinity and ceiling == RLIM_INFINITY:
        units = units | st.just(RLIM_INFINITY)
    hard = draw(units)
    soft_values = st.integers(-(-low // unit), min(hard, high) // unit).map(lambda n: n * unit)
    soft = draw(soft_values | st.just(hard))
    return Rlimit(kind, soft, hard)


@st.composite
def _rlimit_lists(draw: st.DrawFn, infinity: bool) -> list[Rlimit]:
    """Every type, each with its own values: one container checks them all."""
    return [draw(_rlimit(kind, infinity)) for kind in sorted(_RLIMITS)]


@pytest.mark.requirement("RT-PROC-RLIMIT-2", "RT-PROC-RLIMIT-3")
@FIRST_FAILURE
@given(data=st.data())
def test_getrlimit_returns_the_configured_soft_and_hard_values(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, data: st.DataObject
) -> None:
    """The shell's ``ulimit`` builtin is getrlimit(2) in the container process itself.
    Hard values stay within what a runtime started by this process can set."""
    # docker's ulimits are int64: the adapter cannot say RLIM_INFINITY
    infinity = container_factory.adapter.name != "docker"
    rlimits = data.draw(_rlimit_lists(infinity), label="rlimits")
    lines = []
    for limit in rlimits:
        option = _RLIMITS[limit.type][1]
        lines.append(f"echo {limit.type} $(ulimit -S {option}) $(ulimit -H {option})")
    config = process_config(["sh", "-c", "; ".join([*lines, "exit 0"])])
    config["process"]["rlimits"] = [limit.as_config() for limit in rlimits]
    ran = run_config(container_factory, tmp_path, rootfs, config)
    assert ran.status == 0, ran.stderr
    expected = [f"{r.type} {_in_units(r, r.soft)} {_in_units(r, r.hard)}" for r in rlimits]
    assert ran.text.splitlines() == expected, "getrlimit (soft, hard) in the process"


def _in_units(limit: Rlimit, value: int) -> str:
    return "unlimited" if value == RLIM_INFINITY else str(value // _RLIMITS[limit.type][2])
