"""API semantics: CRUD, resourceVersion conflicts, generateName, selectors, the status
subresource, errors as Status objects, validation, watches, deletion (owner references,
finalizers, namespaces).

Pods here use a scheduler nobody answers to (``_support.UNSCHEDULED``), so nothing but
the test writes them; every object lives in the test's own namespace.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kubernetes.client.exceptions import ApiException

from pytest_containers.cluster import (
    ClusterFactory,
    delete_namespace,
    make_namespace,
    requires_fault,
)
from pytest_containers.clusters import ClusterAdapter

from ._support import api_error, gone, owner_ref, pod, pod_names, raw_request, status_of, wait_for

requirement = pytest.mark.requirement
TIMEOUT = 30.0


# -- CRUD, resourceVersion, generateName ----------------------------------------------------


@requirement("CL-API-CRUD-1", "CL-API-META-1")
def test_create_then_get_round_trips(v1: Any, cluster_namespace: str) -> None:
    made = v1.create_namespaced_pod(cluster_namespace, pod("a", labels={"app": "web"}))
    got = v1.read_namespaced_pod("a", cluster_namespace)
    assert got.metadata.labels == {"app": "web"}
    assert got.spec.containers[0].command == ["sleep", "3600"]
    assert got.spec.scheduler_name == made.spec.scheduler_name
    assert got.metadata.uid and got.metadata.creation_timestamp and got.metadata.resource_version
    assert got.metadata.uid == made.metadata.uid


@requirement("CL-API-CRUD-2", "CL-API-RV-2")
def test_replace_and_delete(v1: Any, cluster_namespace: str) -> None:
    made = v1.create_namespaced_pod(cluster_namespace, pod("a"))
    body = v1.read_namespaced_pod("a", cluster_namespace)
    body.metadata.labels = {"tier": "new"}
    body.spec.containers[0].image = "busybox:other"
    replaced = v1.replace_namespaced_pod("a", cluster_namespace, body)
    assert replaced.metadata.resource_version != made.metadata.resource_version
    got = v1.read_namespaced_pod("a", cluster_namespace)
    assert (got.metadata.labels, got.spec.containers[0].image) == ({"tier": "new"}, "busybox:other")
    v1.delete_namespaced_pod("a", cluster_namespace, grace_period_seconds=0)
    wait_for(lambda: gone(lambda: v1.read_namespaced_pod("a", cluster_namespace)), "pod deleted")


@requirement("CL-API-RV-1")
def test_stale_resource_version_is_a_conflict(v1: Any, cluster_namespace: str) -> None:
    v1.create_namespaced_pod(cluster_namespace, pod("a"))
    first = v1.read_namespaced_pod("a", cluster_namespace)
    v1.patch_namespaced_pod("a", cluster_namespace, {"metadata": {"labels": {"v": "2"}}})
    first.metadata.labels = {"v": "stale"}
    exc = api_error(lambda: v1.replace_namespaced_pod("a", cluster_namespace, first))
    assert exc.status == 409, exc
    assert status_of(exc).get("reason") == "Conflict"
    assert v1.read_namespaced_pod("a", cluster_namespace).metadata.labels == {"v": "2"}


@requirement("CL-API-GENNAME-1")
@given(prefix=st.from_regex(r"[a-z][a-z0-9]{0,8}-", fullmatch=True))
def test_generate_name(v1: Any, cluster_namespace: str, prefix: str) -> None:
    names = {
        v1.create_namespaced_pod(cluster_namespace, pod(generate=prefix)).metadata.name
        for _ in range(3)
    }
    assert len(names) == 3
    assert all(n.startswith(prefix) and len(n) > len(prefix) for n in names), names


@requirement("CL-API-EXISTS-1")
def test_create_of_a_taken_name(v1: Any, cluster_namespace: str) -> None:
    v1.create_namespaced_pod(cluster_namespace, pod("a"))
    exc = api_error(lambda: v1.create_namespaced_pod(cluster_namespace, pod("a")))
    assert (exc.status, status_of(exc).get("reason")) == (409, "AlreadyExists")


# -- selectors -------------------------------------------------------------------------------

KEYS = ("app", "tier")
VALUES = ("a", "b", "c")
labels_st = st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=2)


@st.composite
def selectors(draw: st.DrawFn) -> str:
    key = draw(st.sampled_from(KEYS))
    kind = draw(st.sampled_from(["=", "!=", "in", "notin", "exists", "!exists"]))
    if kind in ("=", "!="):
        return f"{key}{kind}{draw(st.sampled_from(VALUES))}"
    if kind in ("in", "notin"):
        values = draw(st.lists(st.sampled_from(VALUES), min_size=1, max_size=2, unique=True))
        return f"{key} {kind} ({','.join(values)})"
    return key if kind == "exists" else f"!{key}"


def matches(labels: dict[str, str], selector: str) -> bool:
    """The model: one requirement of a label selector, as labels.Parse reads it."""
    for op in (" notin ", " in "):
        if op in selector:
            key, values = selector.split(op)
            chosen = set(values.strip("()").split(","))
            return labels.get(key) in chosen if op == " in " else labels.get(key) not in chosen
    if "!=" in selector:
        key, value = selector.split("!=")
        return labels.get(key) != value
    if "=" in selector:
        key, value = selector.split("=")
        return labels.get(key) == value
    if selector.startswith("!"):
        return selector[1:] not in labels
    return selector in labels


@requirement("CL-API-LABELSEL-1")
@given(sets=st.lists(labels_st, min_size=1, max_size=5), selector=selectors())
def test_label_selector(
    v1: Any, cluster_namespace: str, sets: list[dict[str, str]], selector: str
) -> None:
    v1.delete_collection_namespaced_pod(cluster_namespace, grace_period_seconds=0)
    wait_for(lambda: not v1.list_namespaced_pod(cluster_namespace).items, "pods cleared")
    for i, labels in enumerate(sets):
        v1.create_namespaced_pod(cluster_namespace, pod(f"p{i}", labels=labels))
    found = pod_names(v1.list_namespaced_pod(cluster_namespace, label_selector=selector).items)
    expected = {f"p{i}" for i, labels in enumerate(sets) if matches(labels, selector)}
    assert found == expected, f"selector {selector!r} over {sets!r}"


PHASES = ("Pending", "Running", "Succeeded", "Failed")


@requirement("CL-API-FIELDSEL-2", "CL-API-STATUS-2")
@given(phases=st.lists(st.sampled_from(PHASES), min_size=1, max_size=5))
def test_field_selector_on_phase(v1: Any, cluster_namespace: str, phases: list[str]) -> None:
    v1.delete_collection_namespaced_pod(cluster_namespace, grace_period_seconds=0)
    wait_for(lambda: not v1.list_namespaced_pod(cluster_namespace).items, "pods cleared")
    for i, phase in enumerate(phases):
        v1.create_namespaced_pod(cluster_namespace, pod(f"p{i}"))
        body = v1.read_namespaced_pod(f"p{i}", cluster_namespace)
        body.status.phase = phase
        body.spec.containers[0].image = "busybox:ignored"
        written = v1.replace_namespaced_pod_status(f"p{i}", cluster_namespace, body)
        assert written.status.phase == phase
        assert written.spec.containers[0].image == "busybox", "status write changed the spec"
    for phase in PHASES:
        items = v1.list_namespaced_pod(cluster_namespace, field_selector=f"status.phase={phase}")
        expected = {f"p{i}" for i, p in enumerate(phases) if p == phase}
        assert pod_names(items.items) == expected, f"status.phase={phase} over {phases!r}"


@requirement("CL-API-FIELDSEL-1")
def test_field_selector_on_node_name(
    cluster: ClusterAdapter, v1: Any, cluster_namespace: str
) -> None:
    nodes = cluster.node_names()[:2]
    if not nodes:
        pytest.skip("the cluster has no nodes")
    v1.create_namespaced_pod(cluster_namespace, pod("unbound"))
    for i, node in enumerate(nodes):
        v1.create_namespaced_pod(cluster_namespace, pod(f"on{i}", scheduler=None, node_name=node))
    for i, node in enumerate(nodes):
        items = v1.list_namespaced_pod(cluster_namespace, field_selector=f"spec.nodeName={node}")
        assert pod_names(items.items) == {f"on{i}"}
    unbound = v1.list_namespaced_pod(cluster_namespace, field_selector="spec.nodeName=")
    assert pod_names(unbound.items) == {"unbound"}


@requirement("CL-API-STATUS-1")
def test_main_resource_ignores_status(v1: Any, cluster_namespace: str) -> None:
    v1.create_namespaced_pod(cluster_namespace, pod("a"))
    body = v1.read_namespaced_pod("a", cluster_namespace)
    body.status.phase = "Failed"
    body.metadata.labels = {"changed": "yes"}
    replaced = v1.replace_namespaced_pod("a", cluster_namespace, body)
    assert replaced.metadata.labels == {"changed": "yes"}
    assert v1.read_namespaced_pod("a", cluster_namespace).status.phase == "Pending"


# -- errors ----------------------------------------------------------------------------------


@requirement("CL-API-ERR-1", "CL-API-ERR-2")
@pytest.mark.parametrize(
    ("method", "path", "body", "code"),
    [
        ("GET", "/api/v1/namespaces/{ns}/pods/missing", None, 404),
        ("GET", "/api/v1/namespaces/{ns}/no-such-resources", None, 404),
        ("POST", "/api/v1/namespaces/{ns}/pods", b"{this is not json", 400),
        ("POST", "/api/v1/namespaces/{ns}/pods", b"[1, 2]", 400),
        ("DELETE", "/api/v1/namespaces/{ns}/pods/missing", None, 404),
        ("PUT", "/api/v1/namespaces/{ns}/pods/missing", b'{"kind": "Pod"}', 400),
    ],
)
def test_errors_are_status_objects(
    cluster: ClusterAdapter,
    cluster_namespace: str,
    method: str,
    path: str,
    body: bytes | None,
    code: int,
) -> None:
    got, data = raw_request(cluster, method, path.format(ns=cluster_namespace), body)
    assert 400 <= got < 500, f"{method} {path} answered {got}: {data[:200]!r}"
    status = json.loads(data)
    assert status.get("kind") == "Status", status
    assert status.get("code") == got and status.get("status") == "Failure", status
    assert status.get("reason") and status.get("message"), status
    if code != 400:  # 400 vs 422 for a body without a name is the server's choice
        assert got == code, status


@requirement("CL-API-VALID-1", "CL-API-ERR-1")
@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda p: p["metadata"].update(name="Not_A_DNS_Name"), "metadata.name"),
        (lambda p: p["spec"].update(containers=[]), "spec.containers"),
        (lambda p: p["spec"]["containers"][0].update(name="Bad Name"), "spec.containers[0].name"),
        (lambda p: p["spec"].update(restartPolicy="Sometimes"), "spec.restartPolicy"),
    ],
)
def test_invalid_objects_are_422(v1: Any, cluster_namespace: str, change: Any, field: str) -> None:
    body = pod("valid")
    change(body)
    exc = api_error(lambda: v1.create_namespaced_pod(cluster_namespace, body))
    status = status_of(exc)
    assert (exc.status, status.get("reason")) == (422, "Invalid"), status
    causes = (status.get("details") or {}).get("causes") or []
    fields = [c.get("field", "") for c in causes]
    assert any(f == field or f.startswith(field) for f in fields), (field, causes)


# -- watch -----------------------------------------------------------------------------------


def watch_events(
    v1: Any, namespace: str, resource_version: str, count: int, timeout: float = 10.0
) -> list[tuple[str, str, str]]:
    """Up to ``count`` (type, name, resourceVersion) events of a pod watch from a version."""
    response = v1.list_namespaced_pod(
        namespace,
        watch=True,
        resource_version=resource_version,
        timeout_seconds=int(timeout),
        _preload_content=False,
        _request_timeout=timeout + 5,
    )
    events: list[tuple[str, str, str]] = []
    buffer = b""
    deadline = time.monotonic() + timeout
    try:
        for chunk in response.stream(4096, decode_content=True):
            buffer += chunk
            while b"\n" in buffer and len(events) < count:
                line, buffer = buffer.split(b"\n", 1)
                if not line.strip():
                    continue
                event = json.loads(line)
                obj = event["object"]
                if event["type"] == "ERROR":
                    raise ApiException(status=obj.get("code"), reason=obj.get("reason"))
                if event["type"] == "BOOKMARK":
                    continue
                meta = obj["metadata"]
                events.append((event["type"], meta["name"], meta["resourceVersion"]))
            if len(events) >= count or time.monotonic() > deadline:
                break
    finally:
        response.release_conn()
    return events


@requirement("CL-WATCH-ORDER-1", "CL-WATCH-RESUME-1")
@given(ops=st.lists(st.sampled_from(["create", "label", "delete"]), min_size=1, max_size=8))
def test_watch_order_and_resume(v1: Any, cluster_namespace: str, ops: list[str]) -> None:
    start = v1.list_namespaced_pod(cluster_namespace).metadata.resource_version
    expected: list[tuple[str, str]] = []
    live: list[str] = []
    made = 0
    middle = ""
    for i, op in enumerate(ops):
        if op == "create" or not live:
            name = f"w{made}-{start}"
            made += 1
            v1.create_namespaced_pod(cluster_namespace, pod(name))
            live.append(name)
            expected.append(("ADDED", name))
        elif op == "label":
            v1.patch_namespaced_pod(
                live[-1], cluster_namespace, {"metadata": {"labels": {"i": str(i)}}}
            )
            expected.append(("MODIFIED", live[-1]))
        else:
            name = live.pop(0)
            v1.delete_namespaced_pod(name, cluster_namespace, grace_period_seconds=0)
            expected.append(("DELETED", name))
        if i == len(ops) // 2:
            middle = v1.list_namespaced_pod(cluster_namespace).metadata.resource_version
    events = watch_events(v1, cluster_namespace, start, len(expected))
    assert [(t, n) for t, n, _ in events] == expected, f"ops {ops!r}"
    versions = [int(rv) for _, _, rv in events]
    assert versions == sorted(versions) and len(set(versions)) == len(versions), versions
    later = [(t, n) for (t, n), rv in zip(expected, versions, strict=True) if rv > int(middle)]
    resumed = watch_events(v1, cluster_namespace, middle, len(later), timeout=5.0) if later else []
    assert [(t, n) for t, n, _ in resumed] == later, f"resumed at {middle} after ops {ops!r}"
    v1.delete_collection_namespaced_pod(cluster_namespace, grace_period_seconds=0)


@requirement("CL-WATCH-GONE-1")
def test_watch_from_a_compacted_version_is_gone(
    cluster: ClusterAdapter, v1: Any, cluster_namespace: str
) -> None:
    requires_fault(cluster, "compact_store")
    old = v1.list_namespaced_pod(cluster_namespace).metadata.resource_version
    for i in range(3):
        v1.create_namespaced_pod(cluster_namespace, pod(f"g{i}"))
    cluster.compact_store()
    exc = api_error(lambda: watch_events(v1, cluster_namespace, old, 1, timeout=5.0))
    assert exc.status == 410, exc


# -- deletion --------------------------------------------------------------------------------


def _owner(apps_v1: Any, namespace: str, name: str = "owner") -> Any:
    """A ReplicaSet of 0 replicas whose selector matches none of the test's pods."""
    body = {
        "metadata": {"name": name},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"owner-only": name}},
            "template": {
                "metadata": {"labels": {"owner-only": name}},
                "spec": pod()["spec"],
            },
        },
    }
    return apps_v1.create_namespaced_replica_set(namespace, body)


@requirement("CL-GC-BACKGROUND-1")
def test_background_deletion(v1: Any, apps_v1: Any, cluster_namespace: str) -> None:
    owner = _owner(apps_v1, cluster_namespace)
    for i in range(2):
        v1.create_namespaced_pod(cluster_namespace, pod(f"d{i}", owners=[owner_ref(owner)]))
    apps_v1.delete_namespaced_replica_set(
        "owner", cluster_namespace, propagation_policy="Background"
    )
    assert gone(lambda: apps_v1.read_namespaced_replica_set("owner", cluster_namespace))
    wait_for(
        lambda: not v1.list_namespaced_pod(cluster_namespace).items, "dependents removed", TIMEOUT
    )


@requirement("CL-GC-FOREGROUND-1")
def test_foreground_deletion(v1: Any, apps_v1: Any, cluster_namespace: str) -> None:
    owner = _owner(apps_v1, cluster_namespace)
    hold = "pytest-containers.io/hold"
    v1.create_namespaced_pod(
        cluster_namespace, pod("held", owners=[owner_ref(owner, block=True)], finalizers=[hold])
    )
    apps_v1.delete_namespaced_replica_set(
        "owner", cluster_namespace, propagation_policy="Foreground"
    )
    wait_for(
        lambda: v1.read_namespaced_pod("held", cluster_namespace).metadata.deletion_timestamp,
        "the dependent marked for deletion",
        TIMEOUT,
    )
    still = apps_v1.read_namespaced_replica_set("owner", cluster_namespace)
    assert still.metadata.deletion_timestamp is not None
    assert "foregroundDeletion" in (still.metadata.finalizers or [])
    v1.patch_namespaced_pod("held", cluster_namespace, {"metadata": {"finalizers": None}})
    wait_for(
        lambda: gone(lambda: apps_v1.read_namespaced_replica_set("owner", cluster_namespace)),
        "the owner removed after its dependent",
        TIMEOUT,
    )


@requirement("CL-GC-ORPHAN-1")
def test_orphan_deletion(v1: Any, apps_v1: Any, cluster_namespace: str) -> None:
    owner = _owner(apps_v1, cluster_namespace)
    v1.create_namespaced_pod(cluster_namespace, pod("orphan", owners=[owner_ref(owner)]))
    apps_v1.delete_namespaced_replica_set("owner", cluster_namespace, propagation_policy="Orphan")
    wait_for(
        lambda: gone(lambda: apps_v1.read_namespaced_replica_set("owner", cluster_namespace)),
        "the owner removed",
        TIMEOUT,
    )
    wait_for(
        lambda: not v1.read_namespaced_pod("orphan", cluster_namespace).metadata.owner_references,
        "the owner reference removed from the dependent",
        TIMEOUT,
    )
    time.sleep(1.0)  # give a wrong collector the time to remove it anyway
    assert v1.read_namespaced_pod("orphan", cluster_namespace).metadata.deletion_timestamp is None


@requirement("CL-FINALIZER-1")
def test_finalizers_hold_deletion(v1: Any, cluster_namespace: str) -> None:
    v1.create_namespaced_pod(cluster_namespace, pod("f", finalizers=["pytest-containers.io/f"]))
    v1.delete_namespaced_pod("f", cluster_namespace, grace_period_seconds=0)
    held = v1.read_namespaced_pod("f", cluster_namespace)
    assert held.metadata.deletion_timestamp is not None
    time.sleep(0.5)
    assert not gone(lambda: v1.read_namespaced_pod("f", cluster_namespace))
    v1.patch_namespaced_pod("f", cluster_namespace, {"metadata": {"finalizers": None}})
    wait_for(lambda: gone(lambda: v1.read_namespaced_pod("f", cluster_namespace)), "removed")


@requirement("CL-NS-DELETE-1")
def test_namespace_deletion_removes_its_content(
    cluster_factory: ClusterFactory, cluster: ClusterAdapter, v1: Any, apps_v1: Any
) -> None:
    name, record = make_namespace(cluster_factory, cluster)
    try:
        v1.create_namespaced_pod(name, pod("p"))
        _owner(apps_v1, name)
        v1.delete_namespace(name)
        wait_for(lambda: gone(lambda: v1.read_namespace(name)), "namespace removed", 60.0)
        assert not v1.list_namespaced_pod(name).items
        assert not apps_v1.list_namespaced_replica_set(name).items
    finally:
        delete_namespace(cluster, name)
        cluster_factory.ledger.release(record)
