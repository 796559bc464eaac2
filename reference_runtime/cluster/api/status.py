"""``Status`` objects: how every error, and some successes, are served.

``status_for(error)`` turns an ``ApiError`` into a ``meta/v1 Status`` (``status:
Failure``, ``reason``, ``code``, ``message``, ``details``); helpers build the errors the
registry raises with Kubernetes' wording (``pods "x" not found``, ``Operation cannot be
fulfilled on ...``).
"""

from __future__ import annotations

from typing import Any

from ..errors import (
    AlreadyExistsError,
    ApiError,
    ConflictError,
    ForbiddenError,
    GoneError,
    InvalidError,
    NotFoundError,
)
from .resources import Resource
from .validation import Cause

__all__ = [
    "already_exists",
    "conflict",
    "gone",
    "invalid",
    "not_found",
    "status_for",
    "success_status",
]


def status_for(error: ApiError) -> dict[str, Any]:
    status: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": error.message,
        "reason": error.reason,
        "code": error.code,
    }
    if error.details:
        status["details"] = error.details
    return status


def success_status(resource: Resource, name: str, uid: str) -> dict[str, Any]:
    details = {"name": name, "kind": resource.plural, "uid": uid}
    if resource.group:
        details["group"] = resource.group
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    }


def _details(resource: Resource, name: str) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name, "kind": resource.plural}
    if resource.group:
        details["group"] = resource.group
    return details


def not_found(resource: Resource, name: str) -> NotFoundError:
    return NotFoundError(
        f'{resource.qualified} "{name}" not found', details=_details(resource, name)
    )


def already_exists(resource: Resource, name: str) -> AlreadyExistsError:
    return AlreadyExistsError(
        f'{resource.qualified} "{name}" already exists', details=_details(resource, name)
    )


def conflict(resource: Resource, name: str, why: str) -> ConflictError:
    return ConflictError(
        f'Operation cannot be fulfilled on {resource.qualified} "{name}": {why}',
        details=_details(resource, name),
    )


STALE = (
    "the object has been modified; please apply your changes to the latest version and try again"
)


def invalid(resource: Resource, name: str, causes: list[Cause]) -> InvalidError:
    summary = ", ".join(f"{c['field']}: {c['message']}" for c in causes[:10])
    details = {**_details(resource, name), "causes": causes}
    return InvalidError(
        f'{resource.kind} "{name}" is invalid: [{summary}]'
        if len(causes) > 1
        else f'{resource.kind} "{name}" is invalid: {summary}',
        details=details,
    )


def gone(requested: int, oldest: str = "") -> GoneError:
    suffix = f" ({oldest})" if oldest else ""
    return GoneError(f"too old resource version: {requested}{suffix}")


def forbidden(resource: Resource, name: str, why: str) -> ForbiddenError:
    return ForbiddenError(
        f'{resource.qualified} "{name}" is forbidden: {why}', details=_details(resource, name)
    )
