"""In-process fan-out of store events to watches (SQLite's writes, etcd's shared watch stream).

The store calls ``publish`` under its write lock, so a watch registered under the same
lock, after reading its backlog, sees every later event exactly once and in order.
"""

from __future__ import annotations

import collections
import threading

from ..errors import RevisionCompactedError, StoreError
from .base import Event

__all__ = ["HubWatch", "WatchHub"]

# A watch that falls this far behind is ended as if its history had been compacted:
# its client lists again, as it would after a 410 from Kubernetes.
MAX_PENDING = 100_000


class HubWatch:
    """A watch fed by a ``WatchHub``: a queue of events under one condition variable."""

    def __init__(self, hub: WatchHub, prefix: str, revision: int) -> None:
        self._hub = hub
        self.prefix = prefix
        self._cond = threading.Condition(threading.Lock())
        self._queue: collections.deque[Event] = collections.deque()
        self._start = revision  # events at or before it are not this watch's
        self._seen = revision  # the newest revision published to this watch (or skipped)
        self._returned = revision
        self._closed = False
        self._error: StoreError | None = None  # raised by next(): overflow, store gone

    def push(self, event: Event) -> None:
        with self._cond:
            if self._closed or self._error is not None or event.revision <= self._start:
                return
            if len(self._queue) >= MAX_PENDING:
                self._error = RevisionCompactedError("the watch fell too far behind; list again")
                self._queue.clear()
            else:
                self._queue.append(event)
            self._seen = event.revision
            self._cond.notify()

    def advance(self, revision: int) -> None:
        """A write this watch does not care about happened at ``revision``."""
        with self._cond:
            self._seen = max(self._seen, revision)

    def fail(self, error: StoreError) -> None:
        """End the watch: the next ``next`` raises ``error`` (for example, the store is gone)."""
        with self._cond:
            if not self._closed and self._error is None:
                self._error = error
                self._queue.clear()
            self._cond.notify_all()

    def next(self, timeout: float | None = None) -> Event | None:
        with self._cond:
            if not self._queue and not self._closed and self._error is None:
                self._cond.wait(timeout)
            error, self._error = self._error, None
            if error is None:
                if self._closed or not self._queue:
                    return None
                event = self._queue.popleft()
                self._returned = event.revision
                return event
        self.close()
        raise error

    def progress(self) -> int:
        with self._cond:
            return self._seen if not self._queue else self._returned

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._queue.clear()
            self._cond.notify_all()
        self._hub.remove(self)


class WatchHub:
    """The set of open watches of one store."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watches: list[HubWatch] = []

    def add(self, watch: HubWatch) -> None:
        with self._lock:
            self._watches.append(watch)

    def remove(self, watch: HubWatch) -> None:
        with self._lock:
            try:
                self._watches.remove(watch)
            except ValueError:
                pass  # already removed: close() is idempotent

    def publish(self, event: Event) -> None:
        with self._lock:
            watches = list(self._watches)
        for watch in watches:
            if event.key.startswith(watch.prefix):
                watch.push(event)
            else:
                watch.advance(event.revision)

    def fail_all(self, error: StoreError) -> None:
        with self._lock:
            watches = list(self._watches)
        for watch in watches:
            watch.fail(error)

    def close_all(self) -> None:
        with self._lock:
            watches = list(self._watches)
        for watch in watches:
            watch.close()
