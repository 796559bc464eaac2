"""The rest of the process settings (config.md#linux-process, #posix-process): the OOM
score adjustment, the scheduler, the I/O priority, the personality, a console size
without a terminal, and the open descriptors.

Each example runs one container whose program reports about itself (``_process``).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_containers.adapters import HOST_KERNEL, HOST_PID
from pytest_containers.errors import RuntimeCommandError
from pytest_containers.requirements import not_applicable
from pytest_containers.runtime import ContainerFactory

from ._examples import FEWER
from ._process import (
    READ,
    furnished_rootfs,  # noqa: F401 (the module's rootfs fixture)
    have_sys_resource,
    process_config,
    run_config,
    run_optional,
    write_bundle,
)
from ._support import docker_lacks, expressible

# --------------------------------------------------------------------- OOM score


@pytest.mark.requirement("RT-PROC-OOM-1")
@FEWER
@given(data=st.data())
def test_oom_score_adj_is_the_configured_value(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, data: st.DataObject
) -> None:
    """Without CAP_SYS_RESOURCE no runtime can go below the value it inherits from us,
    so the values start there."""
    low = -1000 if have_sys_resource() else int(Path("/proc/self/oom_score_adj").read_text())
    adj = data.draw(st.sampled_from([low, 1000]) | st.integers(low, 1000), label="adj")
    config = process_config(["sh", "-c", READ.format("oom_score_adj") + "; exit 0"])
    config["process"]["oomScoreAdj"] = adj
    ran = run_config(container_factory, tmp_path, rootfs, config)
    assert ran.status == 0, ran.stderr
    assert ran.text == f"{adj}\n", "/proc/PID/oom_score_adj"


@pytest.mark.requirement("RT-PROC-OOM-2")
def test_oom_score_adj_is_left_alone_when_not_configured(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path
) -> None:
    """The container process inherits the runtime's oom_score_adj, which inherits ours:
    make ours unusual for the length of the test."""
    docker_lacks(container_factory.adapter, "leaving oomScoreAdj unset (the Engine sets one)")
    mine = Path("/proc/self/oom_score_adj")
    saved = mine.read_text()
    config = process_config(["sh", "-c", READ.format("oom_score_adj") + "; exit 0"])
    config["process"].pop("oomScoreAdj", None)
    try:
        mine.write_text("317")
        ran = run_config(container_factory, tmp_path, rootfs, config)
    finally:
        mine.write_text(saved)
    assert ran.status == 0, ran.stderr
    assert ran.text == "317\n", "the runtime changed oom_score_adj it was not asked to set"


# --------------------------------------------------------------------- scheduling

_POLICIES = {"SCHED_OTHER": 0, "SCHED_BATCH": 3, "SCHED_IDLE": 5}


@dataclass(frozen=True)
class Scheduler:
    """``process.scheduler``: a policy of the fair class, with a nice value."""

    policy: str
    nice: int = 0

    def as_config(self) -> dict[str, Any]:
        return {"policy": self.policy, "nice": self.nice}


@pytest.mark.requirement("RT-PROC-SCHED-1")
@FEWER
@given(scheduler=st.builds(Scheduler, st.sampled_from(sorted(_POLICIES)), st.integers(0, 19)))
def test_the_process_runs_with_the_configured_scheduler(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, scheduler: Scheduler
) -> None:
    docker_lacks(container_factory.adapter, "process.scheduler")
    config = process_config(["sh", "-c", READ.format("stat") + "; exit 0"])
    config["process"]["scheduler"] = scheduler.as_config()
    ran = run_optional(container_factory, tmp_path, rootfs, config, "process.scheduler")
    assert ran.status == 0, ran.stderr
    fields = ran.text[ran.text.rindex(")") + 2 :].split()  # from field 3, state
    policy, nice = int(fields[41 - 3]), int(fields[19 - 3])
    assert policy == _POLICIES[scheduler.policy], "the scheduling policy (/proc/PID/stat)"
    if scheduler.policy != "SCHED_IDLE":  # the kernel keeps no nice value for SCHED_IDLE
        assert nice == scheduler.nice, "the nice value (/proc/PID/stat)"


@dataclass(frozen=True)
class IoPriority:
    """``process.ioPriority``."""

    cls: str
    priority: int = 0

    def as_config(self) -> dict[str, Any]:
        return {"class": self.cls, "priority": self.priority}


_IO_CLASSES = {"IOPRIO_CLASS_BE": "best-effort", "IOPRIO_CLASS_IDLE": "idle"}


@pytest.mark.requirement("RT-PROC-IOPRIO-1")
@FEWER
@given(
    io=st.builds(IoPriority, st.just("IOPRIO_CLASS_BE"), st.integers(0, 7))
    | st.builds(IoPriority, st.just("IOPRIO_CLASS_IDLE"), st.just(0))
)
def test_the_process_runs_with_the_configured_io_priority(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, io: IoPriority
) -> None:
    docker_lacks(container_factory.adapter, "process.ioPriority")
    config = process_config(["sh", "-c", "ionice -p $$; exit 0"])
    config["process"]["ioPriority"] = io.as_config()
    ran = run_optional(container_factory, tmp_path, rootfs, config, "process.ioPriority")
    assert ran.status == 0, ran.stderr
    seen_class, _, seen_priority = ran.text.strip().partition(": prio ")
    assert seen_class == _IO_CLASSES[io.cls], f"the I/O class (ionice says {ran.text!r})"
    if io.cls == "IOPRIO_CLASS_BE":
        assert seen_priority == str(io.priority), f"the I/O priority (ionice says {ran.text!r})"


_32_BIT = {"x86_64": ("i686", "i386"), "aarch64": ("armv8l", "armv7l"), "s390x": ("s390",)}


@pytest.mark.requirement("RT-PROC-PERSONALITY-1")
def test_linux32_personality_reports_a_32_bit_machine(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path
) -> None:
    docker_lacks(container_factory.adapter, "linux.personality")
    machine = os.uname().machine
    if machine not in _32_BIT:
        not_applicable(f"this host is {machine}, which has no 32-bit personality known here")
    seen = {}
    for domain in ("LINUX", "LINUX32"):
        config = process_config(["sh", "-c", "uname -m; exit 0"])
        config["linux"]["personality"] = {"domain": domain}
        ran = run_optional(container_factory, tmp_path, rootfs, config, "linux.personality")
        assert ran.status == 0, ran.stderr
        seen[domain] = ran.text.strip()
    assert seen["LINUX"] == machine, "uname -m with the LINUX personality"
    assert seen["LINUX32"] in _32_BIT[machine], "uname -m with the LINUX32 personality"


# --------------------------------------------------------------------- terminal, fds


@pytest.mark.requirement("RT-PROC-TERM-2")
@FEWER
@given(height=st.integers(0, 500), width=st.integers(0, 500))
def test_console_size_is_ignored_without_a_terminal(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, height: int, width: int
) -> None:
    docker_lacks(container_factory.adapter, "process.consoleSize")
    script = "for fd in 0 1 2; do [ -t $fd ] && echo tty=$fd; done; echo done; exit 0"
    config = process_config(["sh", "-c", script])
    config["process"]["terminal"] = False
    config["process"]["consoleSize"] = {"height": height, "width": width}
    try:
        ran = run_config(container_factory, tmp_path, rootfs, config)
    except RuntimeCommandError as exc:
        pytest.fail(f"consoleSize with terminal false was not ignored: {exc.runtime_message}")
    assert (ran.status, ran.text) == (0, "done\n"), "a terminal was attached"


@pytest.mark.requirement("RT-PROC-FD-1")
def test_only_stdin_stdout_and_stderr_are_open(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path
) -> None:
    """Seen from the host (/proc/PID/fd of the container process) and from inside; a
    descriptor the test leaves inheritable must not leak into the container either."""
    adapter = container_factory.adapter
    bundle = write_bundle(tmp_path, rootfs, process_config(["sleep", "600"]))
    leak = os.open(os.devnull, os.O_RDONLY)  # inheritable (no O_CLOEXEC)
    try:
        with expressible():
            handle = container_factory.make_container(tmp_path, bundle=bundle)
    finally:
        os.close(leak)
    try:
        inside = handle.exec(["ls", "/proc/1/fd"])
        assert inside.exit_code == 0, inside.stderr
        assert sorted(inside.stdout.split(), key=int) == ["0", "1", "2"], "seen from inside"
        if HOST_PID not in adapter.unsupported and HOST_KERNEL not in adapter.unsupported:
            host = sorted(os.listdir(f"/proc/{handle.pid}/fd"), key=int)
            assert host == ["0", "1", "2"], "seen from the host"
    finally:
        container_factory.remove(handle)
        shutil.rmtree(bundle)
