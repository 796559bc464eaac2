"""Bad input to the reference cluster's API: always a ``Status`` with the right code, never 500."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reference_runtime.cluster.api import ApiServer

PODS = "/api/v1/namespaces/default/pods"
DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"
JSON = "application/json"
MERGE = "application/merge-patch+json"


class Raw:
    """A keep-alive HTTP client that reconnects when the server closed the connection."""

    def __init__(self, server: ApiServer) -> None:
        self.port, self.token = server.port, server.token
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def call(
        self,
        method: str,
        path: str,
        body: bytes | str | None = None,
        content_type: str = JSON,
        headers: dict[str, str] | None = None,
        token: bool = True,
    ) -> tuple[int, Any]:
        data = body.encode() if isinstance(body, str) else body
        all_headers = {"Content-Type": content_type, **(headers or {})}
        if token:
            all_headers["Authorization"] = f"Bearer {self.token}"
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, data, all_headers)
                resp = self.conn.getresponse()
                payload = resp.read()
                if resp.will_close:
                    self.conn.close()
                break
            except (ConnectionError, http.client.HTTPException):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                if attempt == 2:
                    raise
        try:
            return resp.status, json.loads(payload)
        except ValueError:
            return resp.status, payload


@pytest.fixture(scope="module")
def server() -> Iterator[ApiServer]:
    with ApiServer.start(tls=False, collectors=False) as srv:
        yield srv


@pytest.fixture(scope="module")
def raw(server: ApiServer) -> Raw:
    r = Raw(server)
    code, _ = r.call("POST", PODS, json.dumps(_pod("existing")))
    assert code == 201
    code, _ = r.call("POST", DEPLOYMENTS, json.dumps(_deployment("existing")))
    assert code == 201
    return r


def _pod(name: str = "p", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec},
    }


def _deployment(name: str = "d") -> dict[str, Any]:
    labels = {"app": "x"}
    return {
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": _pod()["spec"]},
        },
    }


def _assert_status(code: int, body: Any, expected: int) -> None:
    __tracebackhide__ = True
    assert code != 500, body
    assert code == expected, body
    assert isinstance(body, dict) and body.get("kind") == "Status", body
    assert body["status"] == "Failure" and body["code"] == expected and body["reason"]


def _with(obj: dict[str, Any], path: str, value: Any) -> str:
    """``obj`` with the dotted ``path`` set to ``value``, as JSON."""
    doc = json.loads(json.dumps(obj))
    node = doc
    parts = path.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return json.dumps(doc)


BAD_POD_BODIES = [
    ("not json", 400),
    ("", 400),
    ("[]", 400),
    ('"a string"', 400),
    ("null", 400),
    ("{}", 422),
    ('{"metadata": []}', 400),
    (_with(_pod(), "metadata.name", 5), 400),
    (_with(_pod(), "metadata.name", "Bad_Name"), 422),
    (_with(_pod(), "metadata.name", "a" * 254), 422),
    (_with(_pod(), "metadata.name", "a/b"), 422),
    (_with(_pod(), "metadata.name", ".."), 422),
    (_with(_pod(), "metadata.generateName", "Bad_"), 422),
    (_with(_pod(), "metadata.labels", {"bad key!": "v"}), 422),
    (_with(_pod(), "metadata.labels", {"k": "v" * 64}), 422),
    (_with(_pod(), "metadata.labels", {"k": 1}), 400),
    (_with(_pod(), "metadata.annotations", ["a"]), 400),
    (_with(_pod(), "metadata.finalizers", ["bad finalizer"]), 422),
    (_with(_pod(), "metadata.finalizers", "x"), 400),
    (_with(_pod(), "metadata.ownerReferences", [{"kind": "ReplicaSet"}]), 422),
    (_with(_pod(), "metadata.ownerReferences", [None]), 400),
    (_with(_pod(), "metadata.namespace", "other"), 400),
    (_with(_pod(), "kind", "Node"), 400),
    (_with(_pod(), "apiVersion", "v2"), 400),
    (_with(_pod(), "spec", "x"), 400),
    (_with(_pod(), "spec.containers", "x"), 400),
    (_with(_pod(), "spec.containers", []), 422),
    (_with(_pod(), "spec.containers", [{"name": "c"}]), 422),
    (_with(_pod(), "spec.containers", [{"image": "i"}]), 422),
    (_with(_pod(), "spec.containers", [{"name": "C_", "image": "i"}]), 422),
    (_with(_pod(), "spec.containers", [{"name": "c", "image": "i"}] * 2), 422),
    (
        _with(
            _pod(),
            "spec.containers",
            [{"name": "c", "image": "i", "ports": [{"containerPort": 0}]}],
        ),
        422,
    ),
    (
        _with(
            _pod(),
            "spec.containers",
            [{"name": "c", "image": "i", "ports": [{"containerPort": 2**40}]}],
        ),
        400,
    ),
    (_with(_pod(), "spec.containers", [{"name": "c", "image": 5}]), 400),
    (_with(_pod(), "spec.restartPolicy", "Sometimes"), 422),
    (_with(_pod(), "spec.nodeName", "Not A Node"), 422),
    (_with(_pod(), "spec.terminationGracePeriodSeconds", -5), 422),
    (_with(_pod(), "spec.terminationGracePeriodSeconds", 1.5), 400),
    (_with(_pod(), "spec.nodeSelector", {"k": ["v"]}), 400),
    (_with(_pod(), "status", []), 400),
    (json.dumps(_pod("existing")), 409),
    ("[" * 100_000 + "]" * 100_000, 400),
    ('{"metadata": {"name": "x\\u0000"}}', 422),
]


@pytest.mark.parametrize(("body", "expected"), BAD_POD_BODIES, ids=range(len(BAD_POD_BODIES)))
def test_bad_pod_bodies(raw: Raw, body: str, expected: int) -> None:
    _assert_status(*raw.call("POST", PODS, body), expected)


BAD_DEPLOYMENTS = [
    (_with(_deployment(), "spec.replicas", -1), 422),
    (_with(_deployment(), "spec.replicas", "3"), 400),
    (_with(_deployment(), "spec.selector", {}), 422),
    (_with(_deployment(), "spec.selector", {"matchLabels": {"app": "other"}}), 422),
    (
        _with(
            _deployment(), "spec.selector.matchExpressions", [{"key": "app", "operator": "Maybe"}]
        ),
        422,
    ),
    (
        _with(_deployment(), "spec.selector.matchExpressions", [{"key": "app", "operator": "In"}]),
        422,
    ),
    (_with(_deployment(), "spec.template", None), 422),
    (_with(_deployment(), "spec.template.spec.restartPolicy", "Never"), 422),
    (_with(_deployment(), "spec.strategy", {"type": "Sideways"}), 422),
]


@pytest.mark.parametrize(("body", "expected"), BAD_DEPLOYMENTS, ids=range(len(BAD_DEPLOYMENTS)))
def test_bad_deployment_bodies(raw: Raw, body: str, expected: int) -> None:
    _assert_status(*raw.call("POST", DEPLOYMENTS, body), expected)


BAD_REQUESTS = [
    ("GET", "/api/v2/pods", 404),
    ("GET", "/api/v1/widgets", 404),
    ("GET", "/apis/apps/v9/deployments", 404),
    ("GET", "/apis/nope", 404),
    ("GET", "/apis/nope/v1", 404),
    ("GET", "/api/v1/namespaces/default/pods/x/exec", 404),
    ("GET", "/api/v1/nodes/x/binding", 404),
    ("GET", "/api/v1/namespaces/default/nodes", 404),
    ("GET", "/api/v1/namespaces//pods", 404),
    ("GET", "/api/v1/namespaces/default/pods/a/b/c", 404),
    ("GET", "/openapi/v3/apis/nope/v1", 404),
    ("GET", "/openapi/v2", 404),
    ("GET", "/%ff%fe", 404),
    ("GET", "/api/v1/namespaces/default/pods/missing", 404),
    ("GET", "/api/v1/namespaces/nowhere/pods/missing", 404),
    ("POST", "/api/v1/namespaces/nowhere/pods", 404),
    ("GET", "/apis/apps/v1/namespaces/default/deployments/missing/scale", 404),
    ("POST", f"{PODS}/existing", 405),
    ("PUT", PODS, 405),
    ("PATCH", PODS, 405),
    ("DELETE", f"{PODS}/existing/log", 405),
    ("POST", "/version", 405),
    ("HEAD", PODS, 405),
    ("OPTIONS", PODS, 405),
    ("FOO", PODS, 405),
    ("GET", f"{PODS}?labelSelector=a+in+(", 400),
    ("GET", f"{PODS}?labelSelector=%3Dx", 400),
    ("GET", f"{PODS}?labelSelector=a%3D%3D%3Db", 400),
    ("GET", f"{PODS}?labelSelector=a+notin+x", 400),
    ("GET", f"{PODS}?labelSelector=a%3E", 400),
    ("GET", f"{PODS}?labelSelector=Bad_Key!", 400),
    ("GET", f"{PODS}?fieldSelector=spec.bogus%3Dx", 400),
    ("GET", f"{PODS}?fieldSelector=nonsense", 400),
    ("GET", f"{PODS}?limit=abc", 400),
    ("GET", f"{PODS}?limit=-1", 400),
    ("GET", f"{PODS}?continue=garbage", 400),
    ("GET", f"{PODS}?resourceVersion=abc", 400),
    ("GET", f"{PODS}?watch=maybe", 400),
    ("GET", f"{PODS}?watch=true&resourceVersion=abc", 400),
    ("GET", f"{PODS}?watch=true&timeoutSeconds=x", 400),
    ("GET", f"{PODS}?resourceVersion=99999999", 504),
    ("DELETE", f"{PODS}/existing?propagationPolicy=Sideways", 422),
    ("DELETE", f"{PODS}/existing?gracePeriodSeconds=soon", 400),
    ("DELETE", f"{PODS}/existing?dryRun=Some", 400),
    ("DELETE", "/api/v1/namespaces/default", 403),
    ("GET", f"{PODS}/existing/log?tailLines=x", 400),
    ("GET", f"{PODS}/existing/log?container=nope", 400),
    ("GET", f"{PODS}/missing/log", 404),
]


@pytest.mark.parametrize(("method", "path", "expected"), BAD_REQUESTS, ids=range(len(BAD_REQUESTS)))
def test_bad_paths_methods_and_queries(raw: Raw, method: str, path: str, expected: int) -> None:
    body = json.dumps(_pod()) if method == "POST" else None
    code, reply = raw.call(method, path, body)
    if method == "HEAD":
        assert code == expected and reply == b""  # no body in an answer to HEAD
    else:
        _assert_status(code, reply, expected)


BAD_PATCHES = [
    (MERGE, "not json", 400),
    (MERGE, '{"metadata": "x"}', 400),
    (MERGE, '{"metadata": {"name": "other"}}', 400),
    (MERGE, '{"metadata": {"resourceVersion": "1"}}', 409),
    (MERGE, '{"metadata": {"resourceVersion": "abc"}}', 400),
    (MERGE, '{"spec": {"containers": "x"}}', 400),
    (MERGE, '{"spec": {"nodeName": "elsewhere"}}', 422),
    (MERGE, '{"kind": "Node"}', 400),
    (MERGE, "[1, 2]", 400),
    ("application/strategic-merge-patch+json", '{"$patch": "bogus"}', 400),
    ("application/strategic-merge-patch+json", '{"$unknown": 1}', 400),
    ("application/strategic-merge-patch+json", "[]", 400),
    ("application/strategic-merge-patch+json", '{"spec": {"containers": [{"image": "x"}]}}', 400),
    ("application/json-patch+json", "{}", 400),
    ("application/json-patch+json", '[{"op": "frobnicate", "path": "/a"}]', 400),
    ("application/json-patch+json", '[{"op": "add", "path": "no-slash", "value": 1}]', 400),
    ("application/json-patch+json", '[{"op": "add", "path": "/a"}]', 400),
    ("application/json-patch+json", '[{"op": "remove", "path": "/nope/deeper"}]', 422),
    ("application/json-patch+json", '[{"op": "test", "path": "/kind", "value": "Node"}]', 422),
    ("application/json-patch+json", '[{"op": "replace", "path": "", "value": 1}]', 400),
    ("application/json-patch+json", '[{"op": "remove", "path": "/spec/containers/9"}]', 422),
    (
        "application/json-patch+json",
        '[{"op": "add", "path": "/spec/containers/01", "value": {}}]',
        422,
    ),
    (JSON, "{}", 415),
    ("text/plain", "{}", 415),
    ("application/apply-patch+yaml", "{}", 415),
]


@pytest.mark.parametrize(
    ("content_type", "body", "expected"), BAD_PATCHES, ids=range(len(BAD_PATCHES))
)
def test_bad_patches(raw: Raw, content_type: str, body: str, expected: int) -> None:
    _assert_status(*raw.call("PATCH", f"{PODS}/existing", body, content_type), expected)


def test_bad_updates(raw: Raw) -> None:
    _assert_status(*raw.call("PUT", f"{PODS}/existing", json.dumps(_pod("other"))), 400)
    _assert_status(*raw.call("PUT", f"{PODS}/missing", json.dumps(_pod("missing"))), 404)
    _, current = raw.call("GET", f"{PODS}/existing")
    changed = json.loads(_with(current, "spec.restartPolicy", "Never"))
    _assert_status(
        *raw.call("PUT", f"{PODS}/existing", json.dumps(changed)), 422
    )  # pod spec is frozen
    _code, deployment = raw.call("GET", f"{DEPLOYMENTS}/existing")
    moved = _with(deployment, "spec.selector", {"matchLabels": {"app": "x", "b": "c"}})
    _assert_status(*raw.call("PUT", f"{DEPLOYMENTS}/existing", moved), 422)  # selector is immutable
    _assert_status(
        *raw.call("PUT", f"{DEPLOYMENTS}/existing/scale", '{"spec": {"replicas": "x"}}'), 400
    )


def test_negotiation_size_and_auth(raw: Raw, server: ApiServer) -> None:
    protobuf = {"Accept": "application/vnd.kubernetes.protobuf"}
    _assert_status(*raw.call("GET", PODS, headers=protobuf), 406)
    table = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}
    _assert_status(*raw.call("GET", f"{PODS}?includeObject=Everything", headers=table), 400)
    huge = json.dumps(_with(_pod("big"), "metadata.annotations", {"a": "x" * (4 * 1024 * 1024)}))
    _assert_status(*raw.call("POST", PODS, huge), 413)
    _assert_status(*raw.call("GET", PODS, token=False), 401)
    code, _body = raw.call("GET", "/healthz", token=False)
    assert code == 200
    code, _ = raw.call("POST", PODS, json.dumps(_pod("after")))
    assert code == 201  # the server still serves after all of the above


def test_malformed_http(server: ApiServer) -> None:
    import socket

    for request in (
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET " + b"a" * 70000 + b" HTTP/1.1\r\n\r\n",
    ):
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(request)
            reply = sock.recv(65536)
        status = int(reply.split(b" ", 2)[1])
        assert status >= 400 and status != 500, reply[:200]
        assert b'"kind":"Status"' in reply


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "metadata",
                    "spec",
                    "status",
                    "name",
                    "labels",
                    "containers",
                    "image",
                    "kind",
                    "apiVersion",
                    "selector",
                    "template",
                    "replicas",
                    "x",
                ]
            ),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=json_values,
    where=st.sampled_from([PODS, DEPLOYMENTS, "/api/v1/namespaces", "/api/v1/nodes"]),
)
def test_random_bodies_never_500(raw: Raw, body: Any, where: str) -> None:
    code, reply = raw.call("POST", where, json.dumps(body))
    assert code in (201, 400, 403, 404, 409, 422), reply
    if code == 201:
        name = reply["metadata"]["name"]
        raw.call("DELETE", f"{where}/{name}")


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    patch=json_values,
    kind=st.sampled_from(
        [MERGE, "application/strategic-merge-patch+json", "application/json-patch+json"]
    ),
)
def test_random_patches_never_500(raw: Raw, patch: Any, kind: str) -> None:
    code, reply = raw.call("PATCH", f"{DEPLOYMENTS}/existing", json.dumps(patch), kind)
    assert code in (200, 400, 409, 422), reply
