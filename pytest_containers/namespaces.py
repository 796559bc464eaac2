"""``isolated_namespaces``: run a command or a Python function in fresh Linux namespaces.

The fixtures
------------

``isolated_namespaces`` (function scope) and ``isolated_namespaces_factory`` (session
scope, for your own session fixtures) are the same object::

    isolated_namespaces(target, *, kinds=("pid", "mount", "uts", "ipc", "net"),
                        hostname=None, timeout=None) -> NamespaceResult
    isolated_namespaces.spawn(target, *, kinds=..., hostname=None, timeout=None)
        -> IsolatedProcess      # a context manager: killed and reaped on exit

``target`` is an argv list (``["hostname"]``) or a callable that takes no argument.
``kinds`` is any of ``pid``, ``mount``, ``uts``, ``ipc``, ``net``, ``user``, ``cgroup``;
``hostname`` needs ``uts``. A :class:`NamespaceResult` has ``returncode`` (negative: killed
by that signal), ``stdout`` and ``stderr`` (text); for a callable, ``value`` is its return
value (pickled back through a pipe), and an exception it raises is re-raised in the
caller with the child's traceback as a note. ``ns`` maps each of the seven kinds to the
namespace identity (the ``/proc/PID/ns/*`` link text, ``"uts:[4026532281]"``) of the
process that ran the target, and ``pid`` is that process's PID on the host.

Examples::

    import os
    from pytest_containers.namespaces import current_namespaces

    def test_hostname_is_private(isolated_namespaces):
        result = isolated_namespaces(["hostname"], kinds=("uts",), hostname="box")
        assert (result.returncode, result.stdout) == (0, "box\\n")
        assert result.ns["uts"] != current_namespaces()["uts"]

    def test_pid_one(isolated_namespaces):
        assert isolated_namespaces(os.getpid, kinds=("pid", "mount")).value == 1

    def test_from_outside(isolated_namespaces):
        with isolated_namespaces.spawn(["sleep", "30"], kinds=("net",)) as proc:
            assert os.readlink(f"/proc/{proc.pid}/ns/net") == proc.ns["net"]
        # killed and reaped here

How
---

A command (an argv target) is started by a small helper process, a fork server
(:mod:`pytest_containers._nsexec`): a standard-library-only interpreter started once per
pytest process, on first use, whose forks cost a fraction of forking pytest. The helper
clones the target straight into its new namespaces (for a new pid namespace the target
is its PID 1, no second fork), writes a new user namespace's identity map, and the
target makes the mount tree ``rprivate`` in a new mount namespace, mounts a fresh
``/proc`` when the pid namespace is new too (``unshare -pfm --mount-proc``), sets the
host name, brings ``lo`` up in a new network namespace and execs, writing straight to
pipes of ours passed over with ``SCM_RIGHTS``. It runs in our current directory,
environment and umask (its resource limits are the helper's, taken when it started).
The helper is recorded in the ledger (kind ``process``) and stopped with the session
factory; a helper left by a killed session ends by itself (its socket closes) or is
killed by the next session's reaping, and its targets die with it (``PR_SET_PDEATHSIG``).

A callable can only run in the test's own interpreter, so for a callable the pytest
process itself forks; the child unshares the namespaces (for a new user namespace the
parent writes the identity map), sets them up as above and, for a new pid namespace,
forks again so that the function runs as PID 1.

Either way a timeout, an error or Ctrl-C kills the target (a new pid namespace dies
with its init) and its process group, and reaps it. Without a new pid namespace, a
command that leaves its process group is not followed.

The code: ``_nsplan`` (the kinds, a call's checked arguments), ``_nsprocess``
(:class:`IsolatedProcess`, :class:`NamespaceResult`), ``_nsfork`` (callables, in a
fork of pytest), ``_nscommand`` (commands, through the helper, whose two ends are
``_nsclient`` and ``_nsexec``) and this module (the factory, options, fixtures and hooks).

Options: ``--containers-ns-timeout=SECONDS`` or the ini value ``containers_ns_timeout``
(default 30): how long a call may run when it passes no ``timeout=``.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from ._nscommand import HelperProcess, SharedHelper
from ._nsfork import fork_callable
from ._nsplan import KINDS, check_args, current_namespaces
from ._nsprocess import IsolatedProcess, NamespaceResult
from .ledger import Ledger, Record, process_start_time, register_undoer
from .plugin import ledger

__all__ = [
    "DEFAULT_KINDS",
    "DEFAULT_TIMEOUT",
    "KINDS",
    "NAMESPACES_KEY",
    "IsolatedProcess",
    "NamespaceFactory",
    "NamespaceResult",
    "current_namespaces",
]

NAMESPACES_KEY = pytest.StashKey["NamespaceFactory"]()

DEFAULT_KINDS = ("pid", "mount", "uts", "ipc", "net")
DEFAULT_TIMEOUT = 30.0


class NamespaceFactory:
    """Runs targets in fresh namespaces; ``close()`` kills whatever it started that still
    runs (and, for the session's factory, stops the helper)."""

    def __init__(
        self, led: Ledger, timeout: float = DEFAULT_TIMEOUT, *, _helper: SharedHelper | None = None
    ) -> None:
        self._ledger = led
        self.timeout = timeout
        self._live: set[IsolatedProcess] = set()
        self._owns_helper = _helper is None
        self._helper = SharedHelper(led) if _helper is None else _helper

    @classmethod
    def from_config(cls, config: pytest.Config) -> NamespaceFactory:
        """The factory set up by the command line and ini options."""
        raw = config.getoption("containers_ns_timeout") or config.getini("containers_ns_timeout")
        try:
            timeout = float(raw)
        except (TypeError, ValueError):
            timeout = -1.0
        if timeout <= 0:
            raise pytest.UsageError(
                f"containers_ns_timeout must be positive seconds such as 30, got {raw!r}"
            )
        return cls(ledger(config), timeout)

    def scoped(self) -> NamespaceFactory:
        """A factory with the same settings and helper whose ``close()`` ends only what it
        started."""
        return NamespaceFactory(self._ledger, self.timeout, _helper=self._helper)

    @property
    def helper_pid(self) -> int | None:
        """The PID of the helper that starts commands, or None while none runs."""
        return self._helper.pid

    def spawn(
        self,
        target: Sequence[str] | Callable[[], Any],
        *,
        kinds: Sequence[str] = DEFAULT_KINDS,
        hostname: str | None = None,
        timeout: float | None = None,
    ) -> IsolatedProcess:
        """Start ``target`` in new namespaces of ``kinds`` and return at once.

        A command is started by the helper process; a callable by a fork of this process,
        the only interpreter it can run in."""
        __tracebackhide__ = True
        plan = check_args(target, kinds, hostname, timeout, self.timeout)
        out_r, out_w = os.pipe()
        try:
            err_r, err_w = os.pipe()
        except BaseException:
            os.close(out_r)
            os.close(out_w)
            raise
        if callable(plan.target):
            proc: IsolatedProcess = fork_callable(plan, self._ledger, out_r, out_w, err_r, err_w)
        else:
            try:
                helper, rid = self._helper.spawn(plan, out_w, err_w)
            except BaseException:
                os.close(out_r)
                os.close(err_r)
                raise
            finally:
                os.close(out_w)
                os.close(err_w)
            # on failure, it kills the target and closes the pipes
            proc = HelperProcess(plan, self._ledger, helper, rid, out_r, err_r)
        self._live.add(proc)
        return proc

    def __call__(
        self,
        target: Sequence[str] | Callable[[], Any],
        *,
        kinds: Sequence[str] = DEFAULT_KINDS,
        hostname: str | None = None,
        timeout: float | None = None,
    ) -> NamespaceResult:
        """Run ``target`` in new namespaces of ``kinds`` to completion; see the module doc."""
        __tracebackhide__ = True
        proc = self.spawn(target, kinds=kinds, hostname=hostname, timeout=timeout)
        try:
            return proc.wait()
        finally:
            proc.close()
            self._live.discard(proc)

    def close(self) -> None:
        """Kill and reap every process started here that still runs; the session's
        factory then stops the helper. Idempotent."""
        try:
            while self._live:
                self._live.pop().close()
        finally:
            if self._owns_helper:
                self._helper.stop()


def _undo_process(rec: Record) -> None:
    """Kill a process a dead session left, if it is still the same process."""
    pid, start = int(rec.details["pid"]), int(rec.details.get("start") or 0)
    if start and process_start_time(pid) == start:
        for target in (-pid, pid):
            try:
                os.kill(target, signal.SIGKILL)
            except ProcessLookupError:  # ESRCH: already gone
                pass


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("containers", "pytest-containers")
    group.addoption(
        "--containers-ns-timeout",
        dest="containers_ns_timeout",
        default=None,
        metavar="SECONDS",
        help="how long an isolated_namespaces call may run (default: ini containers_ns_timeout)",
    )
    parser.addini(
        "containers_ns_timeout",
        type="string",
        default=str(DEFAULT_TIMEOUT),
        help="seconds an isolated_namespaces call may run when it passes no timeout=",
    )


@pytest.hookimpl(trylast=True)  # after plugin.py has made the ledger
def pytest_configure(config: pytest.Config) -> None:
    config.stash[NAMESPACES_KEY] = NamespaceFactory.from_config(config)
    register_undoer("process", _undo_process)


@pytest.fixture(scope="session")
def isolated_namespaces_factory(request: pytest.FixtureRequest) -> Iterator[NamespaceFactory]:
    """The session's :class:`NamespaceFactory`, for session-scoped fixtures."""
    factory = request.config.stash[NAMESPACES_KEY]
    yield factory
    factory.close()


@pytest.fixture
def isolated_namespaces(
    isolated_namespaces_factory: NamespaceFactory,
) -> Iterator[NamespaceFactory]:
    """Run a command or a callable in fresh namespaces; see the module doc."""
    factory = isolated_namespaces_factory.scoped()
    yield factory
    factory.close()


def pytest_unconfigure(config: pytest.Config) -> None:
    # The session fixture stops the helper; this catches a factory used without it.
    factory = config.stash.get(NAMESPACES_KEY, None)
    if factory is not None:
        factory.close()
