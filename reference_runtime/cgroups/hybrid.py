"""The hybrid manager: v1 controllers for limits, plus a directory in the unified hierarchy.

On a hybrid host the cgroup2 mount (usually ``/sys/fs/cgroup/unified``) carries no
controller that v1 already has, so it sets no limit; the container still gets a
directory there, as systemd and runc give it one, so that its processes are tracked in
both hierarchies, can be listed from either, and are killed at once with ``cgroup.kill``.
"""

from __future__ import annotations

from reference_runtime import _lite
from reference_runtime.cgroups.layout import CgroupMounts, Layout
from reference_runtime.cgroups.saved import FORMAT_VERSION, check_saved
from reference_runtime.cgroups.stats import CgroupStats
from reference_runtime.cgroups.v1 import V1Manager
from reference_runtime.cgroups.v2 import V2Manager
from reference_runtime.cgroups.validate import validate_resources
from reference_runtime.errors import CgroupError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any


class HybridManager:
    """A cgroup on a hybrid host. See :class:`~reference_runtime.cgroups.manager.CgroupManager`."""

    layout = Layout.HYBRID

    def __init__(self, v1: V1Manager, unified: V2Manager) -> None:
        """Combine a manager of the v1 hierarchies with one of the unified hierarchy."""
        if v1.cgroups_path != unified.cgroups_path:
            raise ValueError(
                f"both halves need the same cgroups path: {v1.cgroups_path!r} "
                f"!= {unified.cgroups_path!r}"
            )
        self.cgroups_path = v1.cgroups_path
        self.v1 = v1
        self.unified = unified

    @classmethod
    def from_mounts(cls, cgroups_path: str, mounts: CgroupMounts) -> HybridManager:
        """Build the manager for ``cgroups_path`` on the v1 and cgroup2 mounts in ``mounts``."""
        return cls(
            V1Manager.from_mounts(cgroups_path, mounts),
            V2Manager.from_mounts(cgroups_path, mounts),
        )

    def __repr__(self) -> str:
        return f"HybridManager({self.cgroups_path!r})"

    @property
    def devices_enforced(self) -> bool:
        """True when the v1 devices controller is mounted."""
        return self.v1.devices_enforced

    @property
    def created(self) -> list[str]:
        """The directories this manager made, v1 first, each half top-down (a copy)."""
        return self.v1.created + self.unified.created

    def validate(self, resources: Mapping[str, Any] | None) -> None:
        """Raise ConfigError for an invalid ``resources``; touch nothing."""
        validate_resources(resources, self.layout)

    def create(self, resources: Mapping[str, Any] | None) -> None:
        """Make the v1 cgroups with their limits and the unified directory; undo on failure."""
        __tracebackhide__ = True
        self.validate(resources)
        self.v1.create(resources)
        try:
            # No limits in the unified half: its controllers are the ones v1 lacks.
            self.unified.create({})
        except BaseException as exc:
            self.v1.rollback(exc)
            raise

    def update(self, resources: Mapping[str, Any] | None) -> None:
        """Apply the limits named in ``resources`` (all of them live in v1)."""
        self.v1.update(resources)

    def add(self, pid: int) -> None:
        """Move process ``pid`` into the cgroup in every v1 hierarchy and the unified one."""
        __tracebackhide__ = True
        self.v1.add(pid)
        self.unified.add(pid)

    def join_self_v1(self) -> None:
        self.v1.join_self_v1()

    def v2_directory(self) -> str | None:
        return self.unified.v2_directory()

    def add_v2(self, pid: int) -> None:
        self.unified.add(pid)

    def pids(self) -> list[int]:
        """Return the PIDs in the cgroup (either half) and its sub-cgroups, sorted."""
        return sorted(set(self.v1.pids()) | set(self.unified.pids()))

    def stats(self) -> CgroupStats:
        """Return v1's usage, with CPU time from the unified ``cpu.stat`` if v1 has no cpuacct."""
        stats = self.v1.stats()
        if stats.cpu_usage_usec is None:
            usage = self.unified.stats().cpu_usage_usec
            stats = _lite.replace(stats, cpu_usage_usec=usage)
        return stats

    def paths(self) -> dict[str, str]:
        """Return v1's controller directories plus ``"unified"``."""
        return {**self.v1.paths(), "unified": self.unified.directory}

    def destroy(self) -> None:
        """Kill everything (``cgroup.kill`` on the unified half first), then remove both halves."""
        __tracebackhide__ = True
        self.unified.destroy()
        self.v1.destroy()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable description that :meth:`from_dict` rebuilds."""
        return {
            "version": FORMAT_VERSION,
            "layout": self.layout.value,
            "cgroupsPath": self.cgroups_path,
            "v1": self.v1.to_dict(),
            "unified": self.unified.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> HybridManager:
        """Rebuild a manager saved by :meth:`to_dict` (in this or another process)."""
        __tracebackhide__ = True
        check_saved(d, Layout.HYBRID)
        if not isinstance(d.get("v1"), dict) or not isinstance(d.get("unified"), dict):
            raise CgroupError(f"saved hybrid cgroup state lacks its v1 or unified half: {d!r}")
        return cls(V1Manager.from_dict(d["v1"]), V2Manager.from_dict(d["unified"]))
