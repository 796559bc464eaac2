"""``Container``: one container made through an adapter, as the ``container`` fixture
hands it to a test, with its stdout and stderr in files (or its ``terminal``)."""

from __future__ import annotations

import os
import signal as _signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .base import ExecResult, RuntimeAdapter, terminal_of, warnings_of
from .console import Terminal


@dataclass
class Container:
    """A container of ``adapter``; the verbs are the adapter's, with the ID filled in."""

    adapter: RuntimeAdapter
    id: str
    bundle: Path
    stdout_path: Path
    stderr_path: Path

    @classmethod
    def prepare(
        cls, adapter: RuntimeAdapter, container_id: str, bundle: Path, directory: Path
    ) -> Container:
        return cls(
            adapter,
            container_id,
            bundle,
            directory / f"{container_id}.stdout",
            directory / f"{container_id}.stderr",
        )

    def __repr__(self) -> str:
        return f"<Container {self.id} of {self.adapter.name}, bundle {self.bundle}>"

    def create(self) -> None:
        """Create it, its output going to ``stdout_path`` and ``stderr_path``."""
        __tracebackhide__ = True
        # O_APPEND: with one shared offset gone (gVisor keeps its own), writes still add up
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        fds = [os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)]
        try:
            fds.append(os.open(self.stdout_path, flags, 0o644))
            fds.append(os.open(self.stderr_path, flags, 0o644))
            self.adapter.create(self.id, self.bundle, stdio=(fds[0], fds[1], fds[2]))
        finally:
            for fd in fds:
                os.close(fd)

    def start(self) -> None:
        self.adapter.start(self.id)

    def state(self) -> dict[str, Any]:
        """The runtime-spec state document."""
        return self.adapter.state(self.id)

    @property
    def status(self) -> str:
        return str(self.state()["status"])

    @property
    def pid(self) -> int:
        """The host PID of its init (``NotApplicableError`` where there is none)."""
        return self.adapter.host_pid(self.id)

    def exec(
        self, argv: Sequence[str], *, env: Sequence[str] | None = None, cwd: str | None = None
    ) -> ExecResult:
        """Run ``argv`` inside; (exit_code, stdout, stderr) once it exits."""
        return self.adapter.exec(self.id, argv, env=env, cwd=cwd)

    def kill(self, signal: int | str = _signal.SIGTERM) -> None:
        self.adapter.kill(self.id, signal)

    def wait(self, timeout: float | None = None) -> int:
        """Its exit status once it has exited (128+N for signal N)."""
        return self.adapter.wait(self.id, timeout)

    @property
    def terminal(self) -> Terminal:
        """Its terminal, when its config has ``process.terminal`` (``NotApplicableError``
        where the adapter has none): what it wrote there, and its input."""
        return terminal_of(self.adapter, self.id)

    def warnings(self) -> list[str]:
        """What the runtime logged as warnings during the adapter's last verb."""
        return warnings_of(self.adapter)

    def stdout(self) -> str:
        """What it wrote to stdout so far (docker: once it has exited and been waited for)."""
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")
