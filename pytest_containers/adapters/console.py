"""The caller's side of a container terminal: runc's console socket, and the pty master.

A runtime asked for ``process.terminal`` (``create --console-socket PATH``) connects to
an AF_UNIX stream socket at PATH and sends the pty master with SCM_RIGHTS before its
``create`` returns. ``ConsoleSocket`` is that listener (in a short private directory,
since a socket path has at most 107 bytes); ``Terminal`` wraps the received master
for a test: what the container wrote to its terminal, and input to it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import select
import shutil
import socket
import struct
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from reference_runtime import kernel

from ..errors import ContainerNotFoundError, RuntimeCommandError

if TYPE_CHECKING:
    from .base import RuntimeAdapter, Stdio, TerminalAdapter

RECEIVE_TIMEOUT = 30.0
"""Seconds to wait for the runtime's connection once its create has returned."""

_TIOCGWINSZ = 0x5413


def wants_terminal(bundle: str | os.PathLike[str]) -> bool:
    """Whether the bundle's config.json asks for ``process.terminal``."""
    try:
        config = json.loads((Path(bundle) / "config.json").read_text())
    except (OSError, ValueError):  # the runtime will say what is wrong with it
        return False
    process = config.get("process") if isinstance(config, dict) else None
    return isinstance(process, dict) and process.get("terminal") is True


class ConsoleSocket:
    """A listening console socket; ``receive`` takes the master the runtime sent."""

    def __init__(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="pc-console-")
        self.path = os.path.join(self._dir, "console.sock")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._sock.bind(self.path)
            self._sock.listen(4)
        except BaseException:
            self.close()
            raise

    def receive(self, timeout: float = RECEIVE_TIMEOUT) -> int:
        """The pty master fd the runtime sent (the caller owns it); ``TimeoutError``
        if no runtime connected and sent one within ``timeout`` seconds."""
        self._sock.settimeout(timeout)
        try:
            conn, _ = self._sock.accept()
        except TimeoutError:
            raise TimeoutError(f"nothing connected to the console socket in {timeout}s") from None
        with conn:
            conn.settimeout(timeout)
            _, fds = kernel.recv_fds(conn, 4096, max_fds=4)
        for extra in fds[1:]:
            os.close(extra)
        if not fds:
            raise TimeoutError("the runtime connected to the console socket but sent no fd")
        return fds[0]

    def close(self) -> None:
        """Stop listening and remove the socket and its directory (idempotent)."""
        self._sock.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> ConsoleSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Terminal:
    """A container's terminal through its pty master (owned by the adapter).

    Output arrives as a terminal shows it: ``\\n`` written by the program reads as
    ``\\r\\n`` (ONLCR), and input written here is echoed back while ECHO is on.
    """

    def __init__(self, master: int) -> None:
        self.fd = master
        self.received = b""
        self.closed = False  # the slave side is gone: every process holding it exited

    def fileno(self) -> int:
        return self.fd

    def write(self, data: bytes | str) -> None:
        """Type ``data`` into the terminal (the program reads it from stdin)."""
        raw = data.encode() if isinstance(data, str) else data
        while raw:
            raw = raw[os.write(self.fd, raw) :]

    def _read_some(self, wait: float) -> bool:
        """Read what is there within ``wait`` seconds; False once nothing more can come."""
        if self.closed:
            return False
        ready, _, _ = select.select([self.fd], [], [], max(wait, 0.0))
        if not ready:
            return True
        try:
            chunk = os.read(self.fd, 65536)
        except OSError as exc:
            if exc.errno != errno.EIO:  # EIO: the slave is closed, all was read
                raise
            chunk = b""
        if not chunk:
            self.closed = True
            return False
        self.received += chunk
        return True

    def read_until(self, marker: bytes | str, timeout: float) -> str:
        """Everything received up to and including ``marker``; ``TimeoutError`` (with
        what came) if it has not come after ``timeout`` seconds or the terminal closed."""
        raw = marker.encode() if isinstance(marker, str) else marker
        deadline = time.monotonic() + timeout
        while raw not in self.received:
            left = deadline - time.monotonic()
            if left <= 0 or not self._read_some(min(left, 0.5)):
                raise TimeoutError(
                    f"{raw!r} did not arrive on the terminal within {timeout}s "
                    f"(closed={self.closed}); received {self.text()!r}"
                )
        return self.text()

    def read_all(self, timeout: float) -> str:
        """Everything until the terminal closes (its processes exited) or ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._read_some(deadline - time.monotonic()):
            pass
        return self.text()

    def text(self) -> str:
        """What arrived so far, decoded."""
        return self.received.decode(errors="replace")

    def size(self) -> tuple[int, int]:
        """(rows, columns) of the terminal, as TIOCGWINSZ says on the master."""
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(self.fd, _TIOCGWINSZ, b"\0" * 8))
        return rows, cols

    def close(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):  # already closed
                os.close(self.fd)
            self.fd = -1


class Terminals:
    """The terminals an adapter holds, by container ID (closed by ``drop``/``close``)."""

    def __init__(self) -> None:
        self._by_id: dict[str, Terminal] = {}

    def add(self, container_id: str, master: int) -> None:
        self._by_id[container_id] = Terminal(master)

    def get(self, container_id: str) -> Terminal:
        found = self._by_id.get(container_id)
        if found is None:
            raise RuntimeCommandError(
                "terminal", container_id, "it was not created with process.terminal by this adapter"
            )
        return found

    def drop(self, container_id: str) -> None:
        terminal = self._by_id.pop(container_id, None)
        if terminal is not None:
            terminal.close()

    def close(self) -> None:
        for container_id in list(self._by_id):
            self.drop(container_id)


def run_on_terminal(
    adapter: TerminalAdapter, container_id: str, bundle: str | os.PathLike[str], stdio: Stdio | None
) -> int:
    """``run`` of a bundle with ``process.terminal``: create, start, copy the terminal's
    output to ``stdio[1]`` until the container exits, delete; its exit status."""
    runtime: RuntimeAdapter = adapter  # type: ignore[assignment]
    runtime.create(container_id, bundle, stdio=stdio)
    try:
        runtime.start(container_id)
        terminal = adapter.terminal(container_id)
        code = None
        while code is None:
            terminal.read_all(timeout=0.2)
            with contextlib.suppress(TimeoutError):  # still running: read on
                code = runtime.wait(container_id, timeout=None if terminal.closed else 0)
        terminal.read_all(timeout=1.0)  # what is left once the container is gone
        data = terminal.received
        while stdio is not None and data:
            data = data[os.write(stdio[1], data) :]
        return code
    finally:
        with contextlib.suppress(ContainerNotFoundError):  # already gone
            runtime.delete(container_id, force=True)
