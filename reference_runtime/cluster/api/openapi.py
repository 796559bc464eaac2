"""A minimal OpenAPI v3 document: enough for kubectl, not a schema of the types.

kubectl 1.32 reads ``/openapi/v3`` before ``apply``/``create`` to learn whether the
server validates fields itself: it looks, per group-version, for a PATCH operation
tagged with the kind's ``x-kubernetes-group-version-kind`` that lists the
``fieldValidation`` query parameter. We list every resource's operations with their
parameters and no schemas, so kubectl leaves validation to the server and computes
strategic merge patches from its compiled-in types (no ``requestBody`` is advertised).
``/openapi/v2`` is not served (404), which kubectl tolerates once v3 answers. Tools that
need real schemas (``kubectl explain``) do not work.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ..errors import NotFoundError
from .discovery import KUBERNETES_VERSION
from .resources import RESOURCES, Resource, group_versions

__all__ = ["openapi_v3"]

_QUERY = ("dryRun", "fieldManager", "fieldValidation", "pretty")


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _param(name: str, where: str = "query") -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "schema": {"type": "string", "uniqueItems": True},
    }


def _operations(r: Resource, kind_gvk: dict[str, str], item: bool) -> dict[str, Any]:
    ops: dict[str, Any] = {}
    verbs = (
        [("get", "get"), ("put", "update"), ("patch", "patch"), ("delete", "delete")]
        if item
        else [("get", "list"), ("post", "create")]
    )
    for method, verb in verbs:
        if verb not in r.verbs:
            continue
        ops[method] = {
            "operationId": f"{verb}{r.kind}",
            "parameters": [_param(p) for p in _QUERY],
            "responses": {"200": {"description": "OK"}},
            "x-kubernetes-action": verb,
            "x-kubernetes-group-version-kind": kind_gvk,
        }
    return ops


def _document(group: str, version: str) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    base = "/" + _gv_path(group, version)
    for r in RESOURCES:
        if (r.group, r.version) != (group, version):
            continue
        gvk = {"group": r.group, "version": r.version, "kind": r.kind}
        collection = (
            f"{base}/namespaces/{{namespace}}/{r.plural}" if r.namespaced else f"{base}/{r.plural}"
        )
        paths[collection] = _operations(r, gvk, item=False)
        if r.verbs != ("create",):
            paths[f"{collection}/{{name}}"] = _operations(r, gvk, item=True)
        for sub in r.subresources:
            if sub in ("status", "scale"):
                sub_gvk = (
                    gvk
                    if sub == "status"
                    else {"group": "autoscaling", "version": "v1", "kind": "Scale"}
                )
                ops = _operations(r, sub_gvk, item=True)
                ops.pop("delete", None)
                paths[f"{collection}/{{name}}/{sub}"] = ops
    major, minor = KUBERNETES_VERSION
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (reference cluster)", "version": f"v{major}.{minor}.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }


def _hash(doc: dict[str, Any]) -> str:
    return hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32].upper()


def openapi_v3(path: str) -> dict[str, Any]:
    """The document at ``path`` (``/openapi/v3`` or ``/openapi/v3/<gv path>``)."""
    gvs = {_gv_path(g, v): (g, v) for g, v in group_versions()}
    if path == "/openapi/v3":
        listing = {}
        for gv_path, (g, v) in gvs.items():
            listing[gv_path] = {
                "serverRelativeURL": f"/openapi/v3/{gv_path}?hash={_hash(_document(g, v))}"
            }
        return {"paths": listing}
    gv = gvs.get(path.removeprefix("/openapi/v3/"))
    if gv is None:
        raise NotFoundError(f"the server could not find the requested resource (path {path})")
    return _document(*gv)
