"""The interface every controller module implements (``memory``, ``pids``, ``cpu``, ...).

A controller module maps one part of the OCI ``linux.resources`` object to the files of
one kernel controller, for both cgroup versions. It never writes anything itself: it
validates the configuration and returns the list of writes, in the order the kernel
needs them, and the managers perform them through :mod:`.fs`. That keeps the mapping
table-testable without a kernel and keeps every host write in one place.
"""

from __future__ import annotations

from reference_runtime.cgroups.layout import Layout
from reference_runtime.cgroups.values import Write

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Protocol
else:
    # The protocol is checked statically; at run time it is a plain documented base,
    # which spares the CLI importing ``typing``.
    Protocol = object

if TYPE_CHECKING:
    from collections.abc import Mapping


class Controller(Protocol):
    """A controller module, used as a value (modules satisfy protocols structurally)."""

    NAME: str
    """The kernel's name of the controller: the v1 mount option and the v2 controller."""

    def validate(self, resources: Mapping[str, Any], layout: Layout | None) -> None:
        """Raise ConfigError (or UnsupportedError) for an invalid part of ``resources``.

        ``layout`` None checks only what is invalid everywhere; a layout also rejects
        what that layout cannot express. Touches nothing on disk.
        """

    def wants(self, resources: Mapping[str, Any]) -> bool:
        """Return whether ``resources`` asks this controller for anything."""

    def v1_writes(self, resources: Mapping[str, Any], cgroup_dir: str) -> list[Write]:
        """Return the writes into the v1 cgroup ``cgroup_dir`` that apply ``resources``.

        May read current values from ``cgroup_dir`` to order the writes.
        """

    def v2_writes(self, resources: Mapping[str, Any], cgroup_dir: str) -> list[Write]:
        """Return the writes into the v2 cgroup ``cgroup_dir`` that apply ``resources``."""
