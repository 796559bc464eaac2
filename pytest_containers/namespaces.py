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

Options: ``--containers-ns-timeout=SECONDS`` or the ini value ``containers_ns_timeout``
(default 30): how long a call may run when it passes no ``timeout=``.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import selectors
import signal
import struct
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import pytest

from reference_runtime import kernel

from ._nsexec import Helper, HelperGone
from .ledger import Ledger, Record, process_start_time, register_undoer
from .plugin import ledger

NAMESPACES_KEY = pytest.StashKey["NamespaceFactory"]()

KINDS: dict[str, tuple[str, int]] = {
    # kind: (name under /proc/PID/ns, clone flag); unshare(2) makes the user namespace first
    "pid": ("pid", kernel.CLONE_NEWPID),
    "mount": ("mnt", kernel.CLONE_NEWNS),
    "uts": ("uts", kernel.CLONE_NEWUTS),
    "ipc": ("ipc", kernel.CLONE_NEWIPC),
    "net": ("net", kernel.CLONE_NEWNET),
    "user": ("user", kernel.CLONE_NEWUSER),
    "cgroup": ("cgroup", kernel.CLONE_NEWCGROUP),
}
DEFAULT_KINDS = ("pid", "mount", "uts", "ipc", "net")
DEFAULT_TIMEOUT = 30.0

_HEADER = struct.Struct("!I")  # each message on the result pipe: length, then a pickle
_FAILED = 127  # the exit status of a child that could not start the target
_KILL_GRACE = 1.0  # seconds the child has to end its pid namespace before SIGKILL
_REAP_TIMEOUT = 5.0  # seconds to wait for the helper to report a killed target's end
_DEFAULT_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ)  # Python ignores them; commands must not


def current_namespaces(pid: int | str = "self") -> dict[str, str]:
    """The namespace identities of process ``pid``: ``{"uts": "uts:[4026531838]", ...}``."""
    return {kind: os.readlink(f"/proc/{pid}/ns/{name}") for kind, (name, _) in KINDS.items()}


@dataclass(frozen=True)
class NamespaceResult:
    """What one target did in its namespaces."""

    returncode: int
    """Exit status; negative when killed by a signal (as in ``subprocess``)."""
    stdout: str
    stderr: str
    ns: dict[str, str]
    """Kind to namespace identity of the process that ran the target."""
    pid: int
    """The PID of that process on the host."""
    value: Any = None
    """A callable's return value (None for a command)."""


@dataclass(frozen=True)
class _Plan:
    target: list[str] | Callable[[], Any]
    kinds: tuple[str, ...]
    hostname: str | None
    timeout: float

    def describe(self) -> str:
        target = self.target if isinstance(self.target, list) else _name_of(self.target)
        return f"isolated_namespaces({target!r}, kinds={self.kinds!r})"


def _name_of(func: Callable[[], Any]) -> str:
    return getattr(func, "__qualname__", None) or repr(func)


def _check_args(
    target: object, kinds: object, hostname: object, timeout: object, default_timeout: float
) -> _Plan:
    __tracebackhide__ = True
    if isinstance(target, str | bytes):
        raise TypeError(
            f"pass the command as an argv list: isolated_namespaces({str(target).split()!r})"
        )
    argv: list[str] | Callable[[], Any]
    if callable(target):
        argv = target
    elif isinstance(target, Sequence) and all(isinstance(a, str) for a in target):
        if not target:
            raise ValueError("isolated_namespaces([]) has no command; use e.g. ['hostname']")
        if any("\0" in arg for arg in target):
            raise ValueError(
                f"an argument holds a NUL character, which no command can receive: {target!r}"
            )
        argv = list(target)
    else:
        raise TypeError(
            "isolated_namespaces(target) takes an argv list such as ['hostname'] or a "
            f"callable with no arguments, got {target!r}"
        )
    if isinstance(kinds, str):
        raise TypeError(f"kinds takes a tuple of names: kinds=({kinds!r},)")
    if not isinstance(kinds, Sequence | set | frozenset):
        raise TypeError(f"kinds takes a tuple of names such as kinds=('pid', 'uts'), got {kinds!r}")
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown namespace kind {unknown[0]!r}; use any of {', '.join(KINDS)}")
    if not kinds:
        raise ValueError("kinds=() makes no new namespace; use e.g. kinds=('pid', 'uts')")
    ordered = tuple(k for k in KINDS if k in kinds)
    if hostname is not None:
        if not isinstance(hostname, str):
            raise TypeError(f"hostname takes a string such as hostname='box', got {hostname!r}")
        if "uts" not in ordered:
            wanted = (*ordered, "uts")
            raise ValueError(f"hostname= needs a new uts namespace: kinds={wanted!r}")
        if not 0 < len(hostname.encode()) <= 64:
            raise ValueError(f"hostname must be 1-64 bytes, got {hostname!r}")
    if timeout is None:
        timeout = default_timeout
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise ValueError(f"timeout takes positive seconds such as timeout=10, got {timeout!r}")
    return _Plan(argv, ordered, hostname, float(timeout))


# ------------------------------------------------------------------ the child's side


@dataclass(frozen=True)
class _ChildFds:
    stdin: int
    out: int
    err: int
    msg: int
    go: int  # read end: the parent writes the user namespace's id maps, then one byte


def _send(fd: int, message: tuple[Any, ...]) -> None:
    data = pickle.dumps(message)
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view) :]


def _child(plan: _Plan, parent: int, fds: _ChildFds) -> NoReturn:
    """Body of the forked child: enter the namespaces, then run the target. Never returns."""
    try:
        os.setpgid(0, 0)  # a process group of its own: the parent kills the group
        kernel.set_pdeathsig(signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before PDEATHSIG was armed
            os._exit(_FAILED)
        for fd, std in ((fds.stdin, 0), (fds.out, 1), (fds.err, 2)):
            os.dup2(fd, std)
        flags = 0
        for kind in plan.kinds:
            flags |= KINDS[kind][1]
        kernel.unshare(flags)
        if "user" in plan.kinds:
            _send(fds.msg, ("userns",))
            if os.read(fds.go, 1) != b"1":
                os._exit(_FAILED)
        if "mount" in plan.kinds:
            kernel.mount(None, "/", None, kernel.MS_REC | kernel.MS_PRIVATE)
        if plan.hostname is not None:
            kernel.sethostname(plan.hostname)
        if "net" in plan.kinds:
            kernel.loopback_up()
        if "pid" not in plan.kinds:
            _run(plan, fds, os.getpid())
        init = os.fork()
        if init == 0:
            _init(plan, fds)
        # SIGTERM from the parent: kill the namespace's init, then reap it and report.
        # Wait without reaping first, so that the handler can never hit a reused PID.
        signal.signal(signal.SIGTERM, lambda *_: os.kill(init, signal.SIGKILL))
        os.waitid(os.P_PID, init, os.WEXITED | os.WNOWAIT)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _, status = os.waitpid(init, 0)
        _send(fds.msg, ("status", status))
        os._exit(0)
    except BaseException as exc:
        with contextlib.suppress(BaseException):
            _send(fds.msg, ("error", getattr(exc, "errno", None), f"{type(exc).__name__}: {exc}"))
    os._exit(_FAILED)


def _init(plan: _Plan, fds: _ChildFds) -> NoReturn:
    """PID 1 of the new pid namespace."""
    try:
        kernel.set_pdeathsig(signal.SIGKILL)
        host_pid = int(os.readlink("/proc/self"))  # still the host's /proc
        if "mount" in plan.kinds:
            flags = kernel.MS_NOSUID | kernel.MS_NODEV | kernel.MS_NOEXEC
            kernel.mount("proc", "/proc", "proc", flags)
        _run(plan, fds, host_pid)
    except BaseException as exc:
        with contextlib.suppress(BaseException):
            _send(fds.msg, ("error", getattr(exc, "errno", None), f"{type(exc).__name__}: {exc}"))
    os._exit(_FAILED)


def _run(plan: _Plan, fds: _ChildFds, host_pid: int) -> NoReturn:
    _send(fds.msg, ("ns", current_namespaces(), host_pid))
    if callable(plan.target):
        _call(plan.target, fds)
    for sig in _DEFAULT_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    os.execvp(plan.target[0], plan.target)


def _call(func: Callable[[], Any], fds: _ChildFds) -> NoReturn:
    # pytest's capture replaced sys.stdout; the function's prints go to our pipes instead
    sys.stdout = open(1, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
    code = 0
    try:
        value = func()
    except BaseException as exc:
        code = 1
        text = "".join(traceback.format_exception(exc))
        try:
            pickled: bytes | None = pickle.dumps(exc)
        except Exception:
            pickled = None
        _send(fds.msg, ("raise", pickled, text))
    else:
        try:
            _send(fds.msg, ("return", value))
        except Exception as exc:
            code = 1
            text = f"TypeError: the return value {value!r:.200} cannot be pickled: {exc}"
            _send(fds.msg, ("raise", pickle.dumps(TypeError(text)), text))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


# ------------------------------------------------------------------ the parent's side


def _identity_maps() -> list[tuple[str, str]]:
    if os.geteuid() == 0:
        return [("uid_map", "0 0 4294967295\n"), ("gid_map", "0 0 4294967295\n")]
    # Unprivileged: only our own ids can be mapped, and setgroups must be denied first.
    return [
        ("uid_map", f"0 {os.geteuid()} 1\n"),
        ("setgroups", "deny"),
        ("gid_map", f"0 {os.getegid()} 1\n"),
    ]


class IsolatedProcess:
    """A target running in its namespaces. Use it as a context manager: on exit it is
    killed (if still running) and reaped.

    Made by :meth:`NamespaceFactory.spawn`: a command runs under the helper, a callable
    in a fork of this process; both are handled alike from here."""

    def __init__(self, plan: _Plan, led: Ledger, out: int, err: int) -> None:
        """Read the target's output from the pipes ``out`` and ``err`` (now ours)."""
        self._plan = plan
        self._ledger = led
        self._deadline = time.monotonic() + plan.timeout
        self._messages: list[tuple[Any, ...]] = []
        self._status: int | None = None
        self._record: Record | None = None
        self._closed = False
        self._out, self._err = out, err
        self._data = {out: bytearray(), err: bytearray()}
        self._reading = {out, err}  # output pipes not at end of file yet
        self._selector = selectors.DefaultSelector()
        try:
            for fd in (out, err):
                self._selector.register(fd, selectors.EVENT_READ)
        except BaseException:
            self._selector.close()
            raise

    def __repr__(self) -> str:
        return f"<IsolatedProcess {self._plan.describe()}>"

    def __enter__(self) -> IsolatedProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- what the two kinds of target do differently

    def _ready(self, fd: int) -> None:
        """Handle ``fd``, a registered descriptor other than the output pipes, readable."""
        raise NotImplementedError

    def _finished(self) -> bool:
        """Whether the target has exited and every message about it is in."""
        raise NotImplementedError

    def _host_pid(self, started: tuple[Any, ...]) -> int:
        """The host PID of the process that runs the target, given its ``ns`` message."""
        raise NotImplementedError

    def kill(self) -> None:
        """Kill the target and its process group (a new pid namespace dies with its
        init); the target is reaped by ``close()`` or ``wait()``."""
        raise NotImplementedError

    def _reap(self) -> None:
        """Wait (bounded) until ``_status`` holds the target's wait status."""
        raise NotImplementedError

    def _release(self) -> bool:
        """Close what this kind holds; whether the target is surely gone."""
        raise NotImplementedError

    def _catch_up(self) -> None:
        """Take in messages that arrived while someone else was reading."""

    # ---- reading what the target sends

    def _record_process(self, pid: int) -> None:
        start = process_start_time(pid) or 0
        target = self._plan.describe()
        self._record = self._ledger.record(
            "process", f"ns-{pid}", pid=pid, start=start, target=target
        )

    def _message(self, tag: str) -> tuple[Any, ...] | None:
        for message in self._messages:
            if message[0] == tag:
                return message
        return None

    def _pump(self, done: Callable[[], bool]) -> None:
        """Read output and messages until ``done()`` or the target exited and closed
        every pipe; TimeoutError (the target killed) at the deadline."""
        __tracebackhide__ = True
        self._catch_up()
        while not done() and (self._reading or not self._finished()):
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                self._timed_out()
            for key, _ in self._selector.select(remaining):
                fd = int(key.fd)
                if fd not in self._reading:
                    self._ready(fd)
                    continue
                chunk = os.read(fd, 65536)
                if chunk:
                    self._data[fd] += chunk
                else:
                    self._selector.unregister(fd)
                    self._reading.discard(fd)

    def _timed_out(self) -> NoReturn:
        __tracebackhide__ = True
        self.kill()
        error = TimeoutError(
            f"{self._plan.describe()} did not finish within {self._plan.timeout:g}s and was "
            "killed; pass timeout= or set the ini value containers_ns_timeout"
        )
        for name, fd in (("stdout", self._out), ("stderr", self._err)):
            text = self._data[fd].decode(errors="replace")
            if text:
                error.add_note(f"{name} so far:\n{text}")
        raise error

    @property
    def pid(self) -> int:
        """The host PID of the process that runs the target (PID 1 inside a new pid ns)."""
        return self._host_pid(self._started())

    @property
    def ns(self) -> dict[str, str]:
        """Kind to namespace identity of the process that runs the target."""
        return dict(self._started()[1])

    def _started(self) -> tuple[Any, ...]:
        __tracebackhide__ = True
        self._pump(lambda: any(m[0] in ("ns", "error") for m in self._messages))
        message = self._message("ns")
        if message is None:
            self._raise_error()
            raise RuntimeError(f"{self._plan.describe()} exited before it started")
        return message

    def _raise_error(self) -> None:
        __tracebackhide__ = True
        error = self._message("error")
        if error is None:
            return
        _, number, text = error
        self.close()
        if number:
            raise OSError(number, f"{self._plan.describe()} failed: {text}")
        raise RuntimeError(f"{self._plan.describe()} failed: {text}")

    # ---- ending

    def wait(self) -> NamespaceResult:
        """Wait for the target to finish (within the timeout) and return its result.

        Re-raises a callable's exception; TimeoutError if the time is up (it is killed)."""
        __tracebackhide__ = True
        self._pump(lambda: False)
        self._reap()
        self._raise_error()
        status = self._message("status")
        raw = status[1] if status is not None else self._status
        if raw is None:
            self.close()
            raise RuntimeError(
                f"{self._plan.describe()}: the isolated_namespaces helper exited before "
                "reporting how the target ended"
            )
        started = self._message("ns")
        text = {fd: bytes(buf).decode(errors="replace") for fd, buf in self._data.items()}
        raised = self._message("raise")
        self.close()
        if raised is not None:
            _, pickled, child_traceback = raised
            try:
                exc = pickle.loads(pickled) if pickled is not None else None
            except Exception:  # its class cannot be rebuilt here
                exc = None
            if not isinstance(exc, BaseException):
                exc = RuntimeError(child_traceback.strip().splitlines()[-1])
            exc.add_note(f"raised in {self._plan.describe()}; its traceback:\n{child_traceback}")
            raise exc
        if started is None:
            raise RuntimeError(
                f"{self._plan.describe()} exited with {os.waitstatus_to_exitcode(raw)} "
                "before it started"
            )
        returned = self._message("return")
        return NamespaceResult(
            returncode=os.waitstatus_to_exitcode(raw),
            stdout=text[self._out],
            stderr=text[self._err],
            ns=dict(started[1]),
            pid=self._host_pid(started),
            value=returned[1] if returned is not None else None,
        )

    def close(self) -> None:
        """Kill (if running), reap, close the pipes and forget the ledger record; idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self.kill()
            self._reap()
        finally:
            self._selector.close()
            for fd in (self._out, self._err):
                os.close(fd)
            gone = self._release()
            if self._record is not None and gone:
                self._ledger.release(self._record)
                self._record = None


class _HelperProcess(IsolatedProcess):
    """A command started by the helper (request ``rid``)."""

    def __init__(
        self, plan: _Plan, led: Ledger, helper: Helper, rid: int, out: int, err: int
    ) -> None:
        """Wait until the helper has made the target, and record it; on failure it is
        killed and reaped before raising."""
        super().__init__(plan, led, out, err)
        self._helper = helper
        self._rid = rid
        self._seen = 0  # how many of the helper's messages about rid are handled
        self._host = 0
        self._pidfd = -1
        self._early_ns: dict[str, str] | None = None
        try:
            self._selector.register(helper.fileno(), selectors.EVENT_READ)
            self._pump(lambda: self._host != 0)
            if self._host:
                self._record_process(self._host)
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"<IsolatedProcess {self._plan.describe()} pid={self._host or '?'}>"

    def _ready(self, fd: int) -> None:
        self._helper.receive()
        self._take()
        if self._helper.gone:
            self._selector.unregister(fd)

    def _catch_up(self) -> None:
        self._take()

    def _take(self) -> None:
        """Turn the helper's new messages about us into ours."""
        messages = self._helper.messages(self._rid)
        for message in messages[self._seen :]:
            op = message["op"]
            if op == "started":
                self._host = int(message["pid"])
                fds = message["fds"]
                self._pidfd = fds.pop() if fds else -1
                if self._early_ns is not None:
                    self._messages.append(("ns", self._early_ns))
            elif op == "ns" and not self._host:
                self._early_ns = message["ns"]  # the target was quicker than the helper
            elif op == "ns":
                self._messages.append(("ns", message["ns"]))
            elif op == "error":
                self._messages.append(("error", message["errno"], message["message"]))
            elif op == "exit":
                self._status = int(message["status"])
        self._seen = len(messages)

    def _finished(self) -> bool:
        return self._status is not None or self._helper.gone

    def _host_pid(self, started: tuple[Any, ...]) -> int:
        return self._host

    def kill(self) -> None:
        if self._status is not None and not self._reading:
            return  # it ended, and so did its output
        if "pid" in self._plan.kinds and self._pidfd >= 0:
            if self._status is None:  # its pid namespace dies with it
                with contextlib.suppress(ProcessLookupError):  # ESRCH: it exited already
                    signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
            return
        # Its process group too, which may outlive it; or it is not made yet.
        self._helper.kill(self._rid)

    def _reap(self) -> None:
        deadline = time.monotonic() + _REAP_TIMEOUT
        self._take()
        while not self._finished():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return  # the record stays: the leak check will say so
            if select.select([self._helper], [], [], remaining)[0]:
                self._helper.receive()
                self._take()

    def _release(self) -> bool:
        gone = self._status is not None
        if self._pidfd >= 0:
            gone = gone or bool(select.select([self._pidfd], [], [], 0)[0])
            os.close(self._pidfd)
            self._pidfd = -1
        if "pid" not in self._plan.kinds:
            self._helper.release_group(self._rid)
        self._helper.forget(self._rid)
        return gone


@dataclass
class _ChildPipes:
    """Our ends of a forked child's result messages and of its ``go`` pipe."""

    msg: int
    go: int


class _ForkedProcess(IsolatedProcess):
    """A callable run by a fork of this process (``pid``, our child)."""

    def __init__(
        self, plan: _Plan, led: Ledger, pid: int, out: int, err: int, pipes: _ChildPipes
    ) -> None:
        """Take over the child ``pid``; on failure it is killed and reaped before raising."""
        self._child = pid
        self._pipes = pipes
        self._pidfd = -1
        self._exited = False
        self._msg = bytearray()
        super().__init__(plan, led, out, err)
        self._receiving = True
        try:
            self._pidfd = os.pidfd_open(pid)
            self._selector.register(pipes.msg, selectors.EVENT_READ)
            self._selector.register(self._pidfd, selectors.EVENT_READ)
            self._record_process(pid)
            if "user" in plan.kinds:
                self._write_id_maps()
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"<IsolatedProcess {self._plan.describe()} pid={self._child}>"

    def _ready(self, fd: int) -> None:
        if fd == self._pidfd:
            self._selector.unregister(fd)  # exited; the pipes may still hold data
            self._exited = True
            return
        chunk = os.read(fd, 65536)
        if not chunk:
            self._selector.unregister(fd)
            self._receiving = False
            return
        self._msg += chunk
        while len(self._msg) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(self._msg)
            if len(self._msg) < _HEADER.size + size:
                return
            body = bytes(self._msg[_HEADER.size : _HEADER.size + size])
            del self._msg[: _HEADER.size + size]
            self._messages.append(pickle.loads(body))

    def _finished(self) -> bool:
        return self._exited and not self._receiving

    def _host_pid(self, started: tuple[Any, ...]) -> int:
        return int(started[2])

    def _write_id_maps(self) -> None:
        __tracebackhide__ = True
        self._pump(lambda: any(m[0] in ("userns", "error") for m in self._messages))
        if self._message("userns") is None:
            return  # the child failed before; wait() raises its error
        for name, text in _identity_maps():
            kernel.write_file(f"/proc/{self._child}/{name}", text)
        os.write(self._pipes.go, b"1")

    def kill(self) -> None:
        if self._status is not None:
            return
        if "pid" in self._plan.kinds and self._pidfd >= 0:
            # Our child kills its init child and reaps it, leaving no zombie to the host's
            # init; if it does not exit soon (it had no handler yet), kill the group.
            with contextlib.suppress(ProcessLookupError):  # ESRCH: already gone
                os.kill(self._child, signal.SIGTERM)
            if select.select([self._pidfd], [], [], _KILL_GRACE)[0]:
                return
        for pid in (-self._child, self._child):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:  # ESRCH: already gone
                pass

    def _reap(self) -> None:
        if self._status is None:
            _, self._status = os.waitpid(self._child, 0)

    def _release(self) -> bool:
        if self._pidfd >= 0:
            os.close(self._pidfd)
            self._pidfd = -1
        for fd in (self._pipes.msg, self._pipes.go):
            os.close(fd)
        return True


class _SharedHelper:
    """The session's helper, started on first use, recorded in the ledger while it runs."""

    def __init__(self, led: Ledger) -> None:
        self._ledger = led
        self._helper: Helper | None = None
        self._record: Record | None = None
        self._stdin = -1

    @property
    def pid(self) -> int | None:
        """The helper's PID, or None if it is not running."""
        helper = self._helper
        return helper.pid if helper is not None and helper.alive else None

    def get(self) -> Helper:
        """The running helper of this process (started now if there is none)."""
        helper = self._helper
        if helper is not None and helper.owner != os.getpid():
            helper = None  # a fork of the process that started it: not ours to use
            self._record = None
        elif helper is not None and not helper.alive:
            self.stop()
            helper = None
        if helper is None:
            helper = Helper()
            pid = helper.start()
            self._helper = helper
            start = process_start_time(pid) or 0
            self._record = self._ledger.record(
                "process",
                f"nsexec-{pid}",
                pid=pid,
                start=start,
                target="isolated_namespaces helper",
            )
        return helper

    def spawn(self, plan: _Plan, out: int, err: int) -> tuple[Helper, int]:
        """Ask the helper to start ``plan``'s command writing to ``out`` and ``err``."""
        __tracebackhide__ = True
        assert isinstance(plan.target, list)
        maps = _identity_maps() if "user" in plan.kinds else None
        for attempt in (1, 2):
            helper = self.get()
            if self._stdin < 0:
                self._stdin = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            stdio = (self._stdin, out, err)
            try:
                rid = helper.spawn(plan.target, plan.kinds, plan.hostname, maps, stdio)
            except HelperGone:
                if attempt == 2:
                    raise
                continue  # it died since the last call: start another, once
            return helper, rid
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Stop the helper (it kills what it still runs) and forget its record; idempotent."""
        helper, self._helper = self._helper, None
        if helper is not None and helper.owner == os.getpid():
            helper.stop()
            if self._record is not None:
                self._ledger.release(self._record)
        self._record = None
        if self._stdin >= 0:
            os.close(self._stdin)
            self._stdin = -1


class NamespaceFactory:
    """Runs targets in fresh namespaces; ``close()`` kills whatever it started that still
    runs (and, for the session's factory, stops the helper)."""

    def __init__(
        self, led: Ledger, timeout: float = DEFAULT_TIMEOUT, *, _helper: _SharedHelper | None = None
    ) -> None:
        self._ledger = led
        self.timeout = timeout
        self._live: set[IsolatedProcess] = set()
        self._owns_helper = _helper is None
        self._helper = _SharedHelper(led) if _helper is None else _helper

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
        plan = _check_args(target, kinds, hostname, timeout, self.timeout)
        out_r, out_w = os.pipe()
        try:
            err_r, err_w = os.pipe()
        except BaseException:
            os.close(out_r)
            os.close(out_w)
            raise
        if callable(plan.target):
            proc: IsolatedProcess = self._fork(plan, out_r, out_w, err_r, err_w)
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
            proc = _HelperProcess(plan, self._ledger, helper, rid, out_r, err_r)
        self._live.add(proc)
        return proc

    def _fork(self, plan: _Plan, out_r: int, out_w: int, err_r: int, err_w: int) -> IsolatedProcess:
        """Fork this process to run ``plan``'s callable; the pipes are taken over."""
        __tracebackhide__ = True
        fds = [out_r, out_w, err_r, err_w]
        stdin = -1
        try:
            stdin = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            for _ in range(2):
                fds.extend(os.pipe())
            msg_r, msg_w, go_r, go_w = fds[4:]
            child = _ChildFds(stdin, out_w, err_w, msg_w, go_r)
            parent = os.getpid()
            pid = os.fork()
            if pid == 0:
                try:
                    for fd in (out_r, err_r, msg_r, go_w):
                        os.close(fd)
                    _child(plan, parent, child)
                finally:
                    os._exit(_FAILED)
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        finally:
            if stdin >= 0:
                os.close(stdin)
        for fd in (out_w, err_w, msg_w, go_r):
            os.close(fd)
        try:
            os.setpgid(pid, pid)  # also done by the child: whichever comes first
        except OSError:  # EACCES: it already exec'd; ESRCH: it already exited
            pass
        # on failure, it cleans up
        return _ForkedProcess(plan, self._ledger, pid, out_r, err_r, _ChildPipes(msg_r, go_w))

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
