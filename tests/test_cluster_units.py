"""Fast unit tests of the cluster's pure parts: selectors, patches, names, tables, routing."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference_runtime.cluster.api.patch import (
    json_merge_patch,
    json_patch,
    strategic_merge_patch,
)
from reference_runtime.cluster.api.routing import parse_path
from reference_runtime.cluster.api.selectors import (
    parse_field_selector,
    parse_label_selector,
    selector_from_object,
)
from reference_runtime.cluster.api.tables import human_duration
from reference_runtime.cluster.api.validation import name_errors
from reference_runtime.cluster.errors import BadRequestError, InvalidError, NotFoundError

# -- label selectors -----------------------------------------------------------------------

keys = st.sampled_from(["app", "tier", "example.com/role", "x"])
values = st.sampled_from(["web", "db", "a.b", "v-1", ""])
labels = st.dictionaries(keys, values, max_size=4)


@st.composite
def requirements(draw: st.DrawFn) -> tuple[str, Any]:
    """A requirement as selector text and as a model predicate over a label dict."""
    key = draw(keys)
    op = draw(st.sampled_from(["=", "==", "!=", "in", "notin", "exists", "!"]))
    if op in ("=", "==", "!="):
        value = draw(values)
        if op == "!=":
            return f"{key}!={value}", lambda m: m.get(key) != value
        return f"{key}{op}{value}", lambda m: key in m and m[key] == value
    if op in ("in", "notin"):
        vs = draw(st.lists(values.filter(bool), min_size=1, max_size=3))
        if op == "in":
            return f"{key} in ({','.join(vs)})", lambda m: key in m and m[key] in vs
        return f"{key} notin ({','.join(vs)})", lambda m: m.get(key) not in vs
    if op == "exists":
        return key, lambda m: key in m
    return f"!{key}", lambda m: key not in m


@given(st.lists(requirements(), max_size=4), labels)
def test_label_selector_matches_its_model(
    reqs: list[tuple[str, Any]], label_map: dict[str, str]
) -> None:
    selector = parse_label_selector(",".join(text for text, _ in reqs))
    assert selector.matches(label_map) == all(check(label_map) for _, check in reqs)
    again = parse_label_selector(str(selector))  # printing and re-parsing keeps the meaning
    assert again.matches(label_map) == selector.matches(label_map)


@pytest.mark.parametrize(
    "text",
    [
        "a in (",
        "=x",
        "a===b",
        "a notin x",
        "a>",
        "a>b",
        "Bad_Key!",
        "a,",
        ",a",
        "a b",
        "a in ()",
        "a=(b)",
    ],
)
def test_bad_label_selectors(text: str) -> None:
    with pytest.raises(BadRequestError):
        parse_label_selector(text)


def test_numeric_and_object_selectors() -> None:
    assert parse_label_selector("n>3").matches({"n": "4"})
    assert not parse_label_selector("n<3").matches({"n": "x"})
    obj = {
        "matchLabels": {"app": "web"},
        "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}],
    }
    selector = selector_from_object(obj)
    assert str(selector) == "app=web,tier notin (db)"
    assert selector.matches({"app": "web"}) and not selector.matches({"app": "web", "tier": "db"})


def test_field_selectors() -> None:
    fields = frozenset({"metadata.name", "spec.nodeName"})
    selector = parse_field_selector(r"metadata.name=a\,b,spec.nodeName!=", fields)
    assert selector.terms == (("metadata.name", "=", "a,b"), ("spec.nodeName", "!=", ""))
    assert selector.matches({"metadata.name": "a,b", "spec.nodeName": "n1"}.__getitem__)
    for bad in ("status.phase=x", "nonsense", r"metadata.name=a\x", "metadata.name=a=b"):
        with pytest.raises(BadRequestError):
            parse_field_selector(bad, fields)


# -- patches -------------------------------------------------------------------------------

json_docs = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text("abc", max_size=2), inner, max_size=3)
    ),
    max_leaves=10,
)
objects = st.dictionaries(st.text("abc", max_size=2), json_docs, max_size=4)


@given(objects, objects)
def test_merge_patch_is_idempotent_and_pure(doc: dict[str, Any], patch: dict[str, Any]) -> None:
    before = copy.deepcopy(doc)
    once = json_merge_patch(doc, patch)
    assert json_merge_patch(once, patch) == once
    assert doc == before  # arguments are never changed
    for key, value in patch.items():
        if value is None:
            assert key not in once


no_lists = st.recursive(
    st.booleans() | st.integers() | st.text(max_size=4),
    lambda inner: st.dictionaries(st.text("abc", min_size=1, max_size=2), inner, max_size=3),
    max_leaves=10,
)


@given(
    st.dictionaries(st.text("abc", max_size=2), no_lists, max_size=4),
    st.dictionaries(st.text("abc", max_size=2), no_lists | st.none(), max_size=4),
)
def test_strategic_merge_without_lists_is_a_merge_patch(
    doc: dict[str, Any], patch: dict[str, Any]
) -> None:
    assert strategic_merge_patch(doc, patch) == json_merge_patch(doc, patch)


def test_strategic_merge_lists() -> None:
    doc = {
        "metadata": {"finalizers": ["a"]},
        "spec": {
            "containers": [
                {"name": "web", "image": "1", "ports": [{"containerPort": 80}]},
                {"name": "side", "image": "s"},
            ],
            "tolerations": [{"key": "x"}],
        },
    }
    patch = {
        "metadata": {"finalizers": ["b"]},
        "spec": {
            "$setElementOrder/containers": [{"name": "side"}, {"name": "web"}],
            "containers": [
                {"name": "web", "image": "2"},
                {"name": "side", "$patch": "delete"},
                {"name": "new", "image": "n"},
            ],
            "tolerations": [{"key": "y"}],
        },
    }
    result = strategic_merge_patch(doc, patch)
    assert result["metadata"]["finalizers"] == ["a", "b"]
    assert [(c["name"], c["image"]) for c in result["spec"]["containers"]] == [
        ("web", "2"),
        ("new", "n"),
    ]
    assert result["spec"]["containers"][0]["ports"] == [
        {"containerPort": 80}
    ]  # merged, not replaced
    assert result["spec"]["tolerations"] == [{"key": "y"}]  # no merge key: replaced
    replaced = strategic_merge_patch(doc, {"spec": {"$patch": "replace", "x": 1}})
    assert replaced["spec"] == {"x": 1}
    retained = strategic_merge_patch({"a": 1, "b": 2}, {"$retainKeys": ["b"], "b": 3})
    assert retained == {"b": 3}
    pruned = strategic_merge_patch(
        doc, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}
    )
    assert pruned["metadata"]["finalizers"] == []


def test_json_patch_operations() -> None:
    doc = {"a": {"b": [1, 2]}, "c": "x"}
    ops = [
        {"op": "add", "path": "/a/b/-", "value": 3},
        {"op": "add", "path": "/a/b/0", "value": 0},
        {"op": "replace", "path": "/c", "value": "y"},
        {"op": "copy", "from": "/c", "path": "/d"},
        {"op": "move", "from": "/d", "path": "/e~1f"},
        {"op": "remove", "path": "/a/b/1"},
        {"op": "test", "path": "/e~1f", "value": "y"},
    ]
    assert json_patch(doc, ops) == {"a": {"b": [0, 2, 3]}, "c": "y", "e/f": "y"}
    assert doc == {"a": {"b": [1, 2]}, "c": "x"}
    with pytest.raises(InvalidError):
        json_patch(doc, [{"op": "test", "path": "/c", "value": "nope"}])
    with pytest.raises(InvalidError):
        json_patch(doc, [{"op": "remove", "path": "/missing"}])
    with pytest.raises(BadRequestError):
        json_patch(doc, [{"op": "add", "path": "/x"}])


@given(objects, st.text("abc", min_size=1, max_size=2), json_docs)
def test_json_patch_add_then_remove_restores(doc: dict[str, Any], key: str, value: Any) -> None:
    if key in doc:
        return
    pointer = "/" + key.replace("~", "~0").replace("/", "~1")
    added = json_patch(doc, [{"op": "add", "path": pointer, "value": value}])
    assert json_patch(added, [{"op": "remove", "path": pointer}]) == doc


# -- names, tables, routing ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "name", "ok"),
    [
        ("label", "web-1", True),
        ("label", "a" * 63, True),
        ("label", "a" * 64, False),
        ("label", "a.b", False),
        ("subdomain", "a.b-c", True),
        ("subdomain", "a" * 253, True),
        ("subdomain", "a" * 254, False),
        ("subdomain", "-a", False),
        ("subdomain", "A", False),
        ("subdomain", "a_b", False),
        ("subdomain", "", False),
    ],
)
def test_names(rule: str, name: str, ok: bool) -> None:
    assert (not name_errors(rule, name)) is ok


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (119, "119s"),
        (125, "2m5s"),
        (600, "10m"),
        (3 * 3600 + 120, "3h2m"),
        (30 * 3600, "30h"),
        (3 * 86400 + 3600, "3d1h"),
        (400 * 86400, "400d"),
        (3 * 365 * 86400, "3y"),
    ],
)
def test_human_duration(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text


def test_routing() -> None:
    route = parse_path("/apis/apps/v1/namespaces/ns/deployments/web/scale")
    assert route.resource is not None and route.resource.plural == "deployments"
    assert (route.namespace, route.name, route.subresource) == ("ns", "web", "scale")
    ns = parse_path("/api/v1/namespaces/ns/status")
    assert ns.resource is not None and (ns.resource.plural, ns.name, ns.subresource) == (
        "namespaces",
        "ns",
        "status",
    )
    assert parse_path("/api/v1/watch/namespaces/ns/pods").legacy_watch
    for bad in (
        "/api/v1/namespaces/ns/nodes",
        "/api/v1/pods/x/scale",
        "/apis/apps/v1/pods",
        "/nope",
    ):
        with pytest.raises(NotFoundError):
            parse_path(bad)
