"""The processes that ``create`` forks: stage 1 and the container init.

::

    runtime (create; a child subreaper while it runs)
      └─ fork ──> stage 1: setsid, the user namespace (mapped by the runtime), joins or
          unshares the rest, forks the init, reports its host PID and exits
            └─ fork ──> init (PID 1 in a new pid namespace), reparented to the runtime:
                waits for "go", cgroup namespace, hostname, sysctl, rootfs (with the
                terminal, see ``console``), credentials and the seccomp filter (see
                ``seccomp``), reports "ready", then blocks
                on the start socket until ``start`` connects, and execs the program.

As with runc, the container process is the child of whoever created it (the runtime
process while it lives, else the nearest subreaper or PID 1): that process alone can
collect its exit status. Every process here is a fork of the runtime and ends with
``os._exit``: none of the parent's atexit handlers, buffers or threads run in it.
Messages to the runtime travel over a SOCK_SEQPACKET socket pair as small JSON
documents.
"""

from __future__ import annotations

import _signal
import _socket
import os

from . import _lite, console, hooks, kernel, namespaces, process, rootfs
from .errors import ProcessError, RuntimeSpecError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dataclasses import dataclass, field
    from typing import Any

    from .cgroups.manager import CgroupManager
    from .config import Config
    from .seccomp import Filter
else:
    from ._lite import dataclass, field

INIT_FAILED = 127


@dataclass
class Channel:
    """One end of the runtime <-> container socket pair."""

    sock: _socket.socket

    def send(self, message_type: str, /, **fields: Any) -> None:
        self.sock.send(_lite.dumps({"t": message_type, **fields}).encode())

    def send_fd(self, message_type: str, fd: int, /, **fields: Any) -> None:
        """Send a message with a descriptor (SCM_RIGHTS); the receiver finds it in "fds"."""
        kernel.send_fd(self.sock, _lite.dumps({"t": message_type, **fields}).encode(), fd)

    def recv(self) -> dict[str, Any]:
        data, fds = kernel.recv_fds(self.sock, 1 << 20)
        if not data:
            return {"t": "eof"}
        message: dict[str, Any] = _lite.loads(data)
        if fds:
            message["fds"] = fds
        return message

    def send_error(self, exc: BaseException) -> None:
        kind = type(exc).__name__ if isinstance(exc, RuntimeSpecError) else "ProcessError"
        msg = str(exc) if isinstance(exc, RuntimeSpecError) else f"{type(exc).__name__}: {exc}"
        try:
            self.send("error", kind=kind, msg=msg)
        except OSError:  # the runtime is gone: nobody is left to tell
            pass


@dataclass
class Plan:
    """Everything the forked processes need, prepared by the runtime before forking."""

    config: Config
    namespace_fds: dict[str, int]
    listener: _socket.socket
    channel: Channel
    cgroup: CgroupManager
    stdio: tuple[int, int, int] | None
    no_pivot: bool
    seccomp: Filter | None = None  # built by the runtime, loaded by the init
    mount_fds: dict[int, int] = field(default_factory=dict)  # idmapped trees by mount index
    console: _socket.socket | None = None  # connected to the console socket (terminal)


def close_fds_except(keep: set[int]) -> None:
    """Close every descriptor not in ``keep`` (forks must not hold the caller's pipes)."""
    low = 0
    for fd in [*sorted(keep), os.sysconf("SC_OPEN_MAX")]:
        if fd > low:
            os.closerange(low, fd)
        low = fd + 1


def stage1_main(plan: Plan) -> None:
    """Enter the namespaces, fork the init, report its host PID and exit."""
    try:
        config = plan.config
        os.setsid()
        keep = {
            plan.listener.fileno(),
            plan.channel.sock.fileno(),
            *plan.namespace_fds.values(),
            *plan.mount_fds.values(),
            *([plan.console.fileno()] if plan.console is not None else []),
        }
        if plan.stdio is not None:
            for target, fd in enumerate(plan.stdio):
                if fd != target:
                    os.dup2(fd, target)
        close_fds_except(keep | {0, 1, 2})
        # Join the cgroup from inside, while still host root and single-threaded: the
        # cheap ways in (see CgroupManager.add). The init inherits it.
        plan.cgroup.join_self_v1()
        v2_dir = plan.cgroup.v2_directory()
        clone_fd = None
        if v2_dir is not None and not config.new_namespace("user"):
            # in a new user namespace the cgroup files are not ours to write: the
            # runtime adds the init to the cgroup2 half instead
            clone_fd = os.open(v2_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

        def on_new_user_namespace() -> None:
            plan.channel.send("userns", pid=os.getpid())
            reply = plan.channel.recv()
            if reply.get("t") != "ok":
                os._exit(1)
            _become_namespace_root(config)

        namespaces.enter_all(config, plan.namespace_fds, on_new_user_namespace)
        namespaces.close_all(plan.namespace_fds)
        init = os.fork() if clone_fd is None else kernel.fork_into_cgroup(clone_fd)
        if init == 0:
            init_main(plan)
        plan.channel.send("init", pid=init, in_cgroup=v2_dir is None or clone_fd is not None)
        os._exit(0)
    except BaseException as exc:
        plan.channel.send_error(exc)
        os._exit(1)


def _become_namespace_root(config: Config) -> None:
    """After the maps are written, act as root of the new user namespace if it is mapped."""
    if any(m.container_id == 0 for m in config.gid_mappings):
        kernel.setresgid(0)
    if any(m.container_id == 0 for m in config.uid_mappings):
        kernel.setresuid(0)


def init_main(plan: Plan) -> None:
    """The container process until its program is exec'd."""
    config = plan.config
    channel = plan.channel
    try:
        kernel.set_process_name("rr-init")
        go = channel.recv()
        if go.get("t") != "go":
            os._exit(1)
        # hooks run here, in the container's pid namespace, see its own view of the pid
        state: dict[str, Any] = {**go["state"], "pid": os.getpid()}
        if config.new_namespace("cgroup"):
            kernel.unshare(kernel.CLONE_NEWCGROUP)
        if config.hostname is not None:
            kernel.sethostname(config.hostname)
        if config.domainname is not None:
            kernel.setdomainname(config.domainname)
        if config.new_namespace("network"):
            kernel.loopback_up()
        if config.hooks.start_container:
            import subprocess  # noqa: F401 - hooks run after pivot_root, where imports fail
        for key, value in config.sysctl.items():
            kernel.write_file("/proc/sys/" + key.replace(".", "/"), value)
        rootfs.prepare(
            config,
            plan.cgroup.paths(),
            in_user_namespace=config.namespace("user") is not None,
            create_container_hooks=lambda: hooks.run_all(
                config.hooks.create_container, state, "createContainer"
            ),
            no_pivot=plan.no_pivot,
            mount_fds=plan.mount_fds,
            after_pivot=None if plan.console is None else lambda: _setup_console(plan),
        )
        for fd in plan.mount_fds.values():
            os.close(fd)
        try:
            os.chdir(config.process.cwd)
        except OSError:  # may only be reachable as the container user: retried at exec
            pass
        env = process.environment(config.process)
        process.apply_scheduling(config.process, config.personality)
        nnp = config.process.no_new_privileges
        held = process.held_capabilities()
        if plan.seccomp is not None and not nnp:
            # without no_new_privs loading needs CAP_SYS_ADMIN: before it is dropped (runc)
            _load_seccomp(plan)
        warnings = process.finalize(config.process, held)
        if plan.seccomp is not None and nnp:
            # as late as the hand-off allows: few system calls of ours come after it (runc)
            _load_seccomp(plan)
        channel.send("ready", warnings=warnings)
        channel.sock.close()
    except BaseException as exc:
        channel.send_error(exc)
        os._exit(INIT_FAILED)
    _wait_for_start_and_exec(plan, env, state)


def _setup_console(plan: Plan) -> None:
    """The pty, /dev/console and the hand-off of the master (see ``console``)."""
    assert plan.console is not None
    console.setup(plan.console, plan.config.process.console_size)
    plan.console = None


def _load_seccomp(plan: Plan) -> None:
    """Load the filter and tell the runtime, handing it the listener fd with NOTIFY rules.

    After the load the init makes only the system calls of ``seccomp.INIT_SYSCALLS``
    before its program runs (and whatever the startContainer hooks need).
    """
    assert plan.seccomp is not None
    try:
        fd = plan.seccomp.load()
    except OSError as exc:
        raise ProcessError(f"cannot load the seccomp filter: {exc.strerror}") from None
    if fd is None:
        plan.channel.send("seccomp")
    else:
        plan.channel.send_fd("seccomp", fd)
        os.close(fd)


def _wait_for_start_and_exec(plan: Plan, env: dict[str, str], state: dict[str, Any]) -> None:
    # Block until `start` connects; a stray connection without the word is ignored.
    _signal.signal(_signal.SIGINT, _signal.SIG_DFL)
    while True:
        fd, _ = plan.listener._accept()  # type: ignore[attr-defined]
        conn = _socket.socket(fileno=fd)
        if conn.recv(16) == b"start":
            break
        conn.close()
    plan.listener.close()
    try:
        state = {**state, "status": "created"}
        hooks.run_all(plan.config.hooks.start_container, state, "startContainer")
        process.execute(plan.config.process, env)
    except BaseException as exc:
        kind = type(exc).__name__ if isinstance(exc, RuntimeSpecError) else "ProcessError"
        try:
            conn.sendall(_lite.dumps({"kind": kind, "msg": str(exc)}).encode())
        except OSError:  # start gave up waiting: the exit status still tells
            pass
    os._exit(INIT_FAILED)
