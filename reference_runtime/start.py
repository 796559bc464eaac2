"""``start``: run the program of a ``created`` container (runtime.md "start")."""

from __future__ import annotations

import json
import os
import socket

from . import hooks
from .config import parse_config
from .create import _error_class, socket_path
from .errors import StateError
from .state import CONFIG_FILE, START_SOCKET, State, StateStore, Status, refresh

START_TIMEOUT = 300.0  # seconds; startContainer hooks run before the program does


def start(store: StateStore, container_id: str) -> list[str]:
    """Start the container; returns poststart hook warnings (they never fail ``start``)."""
    with store.locked(container_id):
        state = refresh(store.load(container_id))
        if not state.status.can_start():
            raise StateError(
                f"cannot start container {container_id!r}: it is {state.status.value}, not created"
            )
        _signal_init(store, state)
        state.status = Status.RUNNING
        store.save(state)
    config = parse_config(
        json.loads((store.dir(container_id) / CONFIG_FILE).read_text()), state.bundle
    )
    return hooks.run_all_warn(config.hooks.poststart, state.spec_state(), "poststart")


def _signal_init(store: StateStore, state: State) -> None:
    """Tell the waiting init to exec; it closes the connection on a successful exec."""
    __tracebackhide__ = True
    state_dir = store.dir(state.id)
    dir_fd = os.open(state_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
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
        os.close(dir_fd)
    try:
        (state_dir / START_SOCKET).unlink()
    except FileNotFoundError:  # already removed
        pass
    if reply:
        error = json.loads(reply)
        state.status = Status.STOPPED
        raise _error_class(error.get("kind", ""))(error.get("msg", "start failed"))
