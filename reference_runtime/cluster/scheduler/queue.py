"""The scheduling queue: active pods, pods backing off, and unschedulable pods.

Like kube-scheduler's ``PriorityQueue``:

- ``active``: pods to try now, highest ``spec.priority`` first, then first come.
- ``backoff``: pods that failed recently, each until ``initial_backoff * 2**(attempts-1)``
  (capped at ``max_backoff``) after its last failure.
- ``unschedulable``: pods no node could take. They wait for a cluster change
  (``move_all``: a node added or changed, a pod gone) rather than being retried on a
  timer; as a safety net a pod waiting longer than ``max_unschedulable`` is moved anyway.

A popped pod is *in flight* until ``done`` or a ``requeue_*`` call. If the cluster
changed while it was in flight (``move_all`` ran, or the pod itself was updated), a
failed pod goes to backoff instead of unschedulable, so the change is not missed.
Thread-safe; ``pop`` blocks on a condition variable, never spins.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .cache import PodInfo, PodKey

__all__ = ["QueuedPod", "SchedulingQueue"]


@dataclass(frozen=True, slots=True)
class QueuedPod:
    """A popped pod and the queue's move counter when it was popped."""

    info: PodInfo
    attempts: int
    cycle: int


class SchedulingQueue:
    def __init__(
        self,
        *,
        initial_backoff: float = 1.0,
        max_backoff: float = 10.0,
        max_unschedulable: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.max_unschedulable = max_unschedulable
        self._clock = clock
        self._cond = threading.Condition()
        self._pods: dict[PodKey, PodInfo] = {}  # the newest version of every pending pod
        self._active: list[tuple[int, int, PodKey]] = []
        self._in_active: set[PodKey] = set()
        self._backoff: list[tuple[float, int, PodKey]] = []
        self._in_backoff: set[PodKey] = set()
        self._unschedulable: dict[PodKey, float] = {}
        self._attempts: dict[PodKey, int] = {}
        self._failed_at: dict[PodKey, float] = {}
        self._in_flight: set[PodKey] = set()
        self._changed_in_flight: set[PodKey] = set()
        self._seq = 0
        self._moves = 0
        self._last_flush = clock()
        self._closed = False

    # -- what the watch handlers call ------------------------------------------------------

    def add(self, info: PodInfo) -> None:
        """A new pending pod, or a pending pod whose spec changed: try it (again) soon."""
        with self._cond:
            key = info.key
            self._pods[key] = info
            if key in self._in_flight:
                self._changed_in_flight.add(key)
                return
            self._unschedulable.pop(key, None)
            if key not in self._in_active and key not in self._in_backoff:
                self._push_backoff_or_active(key, self._clock())

    def get(self, key: PodKey) -> PodInfo | None:
        """The newest version of a pending pod the queue holds (in any part, or in flight)."""
        with self._cond:
            return self._pods.get(key)

    def refresh(self, info: PodInfo) -> None:
        """A newer version of a queued pod that changes nothing the scheduler reads."""
        with self._cond:
            if info.key in self._pods:
                self._pods[info.key] = info

    def delete(self, key: PodKey) -> None:
        """The pod is gone, bound elsewhere or no longer ours: forget it."""
        with self._cond:
            self._forget(key)

    def move_all(self) -> None:
        """The cluster changed: every unschedulable pod may fit now."""
        with self._cond:
            self._moves += 1
            now = self._clock()
            for key in list(self._unschedulable):
                del self._unschedulable[key]
                self._push_backoff_or_active(key, now)
            self._cond.notify_all()

    # -- what the scheduling loop calls ----------------------------------------------------

    def pop(self, timeout: float) -> QueuedPod | None:
        """The next pod to schedule, or ``None`` after ``timeout`` s (or once closed)."""
        end = self._clock() + timeout
        with self._cond:
            while not self._closed:
                now = self._clock()
                self._flush(now)
                while self._active:
                    _, _, key = heapq.heappop(self._active)
                    if key in self._in_active:
                        self._in_active.discard(key)
                        self._in_flight.add(key)
                        return QueuedPod(self._pods[key], self._attempts.get(key, 0), self._moves)
                wait = end - now
                if self._backoff:
                    wait = min(wait, self._backoff[0][0] - now)
                if self._unschedulable:
                    wait = min(wait, self.max_unschedulable / 10)
                if wait <= 0 and end <= now:
                    return None
                self._cond.wait(max(wait, 0.0))
        return None

    def done(self, key: PodKey) -> None:
        """The pod was bound (or dropped): it leaves the queue."""
        with self._cond:
            self._in_flight.discard(key)
            self._forget(key)

    def requeue_unschedulable(self, popped: QueuedPod) -> None:
        """No node fits: wait for a cluster change (or back off if one already came)."""
        self._requeue(popped, unschedulable=True)

    def requeue_error(self, popped: QueuedPod) -> None:
        """Something failed (a binding, a plugin error): try again after a backoff."""
        self._requeue(popped, unschedulable=False)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def backoff_for(self, attempts: int) -> float:
        if attempts <= 0:
            return 0.0
        return min(self.initial_backoff * 2 ** (attempts - 1), self.max_backoff)

    def counts(self) -> dict[str, int]:
        """How many pods are active, backing off, unschedulable and in flight (for tests)."""
        with self._cond:
            return {
                "active": len(self._in_active),
                "backoff": len(self._in_backoff),
                "unschedulable": len(self._unschedulable),
                "in_flight": len(self._in_flight),
            }

    # -- internals -------------------------------------------------------------------------

    def _requeue(self, popped: QueuedPod, *, unschedulable: bool) -> None:
        key = popped.info.key
        with self._cond:
            if key not in self._in_flight:
                return  # requeued already
            self._in_flight.discard(key)
            if key not in self._pods:
                return  # deleted or bound while in flight
            now = self._clock()
            self._attempts[key] = self._attempts.get(key, 0) + 1
            self._failed_at[key] = now
            changed = key in self._changed_in_flight or popped.cycle != self._moves
            self._changed_in_flight.discard(key)
            if unschedulable and not changed:
                self._unschedulable[key] = now
            else:
                self._push_backoff_or_active(key, now)

    def _push_active(self, key: PodKey) -> None:
        self._seq += 1
        priority = int(self._pods[key].spec.get("priority") or 0)
        heapq.heappush(self._active, (-priority, self._seq, key))
        self._in_active.add(key)
        self._cond.notify()

    def _push_backoff_or_active(self, key: PodKey, now: float) -> None:
        ready_at = self._failed_at.get(key, now) + self.backoff_for(self._attempts.get(key, 0))
        if ready_at <= now:
            self._push_active(key)
            return
        self._seq += 1
        heapq.heappush(self._backoff, (ready_at, self._seq, key))
        self._in_backoff.add(key)
        self._cond.notify()

    def _flush(self, now: float) -> None:
        while self._backoff and self._backoff[0][0] <= now:
            _, _, key = heapq.heappop(self._backoff)
            if key in self._in_backoff:
                self._in_backoff.discard(key)
                self._push_active(key)
        if self._unschedulable and now - self._last_flush >= self.max_unschedulable / 10:
            self._last_flush = now
            for key, since in list(self._unschedulable.items()):
                if now - since >= self.max_unschedulable:
                    del self._unschedulable[key]
                    self._push_backoff_or_active(key, now)

    def _forget(self, key: PodKey) -> None:
        self._pods.pop(key, None)
        self._in_active.discard(key)
        self._in_backoff.discard(key)
        self._unschedulable.pop(key, None)
        self._attempts.pop(key, None)
        self._failed_at.pop(key, None)
        self._changed_in_flight.discard(key)
