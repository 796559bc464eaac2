"""The fork server of ``isolated_namespaces``: a small helper process that starts commands.

Forking the pytest process costs milliseconds: its page tables are big, and the copy
pays for every page either side writes next. So argv targets are started by a helper
("zygote") instead: an interpreter that imports only the standard library (this module
is stdlib-only on purpose; a tenth of pytest's size), started once per pytest process,
on first use, as ``python -I -S _nsexec.py FD``. It talks to the pytest process over a
``SOCK_SEQPACKET`` socketpair (FD), one JSON object per message:

pytest -> helper
    ``{"op": "spawn", "id": N, "argv": [...], "kinds": [...], "hostname": str | null,
    "maps": [[file, text], ...] | null, "cwd": path | null, "umask": int, "env": {...}}``
    with three descriptors attached (SCM_RIGHTS): the target's stdin, stdout and stderr,
    which it then uses directly. ``env`` is sent when it changed since the last request;
    the target runs with the last one sent, in ``cwd``, with ``umask``.
    ``{"op": "kill", "id": N}``: SIGKILL the target and its process group (a target
    without a new pid namespace: its group is remembered after the target is reaped,
    since members of it may live on, until ``{"op": "forget", "id": N}``).
    Closing the socket: the helper kills every target and group, reaps and exits.

helper -> pytest
    ``{"op": "started", "id": N, "pid": P}`` with a pidfd of P attached;
    ``{"op": "ns", "id": N, "ns": {kind: identity}}``, sent by the target just before exec;
    ``{"op": "error", "id": N, "errno": E | null, "message": text}``;
    ``{"op": "exit", "id": N, "status": wait status}``, always the last message of N.

The helper makes each target with one ``clone3()`` straight into its new namespaces
(``CLONE_NEWPID`` included, so the target is PID 1 of its pid namespace with no second
fork), writes the user namespace's id maps if there is one, and reaps the target when
its pidfd says it exited. The target arms ``PR_SET_PDEATHSIG``, makes its own process
group, makes the mount tree private, mounts a fresh ``/proc`` (new mount and pid
namespaces), sets the host name, brings ``lo`` up and execs. The helper itself ends
when the pytest process closes the socket or dies (EOF, or its parent changes), taking
its targets with it; the plugin records it in the ledger so that a helper left by a
killed session is reaped by the next one.

This module is the helper's side and the messages; the pytest process's end is
:class:`pytest_containers._nsclient.Helper`.
"""

from __future__ import annotations

import array
import contextlib
import ctypes
import fcntl
import gc
import json
import os
import select
import selectors
import signal
import socket
import struct
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

# Namespace kind: (name under /proc/PID/ns, clone flag).
KINDS: dict[str, tuple[str, int]] = {
    "pid": ("pid", 0x20000000),
    "mount": ("mnt", 0x00020000),
    "uts": ("uts", 0x04000000),
    "ipc": ("ipc", 0x08000000),
    "net": ("net", 0x40000000),
    "user": ("user", 0x10000000),
    "cgroup": ("cgroup", 0x02000000),
}
MAX_MESSAGE = 1 << 16
"""Largest request (an argv beyond it is refused by ``Helper.spawn``)."""
FAILED = 127  # the exit status of a target that could not start

_CLONE_PIDFD = 0x1000
_SYS_CLONE3 = 435  # x86_64 and aarch64
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 2, 4, 8
_MS_REC, _MS_PRIVATE = 1 << 14, 1 << 18
_PR_SET_PDEATHSIG = 1
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1
_IFREQ = struct.Struct("16sH14x")
_DEFAULT_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ)  # Python ignores them; commands must not
_PARENT_CHECK = 1.0  # seconds between checks that the pytest process is still there


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode()


def send(sock: socket.socket, message: dict[str, Any] | bytes, fds: Sequence[int] = ()) -> None:
    """Send one message (a dict, or one encoded already), with ``fds`` attached."""
    data = message if isinstance(message, bytes) else encode(message)
    if fds:
        sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    else:
        sock.send(data)


def receive(sock: socket.socket, maxfds: int, flags: int = 0) -> tuple[bytes, list[int], int]:
    """(data, descriptors, message flags) of one message; the descriptors are close-on-exec.

    (``socket.recv_fds`` of Python 3.11 ignores its ``flags``.)"""
    fds = array.array("i")
    data, ancillary, msg_flags, _ = sock.recvmsg(
        MAX_MESSAGE, socket.CMSG_SPACE(maxfds * fds.itemsize), flags | socket.MSG_CMSG_CLOEXEC
    )
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
    return data, list(fds), msg_flags


# ------------------------------------------------------------------ the helper side


class _CloneArgs(ctypes.Structure):
    """``struct clone_args`` of clone3(2)."""

    _fields_ = [
        (name, ctypes.c_uint64)
        for name in (
            "flags",
            "pidfd",
            "child_tid",
            "parent_tid",
            "exit_signal",
            "stack",
            "stack_size",
            "tls",
            "set_tid",
            "set_tid_size",
            "cgroup",
        )
    ]


class _Kernel:
    """The few system calls the standard library lacks, through libc."""

    def __init__(self) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc_gil = ctypes.PyDLL(None, use_errno=True)  # clone3 with the GIL held

    def _error(self, what: str, path: str | None = None) -> OSError:
        err = ctypes.get_errno()
        return OSError(err, f"{what}: {os.strerror(err)}", path)

    def clone(self, flags: int) -> tuple[int, int]:
        """``fork()`` into new namespaces: (pid, pidfd) in the parent, (0, -1) in the child.

        The interpreter's fork hooks run as in ``os.fork``; glibc's do not, which is fine
        for this single-threaded process."""
        pidfd = ctypes.c_int(-1)
        args = _CloneArgs(
            flags=flags | _CLONE_PIDFD,
            pidfd=ctypes.addressof(pidfd),
            exit_signal=signal.SIGCHLD,
        )
        ctypes.pythonapi.PyOS_BeforeFork()
        pid = self.libc_gil.syscall(
            ctypes.c_long(_SYS_CLONE3), ctypes.byref(args), ctypes.c_size_t(ctypes.sizeof(args))
        )
        if pid == 0:
            ctypes.pythonapi.PyOS_AfterFork_Child()
            return 0, -1
        err = ctypes.get_errno()
        ctypes.pythonapi.PyOS_AfterFork_Parent()
        if pid < 0:
            raise OSError(err, f"clone3: {os.strerror(err)}")
        return int(pid), pidfd.value

    def mount(self, source: str | None, target: str, fstype: str | None, flags: int) -> None:
        src = source.encode() if source is not None else None
        fst = fstype.encode() if fstype is not None else None
        if self.libc.mount(src, target.encode(), fst, ctypes.c_ulong(flags), None) != 0:
            raise self._error(f"mount {source or fstype} on {target}", target)

    def set_pdeathsig(self, sig: int) -> None:
        zero = ctypes.c_ulong(0)
        if self.libc.prctl(_PR_SET_PDEATHSIG, ctypes.c_ulong(sig), zero, zero, zero) != 0:
            raise self._error("prctl(PR_SET_PDEATHSIG)")


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        flags = _IFREQ.unpack(fcntl.ioctl(sock, _SIOCGIFFLAGS, _IFREQ.pack(b"lo", 0)))[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, _IFREQ.pack(b"lo", flags | _IFF_UP))


def _report(sock: socket.socket, message: dict[str, Any], fds: Sequence[int] = ()) -> None:
    """Send to pytest; if it is gone, the helper notices EOF soon enough."""
    with contextlib.suppress(OSError):  # EPIPE, ECONNRESET: pytest went away
        send(sock, message, fds)


class _Server:
    """The helper's loop: requests in, targets out, exits reported."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.kernel = _Kernel()
        self.parent = os.getppid()
        # Targets poll this after arming PDEATHSIG: readable means the helper already died.
        self.self_pidfd = os.pidfd_open(os.getpid())
        self.selector = selectors.DefaultSelector()
        self.selector.register(sock, selectors.EVENT_READ, None)
        self.live: dict[int, tuple[int, int]] = {}  # request id: (pid, pidfd)
        self.groups: dict[int, int] = {}  # request id: process group, without a pid ns
        self.env: dict[str, str] | None = None  # None: the helper's own

    def serve(self) -> None:
        while True:
            events = self.selector.select(_PARENT_CHECK)
            if not events and os.getppid() != self.parent:
                return  # pytest died and a forked child of it still holds the socket
            for key, _ in events:
                if key.data is not None:
                    self._reap(int(key.data))
                    continue
                try:
                    data, fds, flags = receive(self.sock, 3)
                except ConnectionResetError:  # pytest died
                    data, fds, flags = b"", [], 0
                if not data:
                    return
                request: Any = None
                try:
                    request = json.loads(data)
                    if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
                        raise ValueError("the request was truncated")
                    if request["op"] == "spawn":
                        self._spawn(int(request["id"]), request, fds)
                    elif request["op"] == "kill":
                        self._kill(int(request["id"]))
                    elif request["op"] == "forget":
                        self.groups.pop(int(request["id"]), None)
                except Exception as exc:
                    rid = request.get("id", 0) if isinstance(request, dict) else 0
                    _report(
                        self.sock, {"op": "error", "id": rid, "errno": None, "message": str(exc)}
                    )
                finally:
                    for fd in fds:
                        os.close(fd)

    def _spawn(self, rid: int, request: dict[str, Any], fds: list[int]) -> None:
        """Make the target of a request; on failure, say why and that it "exited"."""
        maps = request.get("maps")
        go_r, go_w = -1, -1
        try:
            try:
                if len(fds) != 3:
                    raise ValueError(f"spawn needs stdin, stdout and stderr, got {len(fds)}")
                flags = 0
                for kind in request["kinds"]:
                    flags |= KINDS[kind][1]
                if request.get("env") is not None:
                    self.env = dict(request["env"])
                if maps:
                    go_r, go_w = os.pipe()
                pid, pidfd = self.kernel.clone(flags)
            except Exception as exc:
                _report(self.sock, _error(rid, exc))
                _report(self.sock, {"op": "exit", "id": rid, "status": FAILED << 8})
                return
            if pid == 0:
                try:
                    if go_w >= 0:
                        os.close(go_w)  # so that the helper's death reads as EOF
                    _target(self, request, fds, go_r)
                finally:
                    os._exit(FAILED)
            self.live[rid] = (pid, pidfd)
            if "pid" not in request["kinds"]:
                self.groups[rid] = pid  # the target makes a group of its own, named so
            self.selector.register(pidfd, selectors.EVENT_READ, rid)
            _report(self.sock, {"op": "started", "id": rid, "pid": pid}, [pidfd])
            if maps:
                try:
                    for name, text in maps:
                        _write(f"/proc/{pid}/{name}", text)
                    os.write(go_w, b"1")
                except OSError as exc:  # the target sees EOF and exits
                    _report(self.sock, _error(rid, exc))
        finally:
            for fd in (go_r, go_w):
                if fd >= 0:
                    os.close(fd)

    def _kill(self, rid: int) -> None:
        # A group outlives its leader while a member lives, so its number is not reused.
        group = self.groups.get(rid)
        if group is not None:
            with contextlib.suppress(ProcessLookupError):  # ESRCH: no member (left)
                os.kill(-group, signal.SIGKILL)
        if rid in self.live:
            with contextlib.suppress(ProcessLookupError):  # ESRCH: it exited already
                signal.pidfd_send_signal(self.live[rid][1], signal.SIGKILL)

    def _reap(self, rid: int) -> None:
        pid, pidfd = self.live.pop(rid)
        self.selector.unregister(pidfd)
        os.close(pidfd)
        _, status = os.waitpid(pid, 0)
        _report(self.sock, {"op": "exit", "id": rid, "status": status})

    def shutdown(self) -> None:
        for rid in {*self.live, *self.groups}:
            self._kill(rid)
        for pid, _ in self.live.values():
            with contextlib.suppress(ChildProcessError):  # ECHILD: reaped already
                os.waitpid(pid, 0)


def _error(rid: int, exc: BaseException) -> dict[str, Any]:
    number = exc.errno if isinstance(exc, OSError) else None
    return {"op": "error", "id": rid, "errno": number, "message": f"{type(exc).__name__}: {exc}"}


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _target(server: _Server, request: dict[str, Any], fds: list[int], go: int) -> NoReturn:
    """Body of a target, in its new namespaces: set them up, then exec. Never returns."""
    sock, rid, kinds = server.sock, int(request["id"]), request["kinds"]
    try:
        server.kernel.set_pdeathsig(signal.SIGKILL)
        if select.select([server.self_pidfd], [], [], 0)[0]:
            os._exit(FAILED)  # the helper died before PDEATHSIG was armed
        os.setpgid(0, 0)  # a group of its own: killed as one
        if go >= 0 and os.read(go, 1) != b"1":  # the helper writes the id maps first
            os._exit(FAILED)
        for fd, std in zip(fds, (0, 1, 2), strict=True):
            os.dup2(fd, std)
        if "mount" in kinds:
            server.kernel.mount(None, "/", None, _MS_REC | _MS_PRIVATE)
            if "pid" in kinds:
                server.kernel.mount("proc", "/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC)
        if request.get("hostname") is not None:
            socket.sethostname(request["hostname"])
        if request.get("cwd") is not None:
            os.chdir(request["cwd"])
        if request.get("umask") is not None:
            os.umask(request["umask"])
        if "net" in kinds:
            _loopback_up()
        ns = {kind: os.readlink(f"/proc/self/ns/{name}") for kind, (name, _) in KINDS.items()}
        send(sock, {"op": "ns", "id": rid, "ns": ns})
        for sig in _DEFAULT_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        argv = request["argv"]
        if server.env is None:
            os.execvp(argv[0], argv)
        os.execvpe(argv[0], argv, server.env)
    except BaseException as exc:
        with contextlib.suppress(BaseException):
            send(sock, _error(rid, exc))
    os._exit(FAILED)


def main(args: Sequence[str]) -> int:
    if len(args) != 1 or not args[0].isdigit():
        print("usage: python -I -S _nsexec.py FD (started by pytest-containers)", file=sys.stderr)
        return 2
    sock = socket.socket(fileno=int(args[0]))
    os.set_inheritable(sock.fileno(), False)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # in case pytest ignored it: we reap
    gc.disable()
    gc.freeze()
    server = _Server(sock)
    try:
        server.serve()
    finally:
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
