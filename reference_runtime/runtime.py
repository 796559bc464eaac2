"""The library API: ``Runtime``, one object per state root, one method per verb.

The pytest plugin drives containers through this class in-process (no interpreter
start per verb); the ``reference-runtime`` CLI is a thin layer over it.
"""

from __future__ import annotations

import os

from . import create as _create
from . import delete as _delete
from . import exec_in as _exec
from . import kill as _kill
from . import start as _start
from .errors import ContainerNotFoundError, StateError
from .state import State, StateStore, Status, refresh
from .waiting import wait_gone

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

DEFAULT_ROOT = "/run/reference-runtime"


class Runtime:
    """The reference runtime over the state root ``root`` (runc's ``--root``)."""

    def __init__(
        self, root: str | os.PathLike[str] = DEFAULT_ROOT, *, no_pivot: bool = False
    ) -> None:
        self.store = StateStore(root)
        self.no_pivot = no_pivot
        self._exit_status: dict[str, int] = {}  # collected by wait(), for later calls

    @property
    def root(self) -> str:
        return str(self.store.root)

    def create(
        self,
        container_id: str,
        bundle: str | os.PathLike[str],
        *,
        pid_file: str | os.PathLike[str] | None = None,
        stdio: tuple[int, int, int] | None = None,
        console_socket: str | os.PathLike[str] | None = None,
    ) -> State:
        """Create the container; its process waits for ``start``. ``stdio`` are the
        descriptors the container gets as 0, 1 and 2 (default: the caller's).

        ``process.terminal`` needs ``console_socket``, the path of a listening AF_UNIX
        stream socket: the pty master is sent there (SCM_RIGHTS) before this returns."""
        return _create.create(
            self.store,
            container_id,
            bundle,
            pid_file=pid_file,
            stdio=stdio,
            no_pivot=self.no_pivot,
            console_socket=console_socket,
        )

    def start(self, container_id: str) -> list[str]:
        """Run the program; returns poststart hook warnings."""
        return _start.start(self.store, container_id)

    def state(self, container_id: str) -> State:
        """The container's current state (status refreshed from the kernel)."""
        with self.store.locked(container_id):
            return refresh(self.store.load(container_id))

    def kill(self, container_id: str, sig: str | int = _kill.SIGTERM) -> None:
        _kill.kill(self.store, container_id, sig)

    def delete(self, container_id: str, force: bool = False) -> list[str]:
        """Remove the container; returns poststop hook warnings."""
        warnings = _delete.delete(self.store, container_id, force)
        self._exit_status.pop(container_id, None)
        return warnings

    def list(self) -> list[State]:
        states = []
        for container_id in self.store.ids():
            try:
                states.append(self.state(container_id))
            except ContainerNotFoundError:  # deleted while we listed
                continue
        return states

    def exec(
        self,
        container_id: str,
        args: Sequence[str],
        *,
        env: Sequence[str] | None = None,
        cwd: str | None = None,
        user: tuple[int, int] | None = None,
        stdio: tuple[int, int, int] | None = None,
        console_socket: str | os.PathLike[str] | None = None,
    ) -> int:
        """Run ``args`` inside the container; returns its exit status. With
        ``console_socket`` it runs on a new pty whose master is sent there."""
        return _exec.exec_in(
            self.store,
            container_id,
            args,
            env=env,
            cwd=cwd,
            user=user,
            stdio=stdio,
            console_socket=console_socket,
        )

    def wait(self, container_id: str, timeout: float | None = None) -> int:
        """Wait for the container process to exit; its status, 128+N for signal N.

        As with runc, only the process that created the container is its parent and
        can collect the status; from any other process this raises ``StateError``
        once the container has stopped.
        """
        if container_id in self._exit_status:
            return self._exit_status[container_id]
        state = self.store.load(container_id)
        if state.status == Status.CREATING:
            raise StateError(f"container {container_id!r} is still being created")
        if not state.pid:
            raise StateError(f"container {container_id!r} has no process")
        try:
            waited, status = os.waitpid(state.pid, os.WNOHANG)
        except ChildProcessError:
            if not wait_gone(state.pid, timeout, state.init_start_time):
                raise TimeoutError(
                    f"container {container_id!r} still running after {timeout}s"
                ) from None
            raise StateError(
                f"container {container_id!r} has stopped; its exit status went to the process "
                "that created it"
            ) from None
        if waited == 0:
            if not wait_gone(state.pid, timeout, state.init_start_time):
                raise TimeoutError(f"container {container_id!r} still running after {timeout}s")
            _, status = os.waitpid(state.pid, 0)
        code = 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        self._exit_status[container_id] = code
        return code

    def run(
        self,
        container_id: str,
        bundle: str | os.PathLike[str],
        *,
        stdio: tuple[int, int, int] | None = None,
        console_socket: str | os.PathLike[str] | None = None,
    ) -> int:
        """create + start + wait + delete, as ``runc run``; returns the exit status."""
        self.create(container_id, bundle, stdio=stdio, console_socket=console_socket)
        try:
            self.start(container_id)
            return self.wait(container_id)
        finally:
            self.delete(container_id, force=True)
