"""The pids controller: ``linux.resources.pids.limit`` to ``pids.max`` (same file on v1 and v2)."""

from __future__ import annotations

from reference_runtime.cgroups.layout import Layout
from reference_runtime.cgroups.values import Write, optional_int, section
from reference_runtime.errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

NAME = "pids"
MAX_FILE = "pids.max"


def validate(resources: Mapping[str, Any], layout: Layout | None = None) -> None:
    """Check that ``pids.limit`` is present and an integer."""
    __tracebackhide__ = True
    pids = section(resources, "pids")
    if pids is None:
        return
    if optional_int(pids, "limit", "pids") is None:
        raise ConfigError("linux.resources.pids.limit is required when pids is set")


def wants(resources: Mapping[str, Any]) -> bool:
    """Return whether a pids limit is configured."""
    pids = resources.get("pids")
    return isinstance(pids, dict) and pids.get("limit") is not None


def max_value(limit: int) -> str:
    """Return the ``pids.max`` value for an OCI limit: zero or negative means no limit."""
    return str(limit) if limit > 0 else "max"


def v1_writes(resources: Mapping[str, Any], cgroup_dir: str) -> list[Write]:
    """Return the write of ``pids.max``."""
    return v2_writes(resources, cgroup_dir)


def v2_writes(resources: Mapping[str, Any], cgroup_dir: str) -> list[Write]:
    """Return the write of ``pids.max``."""
    if not wants(resources):
        return []
    return [(MAX_FILE, max_value(resources["pids"]["limit"]))]
