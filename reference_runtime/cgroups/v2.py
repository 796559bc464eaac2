"""The cgroup v2 manager: one directory in the unified hierarchy.

Before limits can be written, each controller they need must be enabled in
``cgroup.subtree_control`` of every ancestor, from the mount's root down to the leaf's
parent. Like runc, the manager enables only what the configuration needs and does not
disable it again on destroy: ancestors it did not make are shared with other users,
and the ones it made are removed anyway.

Device rules are not enforced on v2 (they need an eBPF program); see :mod:`.devices`.
"""

from __future__ import annotations

import os

from reference_runtime.cgroups import devices, fs, tree, unified
from reference_runtime.cgroups.layout import CgroupMounts, Layout
from reference_runtime.cgroups.saved import FORMAT_VERSION, check_saved
from reference_runtime.cgroups.stats import CgroupStats, read_v2
from reference_runtime.cgroups.validate import CONTROLLERS, validate_resources
from reference_runtime.errors import CgroupError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

CONTROLLERS_FILE = "cgroup.controllers"
SUBTREE_CONTROL = "cgroup.subtree_control"


# The files a delegatee must own to manage its subtree (cgroup-v2.rst, "Delegation"):
# the directory itself (to make sub-cgroups) and these; the limit files stay root's.
DELEGATED_FILES = ("cgroup.procs", "cgroup.threads", "cgroup.subtree_control")


def needed_controllers(resources: Mapping[str, Any]) -> list[str]:
    """Return the v2 controllers that ``resources`` needs enabled (devices is not one)."""
    needed = [c.NAME for c in CONTROLLERS if c.NAME != devices.NAME and c.wants(resources)]
    return needed + [c for c in unified.controllers(resources) if c not in needed]


class V2Manager:
    """A cgroup on a v2 host. See :class:`~reference_runtime.cgroups.manager.CgroupManager`."""

    layout = Layout.V2
    devices_enforced = devices.ENFORCED_ON_V2

    def __init__(
        self, cgroups_path: str, mountpoint: str, created: list[str] | None = None
    ) -> None:
        """``mountpoint`` is where the cgroup2 filesystem is mounted."""
        self.cgroups_path = cgroups_path
        self.mountpoint = mountpoint
        self._relative = tree.normalize_path(cgroups_path)
        self._created: list[str] = list(created or [])

    @classmethod
    def from_mounts(cls, cgroups_path: str, mounts: CgroupMounts) -> V2Manager:
        """Build the manager for ``cgroups_path`` on the cgroup2 mount in ``mounts``."""
        __tracebackhide__ = True
        if mounts.v2 is None:
            raise CgroupError("no cgroup2 filesystem is mounted on this host")
        return cls(cgroups_path, mounts.v2)

    def __repr__(self) -> str:
        return f"V2Manager({self.cgroups_path!r}, {self.mountpoint!r})"

    @property
    def directory(self) -> str:
        """The cgroup's directory."""
        return os.path.join(self.mountpoint, self._relative)

    @property
    def created(self) -> list[str]:
        """The directories this manager made, top-down (a copy)."""
        return list(self._created)

    def _ancestors(self) -> list[str]:
        """The mount's root and every level down to the leaf's parent."""
        levels = [self.mountpoint]
        for part in self._relative.split("/")[:-1]:
            levels.append(os.path.join(levels[-1], part))
        return levels

    def _check_available(self, needed: list[str]) -> None:
        __tracebackhide__ = True
        available = (fs.read_text(os.path.join(self.mountpoint, CONTROLLERS_FILE)) or "").split()
        missing = [name for name in needed if name not in available]
        if missing:
            raise CgroupError(
                f"linux.resources needs the {', '.join(missing)} controller(s), which "
                f"{self.mountpoint}/{CONTROLLERS_FILE} does not list"
            )

    def _enable(self, needed: list[str]) -> None:
        __tracebackhide__ = True
        for directory in self._ancestors():
            enabled = (fs.read_text(os.path.join(directory, SUBTREE_CONTROL)) or "").split()
            missing = [name for name in needed if name not in enabled]
            if missing:
                fs.write_file(directory, SUBTREE_CONTROL, " ".join(f"+{n}" for n in missing))

    def _apply(self, resources: Mapping[str, Any]) -> None:
        __tracebackhide__ = True
        leaf = self.directory
        for controller in CONTROLLERS:
            if controller.wants(resources):
                tree.write_all(leaf, controller.v2_writes(resources, leaf))
        tree.write_all(leaf, unified.writes(resources))  # last: unified keys override

    def validate(self, resources: Mapping[str, Any] | None) -> None:
        """Raise ConfigError (or UnsupportedError) for ``resources``; touch nothing."""
        validate_resources(resources, self.layout)

    def create(self, resources: Mapping[str, Any] | None) -> None:
        """Make the cgroup, enable the controllers it needs, apply ``resources``; undo on error."""
        __tracebackhide__ = True
        resources = resources or {}
        self.validate(resources)
        needed = needed_controllers(resources)
        self._check_available(needed)
        try:
            tree.make_tree(self.mountpoint, self._relative, self._created)
            self._enable(needed)
            self._apply(resources)
        except BaseException as exc:
            tree.rollback(exc, self._created, [self.directory])
            raise

    def update(self, resources: Mapping[str, Any] | None) -> None:
        """Apply the limits named in ``resources`` to the existing cgroup."""
        __tracebackhide__ = True
        resources = resources or {}
        self.validate(resources)
        if not fs.exists(self.directory):
            raise CgroupError(f"cgroup {self.directory} does not exist; create() it first")
        needed = needed_controllers(resources)
        self._check_available(needed)
        self._enable(needed)
        self._apply(resources)

    def add(self, pid: int) -> None:
        """Move process ``pid`` into the cgroup."""
        fs.write_file(self.directory, fs.PROCS_FILE, pid)

    def join_self_v1(self) -> None:
        """No v1 hierarchies on a v2 host."""

    def v2_directory(self) -> str | None:
        return self.directory

    def add_v2(self, pid: int) -> None:
        self.add(pid)

    def delegate(self, uid: int, gid: int) -> None:
        """Hand the cgroup's subtree to ``uid``:``gid``, as the kernel's delegation model
        has it: the directory and :data:`DELEGATED_FILES` change owner, so the delegatee
        can make sub-cgroups, enable controllers in them and move its processes between
        them, while the cgroup's own limits stay root's."""
        __tracebackhide__ = True
        if not fs.exists(self.directory):
            raise CgroupError(f"cgroup {self.directory} does not exist; create() it first")
        fs.chown(self.directory, uid, gid)
        for name in DELEGATED_FILES:
            fs.chown(os.path.join(self.directory, name), uid, gid)

    def pids(self) -> list[int]:
        """Return the PIDs in the cgroup and its sub-cgroups, sorted."""
        return tree.all_pids([self.directory])

    def stats(self) -> CgroupStats:
        """Return current usage; missing files (controllers not enabled) give None."""
        return read_v2(self.directory)

    def paths(self) -> dict[str, str]:
        """Return ``{"": directory}``: v2 has one hierarchy, named "" as in runc."""
        return {"": self.directory}

    def destroy(self) -> None:
        """Kill what is left inside (``cgroup.kill``), then remove the directories made."""
        __tracebackhide__ = True
        tree.kill_all([self.directory])
        tree.remove_created(self._created, [self.directory])
        self._created.clear()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable description that :meth:`from_dict` rebuilds."""
        return {
            "version": FORMAT_VERSION,
            "layout": self.layout.value,
            "cgroupsPath": self.cgroups_path,
            "mountpoint": self.mountpoint,
            "created": list(self._created),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> V2Manager:
        """Rebuild a manager saved by :meth:`to_dict` (in this or another process)."""
        __tracebackhide__ = True
        check_saved(d, Layout.V2)
        if not isinstance(d.get("mountpoint"), str):
            raise CgroupError(f"saved cgroup state has no mountpoint: {d!r}")
        return cls(d["cgroupsPath"], d["mountpoint"], d.get("created", []))
