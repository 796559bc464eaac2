"""URL paths of the Kubernetes API, parsed into a ``Route``.

Resource paths: ``/api/v1/[namespaces/<ns>/]<plural>[/<name>[/<subresource>]]`` and
``/apis/<group>/<version>/...`` likewise; ``/api/v1/namespaces/<name>[/status|/finalize]``
addresses namespaces themselves; a ``watch/`` segment before the resource is the legacy
form of ``?watch=true``. Everything else is a discovery or system path.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import NotFoundError
from .resources import RESOURCES, Resource

__all__ = ["Route", "parse_path"]

SYSTEM_PATHS = frozenset({"/version", "/healthz", "/livez", "/readyz", "/api", "/apis"})


@dataclass(frozen=True)
class Route:
    """What a path addresses: a system document, discovery, or (part of) a resource."""

    kind: str  # "system", "group", "resources", "resource", "openapi"
    path: str = ""
    group: str = ""
    version: str = ""
    resource: Resource | None = None
    namespace: str | None = None
    name: str = ""
    subresource: str = ""
    legacy_watch: bool = False


def _not_found(path: str) -> NotFoundError:
    return NotFoundError(f"the server could not find the requested resource (path {path})")


def parse_path(path: str) -> Route:
    if path != "/":
        path = path.rstrip("/")
    if path in SYSTEM_PATHS:
        return Route("system", path=path)
    if path.startswith("/openapi/"):
        return Route("openapi", path=path)
    parts = path.split("/")[1:]
    if parts[0] == "api" and len(parts) >= 2:
        if parts[1] != "v1":
            raise _not_found(path)
        group, version, rest = "", "v1", parts[2:]
    elif parts[0] == "apis" and len(parts) >= 2:
        if len(parts) == 2:
            return Route("group", path=path, group=parts[1])
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        raise _not_found(path)
    if not rest:
        return Route("resources", path=path, group=group, version=version)
    legacy_watch = rest[0] == "watch"
    if legacy_watch:
        rest = rest[1:]
    if any(not p for p in rest):
        raise _not_found(path)
    namespace: str | None = None
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in ("status", "finalize"):
        namespace, rest = rest[1], rest[2:]
    if len(rest) > 3:
        raise _not_found(path)
    resource = _lookup(group, version, rest[0])
    if resource is None:
        raise _not_found(path)
    if namespace is not None and not resource.namespaced:
        raise _not_found(path)
    name = rest[1] if len(rest) > 1 else ""
    sub = rest[2] if len(rest) > 2 else ""
    if sub and sub not in resource.subresources:
        raise _not_found(path)
    return Route(
        "resource",
        path=path,
        group=group,
        version=version,
        resource=resource,
        namespace=namespace,
        name=name,
        subresource=sub,
        legacy_watch=legacy_watch,
    )


def _lookup(group: str, version: str, plural: str) -> Resource | None:
    for r in RESOURCES:
        if r.group == group and r.version == version and r.plural == plural:
            return r
    return None
