"""Errors raised by the controllers: one root under ``ClusterError``, a shallow tree.

A reconcile that raises is retried with backoff (``reconcile.ControllerLoop``); these say
why in the log. API failures stay ``ApiError``s.
"""

from __future__ import annotations

from ..errors import ClusterError

__all__ = ["ControllerError", "SpecError"]


class ControllerError(ClusterError):
    """Root of every error the controllers raise."""


class SpecError(ControllerError, ValueError):
    """An object's spec has a value the controller cannot act on; fix the object."""
