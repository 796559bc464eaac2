"""What every verb of the ``Registry`` shares: the store, the clock and the request checks."""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable
from typing import Any

from ..errors import (
    BadRequestError,
    ForbiddenError,
    NotFoundError,
    ServiceUnavailableError,
    StoreError,
)
from ..store import Store
from . import status as st
from .objects import Obj, meta
from .resources import Resource, find_resource
from .schema import check_types
from .watch import DEFAULT_BOOKMARK_INTERVAL

ResourceRef = str | Resource

RETRIES = 20  # optimistic-concurrency retries of one write


class RegistryBase:
    """The store and clock of a ``Registry``, and the checks every verb makes."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
        bookmark_interval: float = DEFAULT_BOOKMARK_INTERVAL,
    ) -> None:
        self.store = store
        self.clock = clock
        self.bookmark_interval = bookmark_interval
        self._lock = threading.Lock()

    def _decode_body(self, r: Resource, body: Any) -> Obj:
        if not isinstance(body, dict):
            raise BadRequestError(f"a {r.kind} must be a JSON object, not {type(body).__name__}")
        obj = copy.deepcopy(body)
        check_types(obj, r.kind)
        self._check_kind(r, obj)
        obj["kind"], obj["apiVersion"] = r.kind, r.api_version
        meta(obj)
        return obj

    @staticmethod
    def _check_kind(r: Resource, obj: Obj) -> None:
        kind, version = obj.get("kind"), obj.get("apiVersion")
        if kind and kind != r.kind:
            raise BadRequestError(
                f"the kind in the body ({kind}) does not match the expected kind ({r.kind})"
            )
        if version and version != r.api_version:
            raise BadRequestError(
                f"the API version in the data ({version}) does not match"
                f" the expected API version ({r.api_version})"
            )

    @staticmethod
    def _check_scope(r: Resource, namespace: str | None) -> None:
        if r.namespaced and not namespace:
            raise NotFoundError(f"{r.qualified} must be addressed in a namespace")
        if not r.namespaced and namespace:
            raise NotFoundError(f"{r.qualified} is not namespaced")

    @staticmethod
    def _check_body_namespace(r: Resource, metadata: Obj, namespace: str | None) -> None:
        body_ns = metadata.get("namespace")
        if r.namespaced and body_ns and body_ns != namespace:
            raise BadRequestError(
                "the namespace of the provided object does not match"
                " the namespace sent on the request"
            )

    @staticmethod
    def _check_subresource(r: Resource, sub: str, allowed: tuple[str, ...]) -> None:
        if sub and (sub not in r.subresources or sub not in allowed):
            raise NotFoundError(
                f"the server could not find the requested resource ({r.plural}/{sub})"
            )

    def _check_namespace_open(self, r: Resource, namespace: str, name: str) -> None:
        ns = find_resource("namespaces")
        record = self._store_call(self.store.get, ns.key(None, namespace))
        if record is None:
            raise st.not_found(ns, namespace)
        if "deletionTimestamp" in (json.loads(record.value).get("metadata") or {}):
            raise ForbiddenError(
                f'{r.qualified} "{name}" is forbidden: unable to create new content'
                f" in namespace {namespace} because it is being terminated",
                details={
                    "name": name,
                    "kind": r.plural,
                    "causes": [
                        {
                            "reason": "NamespaceTerminating",
                            "message": f"namespace {namespace} is being terminated",
                            "field": "metadata.namespace",
                        }
                    ],
                },
            )

    @staticmethod
    def _store_call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except StoreError as exc:
            raise ServiceUnavailableError(str(exc)) from exc


def resolve(resource: ResourceRef) -> Resource:
    return resource if isinstance(resource, Resource) else find_resource(resource)


def parse_rv(text: str) -> int | None:
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        raise BadRequestError(f'invalid resource version "{text}"') from None
    if value <= 0:
        raise BadRequestError(f'invalid resource version "{text}"')
    return value
