"""The node's OCI runtime, one driver per kind: the reference runtime (in-process) or runc.

A driver does what any process may do to a node's containers: ``create`` (called only
by the node's runtime service, ``runtimed``, which must be the container's parent),
``start``, ``kill``, ``delete`` (forced, idempotent), ``containers`` (what the state root
holds, with the annotations of each bundle) and ``exec`` with a timeout. Both keep their
state under ``<node>/runtime`` (the reference runtime) or ``<node>/runc`` (``runc
--root``).

A probe that outlives its timeout is killed with everything it started (the exec's
process tree, found through ``/proc``), so a hanging probe never holds a pod's worker.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ...errors import RuntimeSpecError as ReferenceRuntimeError

__all__ = [
    "DriverError",
    "Listed",
    "NodeRuntime",
    "ReferenceDriver",
    "RuncDriver",
    "kill_tree",
    "open_driver",
]

COMMAND_TIMEOUT = 60.0
EXEC_FAILED = 126


class DriverError(Exception):
    """A runtime verb failed; the message is the runtime's own, on one line."""


@dataclass(frozen=True)
class Listed:
    """One container found in the node's runtime state."""

    id: str
    status: str  # creating, created, running, stopped
    pid: int = 0
    annotations: dict[str, str] = field(default_factory=dict)


class NodeRuntime(Protocol):
    """What the node agent and its runtime service need of an OCI runtime."""

    name: str

    def create(self, container_id: str, bundle: Path, stdio: tuple[int, int, int]) -> int: ...
    def start(self, container_id: str) -> None: ...
    def kill(self, container_id: str, sig: int) -> None: ...
    def delete(self, container_id: str) -> None: ...
    def containers(self) -> list[Listed]: ...
    def status(self, container_id: str) -> str | None: ...
    def exec(self, container_id: str, argv: list[str], timeout: float) -> int | None: ...


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                raw = f.read()
        except OSError:
            continue  # exited while we looked
        parent = int(raw[raw.rfind(b")") + 2 :].split()[1])
        tree.setdefault(parent, []).append(int(entry))
    return tree


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and all its descendants (a probe and whatever it started)."""
    tree = _children()
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        pending.extend(tree.get(current, []))
    for victim in reversed(found):
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            pass  # exited meanwhile


def _wait_child(pid: int, timeout: float) -> int | None:
    """Our child's exit status (128+N for signal N), or None after killing its tree."""
    pidfd = os.pidfd_open(pid)
    try:
        ready, _, _ = select.select([pidfd], [], [], timeout)
    finally:
        os.close(pidfd)
    if not ready:
        kill_tree(pid)
    _, status = os.waitpid(pid, 0)
    if not ready:
        return None
    return 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


class ReferenceDriver:
    """The reference runtime, in-process, over ``<node>/runtime``."""

    name = "reference"

    def __init__(self, root: Path) -> None:
        from ...runtime import Runtime

        self.runtime = Runtime(root)

    def create(self, container_id: str, bundle: Path, stdio: tuple[int, int, int]) -> int:
        try:
            return int(self.runtime.create(container_id, bundle, stdio=stdio).pid or 0)
        except (ReferenceRuntimeError, OSError) as exc:
            raise DriverError(_one_line(exc)) from None

    def start(self, container_id: str) -> None:
        try:
            self.runtime.start(container_id)
        except (ReferenceRuntimeError, OSError) as exc:
            raise DriverError(_one_line(exc)) from None

    def kill(self, container_id: str, sig: int) -> None:
        try:
            self.runtime.kill(container_id, sig)
        except ReferenceRuntimeError:
            pass  # stopped already: nothing to signal

    def delete(self, container_id: str) -> None:
        try:
            self.runtime.delete(container_id, force=True)
        except ReferenceRuntimeError:
            pass  # never created, or deleted already

    def containers(self) -> list[Listed]:
        try:
            states = self.runtime.list()
        except ReferenceRuntimeError:
            return []
        return [Listed(s.id, str(s.status), int(s.pid or 0), dict(s.annotations)) for s in states]

    def status(self, container_id: str) -> str | None:
        try:
            return str(self.runtime.state(container_id).status)
        except ReferenceRuntimeError:
            return None

    def exec(self, container_id: str, argv: list[str], timeout: float) -> int | None:
        # In a forked child, so that a probe past its timeout can be killed with its tree.
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            child = os.fork()
            if child == 0:
                code = EXEC_FAILED
                try:
                    code = self.runtime.exec(container_id, argv, stdio=(null, null, null))
                finally:
                    os._exit(code)
        finally:
            os.close(null)
        return _wait_child(child, timeout)


class RuncDriver:
    """``runc --root <node>/runc``; errors come from runc's JSON log."""

    name = "runc"

    def __init__(self, root: Path, binary: str = "runc") -> None:
        found = shutil.which(binary)
        if found is None:
            raise DriverError(f"{binary} not found on PATH (apt-get install runc)")
        self.binary = found
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.logs = self.root.parent / "runc-logs"
        self.logs.mkdir(exist_ok=True)

    def _run(
        self, verb: str, *args: str, stdio: tuple[int, int, int] | None = None
    ) -> subprocess.CompletedProcess[str]:
        log = self.logs / f"{verb}-{os.getpid()}-{id(args)}-{os.urandom(4).hex()}.json"
        argv = [self.binary, "--root", str(self.root), "--log", str(log)]
        argv += ["--log-format", "json", verb, *args]
        try:
            if stdio is None:
                done = subprocess.run(
                    argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False
                )
            else:
                done = subprocess.run(
                    argv,
                    stdin=stdio[0],
                    stdout=stdio[1],
                    stderr=stdio[2],
                    text=True,
                    timeout=COMMAND_TIMEOUT,
                    check=False,
                )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DriverError(f"runc {verb}: {exc}") from None
        finally:
            errors = _logged_errors(log)
        if done.returncode != 0:
            why = errors or (done.stderr or "").strip() or f"exit status {done.returncode}"
            raise DriverError(f"runc {verb}: {why}")
        return done

    def create(self, container_id: str, bundle: Path, stdio: tuple[int, int, int]) -> int:
        pid_file = bundle / "init.pid"
        self._run(
            "create", "--bundle", str(bundle), "--pid-file", str(pid_file), container_id,
            stdio=stdio,
        )  # fmt: skip
        return int(pid_file.read_text().strip() or 0)

    def start(self, container_id: str) -> None:
        self._run("start", container_id)

    def kill(self, container_id: str, sig: int) -> None:
        try:
            self._run("kill", container_id, str(int(sig)))
        except DriverError:
            pass  # stopped already: nothing to signal

    def delete(self, container_id: str) -> None:
        try:
            self._run("delete", "--force", container_id)
        except DriverError:
            pass  # never created, or deleted already

    def containers(self) -> list[Listed]:
        try:
            out = self._run("list", "--format", "json").stdout
            listed = json.loads(out) or []
        except (DriverError, ValueError):
            return []
        return [
            Listed(c["id"], c.get("status", ""), int(c.get("pid") or 0), c.get("annotations") or {})
            for c in listed
        ]

    def status(self, container_id: str) -> str | None:
        try:
            state = json.loads(self._run("state", container_id).stdout)
        except (DriverError, ValueError):
            return None
        return str(state.get("status") or "")

    def exec(self, container_id: str, argv: list[str], timeout: float) -> int | None:
        command = [self.binary, "--root", str(self.root), "exec", container_id, *argv]
        try:
            proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
        except OSError:
            return EXEC_FAILED
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            kill_tree(proc.pid)  # runc exec, and the probe: its child (CLONE_PARENT)
            proc.wait()
            return None


def _logged_errors(log: Path) -> str:
    """The error messages of one runc command's JSON log; the log is removed."""
    try:
        lines = log.read_text(errors="replace").splitlines()
        log.unlink()
    except FileNotFoundError:
        return ""  # runc wrote nothing
    messages = []
    for line in lines:
        try:
            entry: Any = json.loads(line)
        except ValueError:
            continue  # not a log entry
        if isinstance(entry, dict) and entry.get("level") in ("error", "fatal"):
            messages.append(str(entry.get("msg", "")).strip())
    return "; ".join(m for m in messages if m)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else repr(exc)


def open_driver(kind: str, node_state: Path) -> NodeRuntime:
    """The driver for ``kind`` (``reference`` or ``runc``) over the node's state."""
    if kind == "runc":
        return RuncDriver(node_state / "runc")
    if kind == "reference":
        return ReferenceDriver(node_state / "runtime")
    raise DriverError(f"a node runtime is 'reference' or 'runc', not {kind!r}")
