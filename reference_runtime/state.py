"""Container status, the saved state, and how it is refreshed from the kernel.

Each container has a directory ``ROOT/ID`` holding ``state.json`` (written atomically),
a copy of the config it was created from, the start socket while it is ``created``,
and ``exit.json`` once its monitor has reaped the container process.
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import ContainerNotFoundError, StateError
from .spec import OCI_VERSION

STATE_FILE = "state.json"
CONFIG_FILE = "config.json"
EXIT_FILE = "exit.json"
START_SOCKET = "start.sock"
LOCK_FILE = ".lock"


class Status(enum.StrEnum):
    """The runtime-spec statuses, with the verbs each allows."""

    CREATING = "creating"
    CREATED = "created"
    RUNNING = "running"
    STOPPED = "stopped"

    def can_start(self) -> bool:
        return self is Status.CREATED

    def can_kill(self) -> bool:
        # runtime.md "kill": only a created or running container takes a signal.
        return self in (Status.CREATED, Status.RUNNING)

    def can_delete(self, force: bool = False) -> bool:
        # runtime.md "delete": a container that is not stopped MUST be refused. With
        # --force (runc's flag) the runtime kills it first.
        return self is Status.STOPPED or force

    def can_exec(self) -> bool:
        return self in (Status.CREATED, Status.RUNNING)


@dataclass
class State:
    """What ``state.json`` holds: the spec's state plus what the runtime needs."""

    id: str
    bundle: str
    status: Status = Status.CREATING
    pid: int = 0
    annotations: dict[str, str] = field(default_factory=dict)
    oci_version: str = OCI_VERSION
    created: str = ""
    owner: int = 0
    # private fields: not part of the spec's state output
    init_start_time: int = 0
    monitor_pid: int = 0
    creator_pid: int = 0
    cgroup: dict[str, Any] = field(default_factory=dict)
    rootfs: str = ""

    def spec_state(self) -> dict[str, Any]:
        """The state document of runtime-spec ``runtime.md``."""
        out: dict[str, Any] = {
            "ociVersion": self.oci_version,
            "id": self.id,
            "status": self.status.value,
            "bundle": self.bundle,
        }
        if self.status in (Status.CREATED, Status.RUNNING):
            out["pid"] = self.pid
        out["annotations"] = dict(self.annotations)
        out["rootfs"] = self.rootfs
        out["created"] = self.created
        out["owner"] = "root" if self.owner == 0 else str(self.owner)
        return out

    def to_json(self) -> str:
        data = asdict(self)
        data["status"] = self.status.value
        return json.dumps(data, indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> State:
        data = dict(data)
        data["status"] = Status(data["status"])
        return cls(**data)


class StateStore:
    """The state root directory (``--root``), one subdirectory per container."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def dir(self, container_id: str) -> Path:
        return self.root / container_id

    def exists(self, container_id: str) -> bool:
        return (self.dir(container_id) / STATE_FILE).exists()

    def load(self, container_id: str) -> State:
        __tracebackhide__ = True
        path = self.dir(container_id) / STATE_FILE
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ContainerNotFoundError(f"container {container_id!r} does not exist") from None
        except (OSError, ValueError) as exc:
            raise StateError(f"state of container {container_id!r} is unreadable: {exc}") from None
        return State.from_dict(data)

    def save(self, state: State) -> None:
        path = self.dir(state.id) / STATE_FILE
        tmp = path.with_name(STATE_FILE + ".tmp")
        tmp.write_text(state.to_json())
        os.replace(tmp, path)

    def ids(self) -> list[str]:
        try:
            return sorted(p.name for p in self.root.iterdir() if (p / STATE_FILE).exists())
        except FileNotFoundError:
            return []

    @contextlib.contextmanager
    def locked(self, container_id: str) -> Iterator[None]:
        """Hold the container's lock for one verb (refresh -> check -> act -> save)."""
        try:
            fd = os.open(self.dir(container_id) / LOCK_FILE, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            raise ContainerNotFoundError(f"container {container_id!r} does not exist") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat, or None when the process is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # the command name may contain spaces and parentheses: split after the last ')'
    fields = raw[raw.rfind(b")") + 2 :].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def process_alive(pid: int, start_time: int) -> bool:
    """True if ``pid`` is still the same live process (guards against PID reuse)."""
    if pid <= 0:
        return False
    return process_start_time(pid) == start_time


def refresh(state: State) -> State:
    """Bring ``state.status`` up to date with the kernel (runtime.md's state transitions)."""
    if state.status in (Status.CREATED, Status.RUNNING):
        if not process_alive(state.pid, state.init_start_time):
            state.status = Status.STOPPED
    elif state.status is Status.CREATING:
        # A create that died half way leaves "creating" behind; once its creator is
        # gone the container can only be deleted.
        creator_alive = state.creator_pid and process_start_time(state.creator_pid) is not None
        if not creator_alive:
            state.status = Status.STOPPED
    return state


def read_exit(state_dir: Path) -> dict[str, Any] | None:
    """The monitor's record of how the container process ended, if written yet."""
    try:
        data: dict[str, Any] = json.loads((state_dir / EXIT_FILE).read_text())
        return data
    except (FileNotFoundError, ValueError):
        return None
