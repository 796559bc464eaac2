"""Container status, the saved state, and how it is refreshed from the kernel.

Each container has a directory ``ROOT/ID`` holding ``state.json`` (written atomically),
a copy of the config it was created from, and the start socket while it is
``created``.
"""

from __future__ import annotations

import fcntl
import os

from . import _lite
from .errors import ContainerNotFoundError, StateError
from .spec import OCI_VERSION

TYPE_CHECKING = False
if TYPE_CHECKING:
    from contextlib import AbstractContextManager
    from dataclasses import dataclass, field
    from typing import Any
else:
    from ._lite import dataclass, field

STATE_FILE = "state.json"
CONFIG_FILE = "config.json"
START_SOCKET = "start.sock"


class Status(_lite.StrChoice):
    """A runtime-spec status (``Status.CREATED`` ...), with the verbs each allows."""

    CREATING: Status
    CREATED: Status
    RUNNING: Status
    STOPPED: Status

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


Status._define(CREATING="creating", CREATED="created", RUNNING="running", STOPPED="stopped")


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
    creator_pid: int = 0
    cgroup: dict[str, Any] = field(default_factory=dict)
    rootfs: str = ""
    poststart: list[dict[str, Any]] = field(default_factory=list)
    poststop: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def spec_state(self) -> dict[str, Any]:
        """The state document of runtime-spec ``runtime.md``."""
        out: dict[str, Any] = {
            "ociVersion": self.oci_version,
            "id": self.id,
            "status": str(self.status),
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
        data = _lite.asdict(self)
        data["status"] = str(self.status)
        return _lite.dumps(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> State:
        data = dict(data)
        data["status"] = Status(data["status"])
        return cls(**data)


class StateStore:
    """The state root directory (``--root``), one subdirectory per container."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = os.fspath(root)

    def dir(self, container_id: str) -> str:
        return os.path.join(self.root, container_id)

    def load(self, container_id: str) -> State:
        __tracebackhide__ = True
        path = os.path.join(self.root, container_id, STATE_FILE)
        try:
            with open(path, "rb") as f:
                data = _lite.loads(f.read())
        except FileNotFoundError:
            raise ContainerNotFoundError(f"container {container_id!r} does not exist") from None
        except (OSError, ValueError) as exc:
            raise StateError(f"state of container {container_id!r} is unreadable: {exc}") from None
        return State.from_dict(data)

    def save(self, state: State) -> None:
        path = os.path.join(self.root, state.id, STATE_FILE)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(state.to_json())
        os.replace(tmp, path)

    def ids(self) -> list[str]:
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if os.path.exists(os.path.join(self.root, n, STATE_FILE)))

    def locked(self, container_id: str) -> AbstractContextManager[None]:
        """Hold the container's lock for one verb (refresh -> check -> act -> save)."""
        return _Lock(os.path.join(self.root, container_id), container_id)


class _Lock:
    def __init__(self, path: str, container_id: str) -> None:
        self.path = path
        self.container_id = container_id
        self.fd = -1

    def __enter__(self) -> None:
        try:
            # flock on the state directory itself: no lock file to create
            self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise ContainerNotFoundError(
                f"container {self.container_id!r} does not exist"
            ) from None
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


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
    elif state.status == Status.CREATING:
        # A create that died half way leaves "creating" behind; once its creator is
        # gone the container can only be deleted.
        creator_alive = state.creator_pid and process_start_time(state.creator_pid) is not None
        if not creator_alive:
            state.status = Status.STOPPED
    return state


def remove_state_dir(path: str) -> None:
    """Remove a container's (flat) state directory; gone already is fine."""
    try:
        names = os.listdir(path)
    except FileNotFoundError:  # already removed
        return
    for name in names:
        try:
            os.unlink(os.path.join(path, name))
        except FileNotFoundError:  # removed meanwhile
            pass
    os.rmdir(path)
