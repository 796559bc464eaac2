"""Errors raised by the scheduler: one root under ``ClusterError``, a shallow tree."""

from __future__ import annotations

from ..errors import ClusterError

__all__ = ["PluginError", "QuantityError", "SchedulerError"]


class SchedulerError(ClusterError):
    """Root of every error the scheduler raises."""


class QuantityError(SchedulerError, ValueError):
    """A resource quantity is not in Kubernetes' format (like ``100m``, ``1Gi``, ``2``)."""


class PluginError(SchedulerError):
    """A plugin was misconfigured or found its cycle state missing; fix the framework setup."""
