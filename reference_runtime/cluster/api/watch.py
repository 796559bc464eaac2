"""Watches at the API level: store events filtered and shaped as Kubernetes watch events.

``ApiWatch.next(timeout)`` returns ``{"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR,
"object": ...}`` in resourceVersion order, or ``None`` when nothing happened within
``timeout`` or the watch has ended (``done``). Selectors are applied to both sides of a
change, so an object that stops matching arrives as DELETED and one that starts
matching as ADDED. Without a resourceVersion (or with "0", or with
``send_initial_events``) the watch starts with a synthetic ADDED event per existing
object. History that was compacted ends the watch with an ERROR event carrying a 410
``Expired`` Status (or, when known at the start, raises ``GoneError``).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterator
from typing import Any

from ..errors import (
    BadRequestError,
    RevisionCompactedError,
    ServiceUnavailableError,
    StoreError,
)
from ..store import Event, EventType, Store, Watch
from . import status as st
from .objects import Obj, decode, meta
from .resources import Resource
from .selectors import FieldSelector, LabelSelector
from .strategies import field_value

__all__ = ["DEFAULT_BOOKMARK_INTERVAL", "ApiWatch", "open_watch"]

DEFAULT_BOOKMARK_INTERVAL = 60.0
INITIAL_EVENTS_END = "k8s.io/initial-events-end"


def open_watch(
    store: Store,
    r: Resource,
    *,
    namespace: str | None,
    labels: LabelSelector,
    fields: FieldSelector,
    resource_version: str,
    allow_bookmarks: bool,
    send_initial_events: bool,
    timeout_seconds: float | None,
    bookmark_interval: float,
) -> ApiWatch:
    prefix = r.prefix(namespace)
    initial: list[Obj] = []
    try:
        if resource_version in ("", "0") or send_initial_events:
            listed = store.list(prefix)
            revision = listed.revision
            for record in listed.records:
                obj = decode(record.value, record.mod_revision)
                if _matches(obj, labels, fields):
                    initial.append(obj)
        else:
            try:
                revision = int(resource_version)
            except ValueError:
                raise BadRequestError(f'invalid resource version "{resource_version}"') from None
            if revision < 0:
                raise BadRequestError(f'invalid resource version "{resource_version}"')
        try:
            store_watch = store.watch(prefix, revision)
        except RevisionCompactedError:
            raise st.gone(revision) from None
    except StoreError as exc:
        raise ServiceUnavailableError(str(exc)) from exc
    return ApiWatch(
        r,
        store_watch,
        labels=labels,
        fields=fields,
        initial=initial,
        revision=revision,
        allow_bookmarks=allow_bookmarks,
        initial_events_end=send_initial_events,
        timeout_seconds=timeout_seconds,
        bookmark_interval=bookmark_interval,
    )


def _matches(obj: Obj, labels: LabelSelector, fields: FieldSelector) -> bool:
    return labels.matches(meta(obj).get("labels")) and fields.matches(lambda f: field_value(obj, f))


class ApiWatch:
    """One client's watch. ``next`` from one thread at a time; ``close`` from any."""

    def __init__(
        self,
        resource: Resource,
        store_watch: Watch,
        *,
        labels: LabelSelector,
        fields: FieldSelector,
        initial: list[Obj],
        revision: int,
        allow_bookmarks: bool,
        initial_events_end: bool,
        timeout_seconds: float | None,
        bookmark_interval: float,
    ) -> None:
        self.resource = resource
        self._watch = store_watch
        self._labels, self._fields = labels, fields
        self._pending: collections.deque[dict[str, Any]] = collections.deque(
            {"type": "ADDED", "object": obj} for obj in initial
        )
        if initial_events_end:
            self._pending.append(self._bookmark(revision, initial_end=True))
        self._bookmarks = allow_bookmarks
        self._interval = bookmark_interval
        self._last_bookmark = time.monotonic()
        self._deadline = time.monotonic() + timeout_seconds if timeout_seconds is not None else None
        self.done = False

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """Events until the watch ends (its timeout, an error, or ``close``)."""
        while not self.done:
            event = self.next(1.0)
            if event is not None:
                yield event

    def next(self, timeout: float | None = None) -> dict[str, Any] | None:
        if self._pending:
            return self._pending.popleft()
        end = time.monotonic() + timeout if timeout is not None else None
        while not self.done:
            now = time.monotonic()
            if self._deadline is not None and now >= self._deadline:
                self.close()
                return None
            if self._bookmarks and now - self._last_bookmark >= self._interval:
                self._last_bookmark = now
                return self._bookmark(self._watch.progress())
            waits = [self._interval - (now - self._last_bookmark)] if self._bookmarks else []
            if end is not None:
                waits.append(end - now)
            if self._deadline is not None:
                waits.append(self._deadline - now)
            wait = max(0.0, min(waits)) if waits else None
            try:
                raw = self._watch.next(wait)
            except RevisionCompactedError as exc:
                self.close()
                return {"type": "ERROR", "object": st.status_for(st.gone(0, str(exc)))}
            except StoreError as exc:
                self.close()
                error = ServiceUnavailableError(f"the watch ended: {exc}")
                return {"type": "ERROR", "object": st.status_for(error)}
            if raw is not None:
                event = self._translate(raw)
                if event is not None:
                    return event
                continue
            if end is not None and time.monotonic() >= end:
                return None
        return None

    def _translate(self, raw: Event) -> dict[str, Any] | None:
        new = decode(raw.value, raw.revision)
        if raw.type is EventType.PUT_NEW:
            return {"type": "ADDED", "object": new} if self._match(new) else None
        old_matches = raw.prev_value is not None and self._match(decode(raw.prev_value, 0))
        if raw.type is EventType.DELETE:
            return {"type": "DELETED", "object": new} if old_matches else None
        new_matches = self._match(new)
        if new_matches:
            return {"type": "MODIFIED" if old_matches else "ADDED", "object": new}
        return {"type": "DELETED", "object": new} if old_matches else None

    def _match(self, obj: Obj) -> bool:
        return _matches(obj, self._labels, self._fields)

    def _bookmark(self, revision: int, *, initial_end: bool = False) -> dict[str, Any]:
        metadata: dict[str, Any] = {"resourceVersion": str(revision), "creationTimestamp": None}
        if initial_end:
            metadata["annotations"] = {INITIAL_EVENTS_END: "true"}
        obj = {"kind": self.resource.kind, "apiVersion": self.resource.api_version}
        return {"type": "BOOKMARK", "object": {**obj, "metadata": metadata}}

    def close(self) -> None:
        self.done = True
        self._watch.close()
