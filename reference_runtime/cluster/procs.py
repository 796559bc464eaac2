"""Detached processes a cluster starts (its daemon, node agents, etcd), recorded by PID.

A ``ProcessRecord`` is a PID plus the process's start time (``/proc/PID/stat`` field 22),
so a recorded process is never confused with a later one that reuses its PID: only the
exact process that was started is ever signalled. Records are plain dicts in
``cluster.json`` (``record.to_dict()``, ``ProcessRecord.from_dict``).
"""

from __future__ import annotations

import os
import signal as _signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ProcessRecord", "spawn_detached", "start_time"]


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return None  # exited, not yet reaped: not running any more
    return int(fields[19])


@dataclass(frozen=True)
class ProcessRecord:
    """One started process: its PID, start time and what it is (for leak reports)."""

    pid: int
    start: int
    what: str

    def to_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "start": self.start, "what": self.what}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProcessRecord:
        return cls(int(data["pid"]), int(data["start"]), str(data.get("what", "")))

    def alive(self) -> bool:
        return start_time(self.pid) == self.start

    def signal(self, sig: int) -> bool:
        """Send ``sig`` if the recorded process still runs; whether it was sent."""
        if not self.alive():
            return False
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            return False  # exited between the check and the kill
        return True

    def stop(self, timeout: float = 5.0, *, sig: int = _signal.SIGTERM) -> None:
        """``sig``, then SIGKILL after ``timeout``; reap it if it is our child."""
        if self.signal(sig):
            deadline = time.monotonic() + timeout
            while self.alive() and time.monotonic() < deadline:
                self._reap()
                time.sleep(0.01)
            if self.signal(_signal.SIGKILL):
                deadline = time.monotonic() + 5.0
                while self.alive() and time.monotonic() < deadline:
                    self._reap()
                    time.sleep(0.01)
        self._reap()

    def _reap(self) -> None:
        try:
            os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            pass  # not our child (started by another process): init reaps it


def spawn_detached(
    argv: Sequence[str],
    *,
    what: str,
    log: Path,
    pass_fds: Sequence[int] = (),
    env: dict[str, str] | None = None,
) -> tuple[subprocess.Popen[bytes], ProcessRecord]:
    """Start ``argv`` in a new session, output appended to ``log``; return it and its record."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            pass_fds=tuple(pass_fds),
            start_new_session=True,
            cwd="/",
            env=env,
        )
    started = None
    for _ in range(100):
        started = start_time(proc.pid)
        if started is not None or proc.poll() is not None:
            break
        time.sleep(0.001)
    return proc, ProcessRecord(proc.pid, started or 0, what)
