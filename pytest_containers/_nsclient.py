"""The pytest process's end of the ``isolated_namespaces`` fork server.

:class:`Helper` starts the helper process (:mod:`pytest_containers._nsexec`, which also
defines the messages) and talks to it over the socket."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import socket
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import _nsexec
from ._nsexec import MAX_MESSAGE, encode, receive, send

if TYPE_CHECKING:
    import subprocess


class HelperGone(RuntimeError):
    """The helper process exited or stopped answering."""


class Helper:
    """The pytest process's end of one helper; start it with :meth:`start`.

    Messages are read by whoever waits (:meth:`receive`) and kept per request id until
    :meth:`forget`; each is a dict as above, ``"fds"`` holding what came attached.
    """

    def __init__(self) -> None:
        # Imported here, not by the helper process: threading's fork hooks would slow
        # down every fork it makes.
        import threading

        self.process: subprocess.Popen[bytes] | None = None
        self.owner = os.getpid()
        self.gone = False
        self._sock: socket.socket | None = None
        self._ids = itertools.count(1)
        self._inbox: dict[int, list[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._env: dict[str, str] | None = None  # the environment the helper has

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def alive(self) -> bool:
        """Whether the helper runs (a dead one is reaped here)."""
        if not self.gone and (self.process is None or self.process.poll() is not None):
            self.gone = True
        return not self.gone

    def fileno(self) -> int:
        """The socket, readable when a message (or EOF) waits: for a selector."""
        assert self._sock is not None
        return self._sock.fileno()

    def start(self, python: str = sys.executable) -> int:
        """Start the helper; returns its PID. It runs in a session of its own, so that the
        terminal's Ctrl-C goes to pytest, which then kills the targets."""
        import subprocess

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            argv = [python, "-I", "-S", os.path.abspath(_nsexec.__file__), str(theirs.fileno())]
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                pass_fds=[theirs.fileno()],
                start_new_session=True,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._sock = ours
        return self.process.pid

    def spawn(
        self,
        argv: Sequence[str],
        kinds: Sequence[str],
        hostname: str | None,
        maps: Sequence[tuple[str, str]] | None,
        stdio: tuple[int, int, int],
    ) -> int:
        """Ask for ``argv`` to run in new namespaces of ``kinds``; returns the request id.

        ``stdio`` is duplicated into the helper; the caller still owns (and closes) it."""
        __tracebackhide__ = True
        rid = next(self._ids)
        request = {"op": "spawn", "id": rid, "argv": list(argv), "kinds": list(kinds)}
        request.update(hostname=hostname, maps=[list(m) for m in maps] if maps else None)
        try:
            request["cwd"] = os.getcwd()
        except FileNotFoundError:  # our directory was removed: the helper's own, then
            request["cwd"] = None
        request["umask"] = umask = os.umask(0o022)  # reading it means setting it: put it back
        os.umask(umask)
        env = dict(os.environ)
        if env != self._env:
            request["env"] = env
        data = encode(request)
        if len(data) > MAX_MESSAGE:
            raise ValueError(f"the command line is too long ({len(data)} bytes) for the helper")
        self._inbox[rid] = []
        try:
            self._send(data, stdio)
        except BaseException:
            del self._inbox[rid]
            raise
        self._env = env
        return rid

    def kill(self, rid: int) -> None:
        """SIGKILL the target of ``rid`` and its process group (if the helper still runs)."""
        if not self.gone:
            with contextlib.suppress(HelperGone):  # gone: so are its targets
                self._send({"op": "kill", "id": rid})

    def release_group(self, rid: int) -> None:
        """Let the helper forget the process group of ``rid`` (no kill will come)."""
        if not self.gone:
            with contextlib.suppress(HelperGone):  # gone: nothing to forget
                self._send({"op": "forget", "id": rid})

    def _send(self, message: dict[str, Any] | bytes, fds: Sequence[int] = ()) -> None:
        __tracebackhide__ = True
        assert self._sock is not None
        try:
            with self._lock:
                send(self._sock, message, fds)
        except OSError as exc:  # EPIPE, ECONNRESET: it exited
            self.gone = True
            raise HelperGone(f"the isolated_namespaces helper (pid {self.pid}) exited") from exc

    def receive(self) -> None:
        """Read every message waiting, without blocking, into the inbox of its id."""
        if self.gone or self._sock is None:
            return
        with self._lock:
            while True:
                try:
                    data, fds, _ = receive(self._sock, 1, socket.MSG_DONTWAIT)
                except BlockingIOError:  # EAGAIN: nothing more for now
                    return
                except OSError:  # ECONNRESET: it exited
                    data, fds = b"", []
                if not data:
                    self.gone = True
                    return
                message = json.loads(data)
                message["fds"] = fds
                box = self._inbox.get(message["id"])
                if box is None:  # a request already forgotten
                    for fd in fds:
                        os.close(fd)
                else:
                    box.append(message)

    def messages(self, rid: int) -> list[dict[str, Any]]:
        """The messages about ``rid`` so far (the live list)."""
        return self._inbox.get(rid, [])

    def forget(self, rid: int) -> None:
        """Drop the messages of ``rid``, closing descriptors nobody took."""
        for message in self._inbox.pop(rid, []):
            for fd in message.pop("fds", []):
                os.close(fd)

    def stop(self, timeout: float = 5.0) -> None:
        """End the helper: it kills its targets, reaps them and exits; SIGKILL after
        ``timeout``. Idempotent."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self.gone = True
        for rid in list(self._inbox):
            self.forget(rid)
        if self.process is not None and self.process.returncode is None:
            import subprocess

            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
