"""Server-side printing: ``meta.k8s.io/v1 Table`` for ``kubectl get``.

kubectl asks for ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io`` and prints
the columns it gets; columns with ``priority: 1`` appear only with ``-o wide``. The
columns follow kubectl's usual ones for each kind; anything else gets NAME and AGE.
``include_object`` is ``Object``, ``Metadata`` (the default) or ``None``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..errors import BadRequestError
from .objects import Obj, meta, parse_time
from .resources import Resource
from .selectors import selector_from_object

__all__ = ["INCLUDE_OBJECT", "human_duration", "partial_metadata", "table_for"]

INCLUDE_OBJECT = ("Object", "Metadata", "None")
NONE = "<none>"

Column = tuple[str, str, int, str]  # name, type, priority, description


def human_duration(seconds: float) -> str:
    """Kubernetes' short age format: 45s, 3m12s, 15m, 5h3m, 20h, 3d4h, 45d, 2y50d."""
    if seconds < -1:
        return "<invalid>"
    s = max(0, int(seconds))
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y{days}d" if days else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def _age(obj: Obj, now: float, field: str = "creationTimestamp") -> str:
    when = parse_time(str(meta(obj).get(field, "")))
    return "<unknown>" if when is None else human_duration(now - when)


def _since(text: Any, now: float) -> str:
    when = parse_time(str(text or ""))
    return "<unknown>" if when is None else human_duration(now - when)


def _containers(obj: Obj) -> tuple[str, str]:
    spec = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    containers = spec.get("containers") or []
    names = ",".join(str(c.get("name", "")) for c in containers)
    images = ",".join(str(c.get("image", "")) for c in containers)
    return names or NONE, images or NONE


def _selector(obj: Obj) -> str:
    return str(selector_from_object((obj.get("spec") or {}).get("selector"))) or NONE


# -- per kind ------------------------------------------------------------------------------


def _pod_status(pod: Obj) -> tuple[str, int, int, int]:
    """(STATUS, ready containers, total containers, restarts), like kubectl's pod printer."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    total = len(spec.get("containers") or [])
    reason = status.get("reason") or status.get("phase") or "Unknown"
    restarts = 0
    init_statuses = status.get("initContainerStatuses") or []
    initializing = False
    for i, cs in enumerate(init_statuses):
        restarts += int(cs.get("restartCount", 0))
        state = cs.get("state") or {}
        term, wait = state.get("terminated"), state.get("waiting")
        if term and term.get("exitCode", 0) == 0:
            continue
        initializing = True
        if term:
            reason = "Init:" + (term.get("reason") or f"ExitCode:{term.get('exitCode', 0)}")
        elif wait and wait.get("reason") and wait["reason"] != "PodInitializing":
            reason = "Init:" + wait["reason"]
        else:
            reason = f"Init:{i}/{len(spec.get('initContainers') or [])}"
        break
    ready = 0
    running = False
    for cs in reversed(status.get("containerStatuses") or []):
        restarts += int(cs.get("restartCount", 0))
        if initializing:
            continue
        state = cs.get("state") or {}
        wait, term = state.get("waiting"), state.get("terminated")
        if wait and wait.get("reason"):
            reason = wait["reason"]
        elif term and term.get("reason"):
            reason = term["reason"]
        elif term:
            signal = term.get("signal", 0)
            reason = f"Signal:{signal}" if signal else f"ExitCode:{term.get('exitCode', 0)}"
        elif state.get("running"):
            running = True
            ready += bool(cs.get("ready"))
    if reason == "Completed" and running:
        reason = "Running"
    if "deletionTimestamp" in meta(pod):
        reason = "Unknown" if status.get("reason") == "NodeLost" else "Terminating"
    return reason, ready, total, restarts


def _pod_row(pod: Obj, now: float) -> list[Any]:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    reason, ready, total, restarts = _pod_status(pod)
    gates = spec.get("readinessGates") or []
    gates_text = NONE
    if gates:
        true = {c.get("type") for c in status.get("conditions") or [] if c.get("status") == "True"}
        gates_text = f"{sum(g.get('conditionType') in true for g in gates)}/{len(gates)}"
    return [
        meta(pod).get("name", ""),
        f"{ready}/{total}",
        reason,
        restarts,
        _age(pod, now),
        status.get("podIP") or NONE,
        spec.get("nodeName") or NONE,
        status.get("nominatedNodeName") or NONE,
        gates_text,
    ]


def _node_row(node: Obj, now: float) -> list[Any]:
    spec, status = node.get("spec") or {}, node.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    state = {"True": "Ready", "False": "NotReady"}.get(str((ready or {}).get("status")), "Unknown")
    if spec.get("unschedulable"):
        state += ",SchedulingDisabled"
    roles = sorted(
        {
            key.removeprefix("node-role.kubernetes.io/")
            for key in meta(node).get("labels") or {}
            if key.startswith("node-role.kubernetes.io/")
        }
        | (
            {meta(node)["labels"]["kubernetes.io/role"]}
            if "kubernetes.io/role" in (meta(node).get("labels") or {})
            else set()
        )
    )
    info = status.get("nodeInfo") or {}
    addresses = status.get("addresses") or []

    def address(kind: str) -> str:
        return next((a.get("address", "") for a in addresses if a.get("type") == kind), NONE)

    return [
        meta(node).get("name", ""),
        state,
        ",".join(r for r in roles if r) or NONE,
        _age(node, now),
        info.get("kubeletVersion", ""),
        address("InternalIP"),
        address("ExternalIP"),
        info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


def _deployment_row(obj: Obj, now: float) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    names, images = _containers(obj)
    return [
        meta(obj).get("name", ""),
        f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
        status.get("updatedReplicas", 0),
        status.get("availableReplicas", 0),
        _age(obj, now),
        names,
        images,
        _selector(obj),
    ]


def _replicaset_row(obj: Obj, now: float) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    names, images = _containers(obj)
    return [
        meta(obj).get("name", ""),
        spec.get("replicas", 0),
        status.get("replicas", 0),
        status.get("readyReplicas", 0),
        _age(obj, now),
        names,
        images,
        _selector(obj),
    ]


def _namespace_row(obj: Obj, now: float) -> list[Any]:
    return [meta(obj).get("name", ""), (obj.get("status") or {}).get("phase", ""), _age(obj, now)]


def _event_row(ev: Obj, now: float) -> list[Any]:
    involved = ev.get("involvedObject") or {}
    last = ev.get("lastTimestamp") or ev.get("eventTime") or meta(ev).get("creationTimestamp")
    first = ev.get("firstTimestamp") or ev.get("eventTime") or meta(ev).get("creationTimestamp")
    source = ev.get("source") or {}
    source_text = source.get("component") or ev.get("reportingComponent") or ""
    if source.get("host"):
        source_text += f", {source['host']}"
    return [
        _since(last, now),
        ev.get("type", ""),
        ev.get("reason", ""),
        f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}",
        involved.get("fieldPath", ""),
        source_text,
        str(ev.get("message", "")).strip(),
        _since(first, now),
        ev.get("count", 1),
        meta(ev).get("name", ""),
    ]


def _lease_row(obj: Obj, now: float) -> list[Any]:
    holder = (obj.get("spec") or {}).get("holderIdentity") or ""
    return [meta(obj).get("name", ""), holder, _age(obj, now)]


def _default_row(obj: Obj, now: float) -> list[Any]:
    return [meta(obj).get("name", ""), _age(obj, now)]


NAME: Column = ("Name", "string", 0, "Name must be unique within a namespace.")
AGE: Column = ("Age", "string", 0, "CreationTimestamp of the object.")
WORKLOAD_WIDE: list[Column] = [
    ("Containers", "string", 1, "Names of each container in the template."),
    ("Images", "string", 1, "Images referenced by each container in the template."),
    ("Selector", "string", 1, "Label selector for pods."),
]

PRINTERS: dict[str, tuple[list[Column], Callable[[Obj, float], list[Any]]]] = {
    "Pod": (
        [
            NAME,
            ("Ready", "string", 0, "The aggregate readiness state of this pod."),
            ("Status", "string", 0, "The aggregate status of the containers in this pod."),
            ("Restarts", "integer", 0, "The number of times the containers have restarted."),
            AGE,
            ("IP", "string", 1, "IP address allocated to the pod."),
            ("Node", "string", 1, "Name of the node the pod is assigned to."),
            ("Nominated Node", "string", 1, "Node the scheduler nominated for this pod."),
            ("Readiness Gates", "string", 1, "Pod readiness gates."),
        ],
        _pod_row,
    ),
    "Node": (
        [
            NAME,
            ("Status", "string", 0, "The status of the node."),
            ("Roles", "string", 0, "The roles of the node."),
            AGE,
            ("Version", "string", 0, "Kubelet version reported by the node."),
            ("Internal-IP", "string", 1, "The node's internal IP address."),
            ("External-IP", "string", 1, "The node's external IP address."),
            ("OS-Image", "string", 1, "The OS image reported by the node."),
            ("Kernel-Version", "string", 1, "The kernel version reported by the node."),
            ("Container-Runtime", "string", 1, "The container runtime reported by the node."),
        ],
        _node_row,
    ),
    "Deployment": (
        [
            NAME,
            ("Ready", "string", 0, "Number of ready replicas of the desired ones."),
            ("Up-to-date", "integer", 0, "Total number of updated replicas."),
            ("Available", "integer", 0, "Total number of available replicas."),
            AGE,
            *WORKLOAD_WIDE,
        ],
        _deployment_row,
    ),
    "ReplicaSet": (
        [
            NAME,
            ("Desired", "integer", 0, "Number of desired pods."),
            ("Current", "integer", 0, "Number of actually running pods."),
            ("Ready", "integer", 0, "Number of ready pods."),
            AGE,
            *WORKLOAD_WIDE,
        ],
        _replicaset_row,
    ),
    "Namespace": (
        [NAME, ("Status", "string", 0, "The status of the namespace."), AGE],
        _namespace_row,
    ),
    "Event": (
        [
            ("Last Seen", "string", 0, "Time since the event was last seen."),
            ("Type", "string", 0, "Type of the event (Normal or Warning)."),
            ("Reason", "string", 0, "Why the event happened."),
            ("Object", "string", 0, "The object the event is about."),
            ("Subobject", "string", 1, "The part of the object the event is about."),
            ("Source", "string", 1, "The component that reported the event."),
            ("Message", "string", 0, "A human-readable description."),
            ("First Seen", "string", 1, "Time since the event was first seen."),
            ("Count", "integer", 1, "How many times the event happened."),
            ("Name", "string", 1, NAME[3]),
        ],
        _event_row,
    ),
    "Lease": (
        [NAME, ("Holder", "string", 0, "The holder of the lease."), AGE],
        _lease_row,
    ),
}


def partial_metadata(obj: Obj) -> Obj:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta(obj),
    }


def table_for(
    r: Resource,
    objects: list[Obj],
    *,
    resource_version: str,
    include_object: str = "Metadata",
    continue_token: str = "",
    now: float | None = None,
) -> Obj:
    if include_object not in INCLUDE_OBJECT:
        raise BadRequestError(
            f'includeObject must be one of "Object", "Metadata", "None", not "{include_object}"'
        )
    columns, row_of = PRINTERS.get(r.kind, ([NAME, AGE], _default_row))
    now = time.time() if now is None else now
    rows = []
    for obj in objects:
        row: Obj = {"cells": row_of(obj, now)}
        if include_object == "Object":
            row["object"] = {"kind": r.kind, "apiVersion": r.api_version, **obj}
        elif include_object == "Metadata":
            row["object"] = partial_metadata(obj)
        rows.append(row)
    table_meta: Obj = {"resourceVersion": resource_version}
    if continue_token:
        table_meta["continue"] = continue_token
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": table_meta,
        "columnDefinitions": [
            {
                "name": name,
                "type": kind,
                "format": "name" if name == "Name" else "",
                "description": text,
                "priority": priority,
            }
            for name, kind, priority, text in columns
        ],
        "rows": rows,
    }
