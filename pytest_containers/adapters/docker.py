"""A Docker Engine through the ``docker`` SDK (``DOCKER_HOST`` honoured).

A bundle becomes a container in two steps. Its ``rootfs`` is imported as an image,
never pulled: tagged ``pytest-containers/rootfs:<digest of its content>`` and reused
while the content is the same (so it is left in the engine on purpose). Its
``config.json`` is mapped onto the engine's options by ``engine_options``; what the
Engine API cannot say (hooks, joining a namespace by path, user namespaces...) raises
``NotApplicableError``. Everything the adapter makes carries the label
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
from .engine import LABEL_ANNOTATION, engine_options

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
