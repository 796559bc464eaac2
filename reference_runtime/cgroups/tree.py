"""Cgroup directory trees: the path rules, making levels, and tearing them down.

Shared by the v1, v2 and hybrid managers. A manager remembers exactly which
directories it made (top-down, in every hierarchy); teardown kills what is left in
the leaves, waits for them to empty, and removes only those directories, deepest first.
"""

from __future__ import annotations

import errno
import os
import time

from reference_runtime.cgroups import fs
from reference_runtime.errors import CgroupError, ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

KILL_TIMEOUT = 5.0
"""Seconds destroy waits for killed processes to leave a cgroup."""
BUSY_TIMEOUT = 1.0
"""Seconds an rmdir failing with EBUSY is retried (the kernel may still be releasing tasks)."""
POLL_INTERVAL = 0.01

_BUSY = (errno.EBUSY, errno.ENOTEMPTY)  # ENOTEMPTY: what a fake tree on a plain filesystem says


def normalize_path(cgroups_path: str) -> str:
    """Return ``cgroupsPath`` as a relative path ("a/b") under each hierarchy's root.

    Absolute and relative paths both start at the hierarchy root: this runtime does not
    nest containers under its own cgroup.
    """
    __tracebackhide__ = True
    if not isinstance(cgroups_path, str):
        raise ConfigError(f"linux.cgroupsPath must be a string, got {cgroups_path!r}")
    parts = [p for p in cgroups_path.split("/") if p]
    if not parts:
        raise ConfigError(f"linux.cgroupsPath {cgroups_path!r} names no cgroup; use e.g. '/ctr-1'")
    if any(p in (".", "..") or "\0" in p for p in parts):
        raise ConfigError(f"linux.cgroupsPath {cgroups_path!r} must not contain '.', '..' or NUL")
    return "/".join(parts)


def make_tree(
    root: str,
    relative: str,
    created: list[str],
    on_new: Callable[[str], None] | None = None,
) -> str:
    """Make every missing level of ``root/relative``, top-down; return the leaf directory.

    Each directory made is appended to ``created`` at once, so that a caller can undo a
    partial tree after a failure; ``on_new`` runs on each new level before the next one
    is made (the v1 cpuset initialisation).
    """
    current = root
    for part in relative.split("/"):
        current = os.path.join(current, part)
        if fs.make_dir(current):
            created.append(current)
            if on_new is not None:
                on_new(current)
    return current


def subtree(directory: str) -> list[str]:
    """Return ``directory`` and every cgroup below it, deepest first ([] if it is gone)."""
    if not fs.exists(directory):
        return []
    result: list[str] = []
    for child in fs.child_dirs(directory):
        result += subtree(child)
    result.append(directory)
    return result


def all_pids(leaves: Iterable[str]) -> list[int]:
    """Return the sorted PIDs in the cgroups ``leaves`` and their descendants."""
    found: set[int] = set()
    for leaf in leaves:
        for directory in subtree(leaf):
            found.update(fs.read_procs(directory))
    return sorted(found)


def kill_all(leaves: Sequence[str], timeout: float = KILL_TIMEOUT) -> None:
    """SIGKILL every process in ``leaves`` (and below) and wait until none is left.

    Uses v2's ``cgroup.kill`` where the kernel has it (5.14+), which also catches
    processes forked meanwhile; otherwise re-reads ``cgroup.procs`` and kills again
    until it stays empty. Raises CgroupError if processes remain after ``timeout``,
    or if the calling process itself is inside (it would kill itself).
    """
    __tracebackhide__ = True
    existing = [leaf for leaf in leaves if fs.exists(leaf)]
    pids = all_pids(existing)
    if os.getpid() in pids:
        raise CgroupError(
            f"this process ({os.getpid()}) is in cgroup {existing[0]}; move it out before destroy"
        )
    for leaf in existing:
        if pids and fs.exists(leaf, "cgroup.kill"):
            fs.write_file(leaf, "cgroup.kill", "1")
    deadline = time.monotonic() + timeout
    while pids:
        for pid in pids:
            fs.kill(pid)
        if time.monotonic() >= deadline:
            raise CgroupError(
                f"processes {pids} are still in cgroup {existing[0]} {timeout}s after SIGKILL"
            )
        time.sleep(POLL_INTERVAL)
        pids = all_pids(existing)


def _rmdir(path: str) -> None:
    __tracebackhide__ = True
    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        try:
            fs.remove_dir(path)
            return
        except FileNotFoundError:
            # Already gone (ENOENT): an earlier destroy, or the owner of the tree, removed it.
            return
        except OSError as exc:
            if exc.errno not in _BUSY:
                raise CgroupError(f"cannot remove cgroup {path}: {fs.describe(exc)}") from exc
            if time.monotonic() >= deadline:
                raise CgroupError(
                    f"cannot remove cgroup {path}: {fs.describe(exc)} after {BUSY_TIMEOUT}s; "
                    "processes or child cgroups remain"
                ) from exc
            time.sleep(POLL_INTERVAL)


def remove_created(created: Sequence[str], leaves: Iterable[str]) -> None:
    """Remove the directories in ``created`` (top-down order), deepest first.

    A leaf is removed with everything below it (sub-cgroups the container made); a parent
    that still has other children (another container under the same parent) is left in
    place, because those children are not ours.
    """
    __tracebackhide__ = True
    leaf_set = set(leaves)
    for directory in reversed(created):
        if directory in leaf_set:
            for below in subtree(directory)[:-1]:
                _rmdir(below)
        elif fs.child_dirs(directory):
            continue
        _rmdir(directory)


def write_all(directory: str, writes: Iterable[tuple[str, str]]) -> None:
    """Perform the writes a controller module returned, in order."""
    __tracebackhide__ = True
    for name, value in writes:
        fs.write_file(directory, name, value)


def rollback(exc: BaseException, created: list[str], leaves: Iterable[str]) -> None:
    """Undo a failed create: remove what it made; a failure to undo is noted on ``exc``.

    Nothing is killed: a failed create has admitted no process, and a joined (pre-existing)
    cgroup's processes are not ours.
    """
    try:
        remove_created(created, leaves)
    except CgroupError as undo:
        exc.add_note(f"and undoing it failed too: {undo}")
    else:
        created.clear()
