"""``cgroup_budget``: a throwaway cgroup with memory, pids and CPU limits.

The fixtures
------------

``cgroup_budget`` (function scope) and ``cgroup_budget_factory`` (session scope)::

    cgroup_budget(memory=None, pids=None, cpu=None) -> CgroupBudget

- ``memory``: bytes (``67108864``) or a size string (``"64M"``, ``"512k"``, ``"1G"``,
  ``"64MiB"``; binary multiples). Swap counts against it, so the limit is a hard one.
- ``pids``: the most tasks (processes and threads) at once.
- ``cpu``: a fraction of one CPU (``0.5`` -> a CFS quota of 50 ms per 100 ms period;
  ``2`` -> two CPUs' worth), at least 0.01.

A :class:`CgroupBudget` has ``name``, ``run(argv, timeout=None, input=None, env=None)
-> subprocess.CompletedProcess[str]`` (the child joins the cgroup before it execs; output
is captured as text), ``add(pid)``, ``stats() -> CgroupStats`` (``memory_usage``,
``memory_peak``, ``memory_limit``, ``oom_kills``, ``pids_current``, ``pids_limit``,
``cpu_usage_usec``, ``cpu_nr_periods``, ``cpu_nr_throttled``, ``cpu_throttled_usec``;
None where the kernel does not report it), ``paths()`` (controller -> directory) and
``path(controller)``. It is removed at the end of the test, or earlier by ``close()`` or
a ``with`` block; processes still inside are killed first.

Examples::

    def test_memory_hog_is_oom_killed(cgroup_budget):
        budget = cgroup_budget(memory="32M")
        proc = budget.run(["python3", "-c", "b = b'x' * (256 << 20)"])
        assert proc.returncode == -9
        assert budget.stats().oom_kills >= 1

    def test_fork_bomb_is_contained(cgroup_budget):
        budget = cgroup_budget(pids=8)
        proc = budget.run(["sh", "-c", "for i in $(seq 20); do sleep 1 & done; wait"])
        assert "fork" in proc.stderr.lower()

    def test_quota_throttles(cgroup_budget):
        with cgroup_budget(cpu=0.2) as budget:
            budget.run(["timeout", "0.5", "sh", "-c", "while :; do :; done"])
            assert budget.stats().cpu_nr_throttled > 0

Where: the cgroup is named ``/pc-<worker>-<pid>-<n>`` at the root of each hierarchy that
carries one of its controllers: memory and pids always, cpu and cpuacct when ``cpu=`` is
given (a v1 host, and the v1 half of a hybrid one, whose cgroup2 mount carries no
controller), or the one cgroup2 hierarchy on a v2 host, with those controllers enabled.
The layout is detected once per session.

How: on v1 hierarchies a budget is the hot path of many test suites, so it is made
directly: one ``mkdir`` per hierarchy and one write per limit (the arguments were checked
already; a new cgroup starts unlimited, so the memory limit goes before memory+swap), and
removed with one ``rmdir`` per hierarchy; only a directory that is busy (processes or
sub-cgroups inside) takes the slow path that kills everything inside, waits for it to
empty and removes the sub-cgroups too. A name that already exists, and every cgroup on a
v2 host (controllers to enable in the root first), go through the reference runtime's
cgroup manager (``reference_runtime.cgroups.new_manager``), which also serves ``add``,
``run`` and ``stats``. Either way the ledger records the directories before they are made.

Options: ini ``containers_cgroup_timeout`` (default 60): how long ``run`` waits when it is
given no ``timeout=``.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from reference_runtime.cgroups import (
    CgroupManager,
    CgroupMounts,
    CgroupStats,
    Layout,
    discover_mounts,
    layout_of,
    new_manager,
)
from reference_runtime.cgroups import cpu as cgroup_cpu
from reference_runtime.cgroups import fs as cgroup_fs
from reference_runtime.cgroups import memory as cgroup_memory
from reference_runtime.cgroups import pids as cgroup_pids
from reference_runtime.cgroups import tree as cgroup_tree
from reference_runtime.errors import CgroupError

from .ledger import Ledger, Record, register_undoer
from .plugin import ledger

CGROUPS_KEY = pytest.StashKey["CgroupBudgetFactory"]()

DEFAULT_TIMEOUT = 60.0
CPU_PERIOD_US = 100_000
MIN_CPU = 0.01  # the kernel's smallest quota is 1 ms per period

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE = re.compile(r"\s*(\d+)\s*([kmgt]?)(?:i?b)?\s*", re.IGNORECASE)


def parse_memory(memory: int | str) -> int:
    """Bytes from ``memory=``: an int, or a string such as ``"64M"`` (binary multiples)."""
    __tracebackhide__ = True
    if isinstance(memory, bool) or not isinstance(memory, int | str):
        raise TypeError(f"memory takes bytes or a size string such as memory='64M', got {memory!r}")
    if isinstance(memory, str):
        match = _SIZE.fullmatch(memory)
        if match is None:
            raise ValueError(
                f"memory={memory!r} is not a size; use bytes (67108864) or e.g. memory='64M'"
            )
        memory = int(match.group(1)) * _UNITS[match.group(2).lower()]
    if memory <= 0:
        raise ValueError(f"memory must be positive, e.g. memory='64M', got {memory!r}")
    return memory


def _resources(memory: int | str | None, pids: int | None, cpu: float | None) -> dict[str, Any]:
    """The OCI ``linux.resources`` for the arguments of ``cgroup_budget``."""
    __tracebackhide__ = True
    resources: dict[str, Any] = {}
    if memory is not None:
        limit = parse_memory(memory)
        # memory+swap equal to memory: no swapping around the limit (ignored without swap)
        resources["memory"] = {"limit": limit, "swap": limit}
    if pids is not None:
        if isinstance(pids, bool) or not isinstance(pids, int):
            raise TypeError(f"pids takes an int such as pids=32, got {pids!r}")
        if pids < 1:
            raise ValueError(f"pids must be at least 1, e.g. pids=32, got {pids!r}")
        resources["pids"] = {"limit": pids}
    if cpu is not None:
        if isinstance(cpu, bool) or not isinstance(cpu, int | float):
            raise TypeError(f"cpu takes a fraction of one CPU such as cpu=0.5, got {cpu!r}")
        if not cpu >= MIN_CPU:
            raise ValueError(f"cpu must be at least {MIN_CPU} (a fraction of one CPU), got {cpu!r}")
        quota = round(cpu * CPU_PERIOD_US)
        resources["cpu"] = {"quota": quota, "period": CPU_PERIOD_US}
    return resources


@dataclass(frozen=True)
class _Place:
    """Where the budgets with (or without) a CPU limit live, found once per session."""

    mounts: CgroupMounts
    """Only the hierarchies of the budget's controllers (or the cgroup2 one)."""
    roots: tuple[str, ...]
    """Their mount points: one directory is made under each."""
    direct: bool
    """v1 hierarchies: made and removed directly (see the module doc)."""
    limit_dirs: Mapping[str, int]
    """Controller (``memory``, ``pids``, ``cpu``) to the index of its root."""
    memsw: bool
    """Whether ``memory.memsw.limit_in_bytes`` exists (swap accounting is on)."""

    @classmethod
    def find(cls, mounts: CgroupMounts, with_cpu: bool) -> _Place:
        """The hierarchies a budget lives in: those of its controllers, or the cgroup2 one."""
        __tracebackhide__ = True
        if layout_of(mounts) is Layout.V2:
            assert mounts.v2 is not None
            return cls(CgroupMounts(v2=mounts.v2), (mounts.v2,), False, {}, False)
        wanted = {"memory", "pids"} | ({"cpu", "cpuacct"} if with_cpu else set())
        found = tuple(h for h in mounts.v1 if wanted & set(h.controllers))
        limit_dirs: dict[str, int] = {
            controller: i
            for i, h in enumerate(found)
            for controller in ("memory", "pids", "cpu")
            if controller in h.controllers
        }
        memory = mounts.v1_for("memory")
        memsw = memory is not None and cgroup_fs.exists(memory.mountpoint, cgroup_memory.V1_SWAP)
        roots = tuple(h.mountpoint for h in found)
        return cls(CgroupMounts(v1=found), roots, True, limit_dirs, memsw)

    def writes(self, dirs: Sequence[str], resources: Mapping[str, Any]) -> list[tuple[str, str]]:
        """(file path, value) for the limits of a new v1 cgroup, in order."""
        found: list[tuple[str, str]] = []
        if "memory" in resources:
            limit = str(resources["memory"]["limit"])
            memory = dirs[self.limit_dirs["memory"]]
            # A new cgroup is unlimited: the limit first keeps limit <= memory+swap.
            found.append((f"{memory}/{cgroup_memory.V1_LIMIT}", limit))
            if self.memsw:
                swap = str(resources["memory"]["swap"])
                found.append((f"{memory}/{cgroup_memory.V1_SWAP}", swap))
        if "pids" in resources:
            limit = cgroup_pids.max_value(resources["pids"]["limit"])
            found.append((f"{dirs[self.limit_dirs['pids']]}/{cgroup_pids.MAX_FILE}", limit))
        if "cpu" in resources:
            cpu, quota = dirs[self.limit_dirs["cpu"]], resources["cpu"]
            found.append((f"{cpu}/{cgroup_cpu.V1_PERIOD}", str(quota["period"])))
            found.append((f"{cpu}/{cgroup_cpu.V1_QUOTA}", str(quota["quota"])))
        return found


def _write(path: str, value: str) -> None:
    """One write(2) of ``value`` to the cgroup file ``path``; CgroupError on failure."""
    __tracebackhide__ = True
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)
    except OSError as exc:
        raise CgroupError(f"cannot write {value} to {path}: {cgroup_fs.describe(exc)}") from exc


class CgroupBudget:
    """One cgroup with limits; see the module doc. ``close()`` removes it (idempotent)."""

    def __init__(
        self,
        name: str,
        place: _Place,
        resources: Mapping[str, Any],
        led: Ledger,
        run_timeout: float,
    ) -> None:
        """Make the cgroup; recorded in the ledger first, so a crash cannot hide it."""
        __tracebackhide__ = True
        self.name = name
        self.resources = dict(resources)
        self._place = place
        self._ledger = led
        self._run_timeout = run_timeout
        self._manager: CgroupManager | None = None
        self._dirs = [os.path.join(root, name) for root in place.roots]
        self._record: Record | None = led.record("cgroup", name, dirs=sorted(self._dirs))
        try:
            self._direct = place.direct and self._make(resources)
            if not self._direct:
                self.manager.create(resources)
        except BaseException:
            led.release(self._record)
            self._record = None
            raise

    def _make(self, resources: Mapping[str, Any]) -> bool:
        """Make the v1 directories and write the limits; False (nothing left made) if a
        directory already exists, for the manager to join it."""
        __tracebackhide__ = True
        made: list[str] = []
        try:
            for directory in self._dirs:
                if not cgroup_fs.make_dir(directory):
                    cgroup_tree.remove_created(made, made)
                    return False
                made.append(directory)
            for path, value in self._place.writes(self._dirs, resources):
                _write(path, value)
        except BaseException as exc:
            cgroup_tree.rollback(exc, made, made)
            raise
        return True

    @property
    def manager(self) -> CgroupManager:
        """The reference runtime's manager of this cgroup (made on first use)."""
        if self._manager is None:
            self._manager = new_manager(f"/{self.name}", mounts=self._place.mounts)
        return self._manager

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<CgroupBudget {self.name} {self.resources} {state}>"

    def __enter__(self) -> CgroupBudget:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._record is None

    def _check_open(self, call: str) -> None:
        __tracebackhide__ = True
        if self.closed:
            raise ValueError(f"{call} on a closed cgroup budget {self.name}; make a new one")

    def add(self, pid: int) -> None:
        """Move process ``pid`` into the cgroup; it is killed when the budget is removed."""
        __tracebackhide__ = True
        self._check_open("add()")
        if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
            raise TypeError(f"add() takes a process id such as budget.add(proc.pid), got {pid!r}")
        if pid == os.getpid():
            raise ValueError(
                "add(os.getpid()) would put the test process in the budget, and removing the "
                "budget kills what is inside; use budget.run(argv) or add a child's pid"
            )
        self.manager.add(pid)

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None = None,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside the cgroup (joined before exec) and wait for it.

        Output is captured as text; a non-zero exit is returned, not raised. On a timeout
        the child is killed and ``subprocess.TimeoutExpired`` raised."""
        __tracebackhide__ = True
        self._check_open("run()")
        if isinstance(argv, str | bytes) or not all(isinstance(a, str) for a in argv) or not argv:
            raise TypeError(f"run() takes an argv list such as budget.run(['true']), got {argv!r}")
        manager = self.manager

        def join() -> None:  # in the child, between fork and exec
            manager.add(os.getpid())

        return subprocess.run(
            list(argv),
            input=input,
            capture_output=True,
            encoding="utf-8",
            errors="replace",
            timeout=self._run_timeout if timeout is None else timeout,
            env=None if env is None else dict(env),
            preexec_fn=join,
            check=False,
        )

    def pids(self) -> list[int]:
        """The processes in the cgroup now."""
        return self.manager.pids()

    def stats(self) -> CgroupStats:
        """A usage snapshot: memory, OOM kills, tasks, CPU time and throttling."""
        return self.manager.stats()

    def paths(self) -> dict[str, str]:
        """Controller name to the cgroup's directory (``""`` for the v2 hierarchy)."""
        return self.manager.paths()

    def path(self, controller: str = "memory") -> str:
        """The directory of the cgroup in the hierarchy of ``controller``."""
        __tracebackhide__ = True
        paths = self.paths()
        if controller in paths:
            return paths[controller]
        if "" in paths:  # v2: one directory for every controller
            return paths[""]
        raise ValueError(f"no {controller!r} hierarchy in this budget; use one of {sorted(paths)}")

    def close(self) -> None:
        """Kill what is inside and remove the cgroup; idempotent."""
        __tracebackhide__ = True
        if self._record is None:
            return
        # CgroupError if it cannot: the record stays, a leak
        if self._direct:
            self._remove()
        else:
            self.manager.destroy()
        self._ledger.release(self._record)
        self._record = None

    def _remove(self) -> None:
        """Remove the directories; what is busy is emptied (killed) and removed the slow way."""
        __tracebackhide__ = True
        busy = []
        for directory in reversed(self._dirs):
            try:
                cgroup_fs.remove_dir(directory)
            except FileNotFoundError:  # already gone
                pass
            except OSError:  # EBUSY: processes or sub-cgroups inside
                busy.append(directory)
        if busy:
            cgroup_tree.kill_all(busy)
            cgroup_tree.remove_created(busy, busy)


class CgroupBudgetFactory:
    """Makes cgroup budgets; ``close()`` removes every one it made that is still there."""

    def __init__(self, led: Ledger, run_timeout: float = DEFAULT_TIMEOUT) -> None:
        self._ledger = led
        self.run_timeout = run_timeout
        self._places: dict[bool, _Place] = {}  # with a CPU limit or not: where budgets live
        self._made: list[CgroupBudget] = []

    @classmethod
    def from_config(cls, config: pytest.Config) -> CgroupBudgetFactory:
        raw = config.getini("containers_cgroup_timeout")
        try:
            timeout = float(raw)
        except (TypeError, ValueError):
            timeout = -1.0
        if timeout <= 0:
            raise pytest.UsageError(
                f"containers_cgroup_timeout must be positive seconds such as 60, got {raw!r}"
            )
        return cls(ledger(config), timeout)

    def scoped(self) -> CgroupBudgetFactory:
        """A factory with the same settings whose ``close()`` removes only what it made."""
        factory = CgroupBudgetFactory(self._ledger, self.run_timeout)
        factory._places = self._places  # shared: the layout is found once per session
        return factory

    def __call__(
        self,
        memory: int | str | None = None,
        pids: int | None = None,
        cpu: float | None = None,
    ) -> CgroupBudget:
        """Make a cgroup with these limits; see the module doc."""
        __tracebackhide__ = True
        resources = _resources(memory, pids, cpu)
        with_cpu = cpu is not None
        place = self._places.get(with_cpu)
        if place is None:
            place = self._places[with_cpu] = _Place.find(discover_mounts(), with_cpu)
        name = self._ledger.unique_name("pc")
        budget = CgroupBudget(name, place, resources, self._ledger, self.run_timeout)
        self._made.append(budget)
        return budget

    def close(self) -> None:
        """Remove every budget made here; all are tried, the first error is raised."""
        __tracebackhide__ = True
        errors: list[BaseException] = []
        while self._made:
            try:
                self._made.pop().close()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


def _undo_cgroup(rec: Record) -> None:
    """Remove a cgroup a dead session left: kill what is inside, remove its directories."""
    dirs = [str(d) for d in rec.details.get("dirs", [])]
    cgroup_tree.kill_all(dirs)
    cgroup_tree.remove_created(dirs, dirs)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("containers", "pytest-containers")
    parser.addini(
        "containers_cgroup_timeout",
        type="string",
        default=str(DEFAULT_TIMEOUT),
        help="seconds cgroup_budget(...).run() waits when it is given no timeout=",
    )


@pytest.hookimpl(trylast=True)  # after plugin.py has made the ledger
def pytest_configure(config: pytest.Config) -> None:
    config.stash[CGROUPS_KEY] = CgroupBudgetFactory.from_config(config)
    register_undoer("cgroup", _undo_cgroup)


@pytest.fixture(scope="session")
def cgroup_budget_factory(request: pytest.FixtureRequest) -> Iterator[CgroupBudgetFactory]:
    """The session's :class:`CgroupBudgetFactory`, for session-scoped fixtures."""
    factory = request.config.stash[CGROUPS_KEY]
    yield factory
    factory.close()


@pytest.fixture
def cgroup_budget(cgroup_budget_factory: CgroupBudgetFactory) -> Iterator[CgroupBudgetFactory]:
    """Make cgroups with limits, removed after the test; see the module doc."""
    factory = cgroup_budget_factory.scoped()
    yield factory
    factory.close()
