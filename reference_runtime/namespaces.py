"""Namespaces: create a new one or join one by path, in the kernel's order.

The user namespace comes first (everything made after it is owned by it), the mount
namespace last among the joined ones, and the cgroup namespace is unshared by the
container process itself once it sits in its cgroup. The pid and time namespaces only
apply to children, so the caller forks after ``enter_all``.
"""

from __future__ import annotations

import os

from . import kernel
from .errors import NamespaceError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from dataclasses import dataclass

    from .config import Config, IDMapping
else:
    from ._lite import dataclass


@dataclass(frozen=True)
class NamespaceKind:
    type: str  # the config's name
    proc_name: str  # the name under /proc/PID/ns
    flag: int


KINDS: dict[str, NamespaceKind] = {
    k.type: k
    for k in (
        NamespaceKind("user", "user", kernel.CLONE_NEWUSER),
        NamespaceKind("ipc", "ipc", kernel.CLONE_NEWIPC),
        NamespaceKind("uts", "uts", kernel.CLONE_NEWUTS),
        NamespaceKind("network", "net", kernel.CLONE_NEWNET),
        NamespaceKind("pid", "pid", kernel.CLONE_NEWPID),
        NamespaceKind("time", "time", kernel.CLONE_NEWTIME),
        NamespaceKind("cgroup", "cgroup", kernel.CLONE_NEWCGROUP),
        NamespaceKind("mount", "mnt", kernel.CLONE_NEWNS),
    )
}

# The order in which namespaces are entered: user first, mount last.
ORDER = ("user", "ipc", "uts", "network", "pid", "time", "cgroup", "mount")


def open_paths(config: Config) -> dict[str, int]:
    """Open every ``linux.namespaces[].path`` now, while the paths still resolve.

    The caller closes the returned descriptors (``close_all``).
    """
    fds: dict[str, int] = {}
    try:
        for ns in config.namespaces:
            if ns.path is not None:
                fds[ns.type] = os.open(ns.path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        close_all(fds)
        raise NamespaceError(f"cannot open namespace path {exc.filename}: {exc.strerror}") from None
    return fds


def close_all(fds: dict[str, int]) -> None:
    for fd in fds.values():
        os.close(fd)
    fds.clear()


def enter(kind: NamespaceKind, fd: int | None) -> None:
    """Join the namespace open at ``fd``, or create a new one when ``fd`` is None."""
    __tracebackhide__ = True
    try:
        if fd is None:
            kernel.unshare(kind.flag)
        else:
            kernel.setns(fd, kind.flag)
    except OSError as exc:
        verb = "create" if fd is None else "join"
        raise NamespaceError(f"cannot {verb} {kind.type} namespace: {exc.strerror}") from None


def enter_all(
    config: Config,
    fds: dict[str, int],
    on_new_user_namespace: Callable[[], None],
    skip: frozenset[str] = frozenset({"cgroup"}),
) -> None:
    """Enter every namespace the config asks for, in ``ORDER``.

    ``on_new_user_namespace`` runs right after a new user namespace is made, so the
    runtime can write its id mappings before anything else is created inside it.
    """
    for ns_type in ORDER:
        ns = config.namespace(ns_type)
        if ns is None or ns_type in skip:
            continue
        enter(KINDS[ns_type], fds.get(ns_type))
        if ns_type == "user" and ns.path is None:
            on_new_user_namespace()
        if ns_type == "time" and ns.path is None and config.time_offsets:
            # before any process lives in it: the kernel refuses offsets afterwards
            try:
                kernel.write_file("/proc/self/timens_offsets", config.time_offsets)
            except OSError as exc:
                raise NamespaceError(f"cannot set linux.timeOffsets: {exc.strerror}") from None


def write_id_mappings(
    pid: int, uid_maps: tuple[IDMapping, ...], gid_maps: tuple[IDMapping, ...]
) -> None:
    """Write ``/proc/PID/{uid,gid}_map`` for a process that made a new user namespace."""
    __tracebackhide__ = True
    for name, maps in (("uid_map", uid_maps), ("gid_map", gid_maps)):
        text = "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in maps)
        try:
            kernel.write_file(f"/proc/{pid}/{name}", text)
        except OSError as exc:
            raise NamespaceError(f"cannot write {name} {text.strip()!r}: {exc.strerror}") from None


def mapped_user_namespace(uid_maps: tuple[IDMapping, ...], gid_maps: tuple[IDMapping, ...]) -> int:
    """A descriptor of a new user namespace with these mappings (for an idmapped mount).

    A user namespace lives as long as something refers to it: a short-lived child makes
    it, the runtime writes its maps and opens it, and the child exits.
    """
    __tracebackhide__ = True
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(ready_r)
            os.close(done_w)
            kernel.unshare(kernel.CLONE_NEWUSER)
            os.write(ready_w, b"u")
            os.read(done_r, 1)  # until the runtime has opened the namespace
        finally:
            os._exit(0)
    os.close(ready_w)
    os.close(done_r)
    try:
        if os.read(ready_r, 1) != b"u":
            raise NamespaceError("cannot create a user namespace for an idmapped mount")
        write_id_mappings(pid, uid_maps, gid_maps)
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(ready_r)
        os.close(done_w)
        os.waitpid(pid, 0)
