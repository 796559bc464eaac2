"""A command target of ``isolated_namespaces``, started by the session's helper process.

The helper is the fork server of :mod:`pytest_containers._nsexec`, started on first use
and recorded in the ledger while it runs (:class:`SharedHelper`); each command it starts
is a :class:`HelperProcess`."""

from __future__ import annotations

import contextlib
import os
import select
import selectors
import signal
import time
from typing import Any

from ._nsclient import Helper, HelperGone
from ._nsplan import Plan, identity_maps
from ._nsprocess import IsolatedProcess
from .ledger import Ledger, Record, process_start_time

_REAP_TIMEOUT = 5.0  # seconds to wait for the helper to report a killed target's end


class HelperProcess(IsolatedProcess):
    """A command started by the helper (request ``rid``)."""

    def __init__(
        self, plan: Plan, led: Ledger, helper: Helper, rid: int, out: int, err: int
    ) -> None:
        """Wait until the helper has made the target, and record it; on failure it is
        killed and reaped before raising."""
        super().__init__(plan, led, out, err)
        self._helper = helper
        self._rid = rid
        self._seen = 0  # how many of the helper's messages about rid are handled
        self._host = 0
        self._pidfd = -1
        self._early_ns: dict[str, str] | None = None
        try:
            self._selector.register(helper.fileno(), selectors.EVENT_READ)
            self._pump(lambda: self._host != 0)
            if self._host:
                self._record_process(self._host)
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"<IsolatedProcess {self._plan.describe()} pid={self._host or '?'}>"

    def _ready(self, fd: int) -> None:
        self._helper.receive()
        self._take()
        if self._helper.gone:
            self._selector.unregister(fd)

    def _catch_up(self) -> None:
        self._take()

    def _take(self) -> None:
        """Turn the helper's new messages about us into ours."""
        messages = self._helper.messages(self._rid)
        for message in messages[self._seen :]:
            op = message["op"]
            if op == "started":
                self._host = int(message["pid"])
                fds = message["fds"]
                self._pidfd = fds.pop() if fds else -1
                if self._early_ns is not None:
                    self._messages.append(("ns", self._early_ns))
            elif op == "ns" and not self._host:
                self._early_ns = message["ns"]  # the target was quicker than the helper
            elif op == "ns":
                self._messages.append(("ns", message["ns"]))
            elif op == "error":
                self._messages.append(("error", message["errno"], message["message"]))
            elif op == "exit":
                self._status = int(message["status"])
        self._seen = len(messages)

    def _finished(self) -> bool:
        return self._status is not None or self._helper.gone

    def _host_pid(self, started: tuple[Any, ...]) -> int:
        return self._host

    def kill(self) -> None:
        if self._status is not None and not self._reading:
            return  # it ended, and so did its output
        if "pid" in self._plan.kinds and self._pidfd >= 0:
            if self._status is None:  # its pid namespace dies with it
                with contextlib.suppress(ProcessLookupError):  # ESRCH: it exited already
                    signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
            return
        # Its process group too, which may outlive it; or it is not made yet.
        self._helper.kill(self._rid)

    def _reap(self) -> None:
        deadline = time.monotonic() + _REAP_TIMEOUT
        self._take()
        while not self._finished():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return  # the record stays: the leak check will say so
            if select.select([self._helper], [], [], remaining)[0]:
                self._helper.receive()
                self._take()

    def _release(self) -> bool:
        gone = self._status is not None
        if self._pidfd >= 0:
            gone = gone or bool(select.select([self._pidfd], [], [], 0)[0])
            os.close(self._pidfd)
            self._pidfd = -1
        if "pid" not in self._plan.kinds:
            self._helper.release_group(self._rid)
        self._helper.forget(self._rid)
        return gone


class SharedHelper:
    """The session's helper, started on first use, recorded in the ledger while it runs."""

    def __init__(self, led: Ledger) -> None:
        self._ledger = led
        self._helper: Helper | None = None
        self._record: Record | None = None
        self._stdin = -1

    @property
    def pid(self) -> int | None:
        """The helper's PID, or None if it is not running."""
        helper = self._helper
        return helper.pid if helper is not None and helper.alive else None

    def get(self) -> Helper:
        """The running helper of this process (started now if there is none)."""
        helper = self._helper
        if helper is not None and helper.owner != os.getpid():
            helper = None  # a fork of the process that started it: not ours to use
            self._record = None
        elif helper is not None and not helper.alive:
            self.stop()
            helper = None
        if helper is None:
            helper = Helper()
            pid = helper.start()
            self._helper = helper
            start = process_start_time(pid) or 0
            self._record = self._ledger.record(
                "process",
                f"nsexec-{pid}",
                pid=pid,
                start=start,
                target="isolated_namespaces helper",
            )
        return helper

    def spawn(self, plan: Plan, out: int, err: int) -> tuple[Helper, int]:
        """Ask the helper to start ``plan``'s command writing to ``out`` and ``err``."""
        __tracebackhide__ = True
        assert isinstance(plan.target, list)
        maps = identity_maps() if "user" in plan.kinds else None
        for attempt in (1, 2):
            helper = self.get()
            if self._stdin < 0:
                self._stdin = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            stdio = (self._stdin, out, err)
            try:
                rid = helper.spawn(plan.target, plan.kinds, plan.hostname, maps, stdio)
            except HelperGone:
                if attempt == 2:
                    raise
                continue  # it died since the last call: start another, once
            return helper, rid
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Stop the helper (it kills what it still runs) and forget its record; idempotent."""
        helper, self._helper = self._helper, None
        if helper is not None and helper.owner == os.getpid():
            helper.stop()
            if self._record is not None:
                self._ledger.release(self._record)
        self._record = None
        if self._stdin >= 0:
            os.close(self._stdin)
            self._stdin = -1
