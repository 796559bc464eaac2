"""``kill``: send a signal to the container process (runtime.md "kill")."""

from __future__ import annotations

import _signal
import os

from .errors import ConfigError, StateError
from .state import StateStore, process_start_time, refresh

SIGKILL = _signal.SIGKILL
SIGTERM = _signal.SIGTERM
# SIGTERM, SIGKILL ... from the interpreter's table (``_signal``: ``signal`` imports enum)
SIGNALS: dict[str, int] = {
    name: getattr(_signal, name)
    for name in dir(_signal)
    if name.startswith("SIG")
    and not name.startswith("SIG_")
    and name not in ("SIGRTMIN", "SIGRTMAX")
}


def parse_signal(value: str | int) -> int:
    """``9``, ``KILL`` or ``SIGKILL`` -> 9; anything else is a ConfigError."""
    __tracebackhide__ = True
    if isinstance(value, int) or value.isdigit():
        number = int(value)
        if not 0 < number < _signal.NSIG:
            raise ConfigError(f"signal {value} is out of range 1..{_signal.NSIG - 1}")
        return number
    name = value.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    if name not in SIGNALS:
        raise ConfigError(f"unknown signal {value!r} (use a name like TERM or KILL, or a number)")
    return SIGNALS[name]


def kill(store: StateStore, container_id: str, sig: str | int = SIGTERM) -> None:
    number = parse_signal(sig)
    with store.locked(container_id):
        state = refresh(store.load(container_id))
        if not state.status.can_kill():
            raise StateError(
                f"cannot kill container {container_id!r}: it is {state.status}, "
                "not created or running"
            )
        send_signal(state.pid, state.init_start_time, number)


def send_signal(pid: int, start_time: int, number: int) -> None:
    """Signal ``pid`` through a pidfd, after checking it is still the same process."""
    __tracebackhide__ = True
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        raise StateError(f"container process {pid} has already exited") from None
    try:
        if process_start_time(pid) != start_time:
            raise StateError(f"container process {pid} has already exited")
        _signal.pidfd_send_signal(pidfd, number)
    except ProcessLookupError:
        raise StateError(f"container process {pid} has already exited") from None
    finally:
        os.close(pidfd)
