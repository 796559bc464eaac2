"""The ledger: a record on disk of every host resource the plugin makes, until undone.

Each pytest process (the controller, or one xdist worker) owns a directory under the
ledger root, named by its *tag* (``<worker>-<pid>-<start time>``). Making a resource
writes one small JSON record there; undoing it removes the record. So:

- at session end, records still present are leaks, named exactly;
- at the next session start, the directories of processes that are gone (a worker
  killed with SIGKILL) are reaped: each record is undone by the undoer registered for
  its kind, then removed.

Feature modules register an undoer per kind with ``register_undoer`` and call
``Ledger.record`` / ``Ledger.release`` around the resource's life.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

DEFAULT_ROOT = Path("/run/pytest-containers/ledger")

Undoer = Callable[["Record"], None]
_UNDOERS: dict[str, Undoer] = {}


def register_undoer(kind: str, undo: Undoer) -> None:
    """Say how to undo a record of ``kind`` left by a dead process (idempotent undo)."""
    _UNDOERS[kind] = undo


def undoer_for(kind: str) -> Undoer | None:
    """The undoer registered for ``kind``, if any (the leak check uses it to clean up)."""
    return _UNDOERS.get(kind)


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat; None if the process is gone or a zombie."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rfind(b")") + 2 :].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


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

    def describe(self) -> str:
        extra = ", ".join(f"{k}={v}" for k, v in sorted(self.details.items()) if k != "note")
        return f"{self.kind} {self.name}" + (f" ({extra})" if extra else "")


_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


class Ledger:
    """The records of one pytest process."""

    def __init__(self, root: Path, tag: str) -> None:
        self.root = root
        self.tag = tag
        self.dir = root / tag
        self._counter = itertools.count()

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
        worker, pid = self.tag.split("-")[:2]
        return f"{prefix}-{worker}-{pid}-"

    def record(self, kind: str, name: str, **details: Any) -> Record:
        """Write the record of a resource *before* making it.

        One plain write, no temporary file and rename (which costs a journal commit on
        ext4): a record torn by a kill mid-write names a resource that was not made yet,
        and readers drop such records."""
        rec = Record(kind, name, details)
        rec.path = self.dir / f"{kind}--{_SAFE.sub('_', name)}.json"
        data = json.dumps({"kind": kind, "name": name, "details": details}).encode()
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
        try:
            fd = os.open(rec.path, flags, 0o600)
        except FileNotFoundError:  # the first record of this process
            self.dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(rec.path, flags, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        return rec

    def release(self, rec: Record) -> None:
        """Forget a record once its resource is gone (safe to call twice)."""
        if rec.path is not None:
            try:
                rec.path.unlink()
            except FileNotFoundError:  # already released
                pass

    def outstanding(self) -> list[Record]:
        return _read_records(self.dir)

    def close(self) -> None:
        """Remove this process's (empty) directory."""
        with contextlib.suppress(FileNotFoundError, OSError):
            self.dir.rmdir()


def _read_records(directory: Path) -> list[Record]:
    records = []
    try:
        paths = sorted(directory.glob("*.json"))
    except FileNotFoundError:
        return []
    for path in paths:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):  # half-written by a killed process: nothing to undo
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            continue
        records.append(Record(data["kind"], data["name"], data.get("details", {}), path))
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
            # undo in reverse order of creation kinds: containers before cgroups/netns
            records = sorted(_read_records(directory), key=lambda r: _ORDER.get(r.kind, 50))
            for rec in records:
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
                assert rec.path is not None
                with contextlib.suppress(FileNotFoundError):
                    rec.path.unlink()
            if not any(directory.glob("*.json")):
                shutil.rmtree(directory, ignore_errors=True)
    return undone, failed


# Kinds undone first get lower numbers: processes and containers hold the rest.
_ORDER = {
    "process": 0,
    "docker-container": 5,
    "container": 10,
    "mount": 20,
    "netns": 30,
    "cgroup": 40,
}
