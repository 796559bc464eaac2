"""A store in a real etcd v3, through its JSON gRPC gateway (``/v3/kv/*``, ``/v3/watch``).

Keys and values travel base64-encoded and 64-bit integers as strings, as the gateway
wants. Every call is one round trip on a pooled keep-alive connection: conditional writes
are single transactions that compare ``mod_revision`` (or, for create, that
``create_revision`` is 0) and whose ``failure`` branch reads the key, so the error says
whether it is missing or changed without another request. Watches share one stream per
store (``etcd_watch.EtcdFeed``), fanned out in process. The store compacts etcd's history
itself, keeping the last ``history`` revisions, as kube-apiserver does.
"""

from __future__ import annotations

import base64
import http.client
import json
import threading
import urllib.parse
from typing import Any

from ..errors import (
    KeyExistsError,
    KeyNotFoundError,
    RevisionCompactedError,
    RevisionConflictError,
    StoreUnavailableError,
)
from .base import ListResult, Record, Watch, prefix_end
from .etcd_watch import EtcdFeed, b64, unb64
from .sqlite import DEFAULT_HISTORY

__all__ = ["EtcdStore", "parse_etcd_url"]

_TIMEOUT = 10.0
_IDLE = 16  # keep-alive connections kept for reuse; more are opened under load, then closed
_Dicts = list[dict[str, Any]]


def parse_etcd_url(url: str) -> tuple[str, int, str]:
    """``etcd://HOST:PORT[/PREFIX]`` -> (host, port, key prefix)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "etcd" or not parts.hostname or not parts.port:
        raise ValueError(f"an etcd store is etcd://HOST:PORT[/PREFIX], not {url!r}")
    return parts.hostname, parts.port, parts.path.rstrip("/")


class EtcdStore:
    """A ``Store`` in etcd at ``host:port``; every key is stored under ``key_prefix``."""

    def __init__(
        self, host: str, port: int, *, key_prefix: str = "", history: int = DEFAULT_HISTORY
    ) -> None:
        self.host, self.port, self.key_prefix, self.history = host, port, key_prefix, history
        self._lock = threading.Lock()  # the pool, the write count, the stream watches
        self._feed_lock = threading.Lock()
        self._idle: list[http.client.HTTPConnection] = []
        self._closed = False
        self._writes = 0
        self._compacted = 0  # the newest revision this store compacted at
        self._feed: EtcdFeed | None = None
        self._solos: set[EtcdFeed] = set()  # feeds of watches that start before the shared one
        # The feed covers the store's keys: [prefix, prefix_end) or, with no prefix, all keys.
        self._range = (
            (b64(key_prefix), b64(prefix_end(key_prefix))) if key_prefix else ("AA==", "AA==")
        )
        self.revision()  # fail now, with a clear message, if etcd is not there

    @classmethod
    def from_url(cls, url: str, *, history: int = DEFAULT_HISTORY) -> EtcdStore:
        host, port, prefix = parse_etcd_url(url)
        return cls(host, port, key_prefix=prefix, history=history)

    # -- reads --------------------------------------------------------------------------

    def get(self, key: str) -> Record | None:
        reply = self._call("/v3/kv/range", {"key": b64(self.key_prefix + key)})
        kvs = reply.get("kvs") or []
        return self._record(kvs[0]) if kvs else None

    def list(self, prefix: str, *, start_after: str = "", limit: int = 0) -> ListResult:
        full = self.key_prefix + prefix
        start = max(full, self.key_prefix + start_after + "\x00" if start_after else "")
        body: dict[str, Any] = {"key": b64(start), "range_end": b64(prefix_end(full))}
        if limit > 0:
            body["limit"] = str(limit)
        reply = self._call("/v3/kv/range", body)
        records = [self._record(kv) for kv in reply.get("kvs") or []]
        return ListResult(records, int(reply["header"]["revision"]), bool(reply.get("more")))

    def revision(self) -> int:
        reply = self._call("/v3/kv/range", {"key": b64(self.key_prefix + "\x00"), "limit": "1"})
        return int(reply["header"]["revision"])

    # -- writes -------------------------------------------------------------------------

    def create(self, key: str, value: bytes) -> Record:
        k = b64(self.key_prefix + key)
        reply = self._txn(
            [{"key": k, "target": "CREATE", "result": "EQUAL", "create_revision": "0"}],
            {"request_put": {"key": k, "value": base64.b64encode(value).decode()}},
            k,
        )
        if not reply.get("succeeded"):
            raise KeyExistsError(f"key {key} already exists")
        rev = int(reply["header"]["revision"])
        self._wrote(rev)
        return Record(key, value, rev, rev)

    def update(self, key: str, value: bytes, expected_revision: int | None = None) -> Record:
        k = b64(self.key_prefix + key)
        put = {"key": k, "value": base64.b64encode(value).decode(), "prev_kv": True}
        reply = self._txn(_exists(k, expected_revision), {"request_put": put}, k)
        if not reply.get("succeeded"):
            self._raise_failed(key, reply, expected_revision)
        rev = int(reply["header"]["revision"])
        prev = reply["responses"][0]["response_put"].get("prev_kv") or {}
        self._wrote(rev)
        return Record(key, value, int(prev.get("create_revision", rev)), rev)

    def delete(self, key: str, expected_revision: int | None = None) -> Record:
        k = b64(self.key_prefix + key)
        delete = {"request_delete_range": {"key": k, "prev_kv": True}}
        reply = self._txn(_exists(k, expected_revision), delete, k)
        if not reply.get("succeeded"):
            self._raise_failed(key, reply, expected_revision)
        rev = int(reply["header"]["revision"])
        prevs = reply["responses"][0]["response_delete_range"].get("prev_kvs") or []
        if not prevs:
            raise KeyNotFoundError(f"key {key} not found")
        self._wrote(rev)
        prev = self._record(prevs[0])
        return Record(key, prev.value, prev.create_revision, rev)

    def compact(self, revision: int) -> None:
        try:
            self._call("/v3/kv/compaction", {"revision": str(revision)})
        except RevisionCompactedError:
            pass  # already compacted at or past that revision: nothing to do
        with self._lock:
            self._compacted = max(self._compacted, revision)

    # -- watch --------------------------------------------------------------------------

    def watch(self, prefix: str, revision: int) -> Watch:
        full = self.key_prefix + prefix
        key, end = b64(full), b64(prefix_end(full))
        with self._lock:
            compacted = self._compacted
        if revision + 1 < compacted:
            raise RevisionCompactedError(f"revision {revision} is compacted (to {compacted})")
        shared = self._shared_feed().subscribe(prefix, revision)
        if shared is not None:
            return shared
        # Before the feed's window: a stream of its own, if etcd still has that history.
        if revision + 1 <= self.revision():
            body = {"key": key, "range_end": end, "revision": str(revision + 1)}
            self._call("/v3/kv/range", {**body, "count_only": True})
        solo = EtcdFeed(self.host, self.port, key, end, revision, len(self.key_prefix), solo=True)
        watch = solo.subscribe(prefix, revision)
        with self._lock:
            self._solos = {f for f in self._solos if not f.closed} | {solo}
        solo.start()
        assert watch is not None  # a new feed serves its own start revision
        return watch

    def _shared_feed(self) -> EtcdFeed:
        with self._feed_lock:
            feed = self._feed
            if feed is None or feed.error is not None:
                if feed is not None:
                    feed.close()
                key, end = self._range
                cut = len(self.key_prefix)
                feed = EtcdFeed(self.host, self.port, key, end, self.revision(), cut)
                self._feed = feed.start()
            return feed

    def close(self) -> None:
        with self._feed_lock:
            feed, self._feed = self._feed, None
        if feed is not None:
            feed.close()
        with self._lock:
            self._closed = True
            solos, idle, self._idle = list(self._solos), self._idle, []
        for solo in solos:
            solo.close()
        for conn in idle:
            conn.close()

    # -- helpers ------------------------------------------------------------------------

    def _record(self, kv: dict[str, Any]) -> Record:
        key = unb64(kv["key"]).decode()[len(self.key_prefix) :]
        return Record(
            key, unb64(kv.get("value")), int(kv["create_revision"]), int(kv["mod_revision"])
        )

    def _txn(self, compare: _Dicts, success: dict[str, Any], k: str) -> Any:
        failure = [{"request_range": {"key": k}}]
        return self._call(
            "/v3/kv/txn", {"compare": compare, "success": [success], "failure": failure}
        )

    def _raise_failed(self, key: str, reply: dict[str, Any], expected: int | None) -> None:
        kvs = reply["responses"][0]["response_range"].get("kvs") or []
        if not kvs:
            raise KeyNotFoundError(f"key {key} not found")
        current = int(kvs[0]["mod_revision"])
        raise RevisionConflictError(
            f"key {key} is at revision {current}, not the expected {expected}"
        )

    def _wrote(self, revision: int) -> None:
        with self._lock:
            self._writes += 1
            due = self._writes % max(1, self.history // 10) == 0
        if due and revision > self.history:
            self.compact(revision - self.history)

    def _call(self, path: str, body: dict[str, Any]) -> Any:
        data = json.dumps(body).encode()
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            reused = conn is not None
            if conn is None:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=_TIMEOUT)
            try:
                conn.request("POST", path, data, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                payload = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                if reused:
                    continue  # etcd closed an idle connection: retry on a fresh one
                raise StoreUnavailableError(
                    f"etcd at {self.host}:{self.port} is unreachable: {exc}"
                ) from exc
            with self._lock:
                keep = not self._closed and len(self._idle) < _IDLE
                if keep:
                    self._idle.append(conn)
            if not keep:
                conn.close()
            return _decode(payload, resp.status, self.host, self.port)


def _exists(k: str, expected_revision: int | None) -> _Dicts:
    """The compare of an update or delete: the key exists (at ``expected_revision``)."""
    if expected_revision is None:
        return [{"key": k, "target": "VERSION", "result": "GREATER", "version": "0"}]
    return [{"key": k, "target": "MOD", "result": "EQUAL", "mod_revision": str(expected_revision)}]


def _decode(payload: bytes, status: int, host: str, port: int) -> Any:
    try:
        reply = json.loads(payload)
    except ValueError as exc:
        raise StoreUnavailableError(f"etcd at {host}:{port} sent non-JSON ({status})") from exc
    if status != 200 or "error" in reply:
        message = str(reply.get("message") or reply.get("error") or status)
        if "compacted" in message:
            raise RevisionCompactedError(message)
        raise StoreUnavailableError(f"etcd at {host}:{port}: {message}")
    return reply
