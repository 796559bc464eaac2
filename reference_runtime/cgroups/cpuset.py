"""The cpuset controller: ``linux.resources.cpu.cpus`` and ``mems`` to ``cpuset.cpus``/``mems``.

On v1 a new cpuset cgroup starts with empty ``cpuset.cpus`` and ``cpuset.mems`` (unless
the parent has ``cgroup.clone_children``), and the kernel refuses to attach a process
to a cpuset with no CPU or memory node (ENOSPC). So every level the manager creates is
first given its parent's values (:func:`v1_inherit_writes`), top-down, before any limit
is applied. v2 fills in effective values by itself.
"""

from __future__ import annotations

import os

from reference_runtime.cgroups import fs
from reference_runtime.cgroups.layout import Layout
from reference_runtime.cgroups.values import Write, optional_str, section
from reference_runtime.errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

NAME = "cpuset"

CPUS = "cpuset.cpus"
MEMS = "cpuset.mems"


def _is_item(item: str) -> bool:
    """``N`` or ``N-M`` in decimal digits."""
    low, dash, high = item.partition("-")
    return low.isdigit() and low.isascii() and (not dash or (high.isdigit() and high.isascii()))


def check_list(text: str, where: str) -> None:
    """Raise ConfigError unless ``text`` is a kernel list such as ``"0-3,6,8-9"``."""
    __tracebackhide__ = True
    items = text.split(",")
    if not all(_is_item(item) for item in items):
        raise ConfigError(f'linux.resources.cpu.{where} must look like "0-3,6", got {text!r}')
    for item in text.split(","):
        low, _, high = item.partition("-")
        if high and int(high) < int(low):
            raise ConfigError(
                f"linux.resources.cpu.{where} has a backwards range {item!r} in {text!r}"
            )


def _lists(resources: Mapping[str, Any]) -> tuple[str | None, str | None]:
    cpu = section(resources, "cpu") or {}
    return optional_str(cpu, "cpus", "cpu") or None, optional_str(cpu, "mems", "cpu") or None


def validate(resources: Mapping[str, Any], layout: Layout | None = None) -> None:
    """Check the syntax of ``cpus`` and ``mems`` (an empty string means unset)."""
    __tracebackhide__ = True
    cpus, mems = _lists(resources)
    if cpus is not None:
        check_list(cpus, "cpus")
    if mems is not None:
        check_list(mems, "mems")


def wants(resources: Mapping[str, Any]) -> bool:
    """Return whether ``cpus`` or ``mems`` is configured."""
    cpus, mems = _lists(resources)
    return cpus is not None or mems is not None


def v1_inherit_writes(cgroup_dir: str) -> list[Write]:
    """Return the writes that copy the parent's cpus and mems into an empty new v1 cpuset."""
    parent = os.path.dirname(cgroup_dir.rstrip("/"))
    writes: list[Write] = []
    for name in (CPUS, MEMS):
        if fs.read_text(os.path.join(cgroup_dir, name)):
            continue
        value = fs.read_text(os.path.join(parent, name))
        if value:
            writes.append((name, value))
    return writes


def v1_writes(resources: Mapping[str, Any], cgroup_dir: str) -> list[Write]:
    """Return the writes of ``cpuset.cpus`` and ``cpuset.mems``."""
    cpus, mems = _lists(resources)
    writes: list[Write] = []
    if cpus is not None:
        writes.append((CPUS, cpus))
    if mems is not None:
        writes.append((MEMS, mems))
    return writes


def v2_writes(resources: Mapping[str, Any], cgroup_dir: str) -> list[Write]:
    """Return the writes of ``cpuset.cpus`` and ``cpuset.mems`` (same files as v1)."""
    return v1_writes(resources, cgroup_dir)
