"""The monitor of a container made by an OCI runtime's ``create``.

``runc create`` exits as soon as the container exists. Its init process is then
reparented to the nearest child subreaper (else PID 1), and only that process can
collect the init's exit status; the runtime-spec CLI has no verb that reports it.
So, like containerd's shim, ``create`` goes through a monitor::

    test process ── fork ──> monitor: setsid, closes every inherited descriptor,
                              [private mount namespace without the cgroup2 mount],
                              child subreaper
                                └─ posix_spawn ──> RUNTIME create ... (exits)
                                                     └─ container init, reparented to
                                                        the monitor, which reaps it and
                                                        writes its status to EXIT_FILE

The monitor reports the runtime command's exit status over a pipe, then lives as long
as the container's init. It is the test process's child: ``Monitor.wait`` reaps it.
If the test process dies, the monitor still ends with the container (the ledger's
undoer deletes the container).

The private mount namespace is for crun 1.8, which refuses a hybrid cgroup layout
("cgroups in hybrid mode not supported"): with the cgroup2 mount hidden it sees plain v1.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import time
from collections.abc import Sequence
from pathlib import Path

from reference_runtime import kernel

from .base import Stdio, exit_status


def hybrid_cgroup2_mounts(mountinfo: str = "/proc/self/mountinfo") -> list[str]:
    """cgroup2 mount points under /sys/fs/cgroup when v1 hierarchies are mounted too."""
    v1, v2 = False, []
    with open(mountinfo) as f:
        for line in f:
            fields = line.split()
            fstype = fields[fields.index("-") + 1]
            if fstype == "cgroup":
                v1 = True
            elif fstype == "cgroup2" and fields[4].startswith("/sys/fs/cgroup/"):
                v2.append(fields[4])
    return v2 if v1 else []


REAP_REST_SECONDS = 5.0
"""How long a monitor stays to reap other orphans once the container's init is gone."""


class Monitor:
    """A forked monitor; ``spawn`` returns once the runtime command has exited."""

    def __init__(self, pid: int, exit_file: Path | None) -> None:
        self.pid = pid
        self.exit_file = exit_file
        self.init_pid = 0
        self.status: int | None = None
        self.reaped = False

    @classmethod
    def spawn(
        cls,
        argv: Sequence[str],
        stdio: Stdio,
        *,
        pid_file: Path | None = None,
        exit_file: Path | None = None,
        hide_mounts: Sequence[str] = (),
    ) -> tuple[Monitor, int, str]:
        """Run ``argv`` from a monitor; (monitor, the command's exit status, monitor error).

        With ``pid_file`` and ``exit_file`` the monitor stays to reap the PID the command
        wrote and record its status; without, it exits with the command.
        """
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the monitor: never returns
            _monitor_main(argv, stdio, pid_file, exit_file, list(hide_mounts), write_end)
        os.close(write_end)
        monitor = cls(pid, exit_file)
        with open(read_end, "rb") as report:
            line = report.readline()
        try:
            reply = json.loads(line)
        except ValueError:
            reply = {"rc": -1, "error": "the monitor exited without a report"}
        if reply.get("error") or reply["rc"] != 0 or pid_file is None:
            monitor.reap(timeout=10.0)
        else:
            monitor.init_pid = int(reply.get("init") or 0)
        return monitor, int(reply["rc"]), str(reply.get("error") or "")

    def reap(self, timeout: float | None) -> bool:
        """Wait for the monitor to exit (our child); False on timeout."""
        if self.reaped:
            return True
        try:
            pidfd = os.pidfd_open(self.pid)
        except ProcessLookupError:  # already reaped by someone else: nothing to wait for
            self.reaped = True
            return True
        try:
            ready, _, _ = select.select([pidfd], [], [], timeout)
        finally:
            os.close(pidfd)
        if not ready:
            return False
        with contextlib.suppress(ChildProcessError):  # already reaped
            os.waitpid(self.pid, 0)
        self.reaped = True
        return True

    def wait(self, timeout: float | None) -> int | None:
        """The container init's exit status once it has exited; None if it was not
        reparented to the monitor. ``TimeoutError`` after ``timeout`` seconds."""
        if self.status is None and not self.reaped and not self._await_exit(timeout):
            raise TimeoutError(f"the container is still running after {timeout}s")
        if self.status is None and self.exit_file is not None:
            with contextlib.suppress(FileNotFoundError, ValueError):
                self.status = json.loads(self.exit_file.read_text())["status"]
        return self.status

    def _await_exit(self, timeout: float | None) -> bool:
        """Until the monitor has recorded the init's exit or has itself exited; False on
        timeout. The exit file comes first: the monitor then stays a few seconds more to
        reap the container's orphans (``REAP_REST_SECONDS``), which ``stop`` waits for."""
        if self.exit_file is None:
            return self.reap(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        step = 0.002
        while not self.exit_file.exists():  # written whole: os.replace of a .tmp
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            if self.reap(step if remaining is None else min(step, remaining)):
                return True
            step = min(step * 2, 0.05)
        return True

    def kill_orphan(self) -> int:
        """SIGKILL the container's init if it still runs as our child; its PID, else 0.
        For a runtime that lost a container's state while its process lives."""
        if self.reaped or not self.init_pid:
            return 0
        try:
            stat = Path(f"/proc/{self.init_pid}/stat").read_bytes()
        except FileNotFoundError:  # already gone
            return 0
        if int(stat[stat.rfind(b")") + 2 :].split()[1]) != self.pid:
            return 0  # not ours (the PID was reused): leave it alone
        with contextlib.suppress(ProcessLookupError):  # exited meanwhile
            os.kill(self.init_pid, 9)
        return self.init_pid

    def stop(self, timeout: float = 10.0) -> None:
        """Reap the monitor, killing it if the container outlives ``timeout`` (idempotent)."""
        if not self.reap(timeout):
            with contextlib.suppress(ProcessLookupError):  # exited meanwhile
                os.kill(self.pid, 9)
            self.reap(None)


def _monitor_main(
    argv: Sequence[str],
    stdio: Stdio,
    pid_file: Path | None,
    exit_file: Path | None,
    hide_mounts: list[str],
    report_fd: int,
) -> None:
    """Body of the forked monitor; ends with ``os._exit`` (no parent cleanup runs here)."""
    try:
        os.setsid()  # a Ctrl-C at the terminal is for pytest, which then deletes us
        _close_fds_except({*stdio, report_fd})
        if hide_mounts:
            kernel.unshare(kernel.CLONE_NEWNS)
            kernel.mount(None, "/", None, kernel.MS_REC | kernel.MS_PRIVATE)
            for point in hide_mounts:
                kernel.umount(point, kernel.MNT_DETACH)
        kernel.set_child_subreaper()
        actions = [(os.POSIX_SPAWN_DUP2, fd, target) for target, fd in enumerate(stdio)]
        child = os.posix_spawn(argv[0], list(argv), dict(os.environ), file_actions=actions)
        _, status = os.waitpid(child, 0)
        rc = exit_status(status)
        stays = rc == 0 and pid_file is not None and exit_file is not None
        init = int(pid_file.read_text().strip()) if stays and pid_file is not None else 0
        os.write(report_fd, json.dumps({"rc": rc, "init": init}).encode() + b"\n")
        os.close(report_fd)
        if not stays or exit_file is None:
            os._exit(0)
        code: int | None = None
        while True:
            try:
                pid, status = os.wait()
            except ChildProcessError:  # the init was not reparented to us: status unknown
                break
            if pid == init:
                code = exit_status(status)
                break
        tmp = exit_file.with_name(exit_file.name + ".tmp")
        tmp.write_text(json.dumps({"status": code}))
        os.replace(tmp, exit_file)
        _reap_the_rest(time.monotonic() + REAP_REST_SECONDS)
    except BaseException as exc:
        with contextlib.suppress(OSError):  # the report pipe is already closed
            error = f"monitor: {type(exc).__name__}: {exc}"
            os.write(report_fd, json.dumps({"rc": -1, "error": error}).encode() + b"\n")
        os._exit(1)
    os._exit(0)


def _reap_the_rest(deadline: float) -> None:
    """Reap the other orphans reparented to us (runsc's gofer) until none is left or
    ``deadline``: left to a PID 1 that reaps lazily, their zombies keep ``runsc delete``
    waiting for seconds."""
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:  # none left
            return
        if pid == 0:
            time.sleep(0.005)


def _close_fds_except(keep: set[int]) -> None:
    low = 0
    for fd in [*sorted(keep), os.sysconf("SC_OPEN_MAX")]:
        if fd > low:
            os.closerange(low, fd)
        low = fd + 1
