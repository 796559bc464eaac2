"""``create``: build the container up to the point where only ``start`` is missing.

Validate everything first (ID, config, cgroup values, mount paths, namespace paths);
only then make the state directory, the cgroup and the processes (see ``init``). Any
failure after that undoes every step, so a failed create leaves nothing behind.
"""

from __future__ import annotations

import datetime
import os
import shutil
import signal
import socket
from pathlib import Path

from . import cgroups, hooks, init, namespaces, process, rootfs
from .config import Config, load_bundle, validate_id
from .errors import (
    ConfigError,
    ContainerExistsError,
    ProcessError,
    RuntimeSpecError,
)
from .state import (
    CONFIG_FILE,
    LOCK_FILE,
    START_SOCKET,
    State,
    StateStore,
    Status,
    process_start_time,
)
from .waiting import wait_gone

CREATE_TIMEOUT = 120.0  # seconds for the container to report ready (hooks included)

_ERRORS: dict[str, type[RuntimeSpecError]] = {}


def _error_class(name: str) -> type[RuntimeSpecError]:
    if not _ERRORS:
        from . import errors

        for attr in dir(errors):
            obj = getattr(errors, attr)
            if isinstance(obj, type) and issubclass(obj, RuntimeSpecError):
                _ERRORS[attr] = obj
    return _ERRORS.get(name, ProcessError)


def default_cgroups_path(container_id: str) -> str:
    # Flat, with no shared parent: nothing is left for the last container out to tidy.
    return f"/reference-runtime-{container_id}"


def socket_path(state_dir_fd: int) -> str:
    """A short path to the start socket, whatever the state root's length (sun_path is 108)."""
    return f"/proc/self/fd/{state_dir_fd}/{START_SOCKET}"


class Creation:
    """One ``create`` in progress: the steps done so far, and how to undo them."""

    def __init__(self, store: StateStore, container_id: str, config: Config) -> None:
        self.store = store
        self.id = container_id
        self.config = config
        self.state_dir = store.dir(container_id)
        self.manager: cgroups.CgroupManager | None = None
        self.monitor_pid = 0
        self.init_pid = 0
        self.made_dir = False

    def make_state_dir(self) -> None:
        self.store.root.mkdir(parents=True, exist_ok=True, mode=0o711)
        try:
            self.state_dir.mkdir(mode=0o711)
        except FileExistsError:
            raise ContainerExistsError(f"container {self.id!r} already exists") from None
        self.made_dir = True
        (self.state_dir / LOCK_FILE).touch()
        shutil.copyfile(Path(self.config.bundle) / CONFIG_FILE, self.state_dir / CONFIG_FILE)

    def run(
        self,
        stdio: tuple[int, int, int] | None,
        no_pivot: bool,
        ns_fds: dict[str, int],
    ) -> State:
        config = self.config
        self.make_state_dir()
        state = State(
            id=self.id,
            bundle=config.bundle,
            annotations=config.annotations,
            created=datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z"),
            owner=os.getuid(),
            creator_pid=os.getpid(),
            rootfs=config.root_path,
        )
        self.store.save(state)
        self.manager = cgroups.new_manager(config.cgroups_path or default_cgroups_path(self.id))
        self.manager.create(config.resources)
        # Saved once made: a later delete rebuilds the manager from this to remove it.
        state.cgroup = self.manager.to_dict()
        self.store.save(state)

        dir_fd = os.open(self.state_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            listener.bind(socket_path(dir_fd))
            listener.listen(4)
            plan = init.Plan(
                config=config,
                state_dir=self.state_dir,
                namespace_fds=ns_fds,
                listener=listener,
                channel=init.Channel(child_sock),
                cgroup_paths=self.manager.paths(),
                stdio=stdio,
                no_pivot=no_pivot,
            )
            self.monitor_pid = os.fork()
            if self.monitor_pid == 0:
                init.monitor_main(plan)  # never returns
            state.monitor_pid = self.monitor_pid
        finally:
            os.close(dir_fd)
            listener.close()
            child_sock.close()
        with parent_sock:
            parent_sock.settimeout(CREATE_TIMEOUT)
            self._converse(init.Channel(parent_sock), state)
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
                raise ProcessError(
                    f"the container did not become ready within {CREATE_TIMEOUT:.0f}s"
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
                self.manager.add(pid)
                process.apply_limits(pid, config.process.rlimits, config.process.oom_score_adj)
                state.pid = pid
                state.init_start_time = process_start_time(pid) or 0
                self.store.save(state)
                spec_state = state.spec_state() | {"pid": pid}
                hooks.run_all(config.hooks.prestart, spec_state, "prestart")
                hooks.run_all(config.hooks.create_runtime, spec_state, "createRuntime")
                channel.send("go", state=spec_state)
            elif kind == "ready":
                return
            elif kind == "error":
                raise _error_class(message.get("kind", ""))(
                    message.get("msg", "container setup failed")
                )
            else:
                raise ProcessError("the container process exited before it was ready")

    def undo(self) -> None:
        """Remove whatever this create made; safe to call at any point."""
        if self.init_pid:
            try:
                os.kill(self.init_pid, signal.SIGKILL)
            except ProcessLookupError:  # already gone
                pass
        if self.manager is not None:
            self.manager.destroy()
        if self.monitor_pid:
            try:
                os.kill(self.monitor_pid, signal.SIGKILL)
            except ProcessLookupError:  # already gone
                pass
            try:
                os.waitpid(self.monitor_pid, 0)
            except ChildProcessError:  # already reaped
                pass
        if self.init_pid:
            wait_gone(self.init_pid, timeout=10.0)
        if self.made_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)


def create(
    store: StateStore,
    container_id: str,
    bundle: str | os.PathLike[str],
    *,
    pid_file: str | os.PathLike[str] | None = None,
    stdio: tuple[int, int, int] | None = None,
    no_pivot: bool = False,
) -> State:
    """Create container ``container_id`` from ``bundle``; it is ``created`` on return."""
    validate_id(container_id)
    config = load_bundle(bundle)
    cgroups.validate_resources(config.resources)
    rootfs.check_mounts(config)
    if store.dir(container_id).exists():
        raise ContainerExistsError(f"container {container_id!r} already exists")
    ns_fds = namespaces.open_paths(config)
    creation = Creation(store, container_id, config)
    try:
        state = creation.run(stdio, no_pivot, ns_fds)
        if pid_file is not None:
            _write_pid_file(Path(pid_file), state.pid)
    except BaseException:
        creation.undo()
        raise
    finally:
        namespaces.close_all(ns_fds)
    return state


def _write_pid_file(path: Path, pid: int) -> None:
    __tracebackhide__ = True
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(str(pid))
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigError(f"cannot write pid file {path}: {exc.strerror}") from None
