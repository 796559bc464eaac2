"""``exec``: run another process inside a created or running container.

The new process joins the container's cgroup, then its namespaces in the kernel's order
(user first, mount last), takes the container's root, forks once more so that it is a
member of the container's pid namespace, drops to the container's credentials and
loads the container's seccomp filter (built by the runtime before forking, as for
``create``; with SCMP_ACT_NOTIFY rules the runtime sends the listener to listenerPath).
"""

from __future__ import annotations

import _socket
import os
import select

from . import _lite, cgroups, console, kernel, namespaces, process
from .config import parse_config
from .errors import ProcessError, StateError
from .init import Channel, close_fds_except
from .state import CONFIG_FILE, StateStore, refresh

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from dataclasses import dataclass
    from typing import Any

    from .cgroups.manager import CgroupManager
    from .config import Process
    from .seccomp import Filter
else:
    from ._lite import dataclass

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
    console_socket: str | os.PathLike[str] | None = None,
) -> int:
    """Run ``args`` in the container and return its exit status (128+N for signal N).

    With ``console_socket`` the process gets a new pty of the container's devpts as its
    controlling terminal and stdio, and its master is sent there (see ``console``)."""
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
    filt = None
    if config.seccomp is not None:
        from . import seccomp

        filt = seccomp.build(config.seccomp)
    try:
        status = _run(proc, state.pid, manager, stdio, console_socket, filt, {**state.spec_state()})
    finally:
        if filt is not None:
            filt.release()
    return status


def _run(
    proc: Process,
    pid: int,
    manager: CgroupManager | None,
    stdio: tuple[int, int, int] | None,
    console_socket: str | os.PathLike[str] | None,
    filt: Filter | None,
    spec_state: dict[str, object],
) -> int:
    targets = _namespaces_to_join(pid)
    root_fd = os.open(f"/proc/{pid}/root", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        tty = None if console_socket is None else console.connect(os.fspath(console_socket))
    except BaseException:
        _close_all(root_fd, *targets.values())
        raise
    err_r, err_w = os.pipe()
    ours, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
    plan = _Plan(proc, targets, root_fd, manager, stdio, err_w, tty, filt, Channel(theirs))
    try:
        child = os.fork()
        if child == 0:
            _child(plan)
    finally:
        _close_all(root_fd, err_w, *targets.values())
        theirs.close()
        if tty is not None:
            tty.close()
    try:
        error = _converse(err_r, Channel(ours), filt, spec_state)
    finally:
        os.close(err_r)
        ours.close()
    _, status = os.waitpid(child, 0)
    if error:
        raise ProcessError(error.decode(errors="replace"))
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def _converse(
    err_r: int, channel: Channel, filt: Filter | None, spec_state: dict[str, object]
) -> bytes:
    """Until the process has exec'd or failed: its error, if any; meanwhile, with
    SCMP_ACT_NOTIFY rules, send its seccomp listener to listenerPath (as create does).

    Both forks write to the channel before their end of the error pipe closes, and
    close it before: once the pipe is at EOF, the rest of the channel is read to EOF."""
    error = b""
    found: dict[str, Any] = {"pid": 0, "fds": [], "open": True}

    def take(message: dict[str, Any]) -> None:
        found["open"] = message["t"] != "eof"
        found["pid"] = int(message.get("pid", found["pid"]))
        found["fds"] += message.get("fds", [])
        if found["pid"] and found["fds"] and filt is not None:
            from . import seccomp

            fd = found["fds"].pop()
            try:
                seccomp.send_state(filt.spec, fd, found["pid"], spec_state)
            finally:
                os.close(fd)

    try:
        while True:
            watched = [err_r, channel.sock.fileno()] if found["open"] else [err_r]
            ready, _, _ = select.select(watched, [], [])
            if channel.sock.fileno() in ready:
                take(channel.recv())
            if err_r in ready:
                chunk = os.read(err_r, 4096)
                if not chunk:
                    break
                error += chunk
        while found["open"]:
            take(channel.recv())
        return error
    finally:
        for fd in found["fds"]:
            os.close(fd)


@dataclass
class _Plan:
    """What the forked processes of one exec need."""

    proc: Process
    targets: dict[str, int]
    root_fd: int
    manager: CgroupManager | None
    stdio: tuple[int, int, int] | None
    err_w: int
    tty: _socket.socket | None
    seccomp: Filter | None
    channel: Channel


def _close_all(*fds: int) -> None:
    for fd in fds:
        os.close(fd)


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


def _enter_cgroup(manager: CgroupManager, plan: _Plan) -> None:
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
        plan.channel.sock.close()
        os.close(plan.err_w)
        _exit_like(child)


def _child(plan: _Plan) -> None:
    """In the forked child: join, fork into the pid namespace, wait, exit with its status."""
    err_w = plan.err_w
    try:
        os.setsid()
        if plan.stdio is not None:
            for target, fd in enumerate(plan.stdio):
                if fd != target:
                    os.dup2(fd, target)
        keep = {0, 1, 2, err_w, plan.root_fd, plan.channel.sock.fileno(), *plan.targets.values()}
        close_fds_except(keep if plan.tty is None else keep | {plan.tty.fileno()})
        if plan.manager is not None:
            _enter_cgroup(plan.manager, plan)
        for ns_type in namespaces.ORDER:
            if ns_type in plan.targets:
                namespaces.enter(namespaces.KINDS[ns_type], plan.targets[ns_type])
        os.fchdir(plan.root_fd)
        os.chroot(".")
        os.chdir("/")
        grandchild = os.fork()
        if grandchild == 0:
            try:
                _grandchild(plan)
            except BaseException as exc:
                os.write(err_w, str(exc).encode())
            os._exit(EXEC_FAILED)
        try:
            plan.channel.send("pid", pid=grandchild)  # before err_w closes: see _converse
        except OSError:  # the runtime is gone: it needed the pid only for a listener
            pass
        plan.channel.sock.close()
        os.close(err_w)
        _exit_like(grandchild)
    except BaseException as exc:
        try:
            os.write(err_w, str(exc).encode())
        finally:
            os._exit(EXEC_FAILED)


def _grandchild(plan: _Plan) -> None:
    """In the container's pid namespace: terminal, credentials, seccomp (in the order
    the init loads them, as runc does for exec), then the program."""
    proc = plan.proc
    if plan.tty is not None:
        console.setup(plan.tty, None, console=False)
    env = process.environment(proc)
    held = process.held_capabilities()
    if plan.seccomp is not None and not proc.no_new_privileges:
        _load_seccomp(plan)
    process.finalize(proc, held)  # its warnings are create's to log, not exec's
    if plan.seccomp is not None and proc.no_new_privileges:
        _load_seccomp(plan)
    plan.channel.sock.close()
    process.execute(proc, env)


def _load_seccomp(plan: _Plan) -> None:
    assert plan.seccomp is not None
    try:
        fd = plan.seccomp.load()
    except OSError as exc:
        raise ProcessError(f"cannot load the seccomp filter: {exc.strerror}") from None
    if fd is not None:
        plan.channel.send_fd("seccomp", fd)
        os.close(fd)
