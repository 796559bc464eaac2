"""The machinery of level-based controllers: ``Result``, ``WorkQueue``, ``ControllerLoop``.

A controller is a ``Reconciler``: event handlers only turn watch events into keys; the
loop's workers call ``reconcile(key)``, which re-reads what it needs from the registry,
acts, and returns a ``Result`` (``requeue_after`` seconds, or none). Raising means
"retry with backoff" (5 ms doubling to 10 s). A key is never reconciled by two workers
at once, and a key added while it is being reconciled is reconciled again afterwards.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from .errors import ApiError

__all__ = ["ControllerLoop", "Reconciler", "Result", "WorkQueue"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Result:
    """What ``reconcile`` asks for next: nothing, or another look after ``requeue_after`` s."""

    requeue_after: float | None = None


class Reconciler(Protocol):
    name: str

    def reconcile(self, key: Any) -> Result: ...


class WorkQueue:
    """A de-duplicating queue of keys with delayed adds and per-key backoff."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._ready: list[Hashable] = []
        self._queued: set[Hashable] = set()
        self._active: set[Hashable] = set()
        self._dirty: set[Hashable] = set()
        self._delayed: list[tuple[float, int, Hashable]] = []
        self._failures: dict[Hashable, int] = {}
        self._seq = 0
        self._closed = False

    def add(self, key: Hashable) -> None:
        with self._cond:
            if key in self._active:
                self._dirty.add(key)
            elif key not in self._queued:
                self._queued.add(key)
                self._ready.append(key)
                self._cond.notify()

    def add_after(self, key: Hashable, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        with self._cond:
            self._seq += 1
            heapq.heappush(self._delayed, (time.monotonic() + delay, self._seq, key))
            self._cond.notify()

    def add_rate_limited(self, key: Hashable) -> None:
        with self._cond:
            failures = self._failures.get(key, 0)
            self._failures[key] = failures + 1
        self.add_after(key, min(10.0, 0.005 * 2**failures))

    def forget(self, key: Hashable) -> None:
        with self._cond:
            self._failures.pop(key, None)

    def get(self, timeout: float) -> Hashable | None:
        """The next key (mark it done with ``done``), or ``None`` after ``timeout``."""
        end = time.monotonic() + timeout
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                while self._delayed and self._delayed[0][0] <= now:
                    _, _, key = heapq.heappop(self._delayed)
                    if key in self._active:
                        self._dirty.add(key)
                    elif key not in self._queued:
                        self._queued.add(key)
                        self._ready.append(key)
                if self._ready:
                    key = self._ready.pop(0)
                    self._queued.discard(key)
                    self._active.add(key)
                    return key
                wait = end - now
                if self._delayed:
                    wait = min(wait, self._delayed[0][0] - now)
                if wait <= 0:
                    return None
                self._cond.wait(wait)
        return None

    def done(self, key: Hashable) -> None:
        with self._cond:
            self._active.discard(key)
            if key in self._dirty:
                self._dirty.discard(key)
                if key not in self._queued:
                    self._queued.add(key)
                    self._ready.append(key)
                    self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._ready) + len(self._delayed)


EventHandler = Callable[[str, dict[str, Any]], Iterable[Hashable]]


class ControllerLoop:
    """Runs a reconciler: watch threads feed keys to a queue, workers reconcile them.

    ``sources`` maps a resource name to a handler ``(event_type, object) -> keys``. Each
    source is watched through ``watch(resource)`` (a callable returning an ``ApiWatch``,
    starting with the current state) and re-watched from scratch if the watch ends.
    """

    def __init__(
        self,
        reconciler: Reconciler,
        watch: Callable[[str], Any],
        sources: dict[str, EventHandler],
        *,
        workers: int = 1,
    ) -> None:
        self.reconciler = reconciler
        self.queue = WorkQueue()
        self._watch = watch
        self._sources = sources
        self._workers = workers
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._watches: list[Any] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        name = self.reconciler.name
        for resource in self._sources:
            self._spawn(f"{name}-watch-{resource}", self._run_source, resource)
        for i in range(self._workers):
            self._spawn(f"{name}-worker-{i}", self._run_worker)

    def _spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _run_source(self, resource: str) -> None:
        handler = self._sources[resource]
        while not self._stop.is_set():
            try:
                watch = self._watch(resource)
            except ApiError as exc:
                log.warning("%s: cannot watch %s: %s", self.reconciler.name, resource, exc)
                self._stop.wait(1.0)
                continue
            with self._lock:
                self._watches.append(watch)
            try:
                while not self._stop.is_set() and not watch.done:
                    event = watch.next(0.5)
                    if event is None or event["type"] in ("BOOKMARK", "ERROR"):
                        continue
                    for key in handler(event["type"], event["object"]):
                        self.queue.add(key)
            finally:
                watch.close()
                with self._lock:
                    self._watches.remove(watch)

    def _run_worker(self) -> None:
        while not self._stop.is_set():
            key = self.queue.get(0.5)
            if key is None:
                continue
            try:
                result = self.reconciler.reconcile(key)
            except Exception as exc:  # a failed reconcile is retried, never fatal
                log.info("%s: reconcile %s failed, retrying: %s", self.reconciler.name, key, exc)
                self.queue.add_rate_limited(key)
            else:
                self.queue.forget(key)
                if result.requeue_after is not None:
                    self.queue.add_after(key, result.requeue_after)
            finally:
                self.queue.done(key)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.queue.close()
        with self._lock:
            watches = list(self._watches)
        for watch in watches:
            watch.close()
        for thread in self._threads:
            thread.join(timeout)
