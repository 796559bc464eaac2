"""A small JSON client of the Kubernetes API, for node agents and the cluster handle.

It imports only the standard library, so a node agent starts in a few tens of
milliseconds (the official ``kubernetes`` client takes far longer to import). One
keep-alive connection per thread; bearer token; TLS verified against the cluster's CA.

    api = ApiClient(url, token, ca_cert=pem_bytes)
    node = api.get("/api/v1/nodes/reference-node-1")
    for event in api.watch("/api/v1/pods", {"fieldSelector": "spec.nodeName=n"}, rv):
        ...

Errors: an ``ApiError`` subclass for every error status the server answers (``code``,
``reason``), ``ApiUnreachableError`` when it cannot be reached at all.
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
import urllib.parse
from collections.abc import Iterator
from typing import Any

from .errors import (
    AlreadyExistsError,
    ApiError,
    ApiUnreachableError,
    ConflictError,
    GoneError,
    InvalidError,
    NotFoundError,
)

__all__ = ["MERGE_PATCH", "STRATEGIC_PATCH", "ApiClient"]

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"

_BY_REASON: dict[str, type[ApiError]] = {
    "NotFound": NotFoundError,
    "AlreadyExists": AlreadyExistsError,
    "Conflict": ConflictError,
    "Expired": GoneError,
    "Gone": GoneError,
    "Invalid": InvalidError,
}


class ApiClient:
    """Requests to the API server at ``url`` (see the module docstring)."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        ca_cert: bytes | None = None,
        timeout: float = 10.0,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"an API server URL is https://HOST:PORT, not {url!r}")
        self.url = url
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.token = token
        self.timeout = timeout
        self._tls: ssl.SSLContext | None = None
        if parts.scheme == "https":
            self._tls = ssl.create_default_context(cadata=ca_cert.decode() if ca_cert else None)
            if ca_cert is None:
                self._tls.check_hostname = False
                self._tls.verify_mode = ssl.CERT_NONE
        self._local = threading.local()

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        if self._tls is not None:
            return http.client.HTTPSConnection(
                self.host, self.port, timeout=timeout, context=self._tls
            )
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        """One request; the decoded JSON answer. Retries once on a stale keep-alive."""
        target = path + ("?" + urllib.parse.urlencode(query) if query else "")
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = content_type
        for attempt in (1, 2):
            conn = getattr(self._local, "conn", None)
            fresh = conn is None
            if conn is None:
                conn = self._local.conn = self._connect(self.timeout)
            try:
                conn.request(method, target, data, headers)
                response = conn.getresponse()
                payload = response.read()
                break
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if fresh or attempt == 2:
                    raise ApiUnreachableError(
                        f"the API server at {self.url} is unreachable: {exc}"
                    ) from None
        if response.status >= 400:
            raise _error(response.status, payload)
        return json.loads(payload) if payload else None

    def get(self, path: str, query: dict[str, str] | None = None) -> Any:
        return self.request("GET", path, query=query)

    def create(self, path: str, body: Any) -> Any:
        return self.request("POST", path, body)

    def replace(self, path: str, body: Any) -> Any:
        return self.request("PUT", path, body)

    def patch(self, path: str, body: Any, content_type: str = MERGE_PATCH) -> Any:
        return self.request("PATCH", path, body, content_type=content_type)

    def delete(self, path: str, body: Any = None) -> Any:
        return self.request("DELETE", path, body)

    def watch(
        self,
        path: str,
        query: dict[str, str],
        resource_version: str,
        *,
        timeout_seconds: int = 60,
    ) -> Iterator[dict[str, Any]]:
        """Watch events from ``resource_version`` until the server ends the stream.

        Raises ``GoneError`` for a 410 (list again), ``ApiUnreachableError`` when the
        connection fails or stays silent longer than ``timeout_seconds`` + 5 s.
        """
        params = dict(query)
        params.update(
            watch="true",
            resourceVersion=resource_version,
            allowWatchBookmarks="true",
            timeoutSeconds=str(timeout_seconds),
        )
        conn = self._connect(timeout_seconds + 5.0)
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        try:
            try:
                conn.request("GET", path + "?" + urllib.parse.urlencode(params), None, headers)
                response = conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                raise ApiUnreachableError(
                    f"the API server at {self.url} is unreachable: {exc}"
                ) from None
            if response.status >= 400:
                raise _error(response.status, response.read())
            while True:
                try:
                    line = response.readline()
                except (
                    OSError,
                    http.client.HTTPException,
                ) as exc:
                    raise ApiUnreachableError(f"the watch of {path} broke: {exc}") from None
                if not line:
                    return
                if not line.strip():
                    continue
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    status = event.get("object") or {}
                    raise _error(int(status.get("code") or 500), json.dumps(status).encode())
                yield event
        finally:
            conn.close()


def _error(code: int, payload: bytes) -> ApiError:
    try:
        status = json.loads(payload)
        message, reason = str(status.get("message", "")), str(status.get("reason", ""))
    except ValueError:
        message, reason = payload.decode(errors="replace")[:200], ""
    kind = _BY_REASON.get(reason, ApiError)
    if kind is ApiError:
        return ApiError(message or f"HTTP {code}", code=code, reason=reason or None)
    return kind(message)
