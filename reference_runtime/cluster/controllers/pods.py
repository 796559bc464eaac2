"""Helpers the workload controllers share: owner references, pod states, templates.

Pure functions over objects as JSON dicts; none of them mutates its arguments.
"""

from __future__ import annotations

import copy
import math
import re
from typing import Any

from ..api.objects import Obj, meta, parse_time
from .errors import SpecError

__all__ = [
    "TERMINAL_PHASES",
    "controller_ref",
    "deletion_rank",
    "is_active",
    "is_available",
    "is_ready",
    "owner_reference",
    "pod_from_template",
    "ready_since",
    "scaled_value",
]

TERMINAL_PHASES = ("Succeeded", "Failed")
_PERCENT = re.compile(r"^(\d+)%$")


def controller_ref(obj: Obj) -> dict[str, Any] | None:
    """The owner reference with ``controller: true``, if any."""
    for ref in meta(obj).get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def owner_reference(owner: Obj, api_version: str, kind: str) -> dict[str, Any]:
    """A controller reference to ``owner`` that blocks its foreground deletion."""
    m = meta(owner)
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": m["name"],
        "uid": m["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def is_active(pod: Obj) -> bool:
    """Not being deleted and not finished: a pod that counts towards replicas."""
    phase = (pod.get("status") or {}).get("phase")
    return "deletionTimestamp" not in meta(pod) and phase not in TERMINAL_PHASES


def _ready_condition(pod: Obj) -> dict[str, Any] | None:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return dict(condition)
    return None


def is_ready(pod: Obj) -> bool:
    condition = _ready_condition(pod)
    return condition is not None and condition.get("status") == "True"


def ready_since(pod: Obj) -> float | None:
    """When the pod became Ready (its condition's ``lastTransitionTime``), if it is."""
    condition = _ready_condition(pod)
    if condition is None or condition.get("status") != "True":
        return None
    return parse_time(condition.get("lastTransitionTime") or "") or 0.0


def is_available(pod: Obj, min_ready_seconds: int, now: float) -> bool:
    """Ready for at least ``min_ready_seconds`` (and not being deleted)."""
    if not is_active(pod):
        return False
    since = ready_since(pod)
    return since is not None and (min_ready_seconds <= 0 or since + min_ready_seconds <= now)


_PHASE_ORDER = {"Pending": 0, "Unknown": 1, "Running": 2}


def deletion_rank(pod: Obj) -> tuple[Any, ...]:
    """Sort key: pods to delete first sort first (Kubernetes' ``ActivePods`` order):
    unscheduled, then pending, not ready, ready for the shortest time, most restarts,
    newest."""
    status = pod.get("status") or {}
    since = ready_since(pod)
    restarts = sum(int(c.get("restartCount", 0)) for c in status.get("containerStatuses") or [])
    created = parse_time(meta(pod).get("creationTimestamp") or "") or 0.0
    return (
        bool((pod.get("spec") or {}).get("nodeName")),
        _PHASE_ORDER.get(status.get("phase", ""), 0),
        since is not None,
        -(since or 0.0),
        -restarts,
        -created,
    )


def pod_from_template(
    template: Obj, owner_ref: dict[str, Any], generate_name: str
) -> dict[str, Any]:
    """A new pod for ``template`` (a ``PodTemplateSpec``), owned by ``owner_ref``."""
    template_meta = template.get("metadata") or {}
    metadata: dict[str, Any] = {
        "generateName": generate_name,
        "labels": dict(template_meta.get("labels") or {}),
        "ownerReferences": [owner_ref],
    }
    if template_meta.get("annotations"):
        metadata["annotations"] = dict(template_meta["annotations"])
    if template_meta.get("finalizers"):
        metadata["finalizers"] = list(template_meta["finalizers"])
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": copy.deepcopy(template.get("spec") or {}),
    }


def scaled_value(value: Any, total: int, *, round_up: bool) -> int:
    """An ``IntOrString`` (``3`` or ``"25%"``) resolved against ``total``."""
    if isinstance(value, bool):
        raise SpecError(f"expected an integer or a percentage like '25%', not {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        match = _PERCENT.match(value.strip())
        if match:
            exact = int(match[1]) * total / 100
            return math.ceil(exact) if round_up else math.floor(exact)
        if value.strip().isdigit():
            return int(value.strip())
    raise SpecError(f"expected an integer or a percentage like '25%', not {value!r}")
