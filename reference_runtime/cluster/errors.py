"""Errors raised by the reference cluster.

One root, a shallow tree: ``StoreError`` for the storage layer (what a ``Store`` raises)
and ``ApiError`` for the API layer, which carries the HTTP code and the Kubernetes
``Status`` reason it is served as. The registry translates store errors into API errors,
so the HTTP server and in-process callers see only ``ApiError``. Messages are one line.
"""

from __future__ import annotations

from typing import Any


class ClusterError(Exception):
    """Root of every error the reference cluster raises."""


class StoreError(ClusterError):
    """The store could not do what was asked."""


class KeyNotFoundError(StoreError):
    """No value is stored under that key."""


class KeyExistsError(StoreError):
    """A value is already stored under that key; create needs a free key."""


class RevisionConflictError(StoreError):
    """The key's modification revision is not the expected one; re-read and retry."""


class RevisionCompactedError(StoreError):
    """The requested revision is older than the retained history; list again."""


class StoreUnavailableError(StoreError):
    """The store cannot be reached or answered with an error; check that it runs."""


class ApiUnreachableError(ClusterError):
    """The API server could not be reached (refused, timed out, cut off); retry later."""


class ApiError(ClusterError):
    """An error served as a Kubernetes ``Status``: an HTTP code, a reason and details."""

    code = 500
    reason = "InternalError"

    def __init__(
        self,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        code: int | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}
        if code is not None:
            self.code = code
        if reason is not None:
            self.reason = reason


class BadRequestError(ApiError):
    """The request is malformed: undecodable body, wrong kind, bad parameter."""

    code, reason = 400, "BadRequest"


class UnauthorizedError(ApiError):
    """No valid bearer token was presented."""

    code, reason = 401, "Unauthorized"


class ForbiddenError(ApiError):
    """The request is well-formed but not allowed (e.g. content in a terminating namespace)."""

    code, reason = 403, "Forbidden"


class NotFoundError(ApiError):
    """The object, resource or path does not exist."""

    code, reason = 404, "NotFound"


class MethodNotAllowedError(ApiError):
    """The resource does not support this verb."""

    code, reason = 405, "MethodNotAllowed"


class NotAcceptableError(ApiError):
    """No representation the client accepts can be served."""

    code, reason = 406, "NotAcceptable"


class AlreadyExistsError(ApiError):
    """An object with that name already exists."""

    code, reason = 409, "AlreadyExists"


class ConflictError(ApiError):
    """The object was modified since it was read (stale resourceVersion); re-read and retry."""

    code, reason = 409, "Conflict"


class GoneError(ApiError):
    """The resourceVersion is older than the retained history; list again."""

    code, reason = 410, "Expired"


class RequestEntityTooLargeError(ApiError):
    """The request body is larger than the server accepts."""

    code, reason = 413, "RequestEntityTooLarge"


class UnsupportedMediaTypeError(ApiError):
    """The body's Content-Type is not one this endpoint decodes."""

    code, reason = 415, "UnsupportedMediaType"


class InvalidError(ApiError):
    """The object fails validation; ``details.causes`` says which fields and why."""

    code, reason = 422, "Invalid"


class ServerTimeoutError(ApiError):
    """The request could not be served in time (e.g. a resourceVersion not reached yet)."""

    code, reason = 504, "Timeout"


class ServiceUnavailableError(ApiError):
    """The store is unavailable; retry later."""

    code, reason = 503, "ServiceUnavailable"
