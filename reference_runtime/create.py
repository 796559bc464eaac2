"""``create``: build the container up to the point where only ``start`` is missing.

Validate everything first (ID, config, cgroup values, mount paths, namespace paths)
and build what the container process inherits ready-made (the seccomp filter, the
idmapped mounts); only then make the state directory, the cgroup and the processes
(see ``init``). Any failure after that undoes every step, so a failed create leaves
nothing behind.
"""

from __future__ import annotations

import _socket
import os
import time

from . import cgroups, console, hooks, init, kernel, namespaces, process, rootfs
from .config import Config, load_bundle, validate_id
from .errors import ConfigError, ContainerExistsError, ProcessError, RuntimeSpecError
from .state import (
    CONFIG_FILE,
    START_SOCKET,
    State,
    StateStore,
    Status,
    process_start_time,
    remove_state_dir,
)
from .waiting import reap_if_child, wait_gone

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .cgroups.manager import CgroupManager
    from .seccomp import Filter

CREATE_TIMEOUT = 120.0  # seconds for the container to report ready (hooks included)
_SIGKILL = 9


def error_class(name: str) -> type[RuntimeSpecError]:
    """The runtime error class called ``name`` (as sent by a container process)."""
    from . import errors

    found = getattr(errors, name, None)
    if isinstance(found, type) and issubclass(found, RuntimeSpecError):
        return found
    return ProcessError


def default_cgroups_path(container_id: str) -> str:
    # Flat, with no shared parent: nothing is left for the last container out to tidy.
    return f"/reference-runtime-{container_id}"


def socket_path(state_dir_fd: int) -> str:
    """A short path to the start socket, whatever the state root's length (sun_path is 108)."""
    return f"/proc/self/fd/{state_dir_fd}/{START_SOCKET}"


def _timestamp() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e9):09d}Z"


class Creation:
    """One ``create`` in progress: the steps done so far, and how to undo them."""

    def __init__(self, store: StateStore, container_id: str, config: Config) -> None:
        self.store = store
        self.id = container_id
        self.config = config
        self.state_dir = store.dir(container_id)
        self.manager: CgroupManager | None = None
        self.stage1_pid = 0
        self.init_pid = 0
        self.made_dir = False
        self.seccomp: Filter | None = None
        self.seccomp_loaded = False
        self.mount_fds: dict[int, int] = {}

    def prepare(self, ns_fds: dict[str, int]) -> None:
        """What the container process inherits ready-made: the seccomp filter and the
        idmapped mounts (both checked here, before anything is created)."""
        if self.config.seccomp is not None:
            from . import seccomp

            self.seccomp = seccomp.build(self.config.seccomp)
        if any(m.idmap for m in self.config.mounts):
            self.mount_fds = rootfs.open_idmapped(self.config, ns_fds.get("user"))

    def release(self) -> None:
        """Drop the runtime's references to what ``prepare`` made (the forks have theirs)."""
        if self.seccomp is not None:
            self.seccomp.release()
        for fd in self.mount_fds.values():
            os.close(fd)
        self.mount_fds = {}

    def make_state_dir(self, config_text: bytes) -> None:
        os.makedirs(self.store.root, mode=0o711, exist_ok=True)
        try:
            os.mkdir(self.state_dir, 0o711)
        except FileExistsError:
            raise ContainerExistsError(f"container {self.id!r} already exists") from None
        self.made_dir = True
        # the config as created from: exec and the hooks use it, whatever the bundle becomes
        path = os.path.join(self.state_dir, CONFIG_FILE)
        fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, config_text)
        finally:
            os.close(fd)

    def run(
        self,
        stdio: tuple[int, int, int] | None,
        no_pivot: bool,
        ns_fds: dict[str, int],
        console_sock: _socket.socket | None = None,
    ) -> State:
        config = self.config
        self.make_state_dir(config.text)
        state = State(
            id=self.id,
            bundle=config.bundle,
            annotations=config.annotations,
            created=_timestamp(),
            owner=os.getuid(),
            creator_pid=os.getpid(),
            rootfs=config.root_path,
            poststart=config.raw.get("hooks", {}).get("poststart", []),
            poststop=config.raw.get("hooks", {}).get("poststop", []),
            warnings=list(config.warnings),
        )
        self.manager = cgroups.new_manager(config.cgroups_path or default_cgroups_path(self.id))
        self.manager.create(config.resources)
        # Saved once made: a later delete rebuilds the manager from this to remove it.
        state.cgroup = self.manager.to_dict()
        self.store.save(state)

        dir_fd = os.open(self.state_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        listener = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        parent_sock, child_sock = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
        try:
            listener.bind(socket_path(dir_fd))
            listener.listen(4)
            plan = init.Plan(
                config=config,
                namespace_fds=ns_fds,
                listener=listener,
                channel=init.Channel(child_sock),
                cgroup=self.manager,
                stdio=stdio,
                no_pivot=no_pivot,
                seccomp=self.seccomp,
                mount_fds=self.mount_fds,
                console=console_sock,
            )
            # The init is reparented to us when stage 1 exits: we are its subreaper
            # for that moment, so that we alone can later collect its exit status.
            was_subreaper = kernel.get_child_subreaper()
            if not was_subreaper:
                kernel.set_child_subreaper(True)
            try:
                self.stage1_pid = os.fork()
                if self.stage1_pid == 0:
                    init.stage1_main(plan)  # never returns
            except BaseException:
                if not was_subreaper:
                    kernel.set_child_subreaper(False)
                raise
        finally:
            os.close(dir_fd)
            listener.close()
            child_sock.close()
        try:
            parent_sock.settimeout(CREATE_TIMEOUT)
            self._converse(init.Channel(parent_sock), state)
        finally:
            parent_sock.close()
            if not was_subreaper:
                kernel.set_child_subreaper(False)
        state.status = Status.CREATED
        self.store.save(state)
        return state

    def _converse(self, channel: init.Channel, state: State) -> None:
        """Answer the container's messages until it reports ready."""
        config = self.config
        while True:
            try:
                message = channel.recv()
            except TimeoutError:
                waiting = ""
                if self.seccomp_loaded and self.seccomp is not None and self.seccomp.spec.notifies:
                    waiting = " (a system call it notifies may be waiting for the listener)"
                raise ProcessError(
                    f"the container did not become ready within {CREATE_TIMEOUT:.0f}s{waiting}"
                ) from None
            kind = message.get("t")
            if kind == "userns":
                namespaces.write_id_mappings(
                    message["pid"], config.uid_mappings, config.gid_mappings
                )
                channel.send("ok")
            elif kind == "init":
                self.init_pid = pid = int(message["pid"])
                assert self.manager is not None
                if not message.get("in_cgroup"):
                    self.manager.add_v2(pid)
                process.apply_limits(pid, config.process.rlimits, config.process.oom_score_adj)
                state.pid = pid
                state.init_start_time = process_start_time(pid) or 0
                spec_state = {**state.spec_state(), "pid": pid}
                if config.hooks.prestart or config.hooks.create_runtime:
                    # hooks may take long: record the process first, for a later delete
                    self.store.save(state)
                    hooks.run_all(config.hooks.prestart, spec_state, "prestart")
                    hooks.run_all(config.hooks.create_runtime, spec_state, "createRuntime")
                channel.send("go", state=spec_state)
            elif kind == "seccomp":
                self.seccomp_loaded = True
                self._hand_over_listener(message.get("fds", []), state)
            elif kind == "ready":
                state.warnings.extend(message.get("warnings", []))
                # stage 1 has exited, which made the init our child: reap stage 1
                os.waitpid(self.stage1_pid, 0)
                self.stage1_pid = 0
                return
            elif kind == "error":
                raise error_class(message.get("kind", ""))(
                    message.get("msg", "container setup failed")
                )
            elif self.seccomp is not None:
                from .seccomp import INIT_SYSCALLS

                raise ProcessError(
                    "the container process died before it was ready: its seccomp filter, "
                    "once loaded, must allow what the runtime calls before exec: "
                    + ", ".join(INIT_SYSCALLS)
                )
            else:
                raise ProcessError("the container process exited before it was ready")

    def _hand_over_listener(self, fds: list[int], state: State) -> None:
        """Send the seccomp listener the init handed over to listenerPath (if NOTIFY)."""
        from . import seccomp

        try:
            if fds and self.config.seccomp is not None:
                spec_state = {**state.spec_state(), "pid": state.pid}
                seccomp.send_state(self.config.seccomp, fds[0], state.pid, spec_state)
        finally:
            for fd in fds:
                os.close(fd)

    def undo(self) -> None:
        """Remove whatever this create made; safe to call at any point."""
        for pid in (self.init_pid, self.stage1_pid):
            if pid:
                try:
                    os.kill(pid, _SIGKILL)
                except ProcessLookupError:  # already gone
                    pass
        for pid in (self.stage1_pid, self.init_pid):
            if pid:
                wait_gone(pid, timeout=10.0)
                reap_if_child(pid)
        if self.manager is not None:
            self.manager.destroy()
        if self.made_dir:
            remove_state_dir(self.state_dir)
        if self.init_pid and self.config.hooks.poststop:
            # A failed create continues the lifecycle at delete, whose poststop hooks
            # run (runtime.md "Lifecycle"); their own failures are only warnings.
            state = {
                "ociVersion": self.config.oci_version,
                "id": self.id,
                "status": "stopped",
                "bundle": self.config.bundle,
                "annotations": self.config.annotations,
            }
            hooks.run_all_warn(self.config.hooks.poststop, state, "poststop")


def create(
    store: StateStore,
    container_id: str,
    bundle: str | os.PathLike[str],
    *,
    pid_file: str | os.PathLike[str] | None = None,
    stdio: tuple[int, int, int] | None = None,
    no_pivot: bool = False,
    console_socket: str | os.PathLike[str] | None = None,
) -> State:
    """Create container ``container_id`` from ``bundle``; it is ``created`` on return.

    With ``process.terminal`` the pty master has been sent to ``console_socket`` by
    then (see ``console``); its stdio are the pty, not ``stdio``."""
    validate_id(container_id)
    config = load_bundle(bundle)
    check_console(config, console_socket)
    cgroups.validate_resources(config.resources)
    rootfs.check_mounts(config)
    if os.path.exists(store.dir(container_id)):
        raise ContainerExistsError(f"container {container_id!r} already exists")
    console_sock = None if console_socket is None else console.connect(os.fspath(console_socket))
    try:
        ns_fds = namespaces.open_paths(config)
    except BaseException:
        if console_sock is not None:
            console_sock.close()
        raise
    creation = Creation(store, container_id, config)
    try:
        creation.prepare(ns_fds)
        state = creation.run(stdio, no_pivot, ns_fds, console_sock)
        if pid_file is not None:
            _write_pid_file(os.fspath(pid_file), state.pid)
    except BaseException:
        creation.undo()
        raise
    finally:
        creation.release()
        namespaces.close_all(ns_fds)
        if console_sock is not None:
            console_sock.close()
    return state


def check_console(config: Config, console_socket: str | os.PathLike[str] | None) -> None:
    """A terminal needs a console socket, and a console socket a terminal (as runc)."""
    __tracebackhide__ = True
    if config.process.terminal and console_socket is None:
        raise ConfigError(
            "process.terminal is true: pass --console-socket PATH, a listening AF_UNIX "
            "socket that receives the pty master"
        )
    if not config.process.terminal and console_socket is not None:
        raise ConfigError(
            f"--console-socket {os.fspath(console_socket)} is given but process.terminal is "
            "not true: set it, or drop the console socket"
        )


def _write_pid_file(path: str, pid: int) -> None:
    __tracebackhide__ = True
    directory, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(directory, f".{name}.tmp")
    try:
        with open(tmp, "w") as f:
            f.write(str(pid))
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigError(f"cannot write pid file {path}: {exc.strerror}") from None
