"""Validation of a whole ``linux.resources`` object, before anything is created.

The runtime calls :func:`validate_resources` (or a manager's ``validate``) while it
checks the bundle, so an invalid value fails with a one-line ConfigError and leaves
nothing on the host. Unknown keys are ignored, as the runtime-spec requires; keys the
spec defines but this runtime does not implement raise UnsupportedError, so that a
limit is never silently dropped.
"""

from __future__ import annotations

from reference_runtime.cgroups import cpu, cpuset, devices, memory, pids, unified
from reference_runtime.cgroups.controller import Controller
from reference_runtime.cgroups.layout import Layout
from reference_runtime.cgroups.values import PREFIX
from reference_runtime.errors import ConfigError, UnsupportedError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CONTROLLERS: tuple[Controller, ...] = (memory, pids, cpu, cpuset, devices)
"""Every controller module, in the order their limits are applied."""

UNSUPPORTED_SECTIONS = ("blockIO", "hugepageLimits", "network", "rdma")
"""Parts of ``linux.resources`` this runtime does not implement."""


def validate_resources(resources: Any, layout: Layout | None = None) -> None:
    """Raise ConfigError for an invalid ``linux.resources``; touch nothing on disk.

    ``resources`` is the parsed JSON object (None means no limits). With a ``layout``,
    also raise UnsupportedError for what that layout cannot express (for example
    ``memory.swappiness`` on v2).
    """
    __tracebackhide__ = True
    if resources is None:
        return
    if not isinstance(resources, dict):
        raise ConfigError(f"{PREFIX} must be an object, got {resources!r}")
    for controller in CONTROLLERS:
        controller.validate(resources, layout)
    unified.validate(resources, layout)
    for key in UNSUPPORTED_SECTIONS:
        if resources.get(key):
            raise UnsupportedError(
                f"{PREFIX}.{key} is not supported by the reference runtime; remove it"
            )
