"""The memory controller: ``linux.resources.memory`` to v1 and v2 files.

OCI's ``swap`` is the limit of memory *plus* swap (v1's ``memory.memsw.limit_in_bytes``);
v2's ``memory.swap.max`` limits swap alone, so it gets ``swap - limit``. In every field -1
means unlimited (v2 ``max``) and 0 means "not set", as in runc.
"""

from __future__ import annotations

import os

from reference_runtime.cgroups import fs
from reference_runtime.cgroups.layout import Layout
from reference_runtime.cgroups.values import (
    Write,
    optional_bool,
    optional_int,
    section,
)
from reference_runtime.errors import ConfigError, UnsupportedError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

NAME = "memory"

V1_LIMIT = "memory.limit_in_bytes"
V1_SWAP = "memory.memsw.limit_in_bytes"
V1_RESERVATION = "memory.soft_limit_in_bytes"
V1_SWAPPINESS = "memory.swappiness"
V1_OOM_CONTROL = "memory.oom_control"

V2_MAX = "memory.max"
V2_LOW = "memory.low"
V2_SWAP = "memory.swap.max"


def _fields(resources: Mapping[str, Any]) -> Mapping[str, Any]:
    return section(resources, "memory") or {}


def validate(resources: Mapping[str, Any], layout: Layout | None = None) -> None:
    """Check types and ranges, and that swap (memory+swap) is not below the limit."""
    __tracebackhide__ = True
    mem = _fields(resources)
    limit = optional_int(mem, "limit", "memory", minimum=-1)
    optional_int(mem, "reservation", "memory", minimum=-1)
    swap = optional_int(mem, "swap", "memory", minimum=-1)
    swappiness = optional_int(mem, "swappiness", "memory", minimum=0)
    if swappiness is not None and swappiness > 100:
        raise ConfigError(f"linux.resources.memory.swappiness must be 0-100, got {swappiness}")
    disable_oom_killer = optional_bool(mem, "disableOOMKiller", "memory")
    # kernel and kernelTCP are deprecated by the runtime-spec and ignored, as runc does;
    # they are still type-checked so that a typo is reported.
    optional_int(mem, "kernel", "memory", minimum=-1)
    optional_int(mem, "kernelTCP", "memory", minimum=-1)
    if swap not in (None, 0, -1):
        if limit in (None, 0, -1):
            raise ConfigError(
                "linux.resources.memory.swap needs a memory.limit too: swap is memory+swap"
            )
        assert swap is not None and limit is not None
        if swap < limit:
            raise ConfigError(
                f"linux.resources.memory.swap ({swap}) must be >= limit ({limit}): "
                "swap is memory+swap"
            )
    if layout is Layout.V2:
        if swappiness is not None:
            raise UnsupportedError("linux.resources.memory.swappiness has no cgroup v2 file")
        if disable_oom_killer:
            raise UnsupportedError(
                "linux.resources.memory.disableOOMKiller cannot be honoured on cgroup v2"
            )


def wants(resources: Mapping[str, Any]) -> bool:
    """Return whether any memory setting this module applies is configured."""
    mem = _fields(resources)
    keys = ("limit", "reservation", "swap", "swappiness", "disableOOMKiller")
    return any(mem.get(k) is not None for k in keys)


def v2_swap_value(limit: int | None, swap: int | None) -> int | None:
    """Convert OCI swap (memory+swap) to ``memory.swap.max`` (swap alone); None: leave it.

    An unlimited memory limit with no swap setting makes swap unlimited as well, so that
    "no memory limit" means the same on v1 and v2 (runc does the same).
    """
    if swap in (None, 0):
        return -1 if limit == -1 else None
    if swap == -1 or limit in (None, 0, -1):
        return swap
    assert swap is not None and limit is not None
    return swap - limit


def _v1_unlimited_swap(limit: int | None, swap: int | None) -> int | None:
    if swap in (None, 0):
        return -1 if limit == -1 else None
    return swap


def _max(value: int) -> str:
    return "max" if value == -1 else str(value)


def v1_writes(resources: Mapping[str, Any], cgroup_dir: str) -> list[Write]:
    """Return the v1 writes; limit and memsw are ordered so the kernel accepts both.

    The kernel requires ``limit <= memsw`` after every single write, so when the new
    memsw is above the current limit (raising both) memsw goes first, otherwise the limit
    goes first. memsw is written only if the file exists: without swap accounting
    (``swapaccount=0``) the kernel cannot limit swap and there is no swap to limit.
    """
    mem = _fields(resources)
    limit: int | None = mem.get("limit")
    swap = _v1_unlimited_swap(limit, mem.get("swap"))
    limit_writes = [] if limit in (None, 0) else [(V1_LIMIT, str(limit))]
    swap_writes: list[Write] = []
    if swap is not None and fs.exists(cgroup_dir, V1_SWAP):
        swap_writes = [(V1_SWAP, str(swap))]
    current_limit = fs.read_value(os.path.join(cgroup_dir, V1_LIMIT))
    swap_first = swap == -1 or (
        swap is not None and current_limit is not None and swap > current_limit
    )
    writes = swap_writes + limit_writes if swap_first else limit_writes + swap_writes
    reservation = mem.get("reservation")
    if reservation not in (None, 0):
        writes.append((V1_RESERVATION, str(reservation)))
    if mem.get("swappiness") is not None:
        writes.append((V1_SWAPPINESS, str(mem["swappiness"])))
    if mem.get("disableOOMKiller") is not None:
        writes.append((V1_OOM_CONTROL, "1" if mem["disableOOMKiller"] else "0"))
    return writes


def v2_writes(resources: Mapping[str, Any], cgroup_dir: str) -> list[Write]:
    """Return the v2 writes: ``memory.swap.max`` (if it exists), ``memory.max``, ``memory.low``."""
    mem = _fields(resources)
    limit: int | None = mem.get("limit")
    writes: list[Write] = []
    swap = v2_swap_value(limit, mem.get("swap"))
    # No memory.swap.max means the kernel has no swap accounting: nothing to limit.
    if swap is not None and fs.exists(cgroup_dir, V2_SWAP):
        writes.append((V2_SWAP, _max(swap)))
    if limit not in (None, 0):
        assert limit is not None
        writes.append((V2_MAX, _max(limit)))
    reservation = mem.get("reservation")
    if reservation not in (None, 0):
        writes.append((V2_LOW, _max(reservation)))
    return writes
