"""Storage for the reference cluster.

Layers: ``base`` (the ``Store`` protocol, records and events) at the bottom; ``hub``
(in-process watch fan-out); the implementations ``sqlite`` and ``etcd``; ``open_store``
here picks one from a URL (``sqlite:PATH``, ``sqlite::memory:``, ``etcd://HOST:PORT``).
"""

from __future__ import annotations

from .base import Event, EventType, ListResult, Record, Store, Watch, prefix_end
from .etcd import EtcdStore, parse_etcd_url
from .sqlite import DEFAULT_HISTORY, SqliteStore

__all__ = [
    "DEFAULT_HISTORY",
    "EtcdStore",
    "Event",
    "EventType",
    "ListResult",
    "Record",
    "SqliteStore",
    "Store",
    "Watch",
    "open_store",
    "parse_etcd_url",
    "prefix_end",
]


def open_store(url: str, *, history: int = DEFAULT_HISTORY) -> Store:
    """Open the store a URL names: ``sqlite:PATH`` or ``etcd://HOST:PORT[/PREFIX]``."""
    if url.startswith("sqlite:"):
        path = url.removeprefix("sqlite:")
        if not path:
            raise ValueError("a SQLite store is sqlite:PATH (or sqlite::memory:)")
        return SqliteStore(path, history=history)
    if url.startswith("etcd://"):
        return EtcdStore.from_url(url, history=history)
    raise ValueError(f"a store is sqlite:PATH or etcd://HOST:PORT, not {url!r}")
