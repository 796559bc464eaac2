"""The store contract: SQLite and etcd (started here on loopback) behave the same."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reference_runtime.cluster.errors import (
    KeyExistsError,
    KeyNotFoundError,
    RevisionCompactedError,
    RevisionConflictError,
    StoreUnavailableError,
)
from reference_runtime.cluster.store import (
    EtcdStore,
    EventType,
    SqliteStore,
    Store,
    open_store,
    prefix_end,
)
from reference_runtime.cluster.testing import ETCD, running_etcd


@pytest.fixture(scope="module")
def etcd_url() -> Iterator[str]:
    if ETCD is None:
        pytest.skip("etcd is not installed (Debian package etcd-server)")
    with running_etcd() as url:
        yield url


_prefixes = iter(range(1_000_000))


@pytest.fixture(params=["sqlite", "etcd"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    s: Store
    if request.param == "sqlite":
        s = SqliteStore(tmp_path / "store.db", history=50)
    else:
        url = request.getfixturevalue("etcd_url")
        s = EtcdStore.from_url(f"{url}/t{next(_prefixes)}", history=50)
    yield s
    s.close()


def test_create_get_update_delete(store: Store) -> None:
    r1 = store.create("/a/x", b"1")
    assert r1.create_revision == r1.mod_revision
    got = store.get("/a/x")
    assert got is not None and got.value == b"1" and got.mod_revision == r1.mod_revision
    r2 = store.update("/a/x", b"2", r1.mod_revision)
    assert r2.mod_revision > r1.mod_revision and r2.create_revision == r1.create_revision
    gone = store.delete("/a/x", r2.mod_revision)
    assert gone.value == b"2" and gone.mod_revision > r2.mod_revision
    assert store.get("/a/x") is None
    assert store.revision() == gone.mod_revision


def test_errors(store: Store) -> None:
    r = store.create("/a/x", b"1")
    with pytest.raises(KeyExistsError):
        store.create("/a/x", b"again")
    with pytest.raises(RevisionConflictError):
        store.update("/a/x", b"2", r.mod_revision - 1)
    with pytest.raises(RevisionConflictError):
        store.delete("/a/x", r.mod_revision + 100)
    with pytest.raises(KeyNotFoundError):
        store.update("/a/missing", b"2")
    with pytest.raises(KeyNotFoundError):
        store.delete("/a/missing")
    store.update("/a/x", b"3")  # unconditional


def test_list_prefix_order_and_pages(store: Store) -> None:
    for name in ["c", "a", "b", "d"]:
        store.create(f"/p/ns1/{name}", name.encode())
    store.create("/p/ns10/z", b"z")  # must not show under /p/ns1/
    store.create("/q/a", b"q")
    result = store.list("/p/ns1/")
    assert [r.key for r in result.records] == ["/p/ns1/a", "/p/ns1/b", "/p/ns1/c", "/p/ns1/d"]
    assert result.revision == store.revision() and not result.more
    page = store.list("/p/", limit=2)
    assert [r.value for r in page.records] == [b"a", b"b"] and page.more
    rest = store.list("/p/", start_after=page.records[-1].key, limit=10)
    assert [r.value for r in rest.records] == [b"c", b"d", b"z"] and not rest.more


def test_watch_from_revision_in_order(store: Store) -> None:
    start = store.revision()
    store.create("/w/a", b"1")
    store.create("/x/other", b"-")
    store.update("/w/a", b"2")
    watch = store.watch("/w/", start)
    try:
        store.delete("/w/a")
        events = [watch.next(5) for _ in range(3)]
        assert [e.type if e else None for e in events] == [
            EventType.PUT_NEW,
            EventType.PUT,
            EventType.DELETE,
        ]
        assert [e.value for e in events if e] == [b"1", b"2", b"2"]
        assert events[1] is not None and events[1].prev_value == b"1"
        revisions = [e.revision for e in events if e]
        assert revisions == sorted(revisions)
        assert watch.next(0.05) is None
        assert watch.progress() >= revisions[-1]
    finally:
        watch.close()
    watch.close()  # idempotent
    assert watch.next(0.01) is None


def test_watch_sees_concurrent_writes_once_in_order(store: Store) -> None:
    watch = store.watch("/c/", store.revision())
    n = 40

    def writer(tag: str) -> None:
        for i in range(n // 2):
            store.create(f"/c/{tag}{i}", b"v")

    threads = [threading.Thread(target=writer, args=(t,)) for t in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        seen = []
        while len(seen) < n:
            event = watch.next(5)
            assert event is not None, f"only {len(seen)} of {n} events arrived"
            seen.append(event)
        assert len({e.key for e in seen}) == n
        assert [e.revision for e in seen] == sorted(e.revision for e in seen)
    finally:
        watch.close()


def test_compacted_history_is_refused(store: Store) -> None:
    start = store.revision()
    for i in range(120):  # history is 50: the stores compact by themselves
        store.create(f"/h/{i}", b"v")
    store.compact(store.revision() - 10)
    with pytest.raises(RevisionCompactedError):
        store.watch("/h/", start)
    recent = store.watch("/h/", store.revision() - 5)
    try:
        assert recent.next(5) is not None
    finally:
        recent.close()


def test_open_store_urls(tmp_path: Path) -> None:
    s = open_store(f"sqlite:{tmp_path}/x.db")
    s.create("/k", b"v")
    s.close()
    again = open_store(f"sqlite:{tmp_path}/x.db")  # durable: same file, same revision
    assert again.get("/k") is not None and again.revision() == 2
    again.close()
    for bad in ["", "sqlite:", "mysql://x", "etcd://nohostport"]:
        with pytest.raises(ValueError):
            open_store(bad)


def test_prefix_end() -> None:
    assert prefix_end("/a/") == "/a0"
    with pytest.raises(ValueError):
        prefix_end("")


def _etcd_watchers(url: str) -> int:
    """etcd's own count of its open watchers, from its /metrics page."""
    host, port = url.removeprefix("etcd://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    for line in text.splitlines():
        if line.startswith("etcd_debugging_mvcc_watcher_total "):
            return int(float(line.split()[1]))
    raise AssertionError("etcd's /metrics has no etcd_debugging_mvcc_watcher_total")


def _wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_etcd_watches_share_one_stream_and_fail_when_etcd_goes() -> None:
    if ETCD is None:
        pytest.skip("etcd is not installed (Debian package etcd-server)")
    with running_etcd() as url:
        store = EtcdStore.from_url(f"{url}/s")
        try:
            start = store.revision()
            watches = [store.watch(f"/p{i % 4}/", start) for i in range(8)]
            assert _etcd_watchers(url) == 1  # eight watches, one etcd watcher
            store.create("/p0/a", b"0")
            store.create("/p1/a", b"1")
            store.create("/other/a", b"-")
            # A watch that starts a little in the past is served from the shared backlog.
            late = store.watch("/p1/", start)
            watches.append(late)
            assert _etcd_watchers(url) == 1
            for i, watch in enumerate(watches[:8]):
                if i % 4 in (0, 1):
                    event = watch.next(5)
                    assert event is not None and event.key == f"/p{i % 4}/a"
                assert watch.next(0.02) is None
            event = late.next(5)
            assert event is not None and event.value == b"1" and late.next(0.02) is None
            # Writes under other prefixes still move every watch's progress on.
            assert _wait_for(lambda: all(w.progress() == store.revision() for w in watches))
            for watch in watches[4:]:
                watch.close()
            watch = watches[0]
        except BaseException:
            store.close()
            raise
    try:  # etcd is gone: the open watches say so instead of waiting for ever
        with pytest.raises(StoreUnavailableError):
            watch.next(10)
    finally:
        store.close()
