"""``delete``: remove every trace of a stopped container (runtime.md "delete")."""

from __future__ import annotations

import json
import os
import shutil
import signal

from . import cgroups, hooks
from .config import parse_config
from .errors import ConfigError, StateError
from .kill import send_signal
from .state import CONFIG_FILE, StateStore, Status, refresh
from .waiting import wait_gone

KILL_TIMEOUT = 10.0


def delete(store: StateStore, container_id: str, force: bool = False) -> list[str]:
    """Delete the container; returns poststop hook warnings (they never fail ``delete``).

    Without ``force`` a container that is not stopped is refused, as runtime.md says;
    with it (runc's ``--force``) the container is killed first.
    """
    state_dir = store.dir(container_id)
    with store.locked(container_id):
        state = refresh(store.load(container_id))
        if not state.status.can_delete(force):
            raise StateError(
                f"cannot delete container {container_id!r}: it is {state.status.value}; "
                "kill it first or use --force"
            )
        if state.status in (Status.CREATED, Status.RUNNING):
            try:
                send_signal(state.pid, state.init_start_time, signal.SIGKILL)
            except StateError:  # it exited meanwhile
                pass
            if not wait_gone(state.pid, KILL_TIMEOUT, state.init_start_time):
                raise StateError(f"container process {state.pid} did not die after SIGKILL")
        if state.cgroup:
            cgroups.manager_from_dict(state.cgroup).destroy()
        _wait_monitor(state.monitor_pid)
        try:
            raw = json.loads((state_dir / CONFIG_FILE).read_text())
            poststop = parse_config(raw, state.bundle).hooks.poststop
        except (OSError, ValueError, ConfigError):  # a half-made container has no hooks to run
            poststop = ()
        state.status = Status.STOPPED
        shutil.rmtree(state_dir)
    return hooks.run_all_warn(poststop, state.spec_state(), "poststop")


def _wait_monitor(pid: int) -> None:
    """Wait for the monitor to finish writing and exit; reap it if it is our child."""
    if not pid:
        return
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == 0:
            os.waitpid(pid, 0)
        return
    except ChildProcessError:  # not our child (created by another process)
        pass
    wait_gone(pid, KILL_TIMEOUT)
