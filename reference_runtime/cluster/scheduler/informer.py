"""One resource, listed then watched, as a stream of handler calls: ``Informer``.

``run`` (in its own thread) opens a watch that starts with the current objects
(``sendInitialEvents``), calls ``handler(event_type, object)`` for every event in order,
and is ``synced`` once the initial objects have all been handed over. If the watch ends
(the store compacted past it, the server restarts it), it watches again from scratch and,
at the end of the new initial list, reports every object it knew that is no longer there
as ``DELETED`` (with only its name and namespace), so handlers never keep a ghost.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from ..api.objects import Obj
from ..api.registry import Registry
from ..api.watch import INITIAL_EVENTS_END
from ..errors import ApiError

__all__ = ["Handler", "Informer"]

log = logging.getLogger(__name__)

Handler = Callable[[str, Obj], None]
_Key = tuple[str, str]


def _key(obj: Obj) -> _Key:
    m = obj.get("metadata") or {}
    return (m.get("namespace", ""), m.get("name", ""))


class Informer:
    def __init__(
        self,
        registry: Registry,
        resource: str,
        handler: Handler,
        stop: threading.Event,
        *,
        poll: float = 0.5,
    ) -> None:
        self.registry = registry
        self.resource = resource
        self.handler = handler
        self._stop = stop
        self._poll = poll  # how often a quiet watch looks at ``stop``
        self.synced = threading.Event()
        self._known: set[_Key] = set()
        self._watch: Any = None
        self._lock = threading.Lock()

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                watch = self.registry.watch(
                    self.resource, send_initial_events=True, allow_bookmarks=True
                )
            except ApiError as exc:
                log.warning("cannot watch %s, retrying: %s", self.resource, exc)
                self._stop.wait(1.0)
                continue
            with self._lock:
                self._watch = watch
            try:
                self._consume(watch)
            except Exception:  # a handler bug must not kill the informer: log, relist
                log.exception("handling %s events failed; watching again", self.resource)
                self._stop.wait(0.1)
            finally:
                watch.close()

    def _consume(self, watch: Any) -> None:
        listing: set[_Key] | None = set()
        while not self._stop.is_set() and not watch.done:
            event = watch.next(self._poll)
            if event is None or event["type"] == "ERROR":
                continue
            obj = event["object"]
            if event["type"] == "BOOKMARK":
                annotations = (obj.get("metadata") or {}).get("annotations") or {}
                if listing is not None and annotations.get(INITIAL_EVENTS_END):
                    for key in self._known - listing:
                        self._deliver(
                            "DELETED", {"metadata": {"namespace": key[0], "name": key[1]}}
                        )
                    listing = None
                    self.synced.set()
                continue
            if listing is not None:
                listing.add(_key(obj))
            self._deliver(event["type"], obj)

    def _deliver(self, event_type: str, obj: Obj) -> None:
        key = _key(obj)
        if event_type == "DELETED":
            self._known.discard(key)
        else:
            self._known.add(key)
        self.handler(event_type, obj)

    def close(self) -> None:
        """End the current watch (``run`` returns once ``stop`` is set)."""
        with self._lock:
            if self._watch is not None:
                self._watch.close()
