"""The ledger: a record on disk of every host resource the plugin makes, until undone.

Each pytest process (the controller, or one xdist worker) owns a directory under the
ledger root, named by its *tag* (``<worker>-<pid>-<start time>``), holding one
append-only journal, ``journal.json`` (JSON Lines, one object a line). Making a resource
appends its record, ``{"id": 7, "kind": "cgroup", "name": ..., "details": {...}}``;
undoing it appends ``{"release": 7}``. A record is *outstanding* while no release line
names its id. The journal stays open for the process's life, so a record or a release
costs one ``write(2)`` (``O_APPEND``), with no file to create or unlink. So:

- at session end, outstanding records are leaks, named exactly; a process that ends
  with none removes its directory;
- at the next session start, the directories of processes that are gone (a worker
  killed with SIGKILL) are reaped: each outstanding record is undone by the undoer
  registered for its kind, and released.

A line torn by a kill mid-write names a resource that was not made yet (records are
written first), and readers skip it. Feature modules register an undoer per kind with
``register_undoer`` and call ``Ledger.record`` / ``Ledger.release`` around the
resource's life.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from reference_runtime.state import process_start_time

DEFAULT_ROOT = Path("/run/pytest-containers/ledger")
JOURNAL = "journal.json"
"""The journal's name in a process's directory (JSON Lines; ``*.json`` so that "no
``*/*.json`` under the root" still means "nothing outstanding")."""

Undoer = Callable[["Record"], None]
_UNDOERS: dict[str, Undoer] = {}
_IDS = itertools.count(1)  # record ids, unique in this process (shared by its ledgers)
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode  # made once: json.dumps would not


def register_undoer(kind: str, undo: Undoer) -> None:
    """Say how to undo a record of ``kind`` left by a dead process (idempotent undo)."""
    _UNDOERS[kind] = undo


def undoer_for(kind: str) -> Undoer | None:
    """The undoer registered for ``kind``, if any (the leak check uses it to clean up)."""
    return _UNDOERS.get(kind)


def worker_id(config: pytest.Config | None = None) -> str:
    """The xdist worker id (``gw0``...), or ``main`` without xdist."""
    wid = os.environ.get("PYTEST_XDIST_WORKER")
    if wid:
        return wid
    if config is not None and hasattr(config, "workerinput"):
        return str(config.workerinput["workerid"])
    return "main"


@dataclass
class Record:
    """One resource: its kind (``cgroup``, ``netns``, ``container``...), a name unique
    within the kind, and what its undoer needs."""

    kind: str
    name: str
    details: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    """The journal holding the record (None: never written)."""
    id: int = 0
    """Its id in that journal."""
    released: bool = field(default=False, compare=False)

    def describe(self) -> str:
        extra = ", ".join(f"{k}={v}" for k, v in sorted(self.details.items()) if k != "note")
        return f"{self.kind} {self.name}" + (f" ({extra})" if extra else "")


class Ledger:
    """The records of one pytest process."""

    def __init__(self, root: Path, tag: str) -> None:
        self.root = root
        self.tag = tag
        self.dir = root / tag
        self.journal = self.dir / JOURNAL
        self._counter = itertools.count()
        self._prefixes: dict[str, str] = {}
        self._fd = -1
        self._torn = False  # a write failed part-way: start the next line on a new line
        self._closed = False

    @classmethod
    def for_process(cls, root: Path = DEFAULT_ROOT, worker: str = "main") -> Ledger:
        pid = os.getpid()
        return cls(root, f"{worker}-{pid}-{process_start_time(pid) or 0}")

    def unique_name(self, prefix: str = "pc") -> str:
        """A short name carrying the worker id and PID, unique in this process:
        ``pc-gw0-1234-7``. Fits a network interface or netns name when kept short."""
        return f"{self.name_prefix(prefix)}{next(self._counter)}"

    def name_prefix(self, prefix: str = "pc") -> str:
        """What every ``unique_name(prefix)`` of this process starts with: ``pc-gw0-1234-``.

        The leak check looks for host resources named with it."""
        found = self._prefixes.get(prefix)
        if found is None:
            worker, pid = self.tag.split("-")[:2]
            found = self._prefixes[prefix] = f"{prefix}-{worker}-{pid}-"
        return found

    def record(self, kind: str, name: str, **details: Any) -> Record:
        """Write the record of a resource *before* making it: one line appended to the
        journal (``details`` must be JSON-serialisable)."""
        rec = Record(kind, name, details, self.journal, next(_IDS))
        self._append(_ENCODE({"id": rec.id, "kind": kind, "name": name, "details": details}))
        return rec

    def release(self, rec: Record) -> None:
        """Forget a record once its resource is gone (safe to call twice)."""
        if rec.released or rec.path is None:
            return
        line = f'{{"release":{int(rec.id)}}}'
        if rec.path == self.journal:
            self._append(line)
        else:  # a record read from another (dead) process's journal
            _append_line(rec.path, line)
        rec.released = True
        if self._closed and rec.path == self.journal:
            self.close()  # released after the session's end: tidy up again

    def outstanding(self) -> list[Record]:
        """The records of this process not released yet, oldest first (read from disk)."""
        return _read_journal(self.journal)

    def close(self) -> None:
        """Close the journal; remove it and this process's directory if nothing is
        outstanding (else they stay, for the next session to reap). Idempotent."""
        self._closed = True
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if _read_journal(self.journal):
            return
        with contextlib.suppress(FileNotFoundError):  # nothing was ever recorded
            self.journal.unlink()
        with contextlib.suppress(OSError):  # ENOENT: never made; ENOTEMPTY: not ours
            self.dir.rmdir()

    def _append(self, line: str) -> None:
        data = (line + "\n").encode()
        if self._torn:
            data = b"\n" + data
        if self._fd < 0:
            self._fd = _open_journal(self.journal)
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except BaseException:
            self._torn = True
            raise
        self._torn = False


def _open_journal(path: Path) -> int:
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
    try:
        return os.open(path, flags, 0o600)
    except FileNotFoundError:  # the first record of this process
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, flags, 0o600)


def _append_line(path: Path, line: str) -> None:
    """Append ``line`` to another process's journal; it may end in a torn line, so the
    line starts on a new line of its own."""
    fd = _open_journal(path)
    try:
        os.write(fd, f"\n{line}\n".encode())
    finally:
        os.close(fd)


def _read_journal(path: Path) -> list[Record]:
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return []
    records: dict[int, Record] = {}
    for raw in text.splitlines():
        try:
            entry = json.loads(raw)
            if "release" in entry:
                records.pop(int(entry["release"]), None)
            else:
                rid = int(entry["id"])
                records[rid] = Record(
                    entry["kind"], entry["name"], entry.get("details", {}), path, rid
                )
        except (ValueError, KeyError, TypeError):  # torn or blank line: nothing to undo
            continue
    return list(records.values())


def _read_legacy(directory: Path) -> list[Record]:
    """Records an older version wrote as one file each (``<kind>--<name>.json``); their
    ``path`` is that file, removed once undone."""
    records = []
    for path in sorted(directory.glob("*--*.json")):
        try:
            data = json.loads(path.read_text())
            records.append(Record(data["kind"], data["name"], data.get("details", {}), path))
        except (OSError, ValueError, KeyError, TypeError):  # half-written: nothing to undo
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    return records


def _owner_alive(tag: str) -> bool:
    parts = tag.split("-")
    try:
        pid, start = int(parts[-2]), int(parts[-1])
    except (IndexError, ValueError):
        return False
    return process_start_time(pid) == start


@contextlib.contextmanager
def _root_lock(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def reap_dead(root: Path = DEFAULT_ROOT) -> tuple[list[str], list[str]]:
    """Undo what processes that died without cleaning up left in the ledger.

    Returns (undone, failed) descriptions. Records of a kind with no registered
    undoer, or whose undo fails, are kept for the next session and reported.
    """
    undone: list[str] = []
    failed: list[str] = []
    if not root.exists():
        return undone, failed
    with _root_lock(root):
        for directory in sorted(p for p in root.iterdir() if p.is_dir()):
            if _owner_alive(directory.name):
                continue
            journal = directory / JOURNAL
            # undo in reverse order of creation kinds: containers before cgroups/netns
            records = _read_journal(journal) + _read_legacy(directory)
            for rec in sorted(records, key=lambda r: _ORDER.get(r.kind, 50)):
                undo = _UNDOERS.get(rec.kind)
                if undo is None:
                    failed.append(f"{rec.describe()}: no undoer registered for {rec.kind!r}")
                    continue
                try:
                    undo(rec)
                except Exception as exc:
                    failed.append(f"{rec.describe()}: {exc}")
                    continue
                undone.append(rec.describe())
                _forget(rec, journal)
            if not _read_journal(journal) and not any(directory.glob("*--*.json")):
                shutil.rmtree(directory, ignore_errors=True)
    return undone, failed


def _forget(rec: Record, journal: Path) -> None:
    """Release a record of a dead process: a line in its journal, or a legacy file gone."""
    assert rec.path is not None
    if rec.path == journal:
        _append_line(journal, f'{{"release":{int(rec.id)}}}')
    else:
        with contextlib.suppress(FileNotFoundError):  # already removed
            rec.path.unlink()


# Kinds undone first get lower numbers: processes and containers hold the rest.
_ORDER = {
    "process": 0,
    "cluster-namespace": 2,  # deleted through its cluster, so before a cluster goes
    "cluster": 3,
    "docker-container": 5,
    "container": 10,
    "mount": 20,
    "netns": 30,
    "cgroup": 40,
}


_Made = TypeVar("_Made")


def remove_all(made: list[_Made], remove: Callable[[_Made], object]) -> None:
    """``remove`` every item of ``made``, newest first, emptying it; all are tried, and
    the first error is raised after the last."""
    __tracebackhide__ = True
    errors: list[BaseException] = []
    while made:
        try:
            remove(made.pop())
        except Exception as exc:
            errors.append(exc)
    if errors:
        raise errors[0]
