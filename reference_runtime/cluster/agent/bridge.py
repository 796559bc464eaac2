"""Containers of pods, through the node's runtime (the reference runtime or runc).

One OCI bundle per container under ``<node>/bundles/<id>``: the image's rootfs, shared
and read-only, with a private tmpfs on ``/tmp``; its own pid, ipc, uts, mount and cgroup
namespaces, and the node's network namespace joined by path, so every container shares it
(pod IP = node IP). ``resources.limits.memory`` becomes the memory limit, ``limits.cpu``
a CFS quota (period 100 ms), ``requests.cpu`` the CPU shares; the cgroup is
``/<node cgroup>/<id>`` in every hierarchy. stdout and stderr go to the run's log file.

The bundle's annotations say whose container it is (pod UID, name and namespace,
container name, restart count, a hash of the container's spec, when it started), so a
restarted agent can adopt what its predecessor left running. Containers are created by
the node's runtime service (``runtimed``), which records their exits; everything else
goes through the runtime directly (``drivers``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...state import process_start_time
from ..nodehost import cgroup_mounts
from ..scheduler.quantity import milli_value, value
from .config import AgentConfig
from .drivers import DriverError, Listed, NodeRuntime, open_driver
from .images import resolve_image
from .runtimed import exit_record, request_create

__all__ = [
    "UNKNOWN_EXIT",
    "Adoptable",
    "ContainerBridge",
    "StartError",
    "command_line",
    "spec_hash",
]

_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
UNKNOWN_EXIT = -1  # stopped, but nobody collected its exit status
LOST_AFTER = 3.0  # seconds a stopped container may wait for its exit record

POD_UID = "io.kubernetes.pod.uid"
POD_NAME = "io.kubernetes.pod.name"
POD_NAMESPACE = "io.kubernetes.pod.namespace"
CONTAINER_NAME = "io.kubernetes.container.name"
CONTAINER_HASH = "io.kubernetes.container.hash"
RESTART_COUNT = "io.kubernetes.container.restartCount"
STARTED = "reference-cluster.io/started"


class StartError(Exception):
    """The container could not be created or started (CreateContainerError)."""


def command_line(container: dict[str, Any]) -> list[str]:
    """``command`` + ``args``; the images here have no entrypoint, so ``args`` alone runs
    as the command, and neither means the image's default, ``sh``."""
    command = list(container.get("command") or [])
    args = list(container.get("args") or [])
    return command + args if command or args else ["sh"]


def spec_hash(container: dict[str, Any]) -> str:
    """A hash of the container's spec: an adopted container must still match it."""
    return hashlib.sha256(json.dumps(container, sort_keys=True).encode()).hexdigest()[:16]


def _resources(container: dict[str, Any]) -> dict[str, Any]:
    res = container.get("resources") or {}
    limits, requests = res.get("limits") or {}, res.get("requests") or {}
    linux: dict[str, Any] = {}
    if "memory" in limits:
        linux["memory"] = {"limit": value(limits["memory"])}
    cpu: dict[str, Any] = {}
    if "cpu" in limits:
        cpu.update(quota=max(1000, milli_value(limits["cpu"]) * 100), period=100000)
    request = requests.get("cpu", limits.get("cpu"))
    if request is not None:
        cpu["shares"] = max(2, milli_value(request) * 1024 // 1000)
    if cpu:
        linux["cpu"] = cpu
    return linux


@dataclass(frozen=True)
class Adoptable:
    """A container an earlier agent of this node left, and whose it is."""

    id: str
    status: str
    pod_uid: str
    container: str
    spec_hash: str
    restarts: int
    started: float
    pid: int

    @classmethod
    def from_listed(cls, listed: Listed) -> Adoptable:
        notes = listed.annotations
        try:
            restarts, started = int(notes.get(RESTART_COUNT, "")), float(notes.get(STARTED, ""))
        except ValueError:
            restarts, started = -1, 0.0  # not made by an agent: never adopted
        return cls(
            listed.id,
            listed.status,
            notes.get(POD_UID, ""),
            notes.get(CONTAINER_NAME, ""),
            notes.get(CONTAINER_HASH, ""),
            restarts,
            started,
            listed.pid,
        )


class ContainerBridge:
    """Create, watch, signal and remove a node's containers."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.state = Path(config.state)
        self.bundles = self.state / "bundles"
        self.bundles.mkdir(parents=True, exist_ok=True)
        self.driver: NodeRuntime = open_driver(config.node_runtime, self.state)
        self.inits: dict[str, tuple[int, int]] = {}  # container ID -> (PID, start time)
        self._lost: dict[str, float] = {}  # stopped, no exit record yet: since when

    def cgroup_dirs(self, container_id: str) -> list[Path]:
        return [m / self.config.cgroup_parent / container_id for m in cgroup_mounts()]

    def spec(
        self,
        pod: dict[str, Any],
        container: dict[str, Any],
        rootfs: Path,
        env: list[str],
        annotations: dict[str, str],
    ) -> Any:
        from ...spec import default_spec

        spec = default_spec(command_line(container))
        process = spec["process"]
        process["env"] = [_PATH, f"HOSTNAME={pod['metadata']['name']}", *env]
        process["cwd"] = container.get("workingDir") or "/"
        spec["root"] = {"path": str(rootfs), "readonly": True}
        spec["hostname"] = pod["metadata"]["name"][:63]
        spec["annotations"] = annotations
        linux = spec["linux"]
        linux["namespaces"] = [n for n in linux["namespaces"] if n["type"] != "network"]
        linux["namespaces"].append({"type": "network", "path": f"/run/netns/{self.config.netns}"})
        linux["resources"] = {**linux.get("resources", {}), **_resources(container)}
        spec["mounts"].append(
            {
                "destination": "/tmp",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "nodev", "mode=1777", "size=65536k"],
            }
        )
        return spec

    def start(
        self,
        container_id: str,
        pod: dict[str, Any],
        container: dict[str, Any],
        log: Path,
        *,
        restarts: int,
        env: list[str],
    ) -> float:
        """Create and start the container, its output appended to ``log``; when it started.

        Raises ``ImagePullError`` or ``StartError``; nothing is left behind then."""
        rootfs = resolve_image(container.get("image", ""), Path(self.config.images))
        m = pod["metadata"]
        started = time.time()
        annotations = {
            POD_UID: m["uid"],
            POD_NAME: m["name"],
            POD_NAMESPACE: m.get("namespace", ""),
            CONTAINER_NAME: container["name"],
            CONTAINER_HASH: spec_hash(container),
            RESTART_COUNT: str(restarts),
            STARTED: f"{started:.6f}",
        }
        spec = self.spec(pod, container, rootfs, env, annotations)
        spec["linux"]["cgroupsPath"] = f"/{self.config.cgroup_parent}/{container_id}"
        bundle = self.bundles / container_id
        shutil.rmtree(bundle, ignore_errors=True)
        bundle.mkdir(parents=True)
        (bundle / "config.json").write_text(json.dumps(spec))
        log.parent.mkdir(parents=True, exist_ok=True)
        try:
            pid = request_create(self.state, container_id, bundle, log)
            self.inits[container_id] = (pid, process_start_time(pid) or 0)
            self.driver.start(container_id)
        except (DriverError, OSError) as exc:
            self.remove(container_id)
            raise StartError(str(exc).strip().splitlines()[0] if str(exc) else repr(exc)) from None
        return started

    def adopt(self, found: Adoptable) -> None:
        """Track a container an earlier agent started (its exit is recorded all the same)."""
        if found.pid:
            self.inits[found.id] = (found.pid, process_start_time(found.pid) or 0)

    def exit_status(self, container_id: str) -> int | None:
        """The exit status if the container's process has ended (128+N for signal N);
        ``UNKNOWN_EXIT`` if it ended and its status was not recorded."""
        pid, start = self.inits.get(container_id, (0, 0))
        try:
            record = json.loads(exit_record(self.state, container_id).read_text())
        except (OSError, ValueError):
            record = None  # not ended, or not recorded (yet)
        if record is not None and (not pid or record.get("pid") == pid):
            self._lost.pop(container_id, None)
            return int(record["status"])
        if pid and start and process_start_time(pid) == start:
            return None
        since = self._lost.setdefault(container_id, time.monotonic())
        if time.monotonic() - since < LOST_AFTER:
            return None  # the runtime service is about to record it
        self._lost.pop(container_id, None)
        return UNKNOWN_EXIT

    def oom_killed(self, container_id: str) -> bool:
        """Whether the kernel's OOM killer killed a process of the container's cgroup."""
        for directory in self.cgroup_dirs(container_id):
            for name in ("memory.events", "memory.oom_control"):
                try:
                    text = (directory / name).read_text()
                except OSError:
                    continue  # not this hierarchy's file
                for line in text.splitlines():
                    key, _, count = line.partition(" ")
                    if key == "oom_kill" and count.strip().isdigit() and int(count) > 0:
                        return True
        return False

    def signal(self, container_id: str, sig: int = signal.SIGTERM) -> None:
        self.driver.kill(container_id, sig)

    def exec(self, container_id: str, command: list[str], timeout: float) -> int | None:
        """Run ``command`` in the container (a probe); its exit status, None on timeout."""
        try:
            return self.driver.exec(container_id, command, timeout)
        except (DriverError, OSError):
            return 126

    def remove(self, container_id: str) -> None:
        """Kill and delete the container, its exit record and its bundle (idempotent)."""
        self.driver.delete(container_id)
        self.inits.pop(container_id, None)
        self._lost.pop(container_id, None)
        exit_record(self.state, container_id).unlink(missing_ok=True)
        shutil.rmtree(self.bundles / container_id, ignore_errors=True)

    def leftovers(self) -> list[Adoptable]:
        """Containers in this node's runtime state (made by an earlier agent of the node)."""
        return [Adoptable.from_listed(listed) for listed in self.driver.containers()]
