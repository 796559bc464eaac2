"""``linux.resources.unified``: cgroup v2 files written by name (config-linux.md#unified).

Each key is a file in the container's cgroup2 directory (``"memory.high"``,
``"cgroup.max.depth"``) and each value the string written to it. The controller a key
belongs to (the part before the first dot) is enabled in the ancestors first, and the
writes come after every other limit, so a unified key overrides the same setting made
another way, as in runc. There are no such files on cgroup v1: a v1 or hybrid host
refuses the section. Keys that move or kill processes are not limits and are refused.
"""

from __future__ import annotations

from reference_runtime.cgroups.layout import Layout
from reference_runtime.cgroups.values import PREFIX, Write
from reference_runtime.errors import ConfigError, UnsupportedError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

KEY = "unified"
_NOT_LIMITS = frozenset({"cgroup.procs", "cgroup.threads", "cgroup.kill", "cgroup.type"})
_CORE = "cgroup"  # cgroup.* files belong to no controller


def _entries(resources: Mapping[str, Any]) -> Mapping[str, Any]:
    __tracebackhide__ = True
    value = resources.get(KEY)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{PREFIX}.{KEY} must be an object of file names to strings")
    return value


def validate(resources: Mapping[str, Any], layout: Layout | None = None) -> None:
    """Check that every key names a cgroup2 file and every value is a string."""
    __tracebackhide__ = True
    entries = _entries(resources)
    for key, value in entries.items():
        where = f"{PREFIX}.{KEY}[{key!r}]"
        controller, dot, knob = key.partition(".")
        if not (controller and dot and knob) or "/" in key or "\0" in key:
            raise ConfigError(f'{where}: a key is a cgroup2 file name such as "memory.high"')
        if key in _NOT_LIMITS:
            raise ConfigError(f"{where}: {key} moves or kills processes; it is not a limit")
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
    if entries and layout in (Layout.V1, Layout.HYBRID):
        raise UnsupportedError(
            f"{PREFIX}.{KEY} needs cgroup v2 only; this host's layout is {layout.value}"
        )


def controllers(resources: Mapping[str, Any]) -> list[str]:
    """The controllers the keys belong to, in order of first use (``cgroup.*``: none)."""
    found: list[str] = []
    for key in _entries(resources):
        controller = key.partition(".")[0]
        if controller != _CORE and controller not in found:
            found.append(controller)
    return found


def writes(resources: Mapping[str, Any]) -> list[Write]:
    """The writes of the keys, in the configuration's order."""
    return [(key, value) for key, value in _entries(resources).items()]
