"""Waiting for processes that are not our children, through pidfds."""

from __future__ import annotations

import os
import select

from .state import process_start_time


def wait_gone(pid: int, timeout: float | None, start_time: int | None = None) -> bool:
    """Wait until ``pid`` has exited (a zombie counts as gone); False on timeout.

    ``start_time`` (from /proc/PID/stat) guards against a reused PID.
    """
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        current = process_start_time(pid)
        if current is None or (start_time is not None and current != start_time):
            return True
        ready, _, _ = select.select([pidfd], [], [], timeout)
        return bool(ready)
    finally:
        os.close(pidfd)


def reap_if_child(pid: int) -> int | None:
    """Collect ``pid``'s wait status if it is our exited child; None otherwise."""
    try:
        waited, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # not our child, or already reaped
        return None
    return status if waited == pid else None
