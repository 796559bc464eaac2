"""A callable target of ``isolated_namespaces``, run by a fork of this process.

A callable can only run in the test's own interpreter, so the pytest process forks; the
child unshares the namespaces (for a new user namespace the parent writes the identity
map), sets them up and, for a new pid namespace, forks again so that the function runs
as PID 1. It reports over a pipe, one pickle per message."""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import selectors
import signal
import struct
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from reference_runtime import kernel

from ._nsplan import KINDS, Plan, current_namespaces, identity_maps
from ._nsprocess import IsolatedProcess
from .ledger import Ledger

_HEADER = struct.Struct("!I")  # each message on the result pipe: length, then a pickle
_FAILED = 127  # the exit status of a child that could not start the target
_KILL_GRACE = 1.0  # seconds the child has to end its pid namespace before SIGKILL
_DEFAULT_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ)  # Python ignores them; commands must not


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


def _child(plan: Plan, parent: int, fds: _ChildFds) -> NoReturn:
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


def _init(plan: Plan, fds: _ChildFds) -> NoReturn:
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


def _run(plan: Plan, fds: _ChildFds, host_pid: int) -> NoReturn:
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


@dataclass
class _ChildPipes:
    """Our ends of a forked child's result messages and of its ``go`` pipe."""

    msg: int
    go: int


class _ForkedProcess(IsolatedProcess):
    """A callable run by a fork of this process (``pid``, our child)."""

    def __init__(
        self, plan: Plan, led: Ledger, pid: int, out: int, err: int, pipes: _ChildPipes
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
        for name, text in identity_maps():
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


def fork_callable(
    plan: Plan, led: Ledger, out_r: int, out_w: int, err_r: int, err_w: int
) -> IsolatedProcess:
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
    return _ForkedProcess(plan, led, pid, out_r, err_r, _ChildPipes(msg_r, go_w))
