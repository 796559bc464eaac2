"""The cpu controller: shares, CFS quota and period, and (v1 only) real-time runtime.

v1 files: ``cpu.shares``, ``cpu.cfs_period_us``, ``cpu.cfs_quota_us``, ``cpu.rt_period_us``,
``cpu.rt_runtime_us``. v2 files: ``cpu.weight`` (converted from shares) and ``cpu.max``
(``"QUOTA PERIOD"``, or ``"max PERIOD"`` for no quota). ``linux.resources.cpu.cpus`` and
``mems`` belong to the cpuset controller (:mod:`.cpuset`).

A quota with no period keeps the kernel's period (100000 us unless changed), as runc
and crun do; a period that is given must be positive.
"""

from __future__ import annotations

from reference_runtime.cgroups.layout import Layout
from reference_runtime.cgroups.values import Write, optional_int, section
from reference_runtime.errors import ConfigError, UnsupportedError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

NAME = "cpu"

V1_SHARES = "cpu.shares"
V1_PERIOD = "cpu.cfs_period_us"
V1_QUOTA = "cpu.cfs_quota_us"
V1_RT_PERIOD = "cpu.rt_period_us"
V1_RT_RUNTIME = "cpu.rt_runtime_us"
V2_WEIGHT = "cpu.weight"
V2_MAX = "cpu.max"

# The kernel's bounds (kernel/sched/core.c): quota and period are at least 1 ms, the
# period at most 1 s; shares are clamped to 2..262144.
MIN_QUOTA_US = 1000
MIN_PERIOD_US = 1000
MAX_PERIOD_US = 1_000_000
MIN_SHARES = 2
MAX_SHARES = 262_144

_W = "cpu"


def _fields(resources: Mapping[str, Any]) -> Mapping[str, Any]:
    return section(resources, "cpu") or {}


def validate(resources: Mapping[str, Any], layout: Layout | None = None) -> None:
    """Check shares, quota and period against the kernel's bounds."""
    __tracebackhide__ = True
    cpu = _fields(resources)
    optional_int(cpu, "shares", _W, minimum=0)
    quota = optional_int(cpu, "quota", _W, minimum=-1)
    period = optional_int(cpu, "period", _W)
    rt_runtime = optional_int(cpu, "realtimeRuntime", _W, minimum=-1)
    rt_period = optional_int(cpu, "realtimePeriod", _W, minimum=0)
    if quota is not None and 0 < quota < MIN_QUOTA_US:
        raise ConfigError(
            f"linux.resources.cpu.quota must be -1 or >= {MIN_QUOTA_US} us, got {quota}"
        )
    if period is not None and not MIN_PERIOD_US <= period <= MAX_PERIOD_US:
        what = "a positive period" if period <= 0 else "a period"
        raise ConfigError(
            f"linux.resources.cpu needs {what} of {MIN_PERIOD_US}-{MAX_PERIOD_US} us, "
            f"got period {period}"
        )
    for key in ("idle", "burst"):
        if cpu.get(key) is not None:
            raise UnsupportedError(f"linux.resources.cpu.{key} is not supported by this runtime")
    if layout is Layout.V2 and (rt_runtime is not None or rt_period is not None):
        raise UnsupportedError("linux.resources.cpu.realtime* has no cgroup v2 file")


def wants(resources: Mapping[str, Any]) -> bool:
    """Return whether shares, quota, period or real-time settings are configured."""
    cpu = _fields(resources)
    keys = ("shares", "quota", "period", "realtimeRuntime", "realtimePeriod")
    return any(cpu.get(k) not in (None, 0) for k in keys)


def shares_to_weight(shares: int) -> int:
    """Convert v1 ``cpu.shares`` (2..262144) to v2 ``cpu.weight`` (1..10000), as runc does."""
    shares = min(max(shares, MIN_SHARES), MAX_SHARES)
    return 1 + ((shares - 2) * 9999) // 262142


def max_value(quota: int | None, period: int | None) -> str | None:
    """Return the ``cpu.max`` value, or None to leave it alone.

    A positive quota gives ``"QUOTA PERIOD"``, no quota (-1 or 0) gives ``"max PERIOD"``;
    without a period, only the quota part is written and the kernel keeps its period.
    """
    if quota in (None, 0) and not period:
        return None
    value = str(quota) if quota is not None and quota > 0 else "max"
    return f"{value} {period}" if period else value


def v1_writes(resources: Mapping[str, Any], cgroup_dir: str) -> list[Write]:
    """Return the v1 writes: shares, period before quota, real-time period before runtime."""
    cpu = _fields(resources)
    writes: list[Write] = []
    if cpu.get("shares"):
        writes.append((V1_SHARES, str(cpu["shares"])))
    if cpu.get("period"):
        writes.append((V1_PERIOD, str(cpu["period"])))
    if cpu.get("quota"):
        writes.append((V1_QUOTA, str(cpu["quota"])))
    if cpu.get("realtimePeriod"):
        writes.append((V1_RT_PERIOD, str(cpu["realtimePeriod"])))
    if cpu.get("realtimeRuntime"):
        writes.append((V1_RT_RUNTIME, str(cpu["realtimeRuntime"])))
    return writes


def v2_writes(resources: Mapping[str, Any], cgroup_dir: str) -> list[Write]:
    """Return the v2 writes: ``cpu.weight`` and ``cpu.max``."""
    cpu = _fields(resources)
    writes: list[Write] = []
    if cpu.get("shares"):
        writes.append((V2_WEIGHT, str(shares_to_weight(cpu["shares"]))))
    value = max_value(cpu.get("quota"), cpu.get("period"))
    if value is not None:
        writes.append((V2_MAX, value))
    return writes
