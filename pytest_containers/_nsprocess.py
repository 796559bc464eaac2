"""A target of ``isolated_namespaces`` while it runs (:class:`IsolatedProcess`), and what
it did (:class:`NamespaceResult`).

The two kinds of target, a command under the helper and a callable in a fork of this
process, subclass :class:`IsolatedProcess` (``_nscommand``, ``_nsfork``)."""

from __future__ import annotations

import os
import pickle
import selectors
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from ._nsplan import Plan
from .ledger import Ledger, Record, process_start_time


@dataclass(frozen=True)
class NamespaceResult:
    """What one target did in its namespaces."""

    returncode: int
    """Exit status; negative when killed by a signal (as in ``subprocess``)."""
    stdout: str
    stderr: str
    ns: dict[str, str]
    """Kind to namespace identity of the process that ran the target."""
    pid: int
    """The PID of that process on the host."""
    value: Any = None
    """A callable's return value (None for a command)."""


class IsolatedProcess:
    """A target running in its namespaces. Use it as a context manager: on exit it is
    killed (if still running) and reaped.

    Made by :meth:`NamespaceFactory.spawn`: a command runs under the helper, a callable
    in a fork of this process; both are handled alike from here."""

    def __init__(self, plan: Plan, led: Ledger, out: int, err: int) -> None:
        """Read the target's output from the pipes ``out`` and ``err`` (now ours)."""
        self._plan = plan
        self._ledger = led
        self._deadline = time.monotonic() + plan.timeout
        self._messages: list[tuple[Any, ...]] = []
        self._status: int | None = None
        self._record: Record | None = None
        self._closed = False
        self._out, self._err = out, err
        self._data = {out: bytearray(), err: bytearray()}
        self._reading = {out, err}  # output pipes not at end of file yet
        self._selector = selectors.DefaultSelector()
        try:
            for fd in (out, err):
                self._selector.register(fd, selectors.EVENT_READ)
        except BaseException:
            self._selector.close()
            raise

    def __repr__(self) -> str:
        return f"<IsolatedProcess {self._plan.describe()}>"

    def __enter__(self) -> IsolatedProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- what the two kinds of target do differently

    def _ready(self, fd: int) -> None:
        """Handle ``fd``, a registered descriptor other than the output pipes, readable."""
        raise NotImplementedError

    def _finished(self) -> bool:
        """Whether the target has exited and every message about it is in."""
        raise NotImplementedError

    def _host_pid(self, started: tuple[Any, ...]) -> int:
        """The host PID of the process that runs the target, given its ``ns`` message."""
        raise NotImplementedError

    def kill(self) -> None:
        """Kill the target and its process group (a new pid namespace dies with its
        init); the target is reaped by ``close()`` or ``wait()``."""
        raise NotImplementedError

    def _reap(self) -> None:
        """Wait (bounded) until ``_status`` holds the target's wait status."""
        raise NotImplementedError

    def _release(self) -> bool:
        """Close what this kind holds; whether the target is surely gone."""
        raise NotImplementedError

    def _catch_up(self) -> None:
        """Take in messages that arrived while someone else was reading."""

    # ---- reading what the target sends

    def _record_process(self, pid: int) -> None:
        start = process_start_time(pid) or 0
        target = self._plan.describe()
        self._record = self._ledger.record(
            "process", f"ns-{pid}", pid=pid, start=start, target=target
        )

    def _message(self, tag: str) -> tuple[Any, ...] | None:
        for message in self._messages:
            if message[0] == tag:
                return message
        return None

    def _pump(self, done: Callable[[], bool]) -> None:
        """Read output and messages until ``done()`` or the target exited and closed
        every pipe; TimeoutError (the target killed) at the deadline."""
        __tracebackhide__ = True
        self._catch_up()
        while not done() and (self._reading or not self._finished()):
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                self._timed_out()
            for key, _ in self._selector.select(remaining):
                fd = int(key.fd)
                if fd not in self._reading:
                    self._ready(fd)
                    continue
                chunk = os.read(fd, 65536)
                if chunk:
                    self._data[fd] += chunk
                else:
                    self._selector.unregister(fd)
                    self._reading.discard(fd)

    def _timed_out(self) -> NoReturn:
        __tracebackhide__ = True
        self.kill()
        error = TimeoutError(
            f"{self._plan.describe()} did not finish within {self._plan.timeout:g}s and was "
            "killed; pass timeout= or set the ini value containers_ns_timeout"
        )
        for name, fd in (("stdout", self._out), ("stderr", self._err)):
            text = self._data[fd].decode(errors="replace")
            if text:
                error.add_note(f"{name} so far:\n{text}")
        raise error

    @property
    def pid(self) -> int:
        """The host PID of the process that runs the target (PID 1 inside a new pid ns)."""
        return self._host_pid(self._started())

    @property
    def ns(self) -> dict[str, str]:
        """Kind to namespace identity of the process that runs the target."""
        return dict(self._started()[1])

    def _started(self) -> tuple[Any, ...]:
        __tracebackhide__ = True
        self._pump(lambda: any(m[0] in ("ns", "error") for m in self._messages))
        message = self._message("ns")
        if message is None:
            self._raise_error()
            raise RuntimeError(f"{self._plan.describe()} exited before it started")
        return message

    def _raise_error(self) -> None:
        __tracebackhide__ = True
        error = self._message("error")
        if error is None:
            return
        _, number, text = error
        self.close()
        if number:
            raise OSError(number, f"{self._plan.describe()} failed: {text}")
        raise RuntimeError(f"{self._plan.describe()} failed: {text}")

    # ---- ending

    def wait(self) -> NamespaceResult:
        """Wait for the target to finish (within the timeout) and return its result.

        Re-raises a callable's exception; TimeoutError if the time is up (it is killed)."""
        __tracebackhide__ = True
        self._pump(lambda: False)
        self._reap()
        self._raise_error()
        status = self._message("status")
        raw = status[1] if status is not None else self._status
        if raw is None:
            self.close()
            raise RuntimeError(
                f"{self._plan.describe()}: the isolated_namespaces helper exited before "
                "reporting how the target ended"
            )
        started = self._message("ns")
        text = {fd: bytes(buf).decode(errors="replace") for fd, buf in self._data.items()}
        raised = self._message("raise")
        self.close()
        if raised is not None:
            _, pickled, child_traceback = raised
            try:
                exc = pickle.loads(pickled) if pickled is not None else None
            except Exception:  # its class cannot be rebuilt here
                exc = None
            if not isinstance(exc, BaseException):
                exc = RuntimeError(child_traceback.strip().splitlines()[-1])
            exc.add_note(f"raised in {self._plan.describe()}; its traceback:\n{child_traceback}")
            raise exc
        if started is None:
            raise RuntimeError(
                f"{self._plan.describe()} exited with {os.waitstatus_to_exitcode(raw)} "
                "before it started"
            )
        returned = self._message("return")
        return NamespaceResult(
            returncode=os.waitstatus_to_exitcode(raw),
            stdout=text[self._out],
            stderr=text[self._err],
            ns=dict(started[1]),
            pid=self._host_pid(started),
            value=returned[1] if returned is not None else None,
        )

    def close(self) -> None:
        """Kill (if running), reap, close the pipes and forget the ledger record; idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self.kill()
            self._reap()
        finally:
            self._selector.close()
            for fd in (self._out, self._err):
                os.close(fd)
            gone = self._release()
            if self._record is not None and gone:
                self._ledger.release(self._record)
                self._record = None
