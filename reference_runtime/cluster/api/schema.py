"""Type checks for the parts of objects the server reads, run before validation.

Kubernetes decodes a body into typed structs, so ``"spec": "x"`` is a 400 decode error,
not a 500 later. We keep objects as JSON, so ``check_types`` walks each known field and
raises ``BadRequestError`` on the first mismatch; ``null`` counts as absent and is
removed. Unknown fields are kept as they are.

A schema is a type: ``str``, ``int`` (int64), ``INT32``, ``bool``, ``float`` (a number),
``ANY``, ``QUANTITY`` (string or number), a ``dict`` of field -> schema (an object), a
one-item ``list`` (an array of that schema) or ``MapOf(schema)`` (an object of values).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import BadRequestError

__all__ = ["ANY", "INT32", "QUANTITY", "SCHEMAS", "MapOf", "check_types"]

ANY = object()
INT32 = object()
QUANTITY = object()


@dataclass(frozen=True)
class MapOf:
    values: Any


STRINGS = MapOf(str)

OWNER_REFERENCE = {
    "apiVersion": str,
    "kind": str,
    "name": str,
    "uid": str,
    "controller": bool,
    "blockOwnerDeletion": bool,
}
METADATA = {
    "name": str,
    "generateName": str,
    "namespace": str,
    "uid": str,
    "resourceVersion": str,
    "generation": int,
    "creationTimestamp": str,
    "deletionTimestamp": str,
    "deletionGracePeriodSeconds": int,
    "labels": STRINGS,
    "annotations": STRINGS,
    "finalizers": [str],
    "ownerReferences": [OWNER_REFERENCE],
    "managedFields": [ANY],
    "selfLink": str,
}
LABEL_SELECTOR = {
    "matchLabels": STRINGS,
    "matchExpressions": [{"key": str, "operator": str, "values": [str]}],
}
RESOURCES = {"limits": MapOf(QUANTITY), "requests": MapOf(QUANTITY)}
CONTAINER = {
    "name": str,
    "image": str,
    "command": [str],
    "args": [str],
    "workingDir": str,
    "ports": [{"containerPort": INT32, "hostPort": INT32, "name": str, "protocol": str}],
    "env": [{"name": str, "value": str, "valueFrom": ANY}],
    "resources": RESOURCES,
    "imagePullPolicy": str,
}
POD_SPEC = {
    "containers": [CONTAINER],
    "initContainers": [CONTAINER],
    "nodeName": str,
    "nodeSelector": STRINGS,
    "restartPolicy": str,
    "schedulerName": str,
    "serviceAccountName": str,
    "terminationGracePeriodSeconds": int,
    "activeDeadlineSeconds": int,
    "priority": INT32,
    "tolerations": [ANY],
    "hostNetwork": bool,
    "readinessGates": [{"conditionType": str}],
}
CONDITION = {"type": str, "status": str, "reason": str, "message": str}
CONTAINER_STATE = {
    "waiting": {"reason": str, "message": str},
    "running": {"startedAt": str},
    "terminated": {"reason": str, "exitCode": INT32, "signal": INT32},
}
CONTAINER_STATUS = {
    "name": str,
    "ready": bool,
    "started": bool,
    "restartCount": INT32,
    "image": str,
    "state": CONTAINER_STATE,
    "lastState": CONTAINER_STATE,
}
POD_STATUS = {
    "phase": str,
    "reason": str,
    "message": str,
    "podIP": str,
    "hostIP": str,
    "nominatedNodeName": str,
    "conditions": [CONDITION],
    "containerStatuses": [CONTAINER_STATUS],
    "initContainerStatuses": [CONTAINER_STATUS],
}
POD_TEMPLATE = {"metadata": METADATA, "spec": POD_SPEC}
WORKLOAD_STATUS = {
    "replicas": INT32,
    "readyReplicas": INT32,
    "availableReplicas": INT32,
    "updatedReplicas": INT32,
    "unavailableReplicas": INT32,
    "fullyLabeledReplicas": INT32,
    "observedGeneration": int,
    "conditions": [CONDITION],
}

SCHEMAS: dict[str, dict[str, Any]] = {
    "Namespace": {
        "spec": {"finalizers": [str]},
        "status": {"phase": str, "conditions": [CONDITION]},
    },
    "Pod": {"spec": POD_SPEC, "status": POD_STATUS},
    "Node": {
        "spec": {
            "unschedulable": bool,
            "podCIDR": str,
            "providerID": str,
            "taints": [{"key": str, "value": str, "effect": str}],
        },
        "status": {
            "capacity": MapOf(QUANTITY),
            "allocatable": MapOf(QUANTITY),
            "conditions": [CONDITION],
            "addresses": [{"type": str, "address": str}],
            "nodeInfo": STRINGS,
        },
    },
    "Event": {
        "involvedObject": {
            "kind": str,
            "namespace": str,
            "name": str,
            "uid": str,
            "apiVersion": str,
            "resourceVersion": str,
            "fieldPath": str,
        },
        "reason": str,
        "message": str,
        "type": str,
        "count": INT32,
        "firstTimestamp": str,
        "lastTimestamp": str,
        "eventTime": str,
        "source": {"component": str, "host": str},
        "reportingComponent": str,
        "reportingInstance": str,
    },
    "ReplicaSet": {
        "spec": {
            "replicas": INT32,
            "minReadySeconds": INT32,
            "selector": LABEL_SELECTOR,
            "template": POD_TEMPLATE,
        },
        "status": WORKLOAD_STATUS,
    },
    "Deployment": {
        "spec": {
            "replicas": INT32,
            "minReadySeconds": INT32,
            "revisionHistoryLimit": INT32,
            "progressDeadlineSeconds": INT32,
            "paused": bool,
            "selector": LABEL_SELECTOR,
            "template": POD_TEMPLATE,
            "strategy": {
                "type": str,
                "rollingUpdate": {"maxSurge": QUANTITY, "maxUnavailable": QUANTITY},
            },
        },
        "status": WORKLOAD_STATUS,
    },
    "Lease": {
        "spec": {
            "holderIdentity": str,
            "leaseDurationSeconds": INT32,
            "acquireTime": str,
            "renewTime": str,
            "leaseTransitions": INT32,
        }
    },
    "Binding": {"target": {"kind": str, "name": str, "namespace": str, "apiVersion": str}},
    "Scale": {"spec": {"replicas": INT32}, "status": {"replicas": INT32, "selector": str}},
    "DeleteOptions": {
        "propagationPolicy": str,
        "gracePeriodSeconds": int,
        "orphanDependents": bool,
        "preconditions": {"uid": str, "resourceVersion": str},
        "dryRun": [str],
    },
}

_NAMES = {str: "string", int: "integer", bool: "boolean", float: "number"}


def check_types(obj: Any, kind: str) -> None:
    """Check ``obj`` (a decoded body of ``kind``) in place; ``BadRequestError`` on a mismatch."""
    schema = {"apiVersion": str, "kind": str, "metadata": METADATA, **SCHEMAS.get(kind, {})}
    _check(obj, schema, "", kind)


def _fail(kind: str, path: str, expected: str, value: Any) -> BadRequestError:
    got = _type_name(value)
    where = path or "the body"
    return BadRequestError(
        f"{kind} in version cannot be handled as a {kind}: {where}: expected {expected}, got {got}"
    )


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if value is None:
        return "null"
    return _NAMES.get(type(value), type(value).__name__)


def _check(value: Any, schema: Any, path: str, kind: str) -> None:
    if schema is ANY:
        return
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            raise _fail(kind, path, "object", value)
        for field in [f for f, v in value.items() if v is None and f in schema]:
            del value[field]
        for field, sub in schema.items():
            if field in value:
                _check(value[field], sub, f"{path}.{field}" if path else field, kind)
        return
    if isinstance(schema, list):
        if not isinstance(value, list):
            raise _fail(kind, path, "array", value)
        for i, item in enumerate(value):
            _check(item, schema[0], f"{path}[{i}]", kind)
        return
    if isinstance(schema, MapOf):
        if not isinstance(value, dict):
            raise _fail(kind, path, "object", value)
        for key, item in value.items():
            _check(item, schema.values, f"{path}[{key}]", kind)
        return
    if schema is str:
        if not isinstance(value, str):
            raise _fail(kind, path, "string", value)
    elif schema is bool:
        if not isinstance(value, bool):
            raise _fail(kind, path, "boolean", value)
    elif schema is int or schema is INT32:
        limit = 2**31 if schema is INT32 else 2**63
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(kind, path, "integer", value)
        if not -limit <= value < limit:
            raise _fail(kind, path, "integer in range", value)
    elif schema is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _fail(kind, path, "number", value)
    elif schema is QUANTITY and (
        isinstance(value, bool) or not isinstance(value, str | int | float)
    ):
        raise _fail(kind, path, "string or number", value)
