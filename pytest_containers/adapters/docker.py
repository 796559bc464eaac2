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

``process.terminal`` becomes ``Tty`` and ``OpenStdin``: the adapter attaches to the
container before ``start`` and ``terminal(id)`` reads and writes its pty through that
stream (``docker_attach``). ``consoleSize`` is not applicable: the Engine sizes a
terminal only by a resize after ``start``, when the program may already have read it
(and, with API 1.41, ignores ``HostConfig.ConsoleSize`` on Linux). ``warnings()`` are
the ``Warnings`` of the Engine's answer to the last verb (only ``create`` has any).
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
from docker.models.containers import RUN_CREATE_KWARGS, RUN_HOST_CONFIG_KWARGS

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
    TERMINAL,
    USER_NAMESPACE,
    ExecResult,
    Stdio,
    signal_number,
)
from .console import Terminal, run_on_terminal, wants_terminal
from .docker_attach import AttachedTerminals, attachable
from .docker_fields import check_expressible
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
NO_PLAIN_ATTACH = (
    "the Engine is reached over TLS, ssh or a named pipe, whose attach stream the "
    "adapter cannot hand out as a terminal descriptor"
)
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
        if not attachable(self.client.api):
            self.unsupported = {**UNSUPPORTED, TERMINAL: NO_PLAIN_ATTACH}
        self._stdio: dict[str, Stdio] = {}
        self._terminals = AttachedTerminals()
        self._warnings: list[str] = []
        # containers made for an empty ID, which the Engine names itself: nothing else
        # can name them to delete them, so close() does
        self._unnamed: list[str] = []

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
        self._warnings = []
        bundle = Path(bundle).resolve()
        config = json.loads((bundle / "config.json").read_text())
        check_expressible(config)
        options = engine_options(config)
        terminal = config.get("process", {}).get("terminal") is True
        if terminal:
            if TERMINAL in self.unsupported:
                raise NotApplicableError(TERMINAL, f"{self.name}: {self.unsupported[TERMINAL]}")
            options.update(tty=True, stdin_open=True)
        image = self.image_for(bundle / config.get("root", {}).get("path", "rootfs"))
        options["labels"] = {
            **options.get("labels", {}),
            LABEL_SESSION: self.session,
            LABEL_BUNDLE: str(bundle),
            LABEL_OCI_VERSION: str(config.get("ociVersion", "")),
        }
        self._warnings = self._create(image, container_id, options)
        if terminal:
            self._attach(container_id)
        elif stdio is not None:
            self._stdio[container_id] = (os.dup(stdio[0]), os.dup(stdio[1]), os.dup(stdio[2]))

    def _create(self, image: str, container_id: str, options: dict[str, Any]) -> list[str]:
        """Create through the low-level API, whose answer carries the Engine's warnings."""
        api = self.client.api
        create = {k: v for k, v in options.items() if k in RUN_CREATE_KWARGS}
        host = {k: v for k, v in options.items() if k in RUN_HOST_CONFIG_KWARGS}
        unknown = set(options) - set(create) - set(host)
        if unknown:
            raise TypeError(f"engine options with no Engine API field: {sorted(unknown)}")
        with _translated("create", container_id):
            answer = api.create_container(
                image, name=container_id, host_config=api.create_host_config(**host), **create
            )
        if not container_id:
            self._unnamed.append(str(answer["Id"]))
        return [str(w) for w in answer.get("Warnings") or []]

    def _attach(self, container_id: str) -> None:
        try:
            with _translated("attach", container_id):
                self._terminals.attach(
                    self.client.api, container_id, lambda: self.host_pid(container_id)
                )
        except BaseException:
            with contextlib.suppress(docker.errors.NotFound):  # removed meanwhile
                self.client.api.remove_container(container_id, force=True, v=True)
            raise

    def terminal(self, container_id: str) -> Terminal:
        return self._terminals.get(container_id)

    def warnings(self) -> list[str]:
        return list(self._warnings)

    def _container(self, verb: str, container_id: str) -> Any:
        if not container_id:  # the SDK would raise NullResource
            raise ContainerNotFoundError(verb, container_id, "no container has an empty ID")
        with _translated(verb, container_id):
            return self.client.containers.get(container_id)

    def start(self, container_id: str) -> None:
        self._warnings = []  # the Engine's start answers with no body
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
        self._warnings = []
        number = signal_number(signal)
        container = self._container("kill", container_id)
        with _translated("kill", container_id):
            container.kill(signal=number)

    def delete(self, container_id: str, force: bool = False) -> None:
        self._warnings = []
        try:
            container = self._container("delete", container_id)
        except ContainerNotFoundError:
            self._release(container_id)
            raise
        if container.status == "exited":
            self._copy_output(container_id, container)
        with _translated("delete", container_id):
            container.remove(force=force, v=True)
        self._release(container_id)

    def run(
        self, container_id: str, bundle: str | os.PathLike[str], *, stdio: Stdio | None = None
    ) -> int:
        if wants_terminal(bundle):
            return run_on_terminal(self, container_id, bundle, stdio)
        self.create(container_id, bundle, stdio=stdio)
        warned = self.warnings()
        try:
            self.start(container_id)
            return self.wait(container_id)
        finally:
            with contextlib.suppress(ContainerNotFoundError):  # removed already: fine
                self.delete(container_id, force=True)
            self._warnings = warned  # run's warnings are what create was told

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
        if timeout is not None and timeout <= 0 and container.status != "exited":
            # requests takes no zero timeout: a look at the state answers at once
            raise TimeoutError(f"{container_id} is still {container.status}")
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

    def _release(self, container_id: str) -> None:
        """Close what the adapter kept for the container: stdio copies, its terminal."""
        stdio = self._stdio.pop(container_id, None)
        for fd in set(stdio or ()) - {-1}:
            os.close(fd)
        self._terminals.drop(container_id)

    def close(self) -> None:
        for container_id in list(self._stdio):
            self._release(container_id)
        self._terminals.close()
        for unnamed in self._unnamed:
            with contextlib.suppress(docker.errors.NotFound):  # removed already
                self.client.api.remove_container(unnamed, force=True, v=True)
        self._unnamed.clear()
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
