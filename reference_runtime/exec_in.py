"""``exec``: run another process inside a created or running container.

The new process joins the container's cgroup, then its namespaces in the kernel's order
(user first, mount last), takes the container's root, forks once more so that it is a
member of the container's pid namespace, and drops to the container's credentials.
"""

from __future__ import annotations

import os

from . import _lite, cgroups, kernel, namespaces, process
from .config import parse_config
from .errors import ProcessError, StateError
from .init import close_fds_except
from .state import CONFIG_FILE, StateStore, refresh

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from .cgroups.manager import CgroupManager
    from .config import Process

EXEC_FAILED = 126


def exec_in(
    store: StateStore,
    container_id: str,
    args: Sequence[str],
    *,
    env: Sequence[str] | None = None,
    cwd: str | None = None,
    user: tuple[int, int] | None = None,
    stdio: tuple[int, int, int] | None = None,
) -> int:
    """Run ``args`` in the container and return its exit status (128+N for signal N)."""
    if not args:
        raise ProcessError("exec needs a command to run")
    with store.locked(container_id):
        state = refresh(store.load(container_id))
        if not state.status.can_exec():
            raise StateError(
                f"cannot exec in container {container_id!r}: it is {state.status.value}"
            )
        with open(os.path.join(store.dir(container_id), CONFIG_FILE), "rb") as f:
            raw = _lite.loads(f.read())
    config = parse_config(raw, state.bundle)
    proc = config.process
    changes: dict[str, object] = {"args": tuple(args)}
    if env is not None:
        changes["env"] = tuple(proc.env) + tuple(env)
    if cwd is not None:
        changes["cwd"] = cwd
    if user is not None:
        changes["user"] = _lite.replace(proc.user, uid=user[0], gid=user[1])
    proc = _lite.replace(proc, **changes)
    manager = cgroups.manager_from_dict(state.cgroup) if state.cgroup else None
    targets = _namespaces_to_join(state.pid)
    root_fd = os.open(f"/proc/{state.pid}/root", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    err_r, err_w = os.pipe()
    try:
        child = os.fork()
        if child == 0:
            _child(proc, targets, root_fd, manager, stdio, err_w)
    finally:
        os.close(root_fd)
        os.close(err_w)
        for fd in targets.values():
            os.close(fd)
    error = b""
    while chunk := os.read(err_r, 4096):
        error += chunk
    os.close(err_r)
    _, status = os.waitpid(child, 0)
    if error:
        raise ProcessError(error.decode(errors="replace"))
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def _namespaces_to_join(pid: int) -> dict[str, int]:
    """Open the container's namespaces that differ from ours, keyed by config type."""
    fds: dict[str, int] = {}
    try:
        for ns_type in namespaces.ORDER:
            kind = namespaces.KINDS[ns_type]
            try:
                theirs = os.readlink(f"/proc/{pid}/ns/{kind.proc_name}")
                ours = os.readlink(f"/proc/self/ns/{kind.proc_name}")
            except FileNotFoundError:  # a namespace type this kernel lacks
                continue
            if theirs != ours:
                fds[ns_type] = os.open(
                    f"/proc/{pid}/ns/{kind.proc_name}", os.O_RDONLY | os.O_CLOEXEC
                )
    except OSError as exc:
        for fd in fds.values():
            os.close(fd)
        raise StateError(f"container process {pid} is gone: {exc.strerror}") from None
    return fds


def _exit_like(pid: int) -> None:
    """Wait for ``pid`` and exit with its status (128+N for signal N)."""
    _, status = os.waitpid(pid, 0)
    os._exit(128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status))


def _enter_cgroup(manager: CgroupManager, err_w: int) -> None:
    """Join the container's cgroup the cheap ways (see CgroupManager.add): v1 from
    inside; v2 by continuing in a child cloned straight into it."""
    manager.join_self_v1()
    v2_dir = manager.v2_directory()
    if v2_dir is None:
        return
    fd = os.open(v2_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    child = kernel.fork_into_cgroup(fd)
    os.close(fd)
    if child != 0:
        os.close(err_w)
        _exit_like(child)


def _child(
    proc: Process,
    targets: dict[str, int],
    root_fd: int,
    manager: CgroupManager | None,
    stdio: tuple[int, int, int] | None,
    err_w: int,
) -> None:
    """In the forked child: join, fork into the pid namespace, wait, exit with its status."""
    try:
        os.setsid()
        if stdio is not None:
            for target, fd in enumerate(stdio):
                if fd != target:
                    os.dup2(fd, target)
        close_fds_except({0, 1, 2, err_w, root_fd, *targets.values()})
        if manager is not None:
            _enter_cgroup(manager, err_w)
        for ns_type in namespaces.ORDER:
            if ns_type in targets:
                namespaces.enter(namespaces.KINDS[ns_type], targets[ns_type])
        os.fchdir(root_fd)
        os.chroot(".")
        os.chdir("/")
        grandchild = os.fork()
        if grandchild == 0:
            try:
                env = process.environment(proc)
                process.finalize(proc)
                process.execute(proc, env)
            except BaseException as exc:
                os.write(err_w, str(exc).encode())
            os._exit(EXEC_FAILED)
        os.close(err_w)
        _exit_like(grandchild)
    except BaseException as exc:
        try:
            os.write(err_w, str(exc).encode())
        finally:
            os._exit(EXEC_FAILED)
