"""The interface the runtime uses for a container's cgroup, and how one is chosen.

The runtime never looks at a cgroup file itself; it holds a :class:`CgroupManager` made
by :func:`new_manager`, which detects the host's layout and returns the v1, v2 or hybrid
implementation. The lifecycle, and who releases what:

1. ``manager = new_manager(config["linux"]["cgroupsPath"])`` — touches nothing.
2. ``manager.validate(resources)`` while checking the bundle — touches nothing.
3. ``manager.create(resources)`` — makes the directories and applies the limits; on
   failure it has removed everything it made. From here the *runtime* owns the cgroup
   and must eventually call ``destroy()``.
4. ``state["cgroup"] = manager.to_dict()`` is saved with the container's state.
5. ``manager.add(pid)`` for the container's init process, before it execs.
6. ``delete``, possibly in another process: ``manager_from_dict(state["cgroup"]).destroy()``
   kills whatever is still inside and removes exactly the directories ``create`` made.
"""

from __future__ import annotations

from reference_runtime.cgroups.hybrid import HybridManager
from reference_runtime.cgroups.layout import CgroupMounts, Layout, discover_mounts, layout_of
from reference_runtime.cgroups.saved import saved_layout
from reference_runtime.cgroups.stats import CgroupStats
from reference_runtime.cgroups.tree import normalize_path
from reference_runtime.cgroups.v1 import V1Manager
from reference_runtime.cgroups.v2 import V2Manager

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Protocol, Self
else:
    # The protocol is checked statically; at run time it is a plain documented base,
    # which spares the CLI importing ``typing``.
    Protocol = object

if TYPE_CHECKING:
    from collections.abc import Mapping


class CgroupManager(Protocol):
    """One container's cgroup, in every hierarchy of one host layout.

    ``resources`` arguments are the OCI ``linux.resources`` object as parsed from
    ``config.json`` (a mapping; None or ``{}`` means no limits). Unknown keys are
    ignored; keys this runtime does not implement raise UnsupportedError.
    """

    layout: Layout
    """The layout this manager was made for."""
    cgroups_path: str
    """The OCI ``linux.cgroupsPath``, taken relative to every hierarchy's root."""

    @property
    def devices_enforced(self) -> bool:
        """Whether device rules are enforced (False on v2: that needs eBPF)."""
        ...

    @property
    def created(self) -> list[str]:
        """The directories ``create`` made, each hierarchy top-down (a copy)."""
        ...

    def validate(self, resources: Mapping[str, Any] | None) -> None:
        """Raise ConfigError (or UnsupportedError) with a one-line message; touch nothing."""
        ...

    def create(self, resources: Mapping[str, Any] | None) -> None:
        """Make the cgroup in every hierarchy and apply ``resources``.

        Existing directories are joined and never removed later. On failure, everything
        made is removed again and CgroupError (naming the file and the errno) is raised.
        After success the caller owns the cgroup and must call :meth:`destroy`.
        """
        ...

    def update(self, resources: Mapping[str, Any] | None) -> None:
        """Apply the limits named in ``resources`` to the existing cgroup; CgroupError if gone."""
        ...

    def add(self, pid: int) -> None:
        """Move process ``pid`` (and its threads) into the cgroup in every hierarchy.

        Moving another process takes the kernel's global threadgroup lock, whose first
        writer after a quiet spell waits for an RCU grace period (~10 ms here). The
        runtime avoids that on its fast path with ``join_self_v1`` and
        ``v2_directory`` (CLONE_INTO_CGROUP).
        """
        ...

    def join_self_v1(self) -> None:
        """Move the calling process, which must be single-threaded, into every v1
        hierarchy by writing ``0`` to ``tasks``: moving only the current thread skips
        the global lock. Does nothing on v2."""
        ...

    def v2_directory(self) -> str | None:
        """The cgroup2 directory a child can be cloned straight into
        (``clone3(CLONE_INTO_CGROUP)``), or None on a v1-only host."""
        ...

    def add_v2(self, pid: int) -> None:
        """Move ``pid`` into the cgroup2 half only (after ``join_self_v1`` did v1)."""
        ...

    def pids(self) -> list[int]:
        """Return the sorted PIDs in the cgroup and its sub-cgroups; [] once destroyed."""
        ...

    def stats(self) -> CgroupStats:
        """Return a usage snapshot; what the kernel does not report is None."""
        ...

    def paths(self) -> dict[str, str]:
        """Return controller name to host directory.

        v1: ``"memory"``, ``"cpu"``, ..., ``"name=systemd"``; v2: ``""``; hybrid: the v1
        names plus ``"unified"``.
        """
        ...

    def destroy(self) -> None:
        """SIGKILL every process left inside, wait (a few seconds at most) for the cgroup
        to empty, and remove the directories ``create`` made, deepest first.

        Idempotent: what is already gone is skipped. CgroupError if processes stay or a
        directory cannot be removed; a parent that holds someone else's cgroups stays.
        """
        ...

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable form for ``state.json``; see :func:`manager_from_dict`."""
        ...

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        """Rebuild a manager of this class from :meth:`to_dict`'s output."""
        ...


def new_manager(
    cgroups_path: str, layout: Layout | None = None, mounts: CgroupMounts | None = None
) -> CgroupManager:
    """Return the manager of ``cgroups_path`` for this host; touches nothing on disk.

    ``layout`` None detects it; ``mounts`` None reads this process's
    ``/proc/self/mountinfo``. Raises ConfigError for an unusable path and CgroupError
    when the layout asked for is not mounted.
    """
    __tracebackhide__ = True
    normalize_path(cgroups_path)
    mounts = discover_mounts() if mounts is None else mounts
    layout = layout_of(mounts) if layout is None else layout
    if layout is Layout.V1:
        return V1Manager.from_mounts(cgroups_path, mounts)
    if layout is Layout.V2:
        return V2Manager.from_mounts(cgroups_path, mounts)
    return HybridManager.from_mounts(cgroups_path, mounts)


def manager_from_dict(d: Mapping[str, Any]) -> CgroupManager:
    """Rebuild whichever manager ``to_dict`` saved; CgroupError if ``d`` is malformed."""
    __tracebackhide__ = True
    layout = saved_layout(d)
    if layout is Layout.V1:
        return V1Manager.from_dict(d)
    if layout is Layout.V2:
        return V2Manager.from_dict(d)
    return HybridManager.from_dict(d)
