"""The kernel boundary of the cgroup manager: every read, write, mkdir, rmdir and kill.

Nothing else in the package touches the host, so this is the one file to read to see
what the cgroup code does to a machine. Every ``OSError`` is translated here into a
:class:`~reference_runtime.errors.CgroupError` whose message names the file and the
errno's meaning; the reads used for statistics return ``None`` for a missing file
instead, because which files exist depends on the kernel and its configuration.
"""

from __future__ import annotations

import _signal
import errno
import os

from reference_runtime.errors import CgroupError

PROCS_FILE = "cgroup.procs"
TASKS_FILE = "tasks"  # v1 only: moves one thread
THREADS_FILE = "cgroup.threads"  # v2: the threads of a cgroup
"""The file listing (and, when written, admitting) the processes of a cgroup."""


def describe(exc: OSError) -> str:
    """Return an errno's meaning and name, e.g. ``"Device or resource busy (EBUSY)"``."""
    if exc.errno is None:
        return str(exc)
    name = errno.errorcode.get(exc.errno, str(exc.errno))
    return f"{os.strerror(exc.errno)} ({name})"


def write_file(directory: str, name: str, value: str | int) -> None:
    """Write ``value`` to the cgroup file ``directory/name``, which must already exist.

    Like the kernel's cgroupfs, a missing file is an error (the file is never created),
    which also keeps tests against a fake cgroup tree honest.
    """
    __tracebackhide__ = True
    path = os.path.join(directory, name)
    data = str(value).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    except OSError as exc:
        raise CgroupError(f"cannot open {path} to write {value!s}: {describe(exc)}") from exc
    try:
        os.write(fd, data)
    except OSError as exc:
        raise CgroupError(f"cannot write {value!s} to {path}: {describe(exc)}") from exc
    finally:
        os.close(fd)


def read_text(path: str) -> str | None:
    """Return the stripped contents of ``path``, or ``None`` when the file does not exist."""
    __tracebackhide__ = True
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CgroupError(f"cannot read {path}: {describe(exc)}") from exc


def read_value(path: str) -> int | None:
    """Read a single-value file; ``"max"`` reads as -1, a missing or unparsable file as None."""
    text = read_text(path)
    if text is None:
        return None
    if text == "max":
        return -1
    try:
        return int(text.split()[0])
    except (ValueError, IndexError):
        return None


def read_keyed(path: str) -> dict[str, int] | None:
    """Read a flat keyed file (``memory.events``, ``cpu.stat``) as a dict; None if missing.

    Lines whose value is not an integer are skipped.
    """
    text = read_text(path)
    if text is None:
        return None
    values: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                values[parts[0]] = int(parts[1])
            except ValueError:
                continue
    return values


def exists(directory: str, name: str = "") -> bool:
    """Return whether ``directory/name`` (or ``directory`` itself) exists."""
    return os.path.exists(os.path.join(directory, name) if name else directory)


def make_dir(path: str) -> bool:
    """Create the cgroup directory ``path``; True if made, False if it already existed."""
    __tracebackhide__ = True
    try:
        os.mkdir(path, 0o755)
    except FileExistsError:
        return False
    except OSError as exc:
        raise CgroupError(f"cannot create cgroup {path}: {describe(exc)}") from exc
    return True


def remove_dir(path: str) -> None:
    """Remove the empty cgroup directory ``path``; raise the raw ``OSError`` for the caller.

    The caller decides what a failure means (ENOENT: already gone; EBUSY: retry), so this
    one function does not translate.
    """
    os.rmdir(path)


def child_dirs(path: str) -> list[str]:
    """Return the sub-cgroups of ``path`` (empty if ``path`` is gone)."""
    try:
        with os.scandir(path) as entries:
            return [e.path for e in entries if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return []


def read_procs(directory: str) -> list[int]:
    """Return the PIDs of the processes in ``directory`` ([] if the cgroup is gone).

    A threaded v2 cgroup refuses to list ``cgroup.procs`` (EOPNOTSUPP: its processes
    belong to the threaded domain); there the threads in ``cgroup.threads`` are mapped
    to their processes.
    """
    __tracebackhide__ = True
    try:
        text = read_text(os.path.join(directory, PROCS_FILE))
    except CgroupError as exc:
        if not isinstance(exc.__cause__, OSError) or exc.__cause__.errno != errno.EOPNOTSUPP:
            raise
        threads = read_text(os.path.join(directory, THREADS_FILE)) or ""
        return sorted({_thread_group(int(tid)) for tid in threads.split()} - {0})
    if not text:
        return []
    return [int(line) for line in text.split()]


def _thread_group(tid: int) -> int:
    """The PID of the process thread ``tid`` belongs to; 0 if it is gone."""
    try:
        with open(f"/proc/{tid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Tgid:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        # The thread exited (ENOENT, ESRCH) after cgroup.threads was read.
        pass
    return 0


def chown(path: str, uid: int, gid: int) -> None:
    """Change the owner of the cgroup file or directory ``path``."""
    __tracebackhide__ = True
    try:
        os.chown(path, uid, gid)
    except OSError as exc:
        raise CgroupError(f"cannot chown {path} to {uid}:{gid}: {describe(exc)}") from exc


def kill(pid: int) -> None:
    """Send SIGKILL to ``pid``; a process that already exited is not an error."""
    __tracebackhide__ = True
    try:
        os.kill(pid, _signal.SIGKILL)
    except ProcessLookupError:
        # Already gone (ESRCH): it exited between reading cgroup.procs and now.
        pass
    except OSError as exc:
        raise CgroupError(f"cannot kill process {pid}: {describe(exc)}") from exc
