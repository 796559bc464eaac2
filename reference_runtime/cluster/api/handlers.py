"""HTTP semantics over the registry, independent of the transport: ``Request`` -> ``Response``.

``ApiHandler.handle`` routes a request, negotiates the representation (JSON objects,
``Table``, ``PartialObjectMetadata``), decodes the body by its Content-Type, calls the
``Registry`` and shapes the answer: 201 for creates, the object or a success ``Status``
for deletes, a stream of JSON lines for watches, text for logs. Every ``ApiError``
becomes a ``Status`` with its code; the transport (``server``) adds authentication,
body limits and the wire format.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from ..errors import (
    ApiError,
    BadRequestError,
    MethodNotAllowedError,
    NotAcceptableError,
    NotFoundError,
    UnsupportedMediaTypeError,
)
from . import discovery
from .logs import LogOptions, LogSource, PlaceholderLogSource
from .objects import Obj, meta
from .openapi import openapi_v3
from .patch import APPLY_PATCH, PATCH_TYPES
from .registry import Registry
from .resources import Resource
from .routing import Route, parse_path
from .schema import check_types
from .status import status_for, success_status
from .tables import partial_metadata, table_for

__all__ = ["ApiHandler", "Request", "Response"]

JSON = "application/json"
OPEN_PATHS = frozenset({"/version", "/healthz", "/livez", "/readyz"})


@dataclass
class Request:
    method: str
    path: str
    query: str = ""
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""


@dataclass
class Response:
    code: int
    body: bytes = b""
    content_type: str = JSON
    stream: Iterator[bytes] | None = None  # chunks of a streaming answer (watch, log follow)
    on_close: Any = None  # called when the stream ends or the client goes away


def json_response(code: int, obj: Any) -> Response:
    return Response(code, json.dumps(obj, separators=(",", ":")).encode())


def error_response(error: ApiError) -> Response:
    return json_response(error.code, status_for(error))


class _Query:
    """Query parameters with typed accessors that raise ``BadRequestError``."""

    def __init__(self, text: str) -> None:
        try:
            self._values = parse_qs(text, keep_blank_values=True, strict_parsing=False)
        except ValueError as exc:
            raise BadRequestError(f"invalid query string: {exc}") from None

    def get(self, name: str, default: str = "") -> str:
        values = self._values.get(name)
        return values[-1] if values else default

    def flag(self, name: str) -> bool:
        value = self.get(name).lower()
        if value in ("", "false", "0"):
            return False
        if value in ("true", "1"):
            return True
        raise BadRequestError(f"{name} must be true or false, not {value!r}")

    def integer(self, name: str) -> int | None:
        value = self.get(name)
        if value == "":
            return None
        try:
            return int(value)
        except ValueError:
            raise BadRequestError(f"{name} must be an integer, not {value!r}") from None

    def dry_run(self) -> bool:
        values = self._values.get("dryRun") or []
        for value in values:
            if value != "All":
                raise BadRequestError(f'Invalid dry run value: "{value}": supported values: "All"')
        return bool(values)


def _negotiate(accept: str) -> str:
    """``json``, ``table`` or ``metadata``; ``NotAcceptableError`` if none is acceptable."""
    if not accept.strip():
        return "json"
    for clause in accept.split(","):
        parts = [p.strip() for p in clause.split(";")]
        media = parts[0].lower()
        params = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        if media not in (JSON, "application/*", "*/*"):
            continue
        as_ = params.get("as", "")
        if not as_:
            return "json"
        if params.get("g") != "meta.k8s.io" or params.get("v") not in ("v1", "v1beta1"):
            continue
        if as_ == "Table":
            return "table"
        if as_ in ("PartialObjectMetadata", "PartialObjectMetadataList"):
            return "metadata"
    raise NotAcceptableError(f"only the following media types are accepted: {JSON}")


class ApiHandler:
    """Serves the Kubernetes API of one ``Registry``."""

    def __init__(
        self,
        registry: Registry,
        *,
        server_address: str = "",
        log_source: LogSource | None = None,
    ) -> None:
        self.registry = registry
        self.server_address = server_address
        self.log_source: LogSource = log_source or PlaceholderLogSource()

    def handle(self, request: Request) -> Response:
        try:
            return self._handle(request)
        except ApiError as exc:
            return error_response(exc)

    def _handle(self, request: Request) -> Response:
        route = parse_path(request.path)
        method = request.method
        if route.kind != "resource":
            if method != "GET":
                raise MethodNotAllowedError(
                    f"the server does not allow this method on {route.path}"
                )
            return self._system(route)
        query = _Query(request.query)
        r = route.resource
        assert r is not None
        fmt = _negotiate(request.headers.get("accept", ""))
        if route.subresource == "log":
            if method != "GET":
                raise MethodNotAllowedError("pods/log supports only GET")
            return self._log(route, query)
        if method == "GET":
            if route.name:
                return self._get(route, fmt, query)
            if query.flag("watch") or route.legacy_watch:
                return self._watch(r, route, query, fmt)
            return self._list(r, route, query, fmt)
        if route.legacy_watch:
            raise MethodNotAllowedError("watch paths support only GET")
        if method == "POST":
            return self._create(r, route, request, query)
        if method == "PUT":
            return self._update(r, route, request, query)
        if method == "PATCH":
            return self._patch(r, route, request, query)
        if method == "DELETE":
            return self._delete(r, route, request, query)
        raise MethodNotAllowedError(
            f"the server does not allow this method ({method}) on {route.path}"
        )

    # -- system --------------------------------------------------------------------------

    def _system(self, route: Route) -> Response:
        path = route.path
        if path in ("/healthz", "/livez", "/readyz"):
            return Response(200, b"ok", "text/plain; charset=utf-8")
        if path == "/version":
            return json_response(200, discovery.version_info())
        if path == "/api":
            return json_response(200, discovery.api_versions(self.server_address))
        if path == "/apis":
            return json_response(200, discovery.api_group_list())
        if route.kind == "group":
            return json_response(200, discovery.api_group(route.group))
        if route.kind == "resources":
            return json_response(200, discovery.api_resource_list(route.group, route.version))
        if route.kind == "openapi" and path.startswith("/openapi/v3"):
            return json_response(200, openapi_v3(path))
        raise NotFoundError(f"the server could not find the requested resource (path {path})")

    # -- reads ---------------------------------------------------------------------------

    def _verb(self, r: Resource, verb: str) -> None:
        if verb not in r.verbs:
            raise MethodNotAllowedError(f"{r.qualified} does not support {verb}")

    def _get(self, route: Route, fmt: str, query: _Query) -> Response:
        r = route.resource
        assert r is not None
        self._verb(r, "get")
        if route.subresource == "scale":
            return json_response(
                200, self.registry.get_scale(r, route.name, namespace=route.namespace)
            )
        if route.subresource not in ("", "status"):
            raise MethodNotAllowedError(f"{r.plural}/{route.subresource} does not support get")
        obj = self.registry.get(r, route.name, namespace=route.namespace)
        if fmt == "table":
            rv = meta(obj)["resourceVersion"]
            include = query.get("includeObject", "Metadata")
            return json_response(
                200, table_for(r, [obj], resource_version=rv, include_object=include)
            )
        if fmt == "metadata":
            return json_response(200, partial_metadata(obj))
        return json_response(200, obj)

    def _list(self, r: Resource, route: Route, query: _Query, fmt: str) -> Response:
        self._verb(r, "list")
        result = self.registry.list(
            r,
            namespace=route.namespace,
            label_selector=query.get("labelSelector"),
            field_selector=query.get("fieldSelector"),
            limit=query.integer("limit") or 0,
            continue_token=query.get("continue"),
            resource_version=query.get("resourceVersion"),
        )
        list_meta = result["metadata"]
        if fmt == "table":
            return json_response(
                200,
                table_for(
                    r,
                    result["items"],
                    resource_version=list_meta["resourceVersion"],
                    include_object=query.get("includeObject", "Metadata"),
                    continue_token=list_meta.get("continue", ""),
                ),
            )
        if fmt == "metadata":
            result = {
                "kind": "PartialObjectMetadataList",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": list_meta,
                "items": [partial_metadata(o) for o in result["items"]],
            }
        return json_response(200, result)

    def _watch(self, r: Resource, route: Route, query: _Query, fmt: str) -> Response:
        self._verb(r, "watch")
        include = query.get("includeObject", "Metadata")
        if fmt == "table":
            table_for(r, [], resource_version="0", include_object=include)  # validate early
        timeout = query.integer("timeoutSeconds")
        watch = self.registry.watch(
            r,
            namespace=route.namespace,
            label_selector=query.get("labelSelector"),
            field_selector=query.get("fieldSelector"),
            resource_version=query.get("resourceVersion"),
            allow_bookmarks=query.flag("allowWatchBookmarks"),
            send_initial_events=query.flag("sendInitialEvents"),
            timeout_seconds=float(timeout) if timeout and timeout > 0 else 1800.0,
        )

        def events() -> Iterator[bytes]:
            while not watch.done:
                event = watch.next(0.5)
                if event is None:
                    yield b""  # a chance for the transport to notice shutdown
                    continue
                if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                    obj = event["object"]
                    if fmt == "table":
                        rv = meta(obj).get("resourceVersion", "")
                        obj = table_for(r, [obj], resource_version=rv, include_object=include)
                    elif fmt == "metadata":
                        obj = partial_metadata(obj)
                    event = {"type": event["type"], "object": obj}
                yield json.dumps(event, separators=(",", ":")).encode() + b"\n"

        return Response(200, content_type=JSON, stream=events(), on_close=watch.close)

    def _log(self, route: Route, query: _Query) -> Response:
        pod = self.registry.get("pods", route.name, namespace=route.namespace)
        containers = [c.get("name", "") for c in (pod.get("spec") or {}).get("containers") or []]
        container = query.get("container")
        if not container:
            if len(containers) != 1:
                raise BadRequestError(
                    f"a container name must be specified for pod {route.name},"
                    f" choose one of: [{' '.join(containers)}]"
                )
            container = containers[0]
        elif container not in containers:
            raise BadRequestError(f"container {container} is not valid for pod {route.name}")
        options = LogOptions(
            follow=query.flag("follow"),
            previous=query.flag("previous"),
            timestamps=query.flag("timestamps"),
            tail_lines=query.integer("tailLines"),
            limit_bytes=query.integer("limitBytes"),
            since_seconds=query.integer("sinceSeconds"),
        )
        for name in ("tail_lines", "limit_bytes", "since_seconds"):
            value = getattr(options, name)
            if value is not None and value < 0:
                raise BadRequestError(f"{name} must be >= 0")
        chunks = self.log_source.read(pod, container, options)
        text = "text/plain"
        if options.follow:
            return Response(200, content_type=text, stream=iter(chunks))
        return Response(200, b"".join(chunks), text)

    # -- writes --------------------------------------------------------------------------

    def _decode(self, request: Request, *, allow: tuple[str, ...] = (JSON,)) -> tuple[Any, str]:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower() or JSON
        if content_type not in allow and content_type not in ("application/yaml", APPLY_PATCH):
            raise _unsupported(allow)
        if content_type in ("application/yaml", APPLY_PATCH):
            if content_type == APPLY_PATCH:
                raise UnsupportedMediaTypeError(
                    "server-side apply is not supported by the reference cluster;"
                    " use client-side apply"
                )
            return _load_yaml(request.body), JSON
        if not request.body.strip():
            raise BadRequestError("the request body is empty; send a JSON object")
        try:
            return json.loads(request.body), content_type
        except (ValueError, RecursionError) as exc:
            raise BadRequestError(f"the request body is not valid JSON: {exc}") from None

    def _create(self, r: Resource, route: Route, request: Request, query: _Query) -> Response:
        dry_run = query.dry_run()
        if route.subresource == "binding":
            body, _ = self._decode(request)
            result = self.registry.bind(
                route.name, body, namespace=route.namespace, dry_run=dry_run
            )
            return json_response(201, result)
        if route.name:
            raise MethodNotAllowedError(
                f"POST is for collections: {r.plural}, not {r.plural}/{route.name}"
            )
        self._verb(r, "create")
        body, _ = self._decode(request)
        created = self.registry.create(r, body, namespace=route.namespace, dry_run=dry_run)
        return json_response(201, created)

    def _update(self, r: Resource, route: Route, request: Request, query: _Query) -> Response:
        if not route.name:
            raise MethodNotAllowedError(f"PUT needs an object: {r.plural}/<name>")
        dry_run = query.dry_run()
        body, _ = self._decode(request)
        if route.subresource == "scale":
            scale = self.registry.update_scale(
                r, route.name, body, namespace=route.namespace, dry_run=dry_run
            )
            return json_response(200, scale)
        if route.subresource not in ("", "status", "finalize"):
            raise MethodNotAllowedError(f"{r.plural}/{route.subresource} does not support update")
        self._verb(r, "update")
        obj = self.registry.update(
            r,
            body,
            namespace=route.namespace,
            name=route.name,
            subresource=route.subresource,
            dry_run=dry_run,
        )
        return json_response(200, obj)

    def _patch(self, r: Resource, route: Route, request: Request, query: _Query) -> Response:
        if not route.name:
            raise MethodNotAllowedError(f"PATCH needs an object: {r.plural}/<name>")
        dry_run = query.dry_run()
        patch, patch_type = self._decode(request, allow=PATCH_TYPES)
        if patch_type == JSON:
            raise _unsupported(PATCH_TYPES)
        if route.subresource == "scale":
            scale = self.registry.update_scale(
                r,
                route.name,
                patch,
                namespace=route.namespace,
                patch_type=patch_type,
                dry_run=dry_run,
            )
            return json_response(200, scale)
        if route.subresource not in ("", "status"):
            raise MethodNotAllowedError(f"{r.plural}/{route.subresource} does not support patch")
        self._verb(r, "patch")
        obj = self.registry.patch(
            r,
            route.name,
            patch,
            patch_type=patch_type,
            namespace=route.namespace,
            subresource=route.subresource,
            dry_run=dry_run,
        )
        return json_response(200, obj)

    def _delete(self, r: Resource, route: Route, request: Request, query: _Query) -> Response:
        if route.subresource:
            raise MethodNotAllowedError(f"{r.plural}/{route.subresource} does not support delete")
        options: Obj = {}
        if request.body.strip():
            body, _ = self._decode(request)
            if not isinstance(body, dict):
                raise BadRequestError("DeleteOptions must be a JSON object")
            check_types(body, "DeleteOptions")
            options = body
        policy = query.get("propagationPolicy") or options.get("propagationPolicy")
        orphan = options.get("orphanDependents")
        if query.get("orphanDependents"):
            orphan = query.flag("orphanDependents")
        if policy is None and orphan is not None:
            policy = "Orphan" if orphan else "Background"
        grace = query.integer("gracePeriodSeconds")
        if grace is None:
            grace = options.get("gracePeriodSeconds")
        dry_run = query.dry_run() or bool(options.get("dryRun"))
        if options.get("dryRun") and options["dryRun"] != ["All"]:
            raise BadRequestError(
                f'Invalid dry run value: {options["dryRun"]}: supported values: "All"'
            )
        if not route.name:
            self._verb(r, "deletecollection")
            return self._delete_collection(r, route, query, policy, grace, dry_run)
        self._verb(r, "delete")
        result = self.registry.delete(
            r,
            route.name,
            namespace=route.namespace,
            propagation_policy=policy,
            preconditions=options.get("preconditions"),
            grace_period_seconds=grace,
            dry_run=dry_run,
        )
        obj = result.object
        if result.deleted and r.kind != "Pod":
            return json_response(200, success_status(r, route.name, meta(obj).get("uid", "")))
        return json_response(200, obj)

    def _delete_collection(
        self,
        r: Resource,
        route: Route,
        query: _Query,
        policy: str | None,
        grace: int | None,
        dry_run: bool,
    ) -> Response:
        items = self.registry.list(
            r,
            namespace=route.namespace,
            label_selector=query.get("labelSelector"),
            field_selector=query.get("fieldSelector"),
        )["items"]
        for item in items:
            m = meta(item)
            try:
                self.registry.delete(
                    r,
                    m["name"],
                    namespace=m.get("namespace") if r.namespaced else None,
                    propagation_policy=policy,
                    grace_period_seconds=grace,
                    dry_run=dry_run,
                )
            except NotFoundError:
                pass  # deleted by someone else meanwhile: the goal is reached
        return json_response(
            200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
        )


def _load_yaml(body: bytes) -> Any:
    try:
        import yaml  # PyYAML comes with the kubernetes client; without it, JSON only
    except ImportError:
        raise UnsupportedMediaTypeError("YAML bodies need PyYAML; send application/json") from None
    try:
        return yaml.safe_load(body)
    except yaml.YAMLError as exc:
        raise BadRequestError(f"the request body is not valid YAML: {exc}") from None


def _unsupported(allowed: tuple[str, ...]) -> UnsupportedMediaTypeError:
    return UnsupportedMediaTypeError(
        "the body of the request was in an unknown format - accepted media types include: "
        + ", ".join(allowed)
    )
