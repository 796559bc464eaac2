"""``process.terminal``: the container's pseudoterminal and runc's console socket.

The protocol is runc's (``create --console-socket PATH``): the caller listens on an
AF_UNIX stream socket at PATH; the runtime connects to it before it creates anything
(so an unreachable socket fails ``create`` with nothing made) and hands the connected
socket to the container init. The init, once it has pivoted into the rootfs and
before it is reported ready:

1. opens ``/dev/pts/ptmx`` of the container's own devpts instance, unlocks the pty
   and opens its slave ``/dev/pts/N``;
2. sets its size from ``process.consoleSize`` (TIOCSWINSZ);
3. bind-mounts the slave onto ``/dev/console`` (config-linux.md "Default Devices");
4. sends the master over the console socket with SCM_RIGHTS (the slave's path as
   the message, as runc does) and closes its own copy;
5. starts a new session, makes the slave its controlling terminal (TIOCSCTTY) and
   its stdin, stdout and stderr.

The caller holds the only copy of the master once ``create`` returns. ``exec`` with
a terminal does the same for the new process, without the /dev/console mount.
"""

from __future__ import annotations

import _socket
import fcntl
import os
import struct

from . import kernel
from .errors import ConfigError, ProcessError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .config import ConsoleSize

# asm-generic/ioctls.h
TIOCSCTTY = 0x540E
TIOCGWINSZ = 0x5413
TIOCSWINSZ = 0x5414
TIOCGPTN = 0x80045430
TIOCSPTLCK = 0x40045431

PTMX = "/dev/pts/ptmx"
CONSOLE = "/dev/console"


def connect(path: str) -> _socket.socket:
    """Connect to the caller's console socket at ``path`` (in the runtime, before
    anything is made); ``ConfigError`` naming the path if nobody listens there."""
    __tracebackhide__ = True
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    directory, name = os.path.split(os.path.abspath(path))
    dir_fd = -1
    try:
        address = path
        if len(os.fsencode(path)) >= 108:  # sun_path: reach it through the directory
            dir_fd = os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            address = f"/proc/self/fd/{dir_fd}/{name}"
        sock.connect(address)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot connect to the console socket {path}: {exc.strerror or exc} "
            "(it must be a listening AF_UNIX stream socket)"
        ) from None
    finally:
        if dir_fd >= 0:
            os.close(dir_fd)
    return sock


def open_pty() -> tuple[int, int, str]:
    """A new pty of the devpts mounted at /dev/pts: (master fd, slave fd, slave path)."""
    __tracebackhide__ = True
    try:
        master = os.open(PTMX, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise ProcessError(
            f"process.terminal needs a devpts mounted at /dev/pts (newinstance): "
            f"cannot open {PTMX}: {exc.strerror}"
        ) from None
    try:
        fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
        number = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, struct.pack("I", 0)))[0]
        path = f"/dev/pts/{number}"
        slave = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        os.close(master)
        raise ProcessError(f"cannot open the pty's slave: {exc.strerror}") from None
    return master, slave, path


def set_size(fd: int, size: ConsoleSize) -> None:
    """TIOCSWINSZ: ``size.height`` rows by ``size.width`` columns."""
    fcntl.ioctl(fd, TIOCSWINSZ, struct.pack("HHHH", size.height, size.width, 0, 0))


def get_size(fd: int) -> tuple[int, int]:
    """TIOCGWINSZ: (rows, columns) of the terminal open at ``fd``."""
    rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, TIOCGWINSZ, b"\0" * 8))
    return rows, cols


def mount_console(slave_path: str) -> None:
    """Bind the slave onto /dev/console, making the mount point if there is none."""
    __tracebackhide__ = True
    try:
        if not os.path.lexists(CONSOLE):
            os.close(os.open(CONSOLE, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
        kernel.mount(slave_path, CONSOLE, None, kernel.MS_BIND)
    except OSError as exc:
        raise ProcessError(f"cannot bind {slave_path} onto {CONSOLE}: {exc.strerror}") from None


def send_master(sock: _socket.socket, master: int, slave_path: str) -> None:
    """Hand the master to whoever listens on the console socket, then close both."""
    __tracebackhide__ = True
    try:
        kernel.send_fd(sock, slave_path.encode(), master)
    except OSError as exc:
        raise ProcessError(
            f"cannot send the pty master to the console socket: {exc.strerror}"
        ) from None
    finally:
        os.close(master)
        sock.close()


def become_controlled_by(slave: int) -> None:
    """New session with the slave as controlling terminal and as fds 0, 1 and 2."""
    __tracebackhide__ = True
    try:
        if os.getsid(0) != os.getpid():
            os.setsid()
        fcntl.ioctl(slave, TIOCSCTTY, 0)
        for target in (0, 1, 2):
            os.dup2(slave, target)
    except OSError as exc:
        raise ProcessError(
            f"cannot make the pty the controlling terminal: {exc.strerror}"
        ) from None
    if slave > 2:
        os.close(slave)


def setup(sock: _socket.socket, size: ConsoleSize | None, console: bool = True) -> None:
    """Steps 1-5 of the module doc, in the process that will exec the program."""
    __tracebackhide__ = True
    master, slave, path = open_pty()
    try:
        if size is not None:
            set_size(master, size)
        if console:
            mount_console(path)
    except BaseException:
        os.close(master)
        os.close(slave)
        raise
    send_master(sock, master, path)
    become_controlled_by(slave)
