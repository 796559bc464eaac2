"""The store interface: a key-value map with one monotonically increasing revision.

Every successful write (create, update, delete) gets the next revision; a value's
``mod_revision`` is the revision of its last write and is what the API serves as
``metadata.resourceVersion``. Updates and deletes may be conditional on the expected
``mod_revision`` (optimistic concurrency). ``watch(prefix, revision)`` yields, in
revision order, every event under ``prefix`` with a revision greater than ``revision``,
as long as that revision is still in the retained history; otherwise it raises
``RevisionCompactedError`` (at once, or from ``Watch.next`` if compaction overtakes it).

Keys are ``str`` (UTF-8, compared bytewise); values are ``bytes`` the store never looks
into. Implementations: ``SqliteStore`` (embedded, the default) and ``EtcdStore`` (a real
etcd v3 through its JSON gateway). Both pass ``tests/test_cluster_store.py``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Event", "EventType", "ListResult", "Record", "Store", "Watch", "prefix_end"]


@dataclass(frozen=True, slots=True)
class Record:
    """One stored value with the revisions of its creation and its last write."""

    key: str
    value: bytes
    create_revision: int
    mod_revision: int


@dataclass(frozen=True, slots=True)
class ListResult:
    """Values under a prefix at ``revision``; ``more`` if ``limit`` cut the list short."""

    records: list[Record]
    revision: int
    more: bool = False


class EventType(enum.Enum):
    PUT_NEW = "ADDED"
    PUT = "MODIFIED"
    DELETE = "DELETED"


@dataclass(frozen=True, slots=True)
class Event:
    """A change at ``revision``: the new value (the last value for a delete) and the old one."""

    type: EventType
    key: str
    value: bytes
    prev_value: bytes | None
    revision: int


class Watch(Protocol):
    """A stream of events in revision order; close it when done (idempotent)."""

    def next(self, timeout: float | None = None) -> Event | None:
        """The next event, or ``None`` after ``timeout`` seconds without one or once closed.

        Raises ``RevisionCompactedError`` if the history it needs was compacted away and
        ``StoreUnavailableError`` if the store went away.
        """

    def progress(self) -> int:
        """A revision up to which every event of this watch has been returned by ``next``."""

    def close(self) -> None:
        """Stop the watch and release its resources; ``next`` returns ``None`` afterwards."""


class Store(Protocol):
    """What the API server needs from storage. Thread-safe; ``close()`` when done."""

    def get(self, key: str) -> Record | None:
        """The record under ``key``, or ``None``."""

    def list(self, prefix: str, *, start_after: str = "", limit: int = 0) -> ListResult:
        """Records whose keys start with ``prefix`` (after ``start_after``), in key order."""

    def create(self, key: str, value: bytes) -> Record:
        """Store a new value; raises ``KeyExistsError`` if the key is taken."""

    def update(self, key: str, value: bytes, expected_revision: int | None = None) -> Record:
        """Replace a value; ``RevisionConflictError`` if its mod_revision is not the expected
        one, ``KeyNotFoundError`` if it does not exist."""

    def delete(self, key: str, expected_revision: int | None = None) -> Record:
        """Remove a value and return its last record (with the delete's revision as
        ``mod_revision``); same errors as ``update``."""

    def revision(self) -> int:
        """The current revision: that of the last write."""

    def watch(self, prefix: str, revision: int) -> Watch:
        """Events under ``prefix`` after ``revision``; ``RevisionCompactedError`` if that
        revision is older than the retained history."""

    def compact(self, revision: int) -> None:
        """Drop history up to ``revision``; watches from before it then fail with
        ``RevisionCompactedError``. Stores also compact by themselves."""

    def close(self) -> None:
        """Release connections and files; watches still open end."""


def prefix_end(prefix: str) -> str:
    """The smallest key greater than every key that starts with ``prefix`` (non-empty, ASCII)."""
    if not prefix or not prefix.isascii() or prefix[-1] == "\x7f":
        raise ValueError(f"store prefixes are non-empty ASCII not ending in DEL, not {prefix!r}")
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)
