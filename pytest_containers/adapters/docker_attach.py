"""A Docker container's terminal through the Engine's attach stream.

A container created with ``Tty`` and ``OpenStdin`` gets a pty whose master the Engine's
shim keeps. ``POST /containers/{id}/attach?stdin=1&stdout=1&stderr=1&stream=1``
upgrades the HTTP connection to a raw byte stream: what the container writes to its
terminal arrives on it as the pty gives it (with a tty there is no multiplexing
header), and bytes written to it are typed into the terminal. ``open_attach`` opens the
stream before ``start`` (nothing the program writes is missed, and nothing can wait in
the HTTP reader's buffer) and hands out the socket as a plain descriptor, so
``AttachedTerminal`` reads and writes it as ``Terminal`` does a pty master.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from typing import Any

from ..errors import RuntimeCommandError
from .console import Terminal, Terminals

ATTACH_PARAMS = {"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}

# Engine transports whose attach stream is a plain socket: a unix socket, or tcp without TLS.
_PLAIN_SOCKET_URLS = ("http+docker://localhost", "http://")


def attachable(api: Any) -> bool:
    """Whether ``api`` (a ``docker.APIClient``) reaches the Engine over a plain socket,
    which a descriptor can read and write (not TLS, ssh or a named pipe)."""
    return str(api.base_url).startswith(_PLAIN_SOCKET_URLS)


def open_attach(api: Any, container_id: str) -> int:
    """A blocking socket descriptor carrying ``container_id``'s terminal (the caller
    owns it); raises ``docker.errors.APIError`` as the Engine refuses."""
    sock = api.attach_socket(container_id, params=dict(ATTACH_PARAMS))
    try:
        fd = os.dup(sock.fileno())
    finally:
        # The SDK keeps the HTTP response on the socket: closing it closes the socket
        # and the SDK's connection (never handed back to its pool); the duplicate keeps
        # the stream open.
        response = getattr(sock, "_response", None)
        if response is not None:
            response.close()
        sock.close()
    os.set_blocking(fd, True)  # the SDK's timeout made it non-blocking
    return fd


class AttachedTerminal(Terminal):
    """``Terminal`` over the attach stream (owned by the adapter until ``delete``).

    ``closed`` turns true when the Engine ends the stream: the container exited.
    ``size`` reads the pty itself, through the standard streams of the container's init
    (``container_pid`` gives its host PID), since the master is not ours.
    """

    def __init__(self, fd: int, container_id: str, container_pid: Callable[[], int]) -> None:
        super().__init__(fd)
        self.container_id = container_id
        self._container_pid = container_pid

    def size(self) -> tuple[int, int]:
        """(rows, columns) of the container's pty, as TIOCGWINSZ says on its slave."""
        pid = self._container_pid()
        for n in range(3):
            try:
                tty = os.open(
                    f"/proc/{pid}/fd/{n}",
                    os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC,
                )
            except OSError as exc:
                if exc.errno in (errno.ENOENT, errno.ESRCH):  # exited, or the fd was closed
                    continue
                raise
            slave = Terminal(tty)
            try:
                return slave.size()
            except OSError as exc:
                if exc.errno != errno.ENOTTY:  # redirected away from the terminal: try the next
                    raise
            finally:
                slave.close()
        raise RuntimeCommandError(
            "terminal size", self.container_id, "no standard stream of its process is a terminal"
        )


class AttachedTerminals(Terminals):
    """The attach-stream terminals an adapter holds, by container ID (closed by
    ``drop``/``close``)."""

    def attach(self, api: Any, container_id: str, container_pid: Callable[[], int]) -> None:
        """Open ``container_id``'s attach stream (before its start) and keep it."""
        fd = open_attach(api, container_id)
        self._by_id[container_id] = AttachedTerminal(fd, container_id, container_pid)
