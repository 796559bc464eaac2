"""Probe containers, for the operations modules (not a test module).

Most containers run ``probe_program``: it traps the signals it is sent and records
each in ``signals`` of a host directory bind-mounted at ``/probe``, then appends to
``started`` there, so a test sees from the host whether and how often the program ran
and which signals arrived. Each assertion message starts with the requirement it checks.

The fixtures ``probed``, ``fresh_id`` and ``probe_bundle`` are offered through
``conftest.py``; each deletes what it made when the test ends.
"""

from __future__ import annotations

import contextlib
import os
import signal as _signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_containers.adapters import EXIT_STATUS, RuntimeAdapter, bundle_config
from pytest_containers.adapters.handle import Container
from pytest_containers.errors import ContainerNotFoundError
from pytest_containers.ledger import process_start_time
from pytest_containers.runtime import ContainerFactory
from reference_runtime.rootfs_builder import make_bundle

from ._support import TIMEOUT, eventually, lines

PROBE = "/probe"
TRAPPED = ("HUP", "INT", "QUIT", "USR1", "USR2", "ALRM", "WINCH")
"""Signals the probe program records and survives."""
SIGKILL_STATUS = 128 + _signal.SIGKILL
NAMESPACE_FILES = ("mnt", "uts", "ipc", "net", "pid")


def probe_program(exit_code: int = 0) -> list[str]:
    """Trap ``TRAPPED`` (record, go on) and TERM (record, exit ``exit_code``), then
    append to ``started`` and idle."""
    traps = "".join(f"trap 'echo {sig} >> {PROBE}/signals' {sig}; " for sig in TRAPPED)
    return [
        "sh",
        "-c",
        f"{traps}trap 'echo TERM >> {PROBE}/signals; exit {exit_code}' TERM; "
        f"echo started >> {PROBE}/started; "
        "while :; do sleep 0.1; done",
    ]


def status_of(adapter: RuntimeAdapter, cid: str) -> Any:
    return adapter.state(cid).get("status")


def wait_stopped(adapter: RuntimeAdapter, cid: str) -> int | None:
    """Wait until ``cid`` has stopped; its exit status where the adapter reports it."""
    __tracebackhide__ = True
    code = adapter.wait(cid, timeout=TIMEOUT) if EXIT_STATUS not in adapter.unsupported else None
    eventually(
        lambda: status_of(adapter, cid) == "stopped",
        f"RT-STATE-STATUS-4: {cid} exited, but its status never became stopped",
    )
    return code


def namespaces_of(pid: int | str) -> dict[str, str]:
    return {kind: os.readlink(f"/proc/{pid}/ns/{kind}") for kind in NAMESPACE_FILES}


def processes_in(kind: str, namespace: str) -> list[int]:
    """Host PIDs of the processes whose ``kind`` namespace is ``namespace``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/ns/{kind}") == namespace:
                    found.append(int(entry))
            except OSError:  # gone meanwhile, or a kernel thread
                pass
    return [pid for pid in found if process_start_time(pid) is not None]  # zombies aside


# ---------------------------------------------------------------------- fixtures


@dataclass
class Probed:
    """A container running ``probe_program``, with the host side of ``/probe``."""

    handle: Container
    probe: Path
    exit_code: int

    @property
    def id(self) -> str:
        return self.handle.id

    def started(self) -> list[str]:
        return lines(self.probe / "started")

    def signals(self) -> list[str]:
        return lines(self.probe / "signals")

    def wait_started(self) -> None:
        __tracebackhide__ = True
        eventually(lambda: bool(self.started()), f"RT-OP-START-4: {self.id} never ran")


@pytest.fixture
def probed(
    container: Callable[..., Container], runtime_adapter: RuntimeAdapter, tmp_path: Path
) -> Callable[..., Probed]:
    """``probed("running", exit_code=3, **bundle_args)``: a probe container in that
    status (created, running or stopped), deleted when the test ends."""
    count = iter(range(1_000_000))

    def make(status: str = "running", exit_code: int = 0, **args: Any) -> Probed:
        __tracebackhide__ = True
        probe = tmp_path / f"probe{next(count)}"
        probe.mkdir()
        mounts = [*args.pop("mounts", ()), (str(probe), PROBE)]
        handle = container(probe_program(exit_code), mounts=mounts, start=False, **args)
        made = Probed(handle, probe, exit_code)
        if status in ("running", "stopped"):
            runtime_adapter.start(handle.id)
            made.wait_started()
        if status == "stopped":
            runtime_adapter.kill(handle.id, "KILL")
            wait_stopped(runtime_adapter, handle.id)
        return made

    return make


@pytest.fixture
def fresh_id(
    container_factory: ContainerFactory, runtime_adapter: RuntimeAdapter
) -> Iterator[Callable[[], str]]:
    """New container IDs for tests that call ``create`` themselves; whatever was made
    under them is deleted at the end."""
    made: list[str] = []

    def make() -> str:
        made.append(container_factory.ledger.unique_name("pc"))
        return made[-1]

    yield make
    for cid in made:
        with contextlib.suppress(ContainerNotFoundError):  # never made, or deleted
            runtime_adapter.delete(cid, force=True)


@pytest.fixture
def probe_bundle(tmp_path: Path) -> Callable[..., tuple[Path, Path]]:
    """``probe_bundle(command=None, **bundle_args) -> (bundle, probe dir)``."""
    count = iter(range(1_000_000))

    def make(command: list[str] | None = None, **args: Any) -> tuple[Path, Path]:
        n = next(count)
        probe = tmp_path / f"bprobe{n}"
        probe.mkdir()
        mounts = [*args.pop("mounts", ()), (str(probe), PROBE)]
        config = bundle_config(command or probe_program(), mounts=mounts, **args)
        return make_bundle(tmp_path / f"bundle{n}", config=config), probe

    return make
