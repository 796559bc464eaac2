"""A Deployment's status and its ``Progressing`` and ``Available`` conditions.

As the Kubernetes deployment controller words them: ``Available`` is ``True``
(``MinimumReplicasAvailable``) while at least ``replicas - maxUnavailable`` pods are
available; ``Progressing`` is ``True`` with ``NewReplicaSetCreated``, ``ReplicaSetUpdated``
(progress made: its ``lastUpdateTime`` moves) or ``NewReplicaSetAvailable`` (done), and
``False`` with ``ProgressDeadlineExceeded`` once no progress was made for
``progressDeadlineSeconds``; ``Unknown`` with ``DeploymentPaused`` while paused.
``kubectl rollout status`` reads ``observedGeneration``, ``updatedReplicas``,
``replicas``, ``availableReplicas`` and this ``Progressing`` reason.
"""

from __future__ import annotations

from typing import Any

from ..api.objects import Obj, format_time, meta, parse_time

__all__ = [
    "PROGRESS_DEADLINE_EXCEEDED",
    "complete",
    "deadline_left",
    "made_progress",
    "set_condition",
]

NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"

Condition = dict[str, Any]


def get_condition(status: Obj, kind: str) -> Condition | None:
    for condition in status.get("conditions") or []:
        if condition.get("type") == kind:
            return dict(condition)
    return None


def set_condition(
    status: Obj, kind: str, value: str, reason: str, message: str, now: float
) -> None:
    """Set a condition in ``status`` (Kubernetes' ``SetDeploymentCondition``): no change for
    the same status and reason; the transition time moves only when the status does."""
    current = get_condition(status, kind)
    if current is not None and current.get("status") == value and current.get("reason") == reason:
        return
    _replace(status, kind, value, reason, message, now)


def _replace(status: Obj, kind: str, value: str, reason: str, message: str, now: float) -> None:
    """Put a new condition in place, keeping the transition time if the status is the same."""
    current = get_condition(status, kind)
    stamp = format_time(now)
    condition = {
        "type": kind,
        "status": value,
        "lastUpdateTime": stamp,
        "lastTransitionTime": stamp,
        "reason": reason,
        "message": message,
    }
    if current is not None and current.get("status") == value:
        condition["lastTransitionTime"] = current.get("lastTransitionTime") or stamp
    conditions = list(status.get("conditions") or [])
    index = next((i for i, c in enumerate(conditions) if c.get("type") == kind), None)
    if index is None:
        conditions.append(condition)
    else:
        conditions[index] = condition  # keep the order: an unchanged status compares equal
    status["conditions"] = conditions


def complete(deployment: Obj, status: Obj) -> bool:
    """All pods are updated and available, none old left, the spec observed."""
    desired = int((deployment.get("spec") or {}).get("replicas", 1))
    return (
        status.get("updatedReplicas", 0) == desired
        and status.get("replicas", 0) == desired
        and status.get("availableReplicas", 0) == desired
        and status.get("observedGeneration", 0) >= meta(deployment).get("generation", 1)
    )


def made_progress(old: Obj, new: Obj) -> bool:
    """More updated, ready or available pods, or fewer old ones, than last time."""
    old_olds = old.get("replicas", 0) - old.get("updatedReplicas", 0)
    new_olds = new.get("replicas", 0) - new.get("updatedReplicas", 0)
    return (
        new.get("updatedReplicas", 0) > old.get("updatedReplicas", 0)
        or new_olds < old_olds
        or new.get("readyReplicas", 0) > old.get("readyReplicas", 0)
        or new.get("availableReplicas", 0) > old.get("availableReplicas", 0)
    )


def deadline_left(deployment: Obj, status: Obj, now: float) -> float | None:
    """Seconds until the rollout times out, if it is under way (``None`` if not)."""
    deadline = (deployment.get("spec") or {}).get("progressDeadlineSeconds")
    condition = get_condition(status, "Progressing")
    if deadline is None or condition is None or condition.get("status") != "True":
        return None
    if condition.get("reason") in (NEW_RS_AVAILABLE, PAUSED):
        return None
    updated = parse_time(condition.get("lastUpdateTime") or "")
    return None if updated is None else updated + int(deadline) - now


def progressing(
    deployment: Obj, old: Obj, new: Obj, new_rs: str, *, created: bool, now: float
) -> None:
    """Update ``new``'s ``Progressing`` condition (``old`` is the status before this sync)."""
    spec = deployment.get("spec") or {}
    if spec.get("paused"):
        set_condition(new, "Progressing", "Unknown", PAUSED, "Deployment is paused", now)
        return
    if created:
        message = f'Created new replica set "{new_rs}"'
        set_condition(new, "Progressing", "True", NEW_RS_CREATED, message, now)
    elif complete(deployment, new):
        message = f'ReplicaSet "{new_rs}" has successfully progressed.'
        set_condition(new, "Progressing", "True", NEW_RS_AVAILABLE, message, now)
    elif made_progress(old, new):
        # Progress replaces the condition even with the same reason: its lastUpdateTime
        # moves, and the deadline with it.
        message = f'ReplicaSet "{new_rs}" is progressing.'
        _replace(new, "Progressing", "True", RS_UPDATED, message, now)
    elif get_condition(new, "Progressing") is None:
        message = f'Found new replica set "{new_rs}"'
        set_condition(new, "Progressing", "True", FOUND_NEW_RS, message, now)
    else:
        left = deadline_left(deployment, new, now)
        if left is not None and left <= 0:
            message = f'ReplicaSet "{new_rs}" has timed out progressing.'
            set_condition(new, "Progressing", "False", PROGRESS_DEADLINE_EXCEEDED, message, now)


def available(status: Obj, desired: int, max_unavailable: int, now: float) -> None:
    """Update ``status``'s ``Available`` condition."""
    if status.get("availableReplicas", 0) >= desired - max_unavailable:
        set_condition(
            status,
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
            now,
        )
    else:
        set_condition(
            status,
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
            now,
        )
