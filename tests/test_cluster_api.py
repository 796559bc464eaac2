"""The reference cluster's API through the official ``kubernetes`` client, in-process server."""

from __future__ import annotations

import itertools
import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from reference_runtime.cluster.api import ApiServer
from reference_runtime.cluster.testing import ETCD, running_etcd

_names = itertools.count()


@pytest.fixture(scope="module")
def server() -> Iterator[ApiServer]:
    with ApiServer.start(bookmark_interval=0.3) as srv:
        yield srv


@pytest.fixture(scope="module")
def api(server: ApiServer) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(server.kubeconfig))


@pytest.fixture(scope="module")
def v1(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest.fixture(scope="module")
def apps(api: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api)


@pytest.fixture
def ns(v1: client.CoreV1Api) -> Iterator[str]:
    name = f"t{next(_names)}"
    v1.create_namespace({"metadata": {"name": name}})
    yield name
    try:
        v1.delete_namespace(name)
    except ApiException as exc:
        assert exc.status == 404  # a test that deleted its namespace itself


def wait_for(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    __tracebackhide__ = True
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.02)


def gone(read: Callable[[], Any]) -> Callable[[], bool]:
    def check() -> bool:
        try:
            read()
        except ApiException as exc:
            if exc.status == 404:
                return True
            raise
        return False

    return check


def pod(name: str = "", labels: dict[str, str] | None = None, **meta: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"labels": labels or {}, **meta}
    if name:
        metadata["name"] = name
    return {"metadata": metadata, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


def status_of(exc: ApiException) -> dict[str, Any]:
    body = json.loads(exc.body)
    assert body["kind"] == "Status" and body["status"] == "Failure"
    assert body["code"] == exc.status
    return dict(body)


def test_crud_round_trip(v1: client.CoreV1Api, ns: str) -> None:
    created = v1.create_namespaced_pod(ns, pod("web", {"app": "web"}))
    meta = created.metadata
    assert meta.uid and meta.creation_timestamp and meta.generation == 1
    assert created.status.phase == "Pending"
    got = v1.read_namespaced_pod("web", ns)
    assert got.metadata.resource_version == meta.resource_version
    assert [p.metadata.name for p in v1.list_namespaced_pod(ns).items] == ["web"]
    got.metadata.labels["tier"] = "front"
    replaced = v1.replace_namespaced_pod("web", ns, got)
    assert int(replaced.metadata.resource_version) > int(meta.resource_version)
    assert replaced.metadata.generation == 1  # labels are not spec
    patched = v1.patch_namespaced_pod("web", ns, {"metadata": {"annotations": {"a": "b"}}})
    assert patched.metadata.annotations == {"a": "b"} and patched.metadata.labels["tier"] == "front"
    v1.delete_namespaced_pod("web", ns)
    with pytest.raises(ApiException) as err:
        v1.read_namespaced_pod("web", ns)
    status = status_of(err.value)
    assert status["reason"] == "NotFound" and status["details"] == {"name": "web", "kind": "pods"}


def test_stale_resource_version_is_a_conflict(v1: client.CoreV1Api, ns: str) -> None:
    first = v1.create_namespaced_pod(ns, pod("p"))
    v1.patch_namespaced_pod("p", ns, {"metadata": {"labels": {"x": "1"}}})
    first.metadata.labels = {"x": "2"}
    with pytest.raises(ApiException) as err:
        v1.replace_namespaced_pod("p", ns, first)
    assert err.value.status == 409 and status_of(err.value)["reason"] == "Conflict"
    with pytest.raises(ApiException) as err:
        v1.create_namespaced_pod(ns, pod("p"))
    assert status_of(err.value)["reason"] == "AlreadyExists"
    with pytest.raises(ApiException) as err:
        v1.delete_namespaced_pod(
            "p", ns, body={"preconditions": {"resourceVersion": first.metadata.resource_version}}
        )
    assert err.value.status == 409


def test_generate_name(v1: client.CoreV1Api, ns: str) -> None:
    names = {
        v1.create_namespaced_pod(ns, pod(generate_name="gen-")).metadata.name for _ in range(5)
    }
    assert len(names) == 5
    assert all(n.startswith("gen-") and len(n) == len("gen-") + 5 for n in names)


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", {"a", "b"}),
        ("app==web", {"a", "b"}),
        ("app!=web", {"c", "d"}),
        ("app in (web,db)", {"a", "b", "c"}),
        ("app notin (web)", {"c", "d"}),
        ("tier", {"a", "c"}),
        ("!tier", {"b", "d"}),
        ("app=web,tier=front", {"a"}),
        ("app in (web),!tier", {"b"}),
    ],
)
def test_label_selectors(v1: client.CoreV1Api, selector: str, expected: set[str]) -> None:
    ns = "selectors"
    try:
        v1.create_namespace({"metadata": {"name": ns}})
        for name, labels in [
            ("a", {"app": "web", "tier": "front"}),
            ("b", {"app": "web"}),
            ("c", {"app": "db", "tier": "back"}),
            ("d", {}),
        ]:
            v1.create_namespaced_pod(ns, pod(name, labels))
    except ApiException as exc:
        assert exc.status == 409  # made by an earlier parameter
    found = v1.list_namespaced_pod(ns, label_selector=selector).items
    assert {p.metadata.name for p in found} == expected


def test_field_selectors(v1: client.CoreV1Api, ns: str) -> None:
    for name in ("a", "b", "c"):
        v1.create_namespaced_pod(ns, pod(name))
    v1.create_namespaced_pod_binding(
        "b",
        ns,
        {"metadata": {"name": "b"}, "target": {"kind": "Node", "name": "n1"}},
        _preload_content=False,
    )

    def names(**kw: Any) -> set[str]:
        return {p.metadata.name for p in v1.list_namespaced_pod(ns, **kw).items}

    assert names(field_selector="metadata.name=a") == {"a"}
    assert names(field_selector="metadata.name!=a") == {"b", "c"}
    assert names(field_selector="spec.nodeName=n1") == {"b"}
    assert names(field_selector="spec.nodeName=") == {"a", "c"}
    assert names(field_selector="status.phase=Pending,metadata.name!=c") == {"a", "b"}
    everywhere = v1.list_pod_for_all_namespaces(field_selector=f"metadata.namespace={ns}")
    assert len(everywhere.items) == 3
    with pytest.raises(ApiException) as err:
        names(field_selector="spec.bogus=x")
    assert err.value.status == 400


def test_binding_once(v1: client.CoreV1Api, ns: str) -> None:
    v1.create_namespaced_pod(ns, pod("p"))
    binding = {"metadata": {"name": "p"}, "target": {"kind": "Node", "name": "n1"}}
    v1.create_namespaced_pod_binding("p", ns, binding, _preload_content=False)
    bound = v1.read_namespaced_pod("p", ns)
    assert bound.spec.node_name == "n1"
    assert any(c.type == "PodScheduled" and c.status == "True" for c in bound.status.conditions)
    with pytest.raises(ApiException) as err:
        v1.create_namespaced_pod_binding("p", ns, binding, _preload_content=False)
    assert err.value.status == 409
    with pytest.raises(ApiException) as err:  # nodeName is set by binding only
        v1.patch_namespaced_pod("p", ns, {"spec": {"nodeName": "n2"}})
    assert err.value.status == 422


def test_watch_is_ordered_and_resumes(v1: client.CoreV1Api, ns: str) -> None:
    start = v1.list_namespaced_pod(ns).metadata.resource_version
    v1.create_namespaced_pod(ns, pod("a"))
    v1.create_namespaced_pod(ns, pod("b"))
    v1.patch_namespaced_pod("a", ns, {"metadata": {"labels": {"x": "y"}}})
    v1.delete_namespaced_pod("b", ns)
    events = []
    w = watch.Watch()
    for event in w.stream(v1.list_namespaced_pod, ns, resource_version=start, timeout_seconds=5):
        events.append(
            (
                event["type"],
                event["object"].metadata.name,
                event["object"].metadata.resource_version,
            )
        )
        if len(events) == 4:
            w.stop()
    assert [(t, n) for t, n, _ in events] == [
        ("ADDED", "a"),
        ("ADDED", "b"),
        ("MODIFIED", "a"),
        ("DELETED", "b"),
    ]
    versions = [int(rv) for _, _, rv in events]
    assert versions == sorted(versions) and len(set(versions)) == 4
    resumed = []
    for event in w.stream(
        v1.list_namespaced_pod, ns, resource_version=events[1][2], timeout_seconds=5
    ):
        resumed.append((event["type"], event["object"].metadata.name))
        if len(resumed) == 2:
            w.stop()
    assert resumed == [("MODIFIED", "a"), ("DELETED", "b")]


def test_watch_with_selector_sees_objects_leave_and_enter(v1: client.CoreV1Api, ns: str) -> None:
    start = v1.list_namespaced_pod(ns).metadata.resource_version
    v1.create_namespaced_pod(ns, pod("a", {"app": "web"}))
    v1.patch_namespaced_pod("a", ns, {"metadata": {"labels": {"app": "db"}}})
    v1.patch_namespaced_pod("a", ns, {"metadata": {"labels": {"app": "web"}}})
    seen = []
    w = watch.Watch()
    for event in w.stream(
        v1.list_namespaced_pod,
        ns,
        label_selector="app=web",
        resource_version=start,
        timeout_seconds=5,
    ):
        seen.append(event["type"])
        if len(seen) == 3:
            w.stop()
    assert seen == ["ADDED", "DELETED", "ADDED"]


def test_watch_from_compacted_revision_is_gone(
    server: ApiServer, v1: client.CoreV1Api, ns: str
) -> None:
    old = v1.list_namespaced_pod(ns).metadata.resource_version
    v1.create_namespaced_pod(ns, pod("a"))
    server.store.compact(server.store.revision())
    with pytest.raises(ApiException) as err:
        v1.list_namespaced_pod(ns, watch=True, resource_version=old, timeout_seconds=1)
    assert err.value.status == 410 and status_of(err.value)["reason"] == "Expired"


def _raw_watch(server: ApiServer, query: str, limit: int) -> list[dict[str, Any]]:
    """Events of a watch read with urllib (bookmarks included), at most ``limit``."""
    request = urllib.request.Request(
        f"{server.url}{query}", headers={"Authorization": f"Bearer {server.token}"}
    )
    import ssl

    context = ssl.create_default_context(cadata=(server.ca_cert or b"").decode() or None)
    events = []
    with urllib.request.urlopen(request, timeout=10, context=context) as resp:
        for line in resp:
            events.append(json.loads(line))
            if len(events) >= limit:
                break
    return events


def test_watch_bookmarks_and_timeout(server: ApiServer, v1: client.CoreV1Api, ns: str) -> None:
    rv = v1.list_namespaced_pod(ns).metadata.resource_version
    started = time.monotonic()
    events = _raw_watch(
        server,
        f"/api/v1/namespaces/{ns}/pods?watch=true&resourceVersion={rv}"
        "&allowWatchBookmarks=true&timeoutSeconds=1",
        limit=100,
    )
    assert 0.9 < time.monotonic() - started < 5  # the server ended the watch at its timeout
    bookmarks = [e for e in events if e["type"] == "BOOKMARK"]
    assert bookmarks and all(
        int(b["object"]["metadata"]["resourceVersion"]) >= int(rv) for b in bookmarks
    )


def test_watch_send_initial_events(server: ApiServer, v1: client.CoreV1Api, ns: str) -> None:
    v1.create_namespaced_pod(ns, pod("a"))
    events = _raw_watch(
        server,
        f"/api/v1/namespaces/{ns}/pods?watch=true&sendInitialEvents=true"
        "&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=2",
        limit=2,
    )
    assert [e["type"] for e in events] == ["ADDED", "BOOKMARK"]
    annotations = events[1]["object"]["metadata"]["annotations"]
    assert annotations == {"k8s.io/initial-events-end": "true"}


def deployment(name: str, replicas: int = 1) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "busybox:1"}]},
            },
        },
    }


def test_status_and_spec_are_written_separately(apps: client.AppsV1Api, ns: str) -> None:
    d = apps.create_namespaced_deployment(ns, deployment("web"))
    assert d.metadata.generation == 1
    status = apps.patch_namespaced_deployment_status(
        "web", ns, {"spec": {"replicas": 7}, "status": {"replicas": 1, "readyReplicas": 1}}
    )
    assert status.spec.replicas == 1 and status.status.ready_replicas == 1
    assert status.metadata.generation == 1  # status is not spec
    main = apps.patch_namespaced_deployment(
        "web", ns, {"spec": {"replicas": 3}, "status": {"readyReplicas": 99}}
    )
    assert main.spec.replicas == 3 and main.status.ready_replicas == 1
    assert main.metadata.generation == 2
    same = apps.patch_namespaced_deployment("web", ns, {"spec": {"replicas": 3}})
    assert same.metadata.resource_version == main.metadata.resource_version  # a no-op write


def test_scale_subresource(apps: client.AppsV1Api, ns: str) -> None:
    apps.create_namespaced_deployment(ns, deployment("web", 2))
    scale = apps.read_namespaced_deployment_scale("web", ns)
    assert scale.spec.replicas == 2 and scale.status.selector == "app=web"
    apps.patch_namespaced_deployment_scale("web", ns, {"spec": {"replicas": 5}})
    assert apps.read_namespaced_deployment("web", ns).spec.replicas == 5
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment_scale("web", ns, {"spec": {"replicas": -1}})
    assert err.value.status == 422


def _owned(
    name: str, owner: Any, kind: str = "ReplicaSet", api_version: str = "apps/v1"
) -> dict[str, Any]:
    ref = {
        "apiVersion": api_version,
        "kind": kind,
        "name": owner.metadata.name,
        "uid": owner.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }
    return pod(name, {"app": "web"}, ownerReferences=[ref])


def _replica_set(apps: client.AppsV1Api, ns: str, name: str = "rs") -> Any:
    body = deployment(name)
    return apps.create_namespaced_replica_set(ns, body)


def test_gc_background(v1: client.CoreV1Api, apps: client.AppsV1Api, ns: str) -> None:
    rs = _replica_set(apps, ns)
    for name in ("p1", "p2"):
        v1.create_namespaced_pod(ns, _owned(name, rs))
    apps.delete_namespaced_replica_set("rs", ns, propagation_policy="Background")
    with pytest.raises(ApiException):
        apps.read_namespaced_replica_set("rs", ns)  # the owner goes at once
    wait_for(lambda: not v1.list_namespaced_pod(ns).items)


def test_gc_foreground(v1: client.CoreV1Api, apps: client.AppsV1Api, ns: str) -> None:
    rs = _replica_set(apps, ns)
    v1.create_namespaced_pod(ns, _owned("p1", rs))
    v1.create_namespaced_pod(ns, pod("keep", finalizers=["test.io/hold"]))
    held = v1.read_namespaced_pod("keep", ns)
    v1.patch_namespaced_pod(
        "keep",
        ns,
        {"metadata": {"ownerReferences": _owned("x", rs)["metadata"]["ownerReferences"]}},
    )
    apps.delete_namespaced_replica_set("rs", ns, propagation_policy="Foreground")
    owner = apps.read_namespaced_replica_set("rs", ns)  # waits for its dependents
    assert owner.metadata.deletion_timestamp and "foregroundDeletion" in owner.metadata.finalizers
    wait_for(gone(lambda: v1.read_namespaced_pod("p1", ns)))
    assert apps.read_namespaced_replica_set("rs", ns).metadata.deletion_timestamp
    assert v1.read_namespaced_pod("keep", ns).metadata.deletion_timestamp
    v1.patch_namespaced_pod("keep", ns, {"metadata": {"finalizers": None}})
    wait_for(gone(lambda: apps.read_namespaced_replica_set("rs", ns)))
    assert held.metadata.uid


def test_gc_orphan(v1: client.CoreV1Api, apps: client.AppsV1Api, ns: str) -> None:
    rs = _replica_set(apps, ns)
    v1.create_namespaced_pod(ns, _owned("p1", rs))
    apps.delete_namespaced_replica_set("rs", ns, propagation_policy="Orphan")
    wait_for(gone(lambda: apps.read_namespaced_replica_set("rs", ns)))
    orphan = v1.read_namespaced_pod("p1", ns)
    assert not orphan.metadata.owner_references and orphan.metadata.deletion_timestamp is None


def test_gc_deletes_dependents_of_a_missing_owner(
    v1: client.CoreV1Api, apps: client.AppsV1Api, ns: str
) -> None:
    rs = _replica_set(apps, ns)
    apps.delete_namespaced_replica_set("rs", ns)
    v1.create_namespaced_pod(ns, _owned("late", rs))  # its owner is already gone
    wait_for(gone(lambda: v1.read_namespaced_pod("late", ns)))


def test_finalizers_hold_deletion(v1: client.CoreV1Api, ns: str) -> None:
    v1.create_namespaced_pod(ns, pod("p", finalizers=["test.io/hold"]))
    v1.delete_namespaced_pod("p", ns)
    held = v1.read_namespaced_pod("p", ns)
    assert held.metadata.deletion_timestamp and held.metadata.finalizers == ["test.io/hold"]
    with pytest.raises(ApiException) as err:
        v1.patch_namespaced_pod(
            "p", ns, {"metadata": {"finalizers": ["test.io/hold", "test.io/more"]}}
        )
    assert err.value.status == 422
    # A strategic merge patch merges finalizers as a set, as in Kubernetes: [] removes nothing.
    v1.patch_namespaced_pod("p", ns, {"metadata": {"finalizers": []}})
    assert v1.read_namespaced_pod("p", ns).metadata.finalizers == ["test.io/hold"]
    v1.patch_namespaced_pod("p", ns, [{"op": "remove", "path": "/metadata/finalizers/0"}])
    wait_for(gone(lambda: v1.read_namespaced_pod("p", ns)))


def test_graceful_pod_deletion_ends_without_an_agent(v1: client.CoreV1Api, ns: str) -> None:
    v1.create_namespaced_pod(ns, pod("p"))
    v1.create_namespaced_pod_binding(
        "p",
        ns,
        {"metadata": {"name": "p"}, "target": {"kind": "Node", "name": "n1"}},
        _preload_content=False,
    )
    deleted = v1.delete_namespaced_pod("p", ns)
    assert deleted.metadata.deletion_timestamp  # graceful: marked first
    wait_for(gone(lambda: v1.read_namespaced_pod("p", ns)))


def test_namespace_deletion_removes_content(v1: client.CoreV1Api, apps: client.AppsV1Api) -> None:
    ns = "doomed"
    v1.create_namespace({"metadata": {"name": ns}})
    apps.create_namespaced_deployment(ns, deployment("web"))
    v1.create_namespaced_pod(ns, pod("p"))
    client.CoordinationV1Api(v1.api_client).create_namespaced_lease(
        ns, {"metadata": {"name": "l"}, "spec": {}}
    )
    v1.delete_namespace(ns)
    with pytest.raises(ApiException) as err:
        v1.create_namespaced_pod(ns, pod("late"))
    assert err.value.status in (403, 404)  # 403 while terminating, 404 once gone
    wait_for(gone(lambda: v1.read_namespace(ns)))
    assert not v1.list_pod_for_all_namespaces(field_selector=f"metadata.namespace={ns}").items
    with pytest.raises(ApiException) as err:
        v1.delete_namespace("default")
    assert err.value.status == 403


def test_terminating_namespace_refuses_content(v1: client.CoreV1Api, ns: str) -> None:
    v1.create_namespaced_pod(ns, pod("p", finalizers=["test.io/hold"]))
    v1.delete_namespace(ns)
    assert v1.read_namespace(ns).status.phase == "Terminating"
    with pytest.raises(ApiException) as err:
        v1.create_namespaced_pod(ns, pod("late"))
    assert err.value.status == 403 and "being terminated" in status_of(err.value)["message"]
    v1.patch_namespaced_pod("p", ns, {"metadata": {"finalizers": None}})
    wait_for(gone(lambda: v1.read_namespace(ns)))


def test_list_pages(v1: client.CoreV1Api, ns: str) -> None:
    for i in range(7):
        v1.create_namespaced_pod(ns, pod(f"p{i}", {"even": str(i % 2 == 0).lower()}))
    seen, token = [], None
    for _ in range(10):
        page = v1.list_namespaced_pod(ns, limit=3, _continue=token, label_selector="even=true")
        seen += [p.metadata.name for p in page.items]
        token = page.metadata._continue
        if not token:
            break
    assert seen == ["p0", "p2", "p4", "p6"]


def test_log_placeholder(v1: client.CoreV1Api, ns: str) -> None:
    v1.create_namespaced_pod(ns, pod("p"))
    assert "no node agent" in v1.read_namespaced_pod_log("p", ns)
    with pytest.raises(ApiException) as err:
        v1.read_namespaced_pod_log("p", ns, container="nope")
    assert err.value.status == 400


def test_events_and_leases(v1: client.CoreV1Api, ns: str) -> None:
    v1.create_namespaced_event(
        ns,
        {
            "metadata": {"name": "e1"},
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": ns},
            "reason": "Tested",
            "message": "hello",
            "type": "Normal",
        },
    )
    assert [
        e.reason for e in v1.list_namespaced_event(ns, field_selector="reason=Tested").items
    ] == ["Tested"]
    leases = client.CoordinationV1Api(v1.api_client)
    lease = leases.create_namespaced_lease(
        ns,
        {"metadata": {"name": "lock"}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}},
    )
    lease.spec.holder_identity = "b"
    assert leases.replace_namespaced_lease("lock", ns, lease).spec.holder_identity == "b"
    with pytest.raises(ApiException) as err:
        leases.replace_namespaced_lease("lock", ns, lease)  # stale: the lock was taken meanwhile
    assert err.value.status == 409


def test_authentication(server: ApiServer) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}):
        request = urllib.request.Request(f"{server.url}/api/v1/pods", headers=headers)
        import ssl

        context = ssl.create_default_context(cadata=(server.ca_cert or b"").decode())
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(request, timeout=5, context=context)
        body = json.loads(err.value.read())
        assert (
            err.value.code == 401 and body["reason"] == "Unauthorized" and body["kind"] == "Status"
        )
    version = urllib.request.urlopen(f"{server.url}/version", timeout=5, context=context)
    assert json.loads(version.read())["major"] == "1"


@pytest.mark.skipif(ETCD is None, reason="etcd is not installed (Debian package etcd-server)")
def test_etcd_store_behind_the_api() -> None:
    with running_etcd() as url, ApiServer.start(f"{url}/cluster", tls=False) as srv:
        v1 = client.CoreV1Api(config.new_client_from_config(config_file=str(srv.kubeconfig)))
        start = v1.list_namespaced_pod("default").metadata.resource_version
        v1.create_namespaced_pod("default", pod("a", {"app": "web"}))
        stale = v1.read_namespaced_pod("a", "default")
        v1.patch_namespaced_pod("a", "default", {"metadata": {"labels": {"x": "1"}}})
        with pytest.raises(ApiException) as err:
            v1.replace_namespaced_pod("a", "default", stale)
        assert err.value.status == 409
        w = watch.Watch()
        seen = []
        for event in w.stream(
            v1.list_namespaced_pod, "default", resource_version=start, timeout_seconds=5
        ):
            seen.append(event["type"])
            if len(seen) == 2:
                w.stop()
        assert seen == ["ADDED", "MODIFIED"]
        ns = v1.create_namespace({"metadata": {"name": "gone-soon"}})
        v1.create_namespaced_pod("gone-soon", pod("p"))
        v1.delete_namespace(ns.metadata.name)
        wait_for(gone(lambda: v1.read_namespace("gone-soon")))


def test_stop_ends_open_watches_and_connections() -> None:
    import socket

    with ApiServer.start(tls=False) as srv:
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        sock.sendall(
            b"GET /api/v1/pods?watch=true HTTP/1.1\r\nHost: x\r\n"
            + f"Authorization: Bearer {srv.token}\r\n\r\n".encode()
        )
        assert sock.recv(100).startswith(b"HTTP/1.1 200")
        idle = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        started = time.monotonic()
    assert time.monotonic() - started < 3
    sock.settimeout(3)
    rest = b""
    while chunk := sock.recv(4096):  # the server ends the stream, then closes
        rest += chunk
    assert rest.endswith(b"0\r\n\r\n")  # the stream ended cleanly
    idle.settimeout(3)
    try:
        assert idle.recv(10) == b""  # closed (or reset, if still in the listen backlog)
    except ConnectionResetError:
        pass
    sock.close()
    idle.close()
