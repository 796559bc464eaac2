"""The config.json fields the Docker adapter cannot hand to the Engine.

``engine_options`` maps what the Engine API can say; ``inexpressible(config)`` names
the first field it has no option for, so that a container never runs without a field
its config asks for (a test of that field would pass or fail for the wrong reason).
Empty, false and absent values ask for nothing; ``maskedPaths``, ``readonlyPaths`` and
device rules are fine as long as they ask for no more than the Engine does anyway.
"""

from __future__ import annotations

from typing import Any

from ..errors import NotApplicableError
from .engine import ENGINE_MOUNTS

CONSOLE_SIZE = (
    "a console size before the program starts (the Engine sets a terminal's size by a "
    "resize after start, which a program that reads its size at once does not see)"
)

# What the Engine itself masks and makes read-only in every container (moby's defaults):
# a config asking for no more than these is what the Engine does anyway.
ENGINE_MASKED_PATHS = frozenset({
    "/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
    "/proc/latency_stats", "/proc/sched_debug", "/proc/scsi", "/proc/timer_list",
    "/proc/timer_stats", "/sys/devices/virtual/powercap", "/sys/firmware",
})  # fmt: skip
ENGINE_READONLY_PATHS = frozenset(
    {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)
# The device cgroup rule of every default config: deny all (the Engine then allows its own).
_DENY_ALL_DEVICES = [{"allow": False, "access": "rwm"}]
# Fields engine_options has no Engine option for, as (path in config.json, what it is).
_UNMAPPED = (
    (("process", "user", "umask"), "a umask"),
    (("process", "apparmorProfile"), "an AppArmor profile"),
    (("process", "selinuxLabel"), "an SELinux label"),
    (("process", "scheduler"), "a scheduling policy"),
    (("process", "ioPriority"), "an I/O priority"),
    (("process", "execCPUAffinity"), "a CPU affinity"),
    (("domainname",), "a domain name"),
    (("linux", "devices"), "devices"),
    (("linux", "seccomp"), "a seccomp filter (the Engine applies its own profile)"),
    (("linux", "personality"), "a personality"),
    (("linux", "cgroupsPath"), "a cgroup path"),
    (("linux", "rootfsPropagation"), "a root propagation"),
    (("linux", "mountLabel"), "a mount label"),
    (("linux", "intelRdt"), "Intel RDT"),
    (("linux", "timeOffsets"), "time offsets"),
    (("linux", "uidMappings"), "uid mappings"),
    (("linux", "gidMappings"), "gid mappings"),
    (("linux", "resources", "memory", "kernel"), "a kernel memory limit"),
    (("linux", "resources", "memory", "kernelTCP"), "a kernel TCP memory limit"),
    (("linux", "resources", "memory", "swappiness"), "a swappiness"),
    (("linux", "resources", "memory", "useHierarchy"), "memory hierarchy accounting"),
    (("linux", "resources", "memory", "checkBeforeUpdate"), "a checked memory update"),
    (("linux", "resources", "cpu", "realtimeRuntime"), "a realtime runtime"),
    (("linux", "resources", "cpu", "realtimePeriod"), "a realtime period"),
    (("linux", "resources", "cpu", "burst"), "a CPU burst"),
    (("linux", "resources", "cpu", "idle"), "an idle CPU policy"),
    (("linux", "resources", "blockIO"), "block I/O limits"),
    (("linux", "resources", "hugepageLimits"), "huge page limits"),
    (("linux", "resources", "network"), "network class and priorities"),
    (("linux", "resources", "rdma"), "RDMA limits"),
    (("linux", "resources", "unified"), "cgroup v2 files"),
)
# Bind mount options the Engine's bind mounts can say.
_BIND_OPTIONS = frozenset({"bind", "rbind", "ro", "rw"})


def check_expressible(config: dict[str, Any]) -> None:
    """``NotApplicableError`` naming the first field of ``config`` the adapter cannot hand
    to the Engine (``engine_options`` raises for the rest it cannot say)."""
    __tracebackhide__ = True
    found = inexpressible(config)
    if found is not None:
        field, what = found
        raise NotApplicableError(
            field, f"docker: the adapter has no Engine option for {what} ({field})"
        )


def inexpressible(config: dict[str, Any]) -> tuple[str, str] | None:
    """(field, what it is) of the first field of ``config`` with no Engine option; None
    when the Engine can run the config as it says."""
    for path, what in _UNMAPPED:
        value = _at(config, path)
        if not (value is None or value is False or value == [] or value == {} or value == ""):
            return ".".join(path), what
    process = config.get("process", {})
    # consoleSize without a terminal is ignored, as config.md requires
    if process.get("terminal") is True and process.get("consoleSize"):
        return "process.consoleSize", CONSOLE_SIZE
    linux = config.get("linux", {})
    if linux.get("resources", {}).get("devices", _DENY_ALL_DEVICES) != _DENY_ALL_DEVICES:
        return "linux.resources.devices", "device cgroup rules"
    for key, allowed in (
        ("maskedPaths", ENGINE_MASKED_PATHS),
        ("readonlyPaths", ENGINE_READONLY_PATHS),
    ):
        extra = sorted(set(linux.get(key, [])) - allowed)
        if extra:
            return f"linux.{key}", f"paths beyond the Engine's own: {', '.join(extra)}"
    return _capabilities_problem(process) or _mounts_problem(config)


def _capabilities_problem(process: dict[str, Any]) -> tuple[str, str] | None:
    # The Engine takes one set, the bounding set (as cap_add), and gives it to root as
    # effective and permitted too; inheritable stays empty, and so ambient (the kernel
    # raises only what is also inheritable). What it gives another user is its own affair.
    caps = process.get("capabilities")
    if caps is None:
        return None
    if process.get("user", {}).get("uid", 0) == 0:
        bounding = set(caps.get("bounding", []))
        for kind in ("effective", "permitted"):
            if set(caps.get(kind, [])) != bounding:
                return (
                    f"process.capabilities.{kind}",
                    f"the {kind} set differing from the bounding set",
                )
    if caps.get("inheritable"):
        return "process.capabilities.inheritable", "an inheritable set"
    return None


def _mounts_problem(config: dict[str, Any]) -> tuple[str, str] | None:
    for i, mount in enumerate(config.get("mounts", [])):
        options = set(mount.get("options", []))
        bind = mount.get("type") == "bind" or bool(options & {"bind", "rbind"})
        if mount.get("destination") not in ENGINE_MOUNTS and bind and options - _BIND_OPTIONS:
            extra = ", ".join(sorted(options - _BIND_OPTIONS))
            return f"mounts[{i}].options", f"bind mount options {extra}"
    return None


def _at(config: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = config
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node
