"""The Kubernetes-shaped API of the reference cluster.

Layers, bottom up: ``objects``, ``validation``, ``schema``, ``selectors``, ``patch``,
``status`` (pure helpers over JSON dicts); ``resources`` (what is served) and
``strategies`` (per-kind rules); ``watch`` and ``registry`` (the API semantics over a
``Store``: the in-process API; its verbs in ``registry_base``, ``reads``, ``deletion``,
``writes`` and ``scale``); ``tables``, ``discovery``, ``routing``, ``logs`` and
``handlers`` (HTTP semantics, transport-free); ``server`` (the HTTP transport and the
``ApiServer`` that runs everything) on top.
"""

from __future__ import annotations

from .handlers import ApiHandler, Request, Response
from .logs import LogOptions, LogSource, PlaceholderLogSource
from .patch import JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH
from .registry import DeleteResult, Registry
from .resources import RESOURCES, Resource, find_resource
from .server import ApiServer
from .watch import ApiWatch

__all__ = [
    "JSON_PATCH",
    "MERGE_PATCH",
    "RESOURCES",
    "STRATEGIC_MERGE_PATCH",
    "ApiHandler",
    "ApiServer",
    "ApiWatch",
    "DeleteResult",
    "LogOptions",
    "LogSource",
    "PlaceholderLogSource",
    "Registry",
    "Request",
    "Resource",
    "Response",
    "find_resource",
]
