"""A store in a real etcd v3, through its JSON gRPC gateway (``/v3/kv/*``, ``/v3/watch``).

Keys and values travel base64-encoded and 64-bit integers as strings, as the gateway
wants. Conditional writes are transactions that compare ``mod_revision`` (or, for
create, that ``create_revision`` is 0); when one fails, the ``failure`` branch reads the
key so the error says whether it is missing or changed. Watches are one streaming
``POST /v3/watch`` each, read by a thread into a queue. The store compacts etcd's
history itself, keeping the last ``history`` revisions, as kube-apiserver does.
"""

from __future__ import annotations

import base64
import http.client
import json
import queue
import socket
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
from .base import Event, EventType, ListResult, Record, prefix_end
from .sqlite import DEFAULT_HISTORY

__all__ = ["EtcdStore", "parse_etcd_url"]

_TIMEOUT = 10.0
_Dicts = list[dict[str, Any]]


def parse_etcd_url(url: str) -> tuple[str, int, str]:
    """``etcd://HOST:PORT[/PREFIX]`` -> (host, port, key prefix)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "etcd" or not parts.hostname or not parts.port:
        raise ValueError(f"an etcd store is etcd://HOST:PORT[/PREFIX], not {url!r}")
    return parts.hostname, parts.port, parts.path.rstrip("/")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _unb64(text: str | None) -> bytes:
    return base64.b64decode(text or "")


class EtcdStore:
    """A ``Store`` in etcd at ``host:port``; every key is stored under ``key_prefix``."""

    def __init__(
        self, host: str, port: int, *, key_prefix: str = "", history: int = DEFAULT_HISTORY
    ) -> None:
        self.host, self.port, self.key_prefix, self.history = host, port, key_prefix, history
        self._local = threading.local()
        self._lock = threading.Lock()
        self._writes = 0
        self._watches: set[EtcdWatch] = set()
        self._conns: list[http.client.HTTPConnection] = []  # one per thread, all closed by close()
        self.revision()  # fail now, with a clear message, if etcd is not there

    @classmethod
    def from_url(cls, url: str, *, history: int = DEFAULT_HISTORY) -> EtcdStore:
        host, port, prefix = parse_etcd_url(url)
        return cls(host, port, key_prefix=prefix, history=history)

    # -- reads --------------------------------------------------------------------------

    def get(self, key: str) -> Record | None:
        reply = self._call("/v3/kv/range", {"key": _b64(self.key_prefix + key)})
        kvs = reply.get("kvs") or []
        return self._record(kvs[0]) if kvs else None

    def list(self, prefix: str, *, start_after: str = "", limit: int = 0) -> ListResult:
        full = self.key_prefix + prefix
        start = max(full, self.key_prefix + start_after + "\x00" if start_after else "")
        body: dict[str, Any] = {"key": _b64(start), "range_end": _b64(prefix_end(full))}
        if limit > 0:
            body["limit"] = str(limit)
        reply = self._call("/v3/kv/range", body)
        records = [self._record(kv) for kv in reply.get("kvs") or []]
        return ListResult(records, int(reply["header"]["revision"]), bool(reply.get("more")))

    def revision(self) -> int:
        reply = self._call("/v3/kv/range", {"key": _b64(self.key_prefix + "\x00"), "limit": "1"})
        return int(reply["header"]["revision"])

    # -- writes -------------------------------------------------------------------------

    def create(self, key: str, value: bytes) -> Record:
        k = _b64(self.key_prefix + key)
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
        k = _b64(self.key_prefix + key)
        compare = [{"key": k, "target": "VERSION", "result": "GREATER", "version": "0"}]
        if expected_revision is not None:
            compare = [
                {
                    "key": k,
                    "target": "MOD",
                    "result": "EQUAL",
                    "mod_revision": str(expected_revision),
                }
            ]
        put = {"key": k, "value": base64.b64encode(value).decode(), "prev_kv": True}
        reply = self._txn(compare, {"request_put": put}, k)
        if not reply.get("succeeded"):
            self._raise_failed(key, reply, expected_revision)
        rev = int(reply["header"]["revision"])
        prev = reply["responses"][0]["response_put"].get("prev_kv") or {}
        self._wrote(rev)
        return Record(key, value, int(prev.get("create_revision", rev)), rev)

    def delete(self, key: str, expected_revision: int | None = None) -> Record:
        k = _b64(self.key_prefix + key)
        compare = [{"key": k, "target": "VERSION", "result": "GREATER", "version": "0"}]
        if expected_revision is not None:
            compare = [
                {
                    "key": k,
                    "target": "MOD",
                    "result": "EQUAL",
                    "mod_revision": str(expected_revision),
                }
            ]
        reply = self._txn(compare, {"request_delete_range": {"key": k, "prev_kv": True}}, k)
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

    # -- watch --------------------------------------------------------------------------

    def watch(self, prefix: str, revision: int) -> EtcdWatch:
        full = self.key_prefix + prefix
        body = {"key": _b64(full), "range_end": _b64(prefix_end(full))}
        if revision + 1 <= self.revision():
            # A read at the first revision we need fails now if it is compacted.
            self._call("/v3/kv/range", {**body, "revision": str(revision + 1), "count_only": True})
        watch = EtcdWatch(self, full, revision)
        with self._lock:
            self._watches.add(watch)
        return watch

    def close(self) -> None:
        with self._lock:
            watches = list(self._watches)
        for watch in watches:
            watch.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()

    def _forget(self, watch: EtcdWatch) -> None:
        with self._lock:
            self._watches.discard(watch)

    # -- helpers ------------------------------------------------------------------------

    def _record(self, kv: dict[str, Any]) -> Record:
        key = _unb64(kv["key"]).decode()[len(self.key_prefix) :]
        return Record(
            key, _unb64(kv.get("value")), int(kv["create_revision"]), int(kv["mod_revision"])
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
        for attempt in (1, 2):
            conn = getattr(self._local, "conn", None)
            if conn is None:
                conn = self._local.conn = http.client.HTTPConnection(
                    self.host, self.port, timeout=_TIMEOUT
                )
                with self._lock:
                    self._conns.append(conn)
            try:
                conn.request("POST", path, data, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                payload = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                self._local.conn = None
                with self._lock:
                    if conn in self._conns:
                        self._conns.remove(conn)
                if attempt == 2:
                    raise StoreUnavailableError(
                        f"etcd at {self.host}:{self.port} is unreachable: {exc}"
                    ) from exc
                continue
            return _decode(payload, resp.status, self.host, self.port)
        raise AssertionError("unreachable")  # the loop returns or raises


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


class EtcdWatch:
    """One ``/v3/watch`` stream, read by a daemon thread into a queue."""

    def __init__(self, store: EtcdStore, full_prefix: str, revision: int) -> None:
        self._store = store
        self._queue: queue.Queue[Event | BaseException | None] = queue.Queue()
        self._returned = revision
        self._closed = False
        self._conn = http.client.HTTPConnection(store.host, store.port, timeout=None)
        request = {
            "create_request": {
                "key": _b64(full_prefix),
                "range_end": _b64(prefix_end(full_prefix)),
                "start_revision": str(revision + 1),
                "prev_kv": True,
            }
        }
        try:
            self._conn.request("POST", "/v3/watch", json.dumps(request).encode())
            self._resp = self._conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            self._conn.close()
            raise StoreUnavailableError(f"etcd watch failed: {exc}") from exc
        self._thread = threading.Thread(target=self._read, name="etcd-watch", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        cut = len(self._store.key_prefix)
        try:
            while True:
                line = self._resp.readline()
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
                for ev in result.get("events") or []:
                    self._queue.put(_event(ev, cut))
        except BaseException as exc:  # handed to the reader of the queue, never lost
            if not self._closed:
                error = exc
                if isinstance(exc, OSError | ValueError | http.client.HTTPException):
                    error = StoreUnavailableError(f"etcd watch stream broke: {exc}")
                self._queue.put(error)

    def next(self, timeout: float | None = None) -> Event | None:
        if self._closed:
            return None
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is None:
            return None
        if isinstance(item, BaseException):
            self.close()
            raise item
        self._returned = item.revision
        return item

    def progress(self) -> int:
        return self._returned

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        sock = self._conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already disconnected: nothing to shut down
        self._conn.close()
        self._store._forget(self)


def _event(ev: dict[str, Any], cut: int) -> Event:
    kv = ev["kv"]
    key = _unb64(kv["key"]).decode()[cut:]
    revision = int(kv["mod_revision"])
    prev = ev.get("prev_kv")
    prev_value = _unb64(prev.get("value")) if prev else None
    if ev.get("type") == "DELETE":
        return Event(EventType.DELETE, key, prev_value or b"", prev_value, revision)
    created = kv.get("create_revision") == kv.get("mod_revision")
    kind = EventType.PUT_NEW if created else EventType.PUT
    return Event(kind, key, _unb64(kv.get("value")), prev_value, revision)
