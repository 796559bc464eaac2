"""Watches on etcd: one shared stream per store, fanned out in process.

etcd sends each event once per watch stream, and every stream is read and decoded by a
thread of its own; an API server with twenty watches on pods would decode every pod
write twenty times. So an ``EtcdStore`` opens one ``EtcdFeed``: a single ``/v3/watch``
stream over the store's whole key prefix, started at the store's revision when the first
watch is asked for. The feed keeps its last ``BACKLOG`` events, so a watch that starts a
little in the past (the usual list-then-watch race) is served from memory; a watch that
starts before the feed's window gets a feed of its own (``solo``: no backlog, closed with
its one watch), started at that revision after etcd's compaction check.

The watches are ``hub.HubWatch``es: events in revision order, ``StoreUnavailableError``
when etcd goes away, ``RevisionCompactedError`` when the history they need is gone.
"""

from __future__ import annotations

import base64
import collections
import http.client
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

from ..errors import RevisionCompactedError, StoreError, StoreUnavailableError
from .base import Event, EventType
from .hub import HubWatch, WatchHub

__all__ = ["BACKLOG", "EtcdFeed", "b64", "open_stream", "unb64"]

BACKLOG = 2_000  # events the feed keeps for watches that start slightly in the past


def open_stream(
    host: str, port: int, key: str, range_end: str, start_revision: int
) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    """Open a ``/v3/watch`` stream (keys base64-encoded) from ``start_revision``."""
    conn = http.client.HTTPConnection(host, port, timeout=None)
    request = {
        "create_request": {
            "key": key,
            "range_end": range_end,
            "start_revision": str(start_revision),
            "prev_kv": True,
        }
    }
    try:
        conn.request("POST", "/v3/watch", json.dumps(request).encode())
        return conn, conn.getresponse()
    except (OSError, http.client.HTTPException) as exc:
        conn.close()
        raise StoreUnavailableError(f"etcd watch failed: {exc}") from exc


def read_stream(resp: http.client.HTTPResponse, cut: int) -> Iterator[list[Event]]:
    """The batches of events on a watch stream, keys cut by ``cut`` characters; raises
    ``RevisionCompactedError`` or ``StoreUnavailableError`` when the stream ends."""
    try:
        while True:
            line = resp.readline()
            if not line:
                raise StoreUnavailableError("etcd closed the watch stream")
            if not line.strip():
                continue
            result = json.loads(line).get("result") or {}
            if result.get("compact_revision") and result.get("canceled"):
                raise RevisionCompactedError(
                    f"etcd compacted the history to {result['compact_revision']}"
                )
            if result.get("canceled"):
                raise StoreUnavailableError(f"etcd cancelled the watch: {result}")
            events = result.get("events")
            if events:
                yield [_event(ev, cut) for ev in events]
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise StoreUnavailableError(f"etcd watch stream broke: {exc}") from exc


def _shut(conn: http.client.HTTPConnection) -> None:
    """End a stream from another thread: its reader sees EOF and closes the connection."""
    sock = conn.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already disconnected: nothing to shut down


class EtcdFeed:
    """One watch stream over ``[key, range_end)`` from ``revision + 1``, fanned out.

    The stream is opened at once (so a dead etcd raises here); ``start()`` starts reading
    it. A ``solo`` feed keeps no backlog and closes when its watch is closed.
    """

    def __init__(
        self,
        host: str,
        port: int,
        key: str,
        range_end: str,
        revision: int,
        cut: int,
        *,
        solo: bool = False,
    ) -> None:
        self.floor = revision  # the backlog holds every event after this revision
        self._backlog_size = 0 if solo else BACKLOG
        self._backlog: collections.deque[Event] = collections.deque()
        self._hub = _SoloHub(self) if solo else WatchHub()
        self._lock = threading.Lock()
        self.closed = False
        self.error: StoreError | None = None
        self._conn, resp = open_stream(host, port, key, range_end, revision + 1)
        self._thread = threading.Thread(
            target=self._read, args=(resp, cut), name="etcd-feed", daemon=True
        )

    def start(self) -> EtcdFeed:
        self._thread.start()
        return self

    def subscribe(self, prefix: str, revision: int) -> HubWatch | None:
        """A watch on ``prefix`` after ``revision``, or ``None`` if that is before the
        backlog (or the feed has ended): the caller then opens a stream of its own."""
        with self._lock:
            if self.error is not None or self.closed or revision < self.floor:
                return None
            watch = HubWatch(self._hub, prefix, revision)
            for event in self._backlog:
                if event.key.startswith(prefix):
                    watch.push(event)
                else:
                    watch.advance(event.revision)
            self._hub.add(watch)
            return watch

    def _read(self, resp: http.client.HTTPResponse, cut: int) -> None:
        try:
            for batch in read_stream(resp, cut):
                with self._lock:
                    for event in batch:
                        self._backlog.append(event)
                        if len(self._backlog) > self._backlog_size:
                            self.floor = self._backlog.popleft().revision
                        self._hub.publish(event)
        except StoreError as exc:
            with self._lock:
                if self.closed:
                    return
                self.error = exc
            self._hub.fail_all(exc)
        finally:
            self._conn.close()

    def close(self) -> None:
        """Stop the stream; watches still open end (``next`` returns ``None``)."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
        _shut(self._conn)
        self._hub.close_all()


class _SoloHub(WatchHub):
    """The hub of a solo feed: closing its one watch closes the feed."""

    def __init__(self, feed: EtcdFeed) -> None:
        super().__init__()
        self._feed = feed

    def remove(self, watch: HubWatch) -> None:
        super().remove(watch)
        self._feed.close()


def _event(ev: dict[str, Any], cut: int) -> Event:
    kv = ev["kv"]
    key = unb64(kv["key"]).decode()[cut:]
    revision = int(kv["mod_revision"])
    prev = ev.get("prev_kv")
    prev_value = unb64(prev.get("value")) if prev else None
    if ev.get("type") == "DELETE":
        return Event(EventType.DELETE, key, prev_value or b"", prev_value, revision)
    created = kv.get("create_revision") == kv.get("mod_revision")
    kind = EventType.PUT_NEW if created else EventType.PUT
    return Event(kind, key, unb64(kv.get("value")), prev_value, revision)


def b64(text: str) -> str:
    """``text`` as etcd's JSON gateway wants a key: UTF-8, base64-encoded."""
    return base64.b64encode(text.encode()).decode()


def unb64(text: str | None) -> bytes:
    """The bytes of a base64 field of the gateway's JSON (absent means empty)."""
    return base64.b64decode(text or "")
