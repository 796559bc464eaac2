"""The embedded store: one SQLite file in WAL mode, with a bounded event history.

Tables: ``kv`` (the current values with their create and mod revisions), ``events``
(the last ``history`` changes, for watches that resume from a revision) and ``meta``
(the current and the compacted revision). Every write is one transaction under one
lock, and is published to in-process watches under that lock, so watches see every
event once, in order. Durability: ``synchronous=NORMAL`` by default (a crash of the
process loses nothing; a power loss may lose the last writes), ``FULL`` on request.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

from ..errors import (
    KeyExistsError,
    KeyNotFoundError,
    RevisionCompactedError,
    RevisionConflictError,
    StoreUnavailableError,
)
from .base import Event, EventType, ListResult, Record, prefix_end
from .hub import HubWatch, WatchHub

__all__ = ["DEFAULT_HISTORY", "SqliteStore"]

_Rows = list[tuple[Any, ...]]

DEFAULT_HISTORY = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY, value BLOB NOT NULL,
    create_rev INTEGER NOT NULL, mod_rev INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    rev INTEGER PRIMARY KEY, key TEXT NOT NULL, type INTEGER NOT NULL,
    value BLOB NOT NULL, prev BLOB
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT OR IGNORE INTO meta VALUES ('revision', 1), ('compacted', 0);
"""
_TYPES = {EventType.PUT_NEW: 0, EventType.PUT: 1, EventType.DELETE: 2}
_TYPES_BACK = {v: k for k, v in _TYPES.items()}


class SqliteStore:
    """A ``Store`` in one SQLite file (``":memory:"`` for a throwaway one)."""

    def __init__(
        self, path: str | Path, *, history: int = DEFAULT_HISTORY, synchronous: str = "NORMAL"
    ) -> None:
        if history < 1:
            raise ValueError(f"history must be at least 1 revision, not {history}")
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL"):
            raise ValueError(f"synchronous is OFF, NORMAL or FULL, not {synchronous!r}")
        self.path = str(path)
        self.history = history
        self._lock = threading.RLock()
        self._hub = WatchHub()
        try:
            self._db = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=5
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
            self._db.executescript(_SCHEMA)
            meta = dict(self._db.execute("SELECT name, value FROM meta").fetchall())
        except sqlite3.Error as exc:
            raise StoreUnavailableError(f"cannot open SQLite store {self.path}: {exc}") from exc
        self._revision: int = meta["revision"]
        self._compacted: int = meta["compacted"]
        self._closed = False

    # -- reads --------------------------------------------------------------------------

    def get(self, key: str) -> Record | None:
        with self._lock:
            row = self._query_one("SELECT value, create_rev, mod_rev FROM kv WHERE key=?", (key,))
        return None if row is None else Record(key, row[0], row[1], row[2])

    def list(self, prefix: str, *, start_after: str = "", limit: int = 0) -> ListResult:
        start, end = max(prefix, start_after + "\x00" if start_after else ""), prefix_end(prefix)
        sql = (
            "SELECT key, value, create_rev, mod_rev FROM kv WHERE key >= ? AND key < ? ORDER BY key"
        )
        params: tuple[object, ...] = (start, end)
        if limit > 0:
            sql += " LIMIT ?"
            params += (limit + 1,)
        with self._lock:
            rows = self._query_all(sql, params)
            revision = self._revision
        more = limit > 0 and len(rows) > limit
        records = [Record(r[0], r[1], r[2], r[3]) for r in rows[: limit if more else None]]
        return ListResult(records, revision, more)

    def revision(self) -> int:
        with self._lock:
            return self._revision

    # -- writes -------------------------------------------------------------------------

    def create(self, key: str, value: bytes) -> Record:
        with self._lock:
            if self._query_one("SELECT 1 FROM kv WHERE key=?", (key,)) is not None:
                raise KeyExistsError(f"key {key} already exists")
            rev = self._revision + 1
            self._write(
                rev,
                "INSERT INTO kv VALUES (?, ?, ?, ?)",
                (key, value, rev, rev),
                Event(EventType.PUT_NEW, key, value, None, rev),
            )
            return Record(key, value, rev, rev)

    def update(self, key: str, value: bytes, expected_revision: int | None = None) -> Record:
        with self._lock:
            old = self._current(key, expected_revision)
            rev = self._revision + 1
            self._write(
                rev,
                "UPDATE kv SET value=?, mod_rev=? WHERE key=?",
                (value, rev, key),
                Event(EventType.PUT, key, value, old.value, rev),
            )
            return Record(key, value, old.create_revision, rev)

    def delete(self, key: str, expected_revision: int | None = None) -> Record:
        with self._lock:
            old = self._current(key, expected_revision)
            rev = self._revision + 1
            self._write(
                rev,
                "DELETE FROM kv WHERE key=?",
                (key,),
                Event(EventType.DELETE, key, old.value, old.value, rev),
            )
            return Record(key, old.value, old.create_revision, rev)

    def compact(self, revision: int) -> None:
        with self._lock:
            revision = min(revision, self._revision)
            if revision <= self._compacted:
                return
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute("DELETE FROM events WHERE rev <= ?", (revision,))
                self._db.execute("UPDATE meta SET value=? WHERE name='compacted'", (revision,))
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise StoreUnavailableError(f"SQLite compaction failed: {exc}") from exc
            self._compacted = revision

    # -- watch --------------------------------------------------------------------------

    def watch(self, prefix: str, revision: int) -> HubWatch:
        with self._lock:
            if revision < self._compacted:
                raise RevisionCompactedError(
                    f"revision {revision} is compacted (oldest kept: {self._compacted})"
                )
            watch = HubWatch(self._hub, prefix, revision)
            rows = self._query_all(
                "SELECT rev, key, type, value, prev FROM events"
                " WHERE rev > ? AND key >= ? AND key < ? ORDER BY rev",
                (revision, prefix, prefix_end(prefix)),
            )
            for rev, key, kind, value, prev in rows:
                watch.push(Event(_TYPES_BACK[kind], key, value, prev, rev))
            watch.advance(self._revision)
            self._hub.add(watch)
            return watch

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._hub.close_all()
            self._db.close()

    # -- helpers ------------------------------------------------------------------------

    def _current(self, key: str, expected_revision: int | None) -> Record:
        row = self._query_one("SELECT value, create_rev, mod_rev FROM kv WHERE key=?", (key,))
        if row is None:
            raise KeyNotFoundError(f"key {key} not found")
        if expected_revision is not None and row[2] != expected_revision:
            raise RevisionConflictError(
                f"key {key} is at revision {row[2]}, not the expected {expected_revision}"
            )
        return Record(key, row[0], row[1], row[2])

    def _write(self, rev: int, sql: str, params: tuple[object, ...], event: Event) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(sql, params)
            self._db.execute(
                "INSERT INTO events VALUES (?, ?, ?, ?, ?)",
                (rev, event.key, _TYPES[event.type], event.value, event.prev_value),
            )
            self._db.execute("UPDATE meta SET value=? WHERE name='revision'", (rev,))
            compact_to = rev - self.history
            if compact_to > self._compacted + max(1, self.history // 10):
                self._db.execute("DELETE FROM events WHERE rev <= ?", (compact_to,))
                self._db.execute("UPDATE meta SET value=? WHERE name='compacted'", (compact_to,))
            else:
                compact_to = self._compacted
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise StoreUnavailableError(f"SQLite write failed: {exc}") from exc
        self._revision = rev
        self._compacted = compact_to
        self._hub.publish(event)

    def _rollback(self) -> None:
        try:
            self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # no transaction was open: nothing to undo

    def _query_one(self, sql: str, params: tuple[object, ...]) -> tuple[Any, ...] | None:
        rows = self._query_all(sql, params)
        return rows[0] if rows else None

    def _query_all(self, sql: str, params: tuple[object, ...]) -> _Rows:
        if self._closed:
            raise StoreUnavailableError(f"the SQLite store {self.path} is closed")
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreUnavailableError(f"SQLite read failed: {exc}") from exc
