"""The devices controller: ``linux.resources.devices`` to v1 ``devices.allow``/``devices.deny``.

v1: deny everything (``a``), apply the configuration's rules in order, then allow the
runtime-spec's default devices. The defaults go last, as in runc, so that the common
first rule ``{"allow": false, "access": "rwm"}`` (deny all) does not take away
``/dev/null`` and friends, which the spec says every container has.

v2 has no device files: device access is controlled by an eBPF program attached to the
cgroup (``BPF_CGROUP_DEVICE``), which this runtime does not build. On v2 the rules are
validated, accepted and *not enforced*; :data:`ENFORCED_ON_V2` and the managers'
``devices_enforced`` attribute say so, so that callers (the conformance suite) can
report the requirement as not met instead of passing it.
"""

from __future__ import annotations

from reference_runtime.cgroups.layout import Layout
from reference_runtime.cgroups.values import PREFIX, Write
from reference_runtime.errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from dataclasses import dataclass
    from typing import Any
else:
    from reference_runtime._lite import dataclass

NAME = "devices"
ENFORCED_ON_V2 = False
"""Device rules are not enforced on cgroup v2 (no eBPF program is attached)."""

ALLOW = "devices.allow"
DENY = "devices.deny"

_TYPES = frozenset("abc")
_ACCESS = frozenset("rwm")


@dataclass(frozen=True)
class DeviceRule:
    """One device cgroup rule; ``None`` for major or minor means any (``*``)."""

    allow: bool
    type: str = "a"
    major: int | None = None
    minor: int | None = None
    access: str = "rwm"

    def line(self) -> str:
        """Return the rule as the kernel reads it, e.g. ``"c 1:3 rwm"``."""
        major = "*" if self.major is None else str(self.major)
        minor = "*" if self.minor is None else str(self.minor)
        return f"{self.type} {major}:{minor} {self.access}"

    def write(self) -> Write:
        """Return the write that applies this rule."""
        return (ALLOW if self.allow else DENY, self.line())


DEFAULT_ALLOWED: tuple[DeviceRule, ...] = (
    DeviceRule(True, "c", 1, 3),  # /dev/null
    DeviceRule(True, "c", 1, 5),  # /dev/zero
    DeviceRule(True, "c", 1, 7),  # /dev/full
    DeviceRule(True, "c", 1, 8),  # /dev/random
    DeviceRule(True, "c", 1, 9),  # /dev/urandom
    DeviceRule(True, "c", 5, 0),  # /dev/tty
    DeviceRule(True, "c", 5, 2),  # /dev/ptmx
    DeviceRule(True, "c", 136, None),  # /dev/pts/*
    # mknod of any node, as runc and crun allow: the runtime creates linux.devices
    # inside the container after it has joined its cgroup; using them is still denied
    DeviceRule(True, "c", None, None, "m"),
    DeviceRule(True, "b", None, None, "m"),
)
"""The runtime-spec's default devices (config-linux.md, "Default Devices")."""


def _number(rule: Mapping[str, Any], key: str, where: str) -> int | None:
    __tracebackhide__ = True
    value = rule.get(key)
    if value is None or value == -1:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{where}.{key} must be a device number or -1, got {value!r}")
    return value


def parse_rule(rule: Any, index: int) -> DeviceRule:
    """Turn one ``linux.resources.devices[i]`` object into a :class:`DeviceRule`."""
    __tracebackhide__ = True
    where = f"{PREFIX}.devices[{index}]"
    if not isinstance(rule, dict):
        raise ConfigError(f"{where} must be an object, got {rule!r}")
    allow = rule.get("allow")
    if not isinstance(allow, bool):
        raise ConfigError(f"{where}.allow is required and must be true or false")
    kind = rule.get("type") or "a"
    if kind not in _TYPES:
        raise ConfigError(f'{where}.type must be "a", "b" or "c", got {kind!r}')
    access = rule.get("access") or "rwm"
    if not isinstance(access, str) or not set(access) <= _ACCESS:
        raise ConfigError(f'{where}.access must be made of "r", "w" and "m", got {access!r}')
    return DeviceRule(
        allow, kind, _number(rule, "major", where), _number(rule, "minor", where), access
    )


def parse_rules(resources: Mapping[str, Any]) -> list[DeviceRule]:
    """Return the configuration's device rules, in order."""
    __tracebackhide__ = True
    rules = resources.get("devices")
    if rules is None:
        return []
    if not isinstance(rules, (list, tuple)):
        raise ConfigError(f"{PREFIX}.devices must be a list, got {rules!r}")
    return [parse_rule(rule, i) for i, rule in enumerate(rules)]


def validate(resources: Mapping[str, Any], layout: Layout | None = None) -> None:
    """Check every rule. On v2 the rules are still checked, though not enforced."""
    parse_rules(resources)


def wants(resources: Mapping[str, Any]) -> bool:
    """Return whether the configuration has device rules.

    The managers still apply the default rules on v1 when it has none: a container
    without rules gets "deny all but the default devices", as under runc.
    """
    return bool(resources.get("devices"))


def v1_writes(resources: Mapping[str, Any], cgroup_dir: str) -> list[Write]:
    """Return ``deny a``, the configured rules in order, then the default devices.

    The kernel reads any rule of type ``a`` as "all devices", whatever its access, which
    is how v1 behaves under runc as well.
    """
    writes: list[Write] = [(DENY, "a")]
    writes += [rule.write() for rule in parse_rules(resources)]
    writes += [rule.write() for rule in DEFAULT_ALLOWED]
    return writes


def v2_writes(resources: Mapping[str, Any], cgroup_dir: str) -> list[Write]:
    """Return nothing: v2 device rules need eBPF, which this runtime does not attach."""
    return []
