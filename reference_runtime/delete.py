"""``delete``: remove every trace of a stopped container (runtime.md "delete")."""

from __future__ import annotations

from . import cgroups, hooks
from .config import parse_hooks
from .errors import StateError
from .kill import SIGKILL, send_signal
from .state import StateStore, Status, refresh, remove_state_dir
from .waiting import reap_if_child, wait_gone

KILL_TIMEOUT = 10.0


def delete(store: StateStore, container_id: str, force: bool = False) -> list[str]:
    """Delete the container; returns poststop hook warnings (they never fail ``delete``).

    Without ``force`` a container that is not stopped is refused, as runtime.md says;
    with it (runc's ``--force``) the container is killed first.
    """
    with store.locked(container_id):
        state = refresh(store.load(container_id))
        if not state.status.can_delete(force):
            raise StateError(
                f"cannot delete container {container_id!r}: it is {state.status}; "
                "kill it first or use --force"
            )
        if state.status in (Status.CREATED, Status.RUNNING):
            try:
                send_signal(state.pid, state.init_start_time, SIGKILL)
            except StateError:  # it exited meanwhile
                pass
            if not wait_gone(state.pid, KILL_TIMEOUT, state.init_start_time):
                raise StateError(f"container process {state.pid} did not die after SIGKILL")
        if state.pid:
            reap_if_child(state.pid)
        if state.cgroup:
            manager = cgroups.manager_from_dict(state.cgroup)
            # A cgroup this container joined but did not make may hold other
            # containers (a shared cgroupsPath): leave it and its processes alone.
            if manager.created:
                manager.destroy()
        state.status = Status.STOPPED
        remove_state_dir(store.dir(container_id))
    if not state.poststop:
        return []
    return hooks.run_all_warn(
        parse_hooks(state.poststop, "poststop"), state.spec_state(), "poststop"
    )
