"""Containers of pods, through the reference runtime (in-process) or runc.

One OCI bundle per container run under ``<node>/bundles/<id>``: the image's rootfs,
shared and read-only, with a private tmpfs on ``/tmp``; its own pid, ipc, uts, mount and
cgroup namespaces but *not* a network namespace, so every container shares the node's
(pod IP = node IP). ``resources.limits.memory`` becomes the memory limit,
``limits.cpu`` a CFS quota (period 100 ms), ``requests.cpu`` the CPU shares; the cgroup is
``/<node cgroup>/<id>`` in every hierarchy. stdout and stderr go to the run's log file.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path
from typing import Any

from ...errors import RuntimeSpecError as ReferenceRuntimeError
from ..nodehost import cgroup_mounts
from ..scheduler.quantity import milli_value, value
from .config import AgentConfig
from .images import resolve_image

__all__ = ["ContainerBridge", "StartError", "command_line"]

_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class StartError(Exception):
    """The container could not be created or started (CreateContainerError)."""


def command_line(container: dict[str, Any]) -> list[str]:
    """``command`` + ``args``; the images here have no entrypoint, so ``args`` alone runs
    as the command, and neither means the image's default, ``sh``."""
    command = list(container.get("command") or [])
    args = list(container.get("args") or [])
    return command + args if command or args else ["sh"]


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


class ContainerBridge:
    """Create, watch, signal and remove a node's containers."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.state = Path(config.state)
        self.bundles = self.state / "bundles"
        self.bundles.mkdir(parents=True, exist_ok=True)
        from ...runtime import Runtime

        self.runtime = Runtime(self.state / "runtime")

    def cgroup_dirs(self, container_id: str) -> list[Path]:
        return [m / self.config.cgroup_parent / container_id for m in cgroup_mounts()]

    def spec(self, pod: dict[str, Any], container: dict[str, Any], rootfs: Path) -> Any:
        from ...spec import default_spec

        spec = default_spec(command_line(container))
        process = spec["process"]
        env = [_PATH, f"HOSTNAME={pod['metadata']['name']}"]
        env += [f"{e['name']}={e.get('value', '')}" for e in container.get("env") or []]
        process["env"] = env
        process["cwd"] = container.get("workingDir") or "/"
        spec["root"] = {"path": str(rootfs), "readonly": True}
        spec["hostname"] = pod["metadata"]["name"][:63]
        linux = spec["linux"]
        linux["namespaces"] = [n for n in linux["namespaces"] if n["type"] != "network"]
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
        self, container_id: str, pod: dict[str, Any], container: dict[str, Any], log: Path
    ) -> int:
        """Create and start the container, its output appended to ``log``; its host PID.

        Raises ``ImagePullError`` or ``StartError``; nothing is left behind then."""
        rootfs = resolve_image(container.get("image", ""), Path(self.config.images))
        spec = self.spec(pod, container, rootfs)
        spec["linux"]["cgroupsPath"] = f"/{self.config.cgroup_parent}/{container_id}"
        bundle = self.bundles / container_id
        shutil.rmtree(bundle, ignore_errors=True)
        bundle.mkdir(parents=True)
        (bundle / "config.json").write_text(json.dumps(spec))
        log.parent.mkdir(parents=True, exist_ok=True)
        out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        try:
            state = self.runtime.create(container_id, bundle, stdio=(null, out, out))
            self.runtime.start(container_id)
        except (ReferenceRuntimeError, OSError) as exc:
            self.remove(container_id)
            raise StartError(str(exc).splitlines()[0] if str(exc) else repr(exc)) from None
        finally:
            os.close(out)
            os.close(null)
        return int(state.pid or 0)

    def exit_status(self, container_id: str) -> int | None:
        """The exit status if the container's process has ended (128+N for signal N)."""
        try:
            return self.runtime.wait(container_id, timeout=0)
        except TimeoutError:
            return None
        except ReferenceRuntimeError:
            return 255  # not our child (left by an earlier agent) or gone: it ended

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
        try:
            self.runtime.kill(container_id, sig)
        except ReferenceRuntimeError:
            pass  # stopped already: nothing to signal

    def exec(self, container_id: str, command: list[str]) -> int:
        """Run ``command`` in the container (a probe); its exit status."""
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            return self.runtime.exec(container_id, command, stdio=(null, null, null))
        except (ReferenceRuntimeError, OSError):
            return 126
        finally:
            os.close(null)

    def remove(self, container_id: str) -> None:
        """Kill and delete the container and its bundle (idempotent)."""
        try:
            self.runtime.delete(container_id, force=True)
        except ReferenceRuntimeError:
            pass  # never created, or deleted already
        shutil.rmtree(self.bundles / container_id, ignore_errors=True)

    def leftovers(self) -> list[str]:
        """Containers in this node's runtime state (made by an earlier agent of the node)."""
        try:
            return [s.id for s in self.runtime.list()]
        except ReferenceRuntimeError:
            return []
