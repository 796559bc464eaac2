"""Resource usage of a cgroup, read from v1 or v2 files into one :class:`CgroupStats`.

Which files exist depends on the kernel version and configuration (``memory.peak`` is
new in 5.19, the ``oom_kill`` line of ``memory.oom_control`` in 4.13, ...), so a missing
file or line gives ``None`` instead of an error.
"""

from __future__ import annotations

import os

from reference_runtime.cgroups import fs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from dataclasses import dataclass
else:
    from reference_runtime._lite import dataclass

# v1 reports "no limit" as LONG_MAX rounded down to a page (9223372036854771712); any
# limit this large (4 EiB) is effectively none and is reported as -1 like v2's "max".
V1_UNLIMITED = 1 << 62


@dataclass(frozen=True)
class CgroupStats:
    """A snapshot of a cgroup's usage. Every field is None when the kernel does not report it.

    Limits use the OCI convention: -1 means unlimited.
    """

    memory_usage: int | None = None
    """Bytes charged now (v1 ``memory.usage_in_bytes``, v2 ``memory.current``)."""
    memory_peak: int | None = None
    """Highest bytes charged (v1 ``memory.max_usage_in_bytes``, v2 ``memory.peak``)."""
    memory_limit: int | None = None
    """The memory limit in bytes, -1 for none."""
    oom_kills: int | None = None
    """Processes killed by the OOM killer (v1 ``memory.oom_control``, v2 ``memory.events``)."""
    pids_current: int | None = None
    """Tasks (threads included) in the cgroup."""
    pids_limit: int | None = None
    """``pids.max``, -1 for none."""
    cpu_usage_usec: int | None = None
    """Total CPU time consumed, in microseconds."""
    cpu_nr_periods: int | None = None
    """CFS enforcement periods that have elapsed with the cgroup runnable."""
    cpu_nr_throttled: int | None = None
    """Periods in which the cgroup used up its quota and was throttled."""
    cpu_throttled_usec: int | None = None
    """Total time the cgroup was throttled, in microseconds."""


def _limit(value: int | None) -> int | None:
    if value is not None and value >= V1_UNLIMITED:
        return -1
    return value


def _usec(nanoseconds: int | None) -> int | None:
    return None if nanoseconds is None else nanoseconds // 1000


def read_v1(dirs: Mapping[str, str]) -> CgroupStats:
    """Read the stats of a v1 cgroup; ``dirs`` maps controller names to its directories."""
    memory = dirs.get("memory")
    pids = dirs.get("pids")
    cpu = dirs.get("cpu")
    cpuacct = dirs.get("cpuacct")
    fields: dict[str, int | None] = {}
    if memory is not None:
        oom = fs.read_keyed(os.path.join(memory, "memory.oom_control"))
        fields["memory_usage"] = fs.read_value(os.path.join(memory, "memory.usage_in_bytes"))
        fields["memory_peak"] = fs.read_value(os.path.join(memory, "memory.max_usage_in_bytes"))
        fields["memory_limit"] = _limit(
            fs.read_value(os.path.join(memory, "memory.limit_in_bytes"))
        )
        fields["oom_kills"] = None if oom is None else oom.get("oom_kill")
    if pids is not None:
        fields["pids_current"] = fs.read_value(os.path.join(pids, "pids.current"))
        fields["pids_limit"] = fs.read_value(os.path.join(pids, "pids.max"))
    if cpu is not None:
        cpu_stat = fs.read_keyed(os.path.join(cpu, "cpu.stat")) or {}
        fields["cpu_nr_periods"] = cpu_stat.get("nr_periods")
        fields["cpu_nr_throttled"] = cpu_stat.get("nr_throttled")
        fields["cpu_throttled_usec"] = _usec(cpu_stat.get("throttled_time"))
    if cpuacct is not None:
        fields["cpu_usage_usec"] = _usec(fs.read_value(os.path.join(cpuacct, "cpuacct.usage")))
    return CgroupStats(**fields)


def read_v2(directory: str) -> CgroupStats:
    """Read the stats of the v2 cgroup ``directory``."""
    events = fs.read_keyed(os.path.join(directory, "memory.events"))
    cpu_stat = fs.read_keyed(os.path.join(directory, "cpu.stat")) or {}
    return CgroupStats(
        memory_usage=fs.read_value(os.path.join(directory, "memory.current")),
        memory_peak=fs.read_value(os.path.join(directory, "memory.peak")),
        memory_limit=fs.read_value(os.path.join(directory, "memory.max")),
        oom_kills=None if events is None else events.get("oom_kill"),
        pids_current=fs.read_value(os.path.join(directory, "pids.current")),
        pids_limit=fs.read_value(os.path.join(directory, "pids.max")),
        cpu_usage_usec=cpu_stat.get("usage_usec"),
        cpu_nr_periods=cpu_stat.get("nr_periods"),
        cpu_nr_throttled=cpu_stat.get("nr_throttled"),
        cpu_throttled_usec=cpu_stat.get("throttled_usec"),
    )
