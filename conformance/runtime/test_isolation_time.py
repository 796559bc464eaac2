"""The time namespace (config-linux.md#namespaces, "Offset for Time Namespace"): a new
one, and the configured offsets of its clocks.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytest_containers.adapters import HOST_KERNEL, RuntimeAdapter
from pytest_containers.adapters.handle import Container
from pytest_containers.errors import ContainersError
from pytest_containers.requirements import not_applicable

from ._namespaces import SLEEPER
from ._shared import SharedContainers
from ._support import Config, needs, shell

TIME_OFFSETS = {"monotonic": 7 * 86400, "boottime": 3 * 365 * 86400}


def with_time_namespace(shared: SharedContainers) -> Container:
    return shared.get(
        "time", SLEEPER, lambda config: config["linux"]["namespaces"].append({"type": "time"})
    )


@pytest.mark.requirement("RT-NS-TIME-1")
def test_time_namespace(shared: SharedContainers, runtime_adapter: RuntimeAdapter) -> None:
    try:
        c = with_time_namespace(shared)
    except ContainersError as exc:
        pytest.fail(f"the runtime makes no container with a time namespace: {exc}")
    inside = shell(c, "readlink /proc/self/ns/time || true").strip()
    if not inside:
        needs(runtime_adapter, HOST_KERNEL)
    assert inside and inside != os.readlink("/proc/self/ns/time"), (
        f"the container's time namespace is {inside!r}, the runtime's own"
    )


@pytest.mark.requirement("RT-NS-TIMEOFF-1")
def test_time_offsets(shared: SharedContainers, runtime_adapter: RuntimeAdapter) -> None:
    try:
        with_time_namespace(shared)
    except ContainersError as exc:
        not_applicable(f"the runtime makes no time namespace (RT-NS-TIME-1): {exc}")
    needs(runtime_adapter, HOST_KERNEL)

    def with_offsets(config: Config) -> None:
        config["linux"]["namespaces"].append({"type": "time"})
        config["linux"]["timeOffsets"] = {
            clock: {"secs": secs, "nanosecs": 0} for clock, secs in TIME_OFFSETS.items()
        }

    c = shared.get("time-offsets", SLEEPER, with_offsets)
    before = float(Path("/proc/uptime").read_text().split()[0])
    out = shell(c, "cat /proc/uptime; cat /proc/self/timens_offsets").splitlines()
    after = float(Path("/proc/uptime").read_text().split()[0])
    uptime = float(out[0].split()[0])
    want = TIME_OFFSETS["boottime"]
    assert before + want - 1 <= uptime <= after + want + 1, (
        f"the container's uptime is {uptime:.0f}s, the host's {before:.0f}s: the boottime "
        f"offset of {want}s is not applied"
    )
    offsets = {line.split()[0]: int(line.split()[1]) for line in out[1:] if line.strip()}
    assert offsets == TIME_OFFSETS, f"the container's time namespace has offsets {offsets}"
