"""The format in which a manager is saved to ``state.json`` and checked when read back.

The runtime saves the manager at ``create`` and another process (``reference-runtime
delete``) rebuilds it to destroy the cgroup, so the saved form records everything
destroy needs without detecting anything again: the layout, the cgroups path, the
mount points and the directories that were made.
"""

from __future__ import annotations

from reference_runtime.cgroups.layout import Layout
from reference_runtime.errors import CgroupError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

FORMAT_VERSION = 1
"""Bumped when the saved form changes incompatibly."""


def check_saved(d: Mapping[str, Any], layout: Layout) -> None:
    """Raise CgroupError unless ``d`` is a saved manager of ``layout`` in a known format."""
    __tracebackhide__ = True
    if not isinstance(d, dict) or d.get("version") != FORMAT_VERSION:
        raise CgroupError(f"saved cgroup state has an unknown format: {d!r}")
    if d.get("layout") != layout.value:
        raise CgroupError(
            f"saved cgroup state is for layout {d.get('layout')!r}, not {layout.value!r}"
        )
    if not isinstance(d.get("cgroupsPath"), str):
        raise CgroupError(f"saved cgroup state has no cgroupsPath: {d!r}")
    created = d.get("created", [])
    if not isinstance(created, list) or not all(isinstance(p, str) for p in created):
        raise CgroupError(f"saved cgroup state has a malformed 'created' list: {d!r}")


def saved_layout(d: Any) -> Layout:
    """Return the layout a saved manager was made for."""
    __tracebackhide__ = True
    try:
        return Layout(d["layout"])
    except (TypeError, KeyError, ValueError):
        raise CgroupError(f"saved cgroup state names no known layout: {d!r}") from None
