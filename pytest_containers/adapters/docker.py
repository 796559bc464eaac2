"""A Docker Engine through the ``docker`` SDK (``DOCKER_HOST`` honoured).

A bundle becomes a container in two steps. Its ``rootfs`` is imported as an image,
never pulled: tagged ``pytest-containers/rootfs:<digest of its content>`` and reused
while the content is the same (so it is left in the engine on purpose). Its
``config.json`` is mapped onto the engine's options by ``engine_options``; what the
Engine API cannot say (hooks, joining a namespace by path, user namespaces...) raises
``NotApplicableError``, and so does every field the mapping has no option for
(``inexpressible``), naming the field: the container would run without it, and a test
of it would pass or fail for the wrong reason. Everything the adapter makes carries the label
``pytest-containers.session=<ledger tag>``; ``delete`` removes the container.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import signal as _signal
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests.exceptions

from reference_runtime.rootfs_builder import cache_root, export_tarball

from ..errors import (
    ContainerNotFoundError,
    NotApplicableError,
    RuntimeCommandError,
    RuntimeUnavailableError,
)
from .base import (
    CREATED_PROCESS,
    HOOKS,
    JOIN_NAMESPACE_PATH,
    STDIO,
    USER_NAMESPACE,
    ExecResult,
    Stdio,
    signal_number,
)
from .engine import ENGINE_MOUNTS, LABEL_ANNOTATION, engine_options

NAME = "docker"
IMAGE_REPOSITORY = "pytest-containers/rootfs"
LABEL_SESSION = "pytest-containers.session"
LABEL_BUNDLE = "pytest-containers.bundle"
LABEL_OCI_VERSION = "pytest-containers.oci-version"

UNSUPPORTED = {
    CREATED_PROCESS: "`docker create` makes no process: a created container has no PID and "
    "takes no exec until it is started",
    HOOKS: "the Engine API has no OCI lifecycle hooks",
    JOIN_NAMESPACE_PATH: "the Engine joins another container's namespaces (container:ID), "
    "never a namespace by path",
    USER_NAMESPACE: "user namespaces are the daemon's --userns-remap, not a container option",
    STDIO: "the Engine keeps a container's output in its log driver; the adapter copies it "
    "to the stdio descriptors once the container has exited, and stdin is /dev/null",
}

# What the Engine itself masks and makes read-only in every container (moby's defaults):
# a config asking for no more than these is what the Engine does anyway.
ENGINE_MASKED_PATHS = frozenset({
    "/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
    "/proc/latency_stats", "/proc/sched_debug", "/proc/scsi", "/proc/timer_list",
    "/proc/timer_stats", "/sys/devices/virtual/powercap", "/sys/firmware",
})  # fmt: skip
ENGINE_READONLY_PATHS = frozenset(
    {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)
# The device cgroup rule of every default config: deny all (the Engine then allows its own).
_DENY_ALL_DEVICES = [{"allow": False, "access": "rwm"}]
# Fields engine_options has no Engine option for, as (path in config.json, what it is).
_UNMAPPED = (
    (("process", "terminal"), "a terminal"),
    (("process", "consoleSize"), "a console size"),
    (("process", "user", "umask"), "a umask"),
    (("process", "apparmorProfile"), "an AppArmor profile"),
    (("process", "selinuxLabel"), "an SELinux label"),
    (("process", "scheduler"), "a scheduling policy"),
    (("process", "ioPriority"), "an I/O priority"),
    (("process", "execCPUAffinity"), "a CPU affinity"),
    (("domainname",), "a domain name"),
    (("linux", "devices"), "devices"),
    (("linux", "seccomp"), "a seccomp filter (the Engine applies its own profile)"),
    (("linux", "personality"), "a personality"),
    (("linux", "cgroupsPath"), "a cgroup path"),
    (("linux", "rootfsPropagation"), "a root propagation"),
    (("linux", "mountLabel"), "a mount label"),
    (("linux", "intelRdt"), "Intel RDT"),
    (("linux", "timeOffsets"), "time offsets"),
    (("linux", "uidMappings"), "uid mappings"),
    (("linux", "gidMappings"), "gid mappings"),
    (("linux", "resources", "memory", "kernel"), "a kernel memory limit"),
    (("linux", "resources", "memory", "kernelTCP"), "a kernel TCP memory limit"),
    (("linux", "resources", "memory", "swappiness"), "a swappiness"),
    (("linux", "resources", "memory", "disableOOMKiller"), "disabling the OOM killer"),
    (("linux", "resources", "memory", "useHierarchy"), "memory hierarchy accounting"),
    (("linux", "resources", "memory", "checkBeforeUpdate"), "a checked memory update"),
    (("linux", "resources", "cpu", "realtimeRuntime"), "a realtime runtime"),
    (("linux", "resources", "cpu", "realtimePeriod"), "a realtime period"),
    (("linux", "resources", "cpu", "burst"), "a CPU burst"),
    (("linux", "resources", "cpu", "idle"), "an idle CPU policy"),
    (("linux", "resources", "blockIO"), "block I/O limits"),
    (("linux", "resources", "hugepageLimits"), "huge page limits"),
    (("linux", "resources", "network"), "network class and priorities"),
    (("linux", "resources", "rdma"), "RDMA limits"),
    (("linux", "resources", "unified"), "cgroup v2 files"),
)
# Bind mount options the Engine's bind mounts can say.
_BIND_OPTIONS = frozenset({"bind", "rbind", "ro", "rw"})

# docker's states -> runtime-spec statuses ("paused" is runc's, kept as it is)
_STATUS = {"created": "created", "running": "running", "restarting": "running", "paused": "paused"}


@contextlib.contextmanager
def _translated(verb: str, container_id: str) -> Iterator[None]:
    __tracebackhide__ = True
    try:
        yield
    except docker.errors.NotFound as exc:
        raise ContainerNotFoundError(verb, container_id, str(exc.explanation or exc)) from exc
    except docker.errors.APIError as exc:
        raise RuntimeCommandError(verb, container_id, str(exc.explanation or exc)) from exc
    except requests.exceptions.ReadTimeout:
        raise
    except requests.exceptions.ConnectionError as exc:
        raise RuntimeUnavailableError(f"the Docker Engine stopped answering: {exc}") from exc


class DockerAdapter:
    """``--runtime=docker``; see ``RuntimeAdapter`` for the meaning of each verb."""

    name = NAME
    unsupported: Mapping[str, str] = UNSUPPORTED

    def __init__(self, base_url: str | None = None, *, session: str = "") -> None:
        try:
            self.client = docker.DockerClient(base_url=base_url) if base_url else docker.from_env()
            self.client.ping()
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            where = base_url or os.environ.get("DOCKER_HOST") or "the default socket"
            raise RuntimeUnavailableError(
                f"no Docker Engine answers at {where} ({exc}): start dockerd, or set DOCKER_HOST"
            ) from None
        self.root = base_url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        self.session = session
        self._stdio: dict[str, Stdio] = {}

    def __repr__(self) -> str:
        return f"DockerAdapter({self.root!r}, session={self.session!r})"

    # ------------------------------------------------------------------ images

    def image_for(self, rootfs: Path) -> str:
        """The tag of an image holding ``rootfs``, imported once per distinct content."""
        tag = f"{IMAGE_REPOSITORY}:{rootfs_digest(rootfs)}"
        cache_root().mkdir(parents=True, exist_ok=True)  # beside the rootfs builder's locks
        lock_path = cache_root() / ".docker-import.lock"
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # parallel workers import a tag once
            with _translated("import", tag):
                try:
                    self.client.images.get(tag)
                    return tag
                except docker.errors.ImageNotFound:
                    pass
                with tempfile.TemporaryDirectory() as scratch:
                    tar = export_tarball(rootfs, Path(scratch) / "rootfs.tar")
                    repository, _, version = tag.partition(":")
                    self.client.api.import_image_from_file(
                        str(tar), repository=repository, tag=version,
                        changes=[f"LABEL {LABEL_SESSION}={self.session}"],
                    )  # fmt: skip
            return tag
        finally:
            os.close(fd)

    # ------------------------------------------------------------------ verbs

    def version(self) -> str:
        with _translated("version", ""):
            info = self.client.version()
        return f"Docker Engine {info.get('Version', '?')} (API {info.get('ApiVersion', '?')})"

    def create(
        self, container_id: str, bundle: str | os.PathLike[str], *, stdio: Stdio | None = None
    ) -> None:
        bundle = Path(bundle).resolve()
        config = json.loads((bundle / "config.json").read_text())
        check_expressible(config)
        options = engine_options(config)
        image = self.image_for(bundle / config.get("root", {}).get("path", "rootfs"))
        options["labels"] = {
            **options.get("labels", {}),
            LABEL_SESSION: self.session,
            LABEL_BUNDLE: str(bundle),
            LABEL_OCI_VERSION: str(config.get("ociVersion", "")),
        }
        with _translated("create", container_id):
            self.client.containers.create(image, name=container_id, detach=True, **options)
        if stdio is not None:
            self._stdio[container_id] = (os.dup(stdio[0]), os.dup(stdio[1]), os.dup(stdio[2]))

    def _container(self, verb: str, container_id: str) -> Any:
        with _translated(verb, container_id):
            return self.client.containers.get(container_id)

    def start(self, container_id: str) -> None:
        container = self._container("start", container_id)
        with _translated("start", container_id):
            container.start()

    def state(self, container_id: str) -> dict[str, Any]:
        container = self._container("state", container_id)
        engine = container.attrs["State"]
        labels = container.labels or {}
        status = _STATUS.get(engine.get("Status", ""), "stopped")
        state: dict[str, Any] = {
            "ociVersion": labels.get(LABEL_OCI_VERSION, ""),
            "id": container_id,
            "status": status,
            "bundle": labels.get(LABEL_BUNDLE, ""),
            "annotations": {
                k.removeprefix(LABEL_ANNOTATION): v
                for k, v in labels.items()
                if k.startswith(LABEL_ANNOTATION)
            },
        }
        if status in ("created", "running") and engine.get("Pid"):
            state["pid"] = int(engine["Pid"])
        return state

    def kill(self, container_id: str, signal: int | str = _signal.SIGTERM) -> None:
        number = signal_number(signal)
        container = self._container("kill", container_id)
        with _translated("kill", container_id):
            container.kill(signal=number)

    def delete(self, container_id: str, force: bool = False) -> None:
        container = self._container("delete", container_id)
        if container.status == "exited":
            self._copy_output(container_id, container)
        with _translated("delete", container_id):
            container.remove(force=force, v=True)
        self._release_stdio(container_id)

    def run(
        self, container_id: str, bundle: str | os.PathLike[str], *, stdio: Stdio | None = None
    ) -> int:
        self.create(container_id, bundle, stdio=stdio)
        try:
            self.start(container_id)
            return self.wait(container_id)
        finally:
            with contextlib.suppress(ContainerNotFoundError):  # removed already: fine
                self.delete(container_id, force=True)

    def exec(
        self,
        container_id: str,
        argv: Sequence[str],
        *,
        env: Sequence[str] | None = None,
        cwd: str | None = None,
    ) -> ExecResult:
        if not argv:
            raise ValueError("exec needs a command: adapter.exec(id, ['sh', '-c', '...'])")
        container = self._container("exec", container_id)
        with _translated("exec", container_id):
            code, (out, err) = container.exec_run(
                list(argv), demux=True, environment=list(env or []) or None, workdir=cwd
            )
        return ExecResult(int(code), (out or b"").decode(errors="replace"), (err or b"").decode())

    def host_pid(self, container_id: str) -> int:
        state = self.state(container_id)
        if state["status"] == "created":
            raise NotApplicableError(
                CREATED_PROCESS, f"{self.name}: {UNSUPPORTED[CREATED_PROCESS]}"
            )
        if "pid" not in state:
            raise RuntimeCommandError("state", container_id, f"it is {state['status']}: no process")
        return int(state["pid"])

    def wait(self, container_id: str, timeout: float | None = None) -> int:
        container = self._container("wait", container_id)
        try:
            with _translated("wait", container_id):
                result = container.wait(timeout=timeout)
        except requests.exceptions.ReadTimeout:
            raise TimeoutError(f"{container_id} is still running after {timeout}s") from None
        self._copy_output(container_id, container)
        return int(result["StatusCode"])

    def _copy_output(self, container_id: str, container: Any) -> None:
        stdio = self._stdio.get(container_id)
        if stdio is None or stdio[0] < 0:
            return
        with _translated("logs", container_id):
            out = container.logs(stdout=True, stderr=False)
            err = container.logs(stdout=False, stderr=True)
        os.write(stdio[1], out)
        os.write(stdio[2], err)
        os.close(stdio[0])
        self._stdio[container_id] = (-1, stdio[1], stdio[2])  # copied once

    def _release_stdio(self, container_id: str) -> None:
        stdio = self._stdio.pop(container_id, None)
        for fd in set(stdio or ()) - {-1}:
            os.close(fd)

    def close(self) -> None:
        for container_id in list(self._stdio):
            self._release_stdio(container_id)
        self.client.close()


def check_expressible(config: dict[str, Any]) -> None:
    """``NotApplicableError`` naming the first field of ``config`` the adapter cannot hand
    to the Engine (``engine_options`` raises for the rest it cannot say)."""
    __tracebackhide__ = True
    found = inexpressible(config)
    if found is not None:
        field, what = found
        raise NotApplicableError(
            field, f"docker: the adapter has no Engine option for {what} ({field})"
        )


def inexpressible(config: dict[str, Any]) -> tuple[str, str] | None:
    """(field, what it is) of the first field of ``config`` with no Engine option; None
    when the Engine can run the config as it says."""
    for path, what in _UNMAPPED:
        value = _at(config, path)
        if not (value is None or value is False or value == [] or value == {} or value == ""):
            return ".".join(path), what
    linux = config.get("linux", {})
    if linux.get("resources", {}).get("devices", _DENY_ALL_DEVICES) != _DENY_ALL_DEVICES:
        return "linux.resources.devices", "device cgroup rules"
    for key, allowed in (
        ("maskedPaths", ENGINE_MASKED_PATHS),
        ("readonlyPaths", ENGINE_READONLY_PATHS),
    ):
        extra = sorted(set(linux.get(key, [])) - allowed)
        if extra:
            return f"linux.{key}", f"paths beyond the Engine's own: {', '.join(extra)}"
    return _capabilities_problem(config.get("process", {})) or _mounts_problem(config)


def _capabilities_problem(process: dict[str, Any]) -> tuple[str, str] | None:
    # The Engine takes one set, the bounding set (as cap_add), and gives it to root as
    # effective and permitted too; inheritable stays empty, and so ambient (the kernel
    # raises only what is also inheritable). What it gives another user is its own affair.
    caps = process.get("capabilities")
    if caps is None:
        return None
    if process.get("user", {}).get("uid", 0) == 0:
        bounding = set(caps.get("bounding", []))
        for kind in ("effective", "permitted"):
            if set(caps.get(kind, [])) != bounding:
                return (
                    f"process.capabilities.{kind}",
                    f"the {kind} set differing from the bounding set",
                )
    if caps.get("inheritable"):
        return "process.capabilities.inheritable", "an inheritable set"
    return None


def _mounts_problem(config: dict[str, Any]) -> tuple[str, str] | None:
    for i, mount in enumerate(config.get("mounts", [])):
        options = set(mount.get("options", []))
        bind = mount.get("type") == "bind" or bool(options & {"bind", "rbind"})
        if mount.get("destination") not in ENGINE_MOUNTS and bind and options - _BIND_OPTIONS:
            extra = ", ".join(sorted(options - _BIND_OPTIONS))
            return f"mounts[{i}].options", f"bind mount options {extra}"
    return None


def _at(config: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = config
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def rootfs_digest(rootfs: Path) -> str:
    """16 hex digits over every path, mode, link target and file content under ``rootfs``."""
    digest = hashlib.sha256()
    for directory, dirs, files in os.walk(rootfs):
        dirs.sort()
        for name in sorted([*dirs, *files]):
            path = os.path.join(directory, name)
            st = os.lstat(path)
            digest.update(f"\0{os.path.relpath(path, rootfs)}:{st.st_mode:o}".encode())
            if os.path.islink(path):
                digest.update(os.readlink(path).encode())
            elif name in files and os.path.isfile(path):
                with open(path, "rb") as f:
                    digest.update(hashlib.file_digest(f, "sha256").digest())
    return digest.hexdigest()[:16]
