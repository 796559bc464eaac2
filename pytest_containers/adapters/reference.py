"""The reference runtime, driven in-process through ``reference_runtime.Runtime``.

No interpreter starts per verb: ``create`` forks from the test process, as the
reference runtime's library does. Its errors are translated into the plugin's.
"""

from __future__ import annotations

import contextlib
import os
import signal as _signal
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from importlib import metadata
from typing import Any

import reference_runtime as rr

from ..errors import ContainerNotFoundError, RuntimeCommandError
from .base import ExecResult, Stdio, signal_number
from .console import ConsoleSocket, Terminal, Terminals, run_on_terminal, wants_terminal

NAME = "reference"


@contextlib.contextmanager
def _translated(verb: str, container_id: str) -> Iterator[None]:
    __tracebackhide__ = True
    try:
        yield
    except rr.ContainerNotFoundError as exc:
        raise ContainerNotFoundError(verb, container_id, str(exc)) from exc
    except rr.RuntimeSpecError as exc:
        raise RuntimeCommandError(verb, container_id, f"{type(exc).__name__}: {exc}") from exc


class ReferenceAdapter:
    """``--runtime=reference``: see ``RuntimeAdapter`` for the meaning of each verb."""

    name = NAME
    unsupported: Mapping[str, str] = {}

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.runtime = rr.Runtime(root)
        self.root = self.runtime.root
        self._null = -1
        self._terminals = Terminals()
        self._warnings: list[str] = []

    def __repr__(self) -> str:
        return f"ReferenceAdapter(root={self.root!r})"

    def _stdio(self, stdio: Stdio | None) -> Stdio:
        if stdio is not None:
            return stdio
        if self._null < 0:
            self._null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        return (self._null, self._null, self._null)

    def version(self) -> str:
        try:
            own = metadata.version("pytest-containers")
        except metadata.PackageNotFoundError:  # running from a source tree
            own = "source"
        return f"reference-runtime {own} (runtime-spec {rr.OCI_VERSION})"

    def create(
        self, container_id: str, bundle: str | os.PathLike[str], *, stdio: Stdio | None = None
    ) -> None:
        self._warnings = []
        if not wants_terminal(bundle):
            with _translated("create", container_id):
                state = self.runtime.create(container_id, bundle, stdio=self._stdio(stdio))
            self._warnings = list(state.warnings)
            return
        with ConsoleSocket() as console, _translated("create", container_id):
            state = self.runtime.create(
                container_id, bundle, stdio=self._stdio(stdio), console_socket=console.path
            )
            try:
                master = console.receive()
            except TimeoutError as exc:
                self.runtime.delete(container_id, force=True)
                raise RuntimeCommandError("create", container_id, str(exc)) from None
        self._terminals.add(container_id, master)
        self._warnings = list(state.warnings)

    def terminal(self, container_id: str) -> Terminal:
        return self._terminals.get(container_id)

    def warnings(self) -> list[str]:
        return list(self._warnings)

    def start(self, container_id: str) -> None:
        self._warnings = []
        with _translated("start", container_id):
            self._warnings = self.runtime.start(container_id)

    def state(self, container_id: str) -> dict[str, Any]:
        with _translated("state", container_id):
            return self.runtime.state(container_id).spec_state()

    def kill(self, container_id: str, signal: int | str = _signal.SIGTERM) -> None:
        number = signal_number(signal)
        with _translated("kill", container_id):
            self.runtime.kill(container_id, number)

    def delete(self, container_id: str, force: bool = False) -> None:
        self._warnings = []
        try:
            with _translated("delete", container_id):
                self._warnings = self.runtime.delete(container_id, force=force)
        except ContainerNotFoundError:
            self._terminals.drop(container_id)
            raise
        self._terminals.drop(container_id)

    def run(
        self, container_id: str, bundle: str | os.PathLike[str], *, stdio: Stdio | None = None
    ) -> int:
        if wants_terminal(bundle):
            return run_on_terminal(self, container_id, bundle, stdio)
        self._warnings = []
        with _translated("run", container_id):
            return self.runtime.run(container_id, bundle, stdio=self._stdio(stdio))

    def exec(
        self,
        container_id: str,
        argv: Sequence[str],
        *,
        env: Sequence[str] | None = None,
        cwd: str | None = None,
    ) -> ExecResult:
        with (
            tempfile.TemporaryFile() as out,
            tempfile.TemporaryFile() as err,
            _translated("exec", container_id),
        ):
            stdio = (self._stdio(None)[0], out.fileno(), err.fileno())
            code = self.runtime.exec(container_id, list(argv), env=env, cwd=cwd, stdio=stdio)
            out.seek(0)
            err.seek(0)
            return ExecResult(code, out.read().decode(errors="replace"), err.read().decode())

    def host_pid(self, container_id: str) -> int:
        with _translated("state", container_id):
            state = self.runtime.state(container_id)
        if not state.pid or state.status not in (rr.Status.CREATED, rr.Status.RUNNING):
            raise RuntimeCommandError(
                "state", container_id, f"the container is {state.status}: it has no process"
            )
        return state.pid

    def wait(self, container_id: str, timeout: float | None = None) -> int:
        with _translated("wait", container_id):
            return self.runtime.wait(container_id, timeout)

    def close(self) -> None:
        self._terminals.close()
        if self._null >= 0:
            os.close(self._null)
            self._null = -1
