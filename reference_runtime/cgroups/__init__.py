"""The reference runtime's cgroup manager: v1, v2 and hybrid hosts behind one interface.

Layering, bottom to top (a module imports only from layers below it):

1. ``fs`` — the kernel boundary: every cgroup read, write, mkdir, rmdir and kill, with
   ``OSError`` translated to CgroupError. ``layout`` — detection from mountinfo.
2. ``values``, ``controller`` and one module per controller (``memory``, ``pids``,
   ``cpu``, ``cpuset``, ``devices``): OCI ``linux.resources`` to lists of file writes,
   for v1 and v2, plus their validation; ``validate`` runs them all.
3. ``stats`` (usage snapshots), ``tree`` (paths, making and tearing down directory
   trees), ``saved`` (the ``state.json`` form).
4. ``v1``, ``v2``, ``hybrid`` — the managers; ``manager`` — the ``CgroupManager``
   protocol, and ``new_manager`` / ``manager_from_dict`` that pick an implementation.
"""

from __future__ import annotations

from reference_runtime.cgroups.devices import DEFAULT_ALLOWED, DeviceRule
from reference_runtime.cgroups.hybrid import HybridManager
from reference_runtime.cgroups.layout import (
    CgroupMounts,
    Layout,
    V1Hierarchy,
    detect_layout,
    discover_mounts,
    layout_of,
    parse_mountinfo,
)
from reference_runtime.cgroups.manager import CgroupManager, manager_from_dict, new_manager
from reference_runtime.cgroups.stats import CgroupStats
from reference_runtime.cgroups.v1 import V1Manager
from reference_runtime.cgroups.v2 import V2Manager
from reference_runtime.cgroups.validate import validate_resources

__all__ = [
    "DEFAULT_ALLOWED",
    "CgroupManager",
    "CgroupMounts",
    "CgroupStats",
    "DeviceRule",
    "HybridManager",
    "Layout",
    "V1Hierarchy",
    "V1Manager",
    "V2Manager",
    "detect_layout",
    "discover_mounts",
    "layout_of",
    "manager_from_dict",
    "new_manager",
    "parse_mountinfo",
    "validate_resources",
]
