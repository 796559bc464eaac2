"""Any binary that speaks the OCI runtime command line, with runc's flags.

Every verb is one command: ``BIN --root R --log L --log-format json VERB ...`` with
``create --bundle B --pid-file F ID``, ``start ID``, ``state ID``, ``kill ID SIG``,
``delete [--force] ID``, ``exec [--env K=V] [--cwd D] ID ARGV...``, ``run --bundle B ID``.
Each command gets its own log file; when it fails, the ``error`` entries of that log
(else its stderr) are the message of the exception, and its ``warning`` entries are
what ``warnings()`` returns. A bundle with ``process.terminal`` is created with
``--console-socket`` on a socket the adapter listens on (see ``console``). Output goes
to files, never to pipes: a detached ``create`` hands its descriptors to the
container, and a pipe would never reach EOF while it runs.

What the adapter knows about particular runtimes (by the binary's name):

- ``crun``: 1.8 refuses a hybrid cgroup layout ("cgroups in hybrid mode not
  supported"). ``create`` and ``run`` then go through a monitor in a private mount
  namespace with the cgroup2 mount unmounted (see ``monitor``); the other verbs work
  as they are, since they read the container's cgroups from its saved state.
- ``runsc`` (gVisor): always ``--network=none``; the container runs on gVisor's own
  kernel, so its init has no host PID and /proc, /sys and cgroup files are emulated.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal as _signal
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import (
    ContainerNotFoundError,
    NotApplicableError,
    RuntimeCommandError,
    RuntimeUnavailableError,
)
from .base import EXIT_STATUS, HOST_KERNEL, HOST_PID, ExecResult, Stdio, signal_number
from .console import ConsoleSocket, Terminal, Terminals, run_on_terminal, wants_terminal
from .monitor import Monitor, hybrid_cgroup2_mounts

COMMAND_TIMEOUT = 60.0
"""Seconds any one runtime command may take (``exec`` and ``run`` excepted)."""

# How each runtime says "no such container" (runc, crun, runsc).
_NOT_FOUND = re.compile(
    r"container does not exist|/status`: No such file or directory|loading container.*not exist"
)

INSTALL_HINTS = {
    "runc": "apt-get install runc",
    "crun": "apt-get install crun",
    "runsc": "apt-get install runsc",
    "youki": "install youki from its release page (Debian 12 has no package)",
}

# How each runtime says the ID is taken (runc, crun, runsc).
_EXISTS = re.compile(r"id exists|already exists")

RUNSC_UNSUPPORTED = {
    HOST_PID: "gVisor runs the container on its own kernel (the Sentry); state.pid is the "
    "sandbox process, not the container's init, and it has no /proc/PID/ns of its own",
    HOST_KERNEL: "gVisor emulates /proc, /sys and the cgroup files; /proc/meminfo shows "
    "the memory limit, /sys/fs/cgroup is empty",
}


def find_binary(binary: str) -> str:
    """The full path of ``binary`` (a name on PATH, or a path); else the error says the fix."""
    __tracebackhide__ = True
    found = shutil.which(binary)
    if found is not None:
        return found
    if os.sep in binary:
        raise RuntimeUnavailableError(
            f"{binary} does not exist or is not executable; check --runtime=oci:PATH"
        )
    hint = INSTALL_HINTS.get(binary, f"install {binary}")
    raise RuntimeUnavailableError(f"{binary} not found on PATH: {hint}, or --runtime=oci:PATH")


class OciAdapter:
    """``--runtime=runc|crun|runsc|youki|oci:PATH``; see ``RuntimeAdapter`` for each verb."""

    def __init__(
        self,
        binary: str,
        root: str | os.PathLike[str],
        *,
        name: str | None = None,
        global_args: Sequence[str] = (),
        hide_mounts: Sequence[str] = (),
        unsupported: Mapping[str, str] | None = None,
        workdir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.binary = binary
        self.root = os.path.abspath(root)
        self.name = name or f"oci:{binary}"
        self.global_args = list(global_args)
        self.hide_mounts = list(hide_mounts)
        self.unsupported: Mapping[str, str] = dict(unsupported or {})
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="pytest-containers-oci-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._monitors: dict[str, Monitor] = {}
        self._exits: dict[str, int] = {}
        self._bundles: dict[str, str] = {}
        self._calls = 0
        self._null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        self._terminals = Terminals()
        self._warnings: list[str] = []

    @classmethod
    def for_binary(
        cls,
        binary: str,
        root: str | os.PathLike[str],
        *,
        name: str | None = None,
        workdir: str | os.PathLike[str] | None = None,
    ) -> OciAdapter:
        """An adapter for ``binary`` (a name on PATH or a path) with what it needs here."""
        found = find_binary(binary)
        kind = os.path.basename(found)
        extra: dict[str, Any] = {}
        if kind == "crun":
            extra["hide_mounts"] = hybrid_cgroup2_mounts()
        elif kind == "runsc":
            extra["global_args"] = ["--network=none"]
            extra["unsupported"] = RUNSC_UNSUPPORTED
        return cls(found, root, name=name or binary, workdir=workdir, **extra)

    def __repr__(self) -> str:
        return f"OciAdapter({self.binary!r}, root={self.root!r}, name={self.name!r})"

    # ------------------------------------------------------------------ commands

    def _argv(self, log: Path, *args: str) -> list[str]:
        return [
            self.binary, "--root", self.root, "--log", str(log), "--log-format", "json",
            *self.global_args, *args,
        ]  # fmt: skip

    def _log_path(self, verb: str) -> Path:
        self._calls += 1
        return self.workdir / f"{verb}-{os.getpid()}-{self._calls}.log"

    def _command(
        self, verb: str, container_id: str, *args: str, timeout: float | None = COMMAND_TIMEOUT
    ) -> tuple[int, str, str]:
        """Run one verb; (exit status, stdout, stderr). Raises on a runtime error."""
        __tracebackhide__ = True
        log = self._log_path(verb)
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            try:
                proc = subprocess.run(
                    self._argv(log, verb, *args),
                    stdin=self._null, stdout=out, stderr=err, timeout=timeout, check=False,
                )  # fmt: skip
            except subprocess.TimeoutExpired:
                raise RuntimeCommandError(
                    verb, container_id, f"{self.name} did not finish within {timeout}s"
                ) from None
            except OSError as exc:
                raise RuntimeUnavailableError(f"cannot run {self.binary}: {exc}") from None
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read().decode(errors="replace"), err.read().decode()
        logged = self._logged_errors(log)
        if proc.returncode != 0 and (verb != "exec" or logged):
            self._raise(verb, container_id, logged or stderr.strip() or f"exit {proc.returncode}")
        return proc.returncode, stdout, stderr

    def _logged_errors(self, log: Path) -> str:
        """The ``error``/``fatal`` messages of one command's JSON log, then remove it;
        its ``warning`` messages become ``warnings()``."""
        messages = []
        self._warnings = []
        try:
            lines = log.read_text(errors="replace").splitlines()
            log.unlink()
        except FileNotFoundError:  # the runtime wrote nothing
            return ""
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                messages.append(line.strip())
                continue
            if not isinstance(entry, dict):
                continue
            level = entry.get("level")
            if level in ("error", "fatal"):
                messages.append(str(entry.get("msg", "")).strip())
            elif level in ("warning", "warn"):
                self._warnings.append(str(entry.get("msg", "")).strip())
        return "; ".join(m for m in messages if m)

    def warnings(self) -> list[str]:
        return list(self._warnings)

    def terminal(self, container_id: str) -> Terminal:
        return self._terminals.get(container_id)

    def _raise(self, verb: str, container_id: str, message: str) -> None:
        __tracebackhide__ = True
        if _NOT_FOUND.search(message):
            raise ContainerNotFoundError(verb, container_id, message)
        raise RuntimeCommandError(verb, container_id, f"{self.name}: {message}")

    # ------------------------------------------------------------------ verbs

    def version(self) -> str:
        try:
            proc = subprocess.run(
                [self.binary, "--version"], capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeUnavailableError(f"cannot run {self.binary} --version: {exc}") from None
        lines = proc.stdout.strip().splitlines()
        return " ".join(lines[0].split()) if lines else self.name

    def create(
        self, container_id: str, bundle: str | os.PathLike[str], *, stdio: Stdio | None = None
    ) -> None:
        log = self._log_path("create")
        # files of this create alone: a refused create must not touch a live container's
        pid_file = log.with_suffix(".pid")
        exit_file = log.with_suffix(".exit")
        # absolute: runsc records the bundle exactly as given
        argv = self._argv(log, "create", "--bundle", os.path.abspath(bundle))
        console = ConsoleSocket() if wants_terminal(bundle) else None
        if console is not None:
            argv += ["--console-socket", console.path]
        argv += ["--pid-file", str(pid_file), container_id]
        try:
            monitor, rc, error = Monitor.spawn(
                argv,
                stdio or (self._null, self._null, self._null),
                pid_file=pid_file,
                exit_file=exit_file,
                hide_mounts=self.hide_mounts,
            )
            logged = self._logged_errors(log)
            warnings = self._warnings
            if rc != 0 or error:
                with contextlib.suppress(FileNotFoundError):  # never written
                    pid_file.unlink()
                self._raise("create", container_id, error or logged or f"exit {rc}")
            pid_file.unlink()
            self._exits.pop(container_id, None)
            self._monitors[container_id] = monitor
            self._bundles[container_id] = os.path.abspath(bundle)
            if console is not None:
                self._terminals.add(container_id, self._receive(console, container_id))
            self._warnings = warnings
        finally:
            if console is not None:
                console.close()

    def _receive(self, console: ConsoleSocket, container_id: str) -> int:
        """The pty master the runtime sent during create; else the container is deleted."""
        __tracebackhide__ = True
        try:
            return console.receive()
        except TimeoutError as exc:
            with contextlib.suppress(ContainerNotFoundError):  # it is gone already
                self.delete(container_id, force=True)
            raise RuntimeCommandError(
                "create", container_id, f"{self.name}: --console-socket: {exc}"
            ) from None

    def start(self, container_id: str) -> None:
        self._command("start", container_id, container_id)

    def state(self, container_id: str) -> dict[str, Any]:
        _, out, _ = self._command("state", container_id, container_id)
        try:
            state: dict[str, Any] = json.loads(out)
        except ValueError:
            raise RuntimeCommandError("state", container_id, f"not JSON: {out[:200]!r}") from None
        return state

    def kill(self, container_id: str, signal: int | str = _signal.SIGTERM) -> None:
        self._command("kill", container_id, container_id, str(signal_number(signal)))

    def delete(self, container_id: str, force: bool = False) -> None:
        if force:
            # runc, crun and runsc all answer `delete --force` of a missing ID with success,
            # so ask first: ContainerNotFoundError if it is gone
            try:
                self.state(container_id)
            except ContainerNotFoundError as exc:
                self._bury_orphan(container_id)
                raise ContainerNotFoundError("delete", container_id, exc.runtime_message) from None
        self._command("delete", container_id, *(["--force"] if force else []), container_id)
        self._forget(container_id)

    def _forget(self, container_id: str) -> None:
        self._bundles.pop(container_id, None)
        self._terminals.drop(container_id)
        monitor = self._monitors.pop(container_id, None)
        if monitor is not None:
            monitor.stop()
            if monitor.exit_file is not None:
                for path in (monitor.exit_file, monitor.exit_file.with_suffix(".exit.tmp")):
                    with contextlib.suppress(FileNotFoundError):  # not always made
                        path.unlink()

    def _bury_orphan(self, container_id: str) -> None:
        """The runtime says there is no such container: if our monitor still holds its
        process, the runtime lost the state of a live container (runsc does, when a
        second ``create`` of the same ID fails). Kill that process and say so."""
        __tracebackhide__ = True
        monitor = self._monitors.get(container_id)
        pid = monitor.kill_orphan() if monitor is not None else 0
        self._forget(container_id)
        if pid:
            raise RuntimeCommandError(
                "delete",
                container_id,
                f"{self.name} lost the state of {container_id} while its process {pid} "
                "still ran (a runtime bug); the adapter killed that process",
            )

    def run(
        self, container_id: str, bundle: str | os.PathLike[str], *, stdio: Stdio | None = None
    ) -> int:
        if wants_terminal(bundle):
            return run_on_terminal(self, container_id, bundle, stdio)
        log = self._log_path("run")
        argv = self._argv(log, "run", "--bundle", os.path.abspath(bundle), container_id)
        stdio = stdio or (self._null, self._null, self._null)
        try:
            if self.hide_mounts:
                _, rc, error = Monitor.spawn(argv, stdio, hide_mounts=self.hide_mounts)
                if error:
                    raise RuntimeCommandError("run", container_id, error)
            else:
                rc = subprocess.run(
                    argv, stdin=stdio[0], stdout=stdio[1], stderr=stdio[2], check=False
                ).returncode
                rc = 128 - rc if rc < 0 else rc  # killed by a signal: as a shell says it
        except BaseException:
            self._logged_errors(log)
            self._force_delete(container_id)  # interrupted mid-run: it may still be there
            raise
        # `run` deletes its container on the way out; a container's own non-zero exit is
        # not logged, a failure of the runtime is
        logged = self._logged_errors(log)
        if logged:
            if not _EXISTS.search(logged):  # never delete the container that was there
                self._force_delete(container_id)
            self._raise("run", container_id, logged)
        return rc

    def _force_delete(self, container_id: str) -> None:
        try:
            self.delete(container_id, force=True)
        except ContainerNotFoundError:  # `run` deleted it on its way out: the usual case
            pass

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
        # crun's --env replaces the process environment where runc's adds to it: pass the
        # whole environment, the container's with ``env`` applied, so both mean the same.
        options = [f"--env={item}" for item in self._merged_env(container_id, env)] if env else []
        options += [f"--cwd={cwd}"] if cwd else []
        rc, out, err = self._command(
            "exec", container_id, *options, container_id, *argv, timeout=None
        )
        return ExecResult(rc, out, err)

    def _merged_env(self, container_id: str, env: Sequence[str]) -> list[str]:
        bundle = self._bundles.get(container_id) or self.state(container_id).get("bundle", "")
        try:
            config = json.loads((Path(bundle) / "config.json").read_text())
            base = list(config.get("process", {}).get("env", []))
        except (OSError, ValueError):  # bundle gone or unreadable: pass env as given
            base = []
        names = {item.partition("=")[0] for item in env}
        return [item for item in base if item.partition("=")[0] not in names] + list(env)

    def host_pid(self, container_id: str) -> int:
        reason = self.unsupported.get(HOST_PID)
        if reason is not None:
            raise NotApplicableError(HOST_PID, f"{self.name}: {reason}")
        state = self.state(container_id)
        pid = int(state.get("pid") or 0)
        if pid <= 0 or state.get("status") not in ("created", "running"):
            raise RuntimeCommandError(
                "state", container_id, f"the container is {state.get('status')}: no process"
            )
        return pid

    def wait(self, container_id: str, timeout: float | None = None) -> int:
        if container_id in self._exits:
            return self._exits[container_id]
        monitor = self._monitors.get(container_id)
        if monitor is None:
            self.state(container_id)  # ContainerNotFoundError when there is no such container
            raise NotApplicableError(
                EXIT_STATUS,
                f"{container_id} was not created by this adapter, so no monitor holds its status",
            )
        status = monitor.wait(timeout)
        if status is None:
            raise RuntimeCommandError(
                "wait", container_id, "its init was not reparented to the monitor; status unknown"
            )
        self._exits[container_id] = status
        return status

    def close(self) -> None:
        self._terminals.close()
        for monitor in self._monitors.values():
            monitor.reap(timeout=0)  # the monitors of live containers end with them
        self._monitors.clear()
        if self._null >= 0:
            os.close(self._null)
            self._null = -1
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
