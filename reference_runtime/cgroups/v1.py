"""The cgroup v1 manager: one directory per mounted hierarchy.

Every mounted hierarchy gets the container's directory, named hierarchies such as
``name=systemd`` included (as runc does), so that the container's processes can be
found and killed from any of them. Co-mounted controllers (``cpu,cpuacct``) share one
directory. Limits go to the hierarchy that carries their controller.
"""

from __future__ import annotations

import os

from reference_runtime.cgroups import cpuset, fs, tree
from reference_runtime.cgroups.layout import CgroupMounts, Layout
from reference_runtime.cgroups.saved import FORMAT_VERSION, check_saved
from reference_runtime.cgroups.stats import CgroupStats, read_v1
from reference_runtime.cgroups.validate import CONTROLLERS, validate_resources
from reference_runtime.errors import CgroupError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any


class V1Manager:
    """A cgroup on a v1 host. See :class:`~reference_runtime.cgroups.manager.CgroupManager`."""

    layout = Layout.V1

    def __init__(
        self,
        cgroups_path: str,
        hierarchies: Mapping[str, str],
        created: list[str] | None = None,
    ) -> None:
        """``hierarchies`` maps a hierarchy key ("cpu,cpuacct") to its mount point."""
        self.cgroups_path = cgroups_path
        self._relative = tree.normalize_path(cgroups_path)
        self._hierarchies = dict(hierarchies)
        self._created: list[str] = list(created or [])

    @classmethod
    def from_mounts(cls, cgroups_path: str, mounts: CgroupMounts) -> V1Manager:
        """Build the manager for ``cgroups_path`` on every v1 hierarchy in ``mounts``."""
        __tracebackhide__ = True
        if not mounts.v1:
            raise CgroupError("no cgroup v1 hierarchy is mounted on this host")
        return cls(cgroups_path, {h.key: h.mountpoint for h in mounts.v1})

    def __repr__(self) -> str:
        return f"V1Manager({self.cgroups_path!r}, created={len(self._created)} dirs)"

    @property
    def devices_enforced(self) -> bool:
        """True when a devices hierarchy is mounted, so device rules are enforced."""
        return self._dir_for("devices") is not None

    @property
    def created(self) -> list[str]:
        """The directories this manager made, top-down (a copy)."""
        return list(self._created)

    def _leaves(self) -> dict[str, str]:
        return {
            key: os.path.join(mountpoint, self._relative)
            for key, mountpoint in self._hierarchies.items()
        }

    def _dir_for(self, controller: str) -> str | None:
        for key, leaf in self._leaves().items():
            if controller in key.split(","):
                return leaf
        return None

    def _check_mounted(self, resources: Mapping[str, Any]) -> None:
        __tracebackhide__ = True
        for controller in CONTROLLERS:
            if controller.wants(resources) and self._dir_for(controller.NAME) is None:
                raise CgroupError(
                    f"linux.resources needs the {controller.NAME} controller, "
                    "which is not mounted on this host"
                )

    def _apply(self, resources: Mapping[str, Any], *, only_wanted: bool) -> None:
        __tracebackhide__ = True
        for controller in CONTROLLERS:
            if only_wanted and not controller.wants(resources):
                continue
            directory = self._dir_for(controller.NAME)
            if directory is not None:
                tree.write_all(directory, controller.v1_writes(resources, directory))

    @staticmethod
    def _init_cpuset(directory: str) -> None:
        tree.write_all(directory, cpuset.v1_inherit_writes(directory))

    def validate(self, resources: Mapping[str, Any] | None) -> None:
        """Raise ConfigError for an invalid ``resources``; touch nothing."""
        validate_resources(resources, self.layout)

    def create(self, resources: Mapping[str, Any] | None) -> None:
        """Make the cgroup in every hierarchy and apply ``resources``; undo all on failure."""
        __tracebackhide__ = True
        resources = resources or {}
        self.validate(resources)
        self._check_mounted(resources)
        try:
            for key, mountpoint in self._hierarchies.items():
                is_cpuset = "cpuset" in key.split(",")
                on_new = self._init_cpuset if is_cpuset else None
                tree.make_tree(mountpoint, self._relative, self._created, on_new)
            # Devices always: no rules still means "deny all but the default devices".
            self._apply(resources, only_wanted=False)
        except BaseException as exc:
            self.rollback(exc)
            raise

    def rollback(self, exc: BaseException) -> None:
        """Undo a create that failed (here or, for hybrid, in the other half) with ``exc``.

        Removes only the directories made and kills nothing; a failure to undo is added
        to ``exc`` as a note.
        """
        tree.rollback(exc, self._created, self._leaves().values())

    def update(self, resources: Mapping[str, Any] | None) -> None:
        """Apply the limits named in ``resources`` to the existing cgroup.

        Device rules, when given, are re-applied from "deny all", so a running container
        briefly loses access to its devices (runc avoids this with a rule emulator).
        """
        __tracebackhide__ = True
        resources = resources or {}
        self.validate(resources)
        self._check_mounted(resources)
        for leaf in self._leaves().values():
            if not fs.exists(leaf):
                raise CgroupError(f"cgroup {leaf} does not exist; create() it first")
        self._apply(resources, only_wanted=True)

    def add(self, pid: int) -> None:
        """Move process ``pid`` into the cgroup in every hierarchy."""
        __tracebackhide__ = True
        for leaf in self._leaves().values():
            fs.write_file(leaf, fs.PROCS_FILE, pid)

    def join_self_v1(self) -> None:
        """Move the calling single-threaded process in by writing 0 to each ``tasks``."""
        __tracebackhide__ = True
        for leaf in self._leaves().values():
            fs.write_file(leaf, fs.TASKS_FILE, 0)

    def v2_directory(self) -> str | None:
        return None

    def add_v2(self, pid: int) -> None:
        """No cgroup2 half on a v1 host."""

    def pids(self) -> list[int]:
        """Return the PIDs in the cgroup and its sub-cgroups, in any hierarchy, sorted."""
        return tree.all_pids(self._leaves().values())

    def stats(self) -> CgroupStats:
        """Return current usage; missing files give None."""
        return read_v1(self.paths())

    def paths(self) -> dict[str, str]:
        """Return controller name (``"cpu"``, ``"name=systemd"``) to the cgroup's directory."""
        return {
            controller: leaf
            for key, leaf in self._leaves().items()
            for controller in key.split(",")
        }

    def destroy(self) -> None:
        """Kill what is left inside, then remove the directories this manager made."""
        __tracebackhide__ = True
        leaves = list(self._leaves().values())
        tree.kill_all(leaves)
        tree.remove_created(self._created, leaves)
        self._created.clear()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable description that :meth:`from_dict` rebuilds."""
        return {
            "version": FORMAT_VERSION,
            "layout": self.layout.value,
            "cgroupsPath": self.cgroups_path,
            "hierarchies": dict(self._hierarchies),
            "created": list(self._created),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> V1Manager:
        """Rebuild a manager saved by :meth:`to_dict` (in this or another process)."""
        __tracebackhide__ = True
        check_saved(d, Layout.V1)
        hierarchies = d.get("hierarchies")
        if not isinstance(hierarchies, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in hierarchies.items()
        ):
            raise CgroupError(f"saved cgroup state has a malformed 'hierarchies': {d!r}")
        return cls(d["cgroupsPath"], hierarchies, d.get("created", []))
