"""``start``: run the program of a ``created`` container (runtime.md "start")."""

from __future__ import annotations

import _socket
import os

from . import _lite, hooks
from .config import parse_hooks
from .create import error_class, socket_path
from .errors import HookError, StateError
from .state import START_SOCKET, State, StateStore, Status, refresh

START_TIMEOUT = 300.0  # seconds; startContainer hooks run before the program does


def start(store: StateStore, container_id: str) -> list[str]:
    """Start the container.

    A failing startContainer or poststart hook is an error: the container is then
    stopped and destroyed, and its poststop hooks run (runtime.md "Lifecycle", as of
    runtime-spec 1.2; earlier versions asked only for a warning on poststart).
    Returns [] (kept for callers that log warnings).
    """
    failure: HookError | None = None
    with store.locked(container_id):
        state = refresh(store.load(container_id))
        if not state.status.can_start():
            raise StateError(
                f"cannot start container {container_id!r}: it is {state.status}, not created"
            )
        try:
            _signal_init(store, state)
        except HookError as exc:
            failure = exc
        else:
            state.status = Status.RUNNING
            store.save(state)
    if failure is None and state.poststart:
        try:
            hooks.run_all(
                parse_hooks(state.poststart, "poststart"), state.spec_state(), "poststart"
            )
        except HookError as exc:
            failure = exc
    if failure is not None:
        from .delete import delete

        delete(store, container_id, force=True)
        raise failure
    return []


def _signal_init(store: StateStore, state: State) -> None:
    """Tell the waiting init to exec; it closes the connection on a successful exec."""
    __tracebackhide__ = True
    state_dir = store.dir(state.id)
    dir_fd = os.open(state_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(START_TIMEOUT)
        try:
            sock.connect(socket_path(dir_fd))
            sock.sendall(b"start")
            reply = b""
            while chunk := sock.recv(4096):
                reply += chunk
        except OSError as exc:
            raise StateError(
                f"container {state.id!r} is not waiting to start: {exc.strerror or exc}"
            ) from None
    finally:
        sock.close()
        os.close(dir_fd)
    try:
        os.unlink(os.path.join(state_dir, START_SOCKET))
    except FileNotFoundError:  # already removed
        pass
    if reply:
        error = _lite.loads(reply)
        raise error_class(error.get("kind", ""))(error.get("msg", "start failed"))
