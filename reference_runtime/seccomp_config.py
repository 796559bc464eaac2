"""``linux.seccomp`` (config-linux.md "Seccomp"): its names and its validation.

``parse_seccomp`` checks the whole object before anything is made; ``seccomp`` builds
and loads the filter from the ``Seccomp`` it returns.
"""

from __future__ import annotations

from .errors import ConfigError
from .fields import integer, list_of, obj, opt_string, str_list, string

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dataclasses import dataclass
    from typing import Any
else:
    from ._lite import dataclass

# linux.seccomp: the names of config-linux.md "Seccomp" (those of libseccomp's seccomp.h)
SECCOMP_ACTIONS = (
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
)
SECCOMP_ERRNO_ACTIONS = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")  # those that take errnoRet
SECCOMP_ARCHES = (
    *("X86", "X86_64", "X32", "ARM", "AARCH64", "MIPS", "MIPS64", "MIPS64N32", "MIPSEL"),
    *("MIPSEL64", "MIPSEL64N32", "PPC", "PPC64", "PPC64LE", "S390", "S390X", "PARISC"),
    *("PARISC64", "RISCV64", "LOONGARCH64", "M68K", "SH", "SHEB"),
)
SECCOMP_OPS = ("NE", "LT", "LE", "EQ", "GE", "GT", "MASKED_EQ")
SECCOMP_FLAGS = (
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
)
# The system call that hands the listener descriptor to the runtime once the filter is
# loaded: notifying it would wait for a listener that never gets the descriptor (runc
# refuses SCMP_ACT_NOTIFY on write, its own hand-off, for the same reason).
SECCOMP_HANDOFF_SYSCALLS = ("sendmsg",)


@dataclass(frozen=True)
class SeccompArg:
    index: int
    value: int
    value_two: int
    op: str  # without the SCMP_CMP_ prefix


@dataclass(frozen=True)
class SeccompRule:
    names: tuple[str, ...]
    action: str
    errno_ret: int | None = None
    args: tuple[SeccompArg, ...] = ()


@dataclass(frozen=True)
class Seccomp:
    default_action: str
    default_errno_ret: int | None = None
    architectures: tuple[str, ...] = ()  # without the SCMP_ARCH_ prefix
    flags: tuple[str, ...] = ()
    listener_path: str | None = None
    listener_metadata: str | None = None
    syscalls: tuple[SeccompRule, ...] = ()

    @property
    def notifies(self) -> bool:
        """Whether some rule uses SCMP_ACT_NOTIFY (so the listener gets the fd)."""
        return any(rule.action == "SCMP_ACT_NOTIFY" for rule in self.syscalls)


def parse_seccomp(value: Any) -> Seccomp | None:
    """``linux.seccomp``; unknown syscall names are left to the filter (see ``seccomp``)."""
    __tracebackhide__ = True
    if value is None:
        return None
    where = "linux.seccomp"
    entry = obj(value, where)
    default = _action(entry.get("defaultAction"), f"{where}.defaultAction")
    if default == "SCMP_ACT_NOTIFY":
        raise ConfigError(
            f"{where}.defaultAction SCMP_ACT_NOTIFY would hold up the runtime's own system "
            "calls: notify only the syscalls the listener handles"
        )
    default_errno = _errno(entry, "defaultErrnoRet", default, where)
    arches = []
    for name in str_list(entry.get("architectures", []), f"{where}.architectures"):
        if not name.startswith("SCMP_ARCH_") or name[10:] not in SECCOMP_ARCHES:
            raise ConfigError(f"{where}.architectures: unknown architecture {name!r}")
        arches.append(name[10:])
    flags = str_list(entry.get("flags", []), f"{where}.flags")
    for flag in flags:
        if flag not in SECCOMP_FLAGS:
            raise ConfigError(
                f"{where}.flags: unknown flag {flag!r} (one of {', '.join(SECCOMP_FLAGS)})"
            )
    listener = opt_string(entry.get("listenerPath"), f"{where}.listenerPath") or None
    metadata = opt_string(entry.get("listenerMetadata"), f"{where}.listenerMetadata")
    if metadata is not None and listener is None:
        raise ConfigError(f"{where}.listenerMetadata is set but listenerPath is not")
    if listener is not None and len(listener.encode()) > 107:
        raise ConfigError(f"{where}.listenerPath is longer than a socket path can be (107)")
    rules = tuple(
        _rule(item, f"{where}.syscalls[{i}]")
        for i, item in enumerate(list_of(entry.get("syscalls", []), f"{where}.syscalls"))
    )
    spec = Seccomp(default, default_errno, tuple(arches), flags, listener, metadata, rules)
    if spec.notifies and listener is None:
        raise ConfigError(f"{where} uses SCMP_ACT_NOTIFY but sets no listenerPath")
    return spec


def _action(value: Any, where: str) -> str:
    __tracebackhide__ = True
    action = string(value, where)
    if action not in SECCOMP_ACTIONS:
        raise ConfigError(f"{where} {action!r} is not one of {', '.join(SECCOMP_ACTIONS)}")
    return action


def _errno(entry: dict[str, Any], key: str, action: str, where: str) -> int | None:
    __tracebackhide__ = True
    if entry.get(key) is None:
        return None
    if action not in SECCOMP_ERRNO_ACTIONS:
        raise ConfigError(
            f"{where}.{key} is set but {action} returns no errno "
            f"(only {' and '.join(SECCOMP_ERRNO_ACTIONS)} do)"
        )
    return integer(entry[key], f"{where}.{key}", 0, 0xFFFF)


def _rule(value: Any, where: str) -> SeccompRule:
    __tracebackhide__ = True
    entry = obj(value, where)
    names = str_list(entry.get("names"), f"{where}.names")
    if not names or not all(names):
        raise ConfigError(f"{where}.names must list at least one syscall name")
    action = _action(entry.get("action"), f"{where}.action")
    if action == "SCMP_ACT_NOTIFY" and set(names) & set(SECCOMP_HANDOFF_SYSCALLS):
        raise ConfigError(
            f"{where}: SCMP_ACT_NOTIFY cannot apply to "
            f"{', '.join(SECCOMP_HANDOFF_SYSCALLS)}: the runtime needs it to hand the "
            "listener descriptor over"
        )
    args = []
    for j, item in enumerate(list_of(entry.get("args", []), f"{where}.args")):
        arg = obj(item, f"{where}.args[{j}]")
        op = string(arg.get("op"), f"{where}.args[{j}].op")
        if not op.startswith("SCMP_CMP_") or op[9:] not in SECCOMP_OPS:
            raise ConfigError(f"{where}.args[{j}].op {op!r} is not a SCMP_CMP_ operator")
        args.append(
            SeccompArg(
                index=integer(arg.get("index"), f"{where}.args[{j}].index", 0, 5),
                value=integer(arg.get("value"), f"{where}.args[{j}].value", 0, 2**64 - 1),
                value_two=integer(
                    arg.get("valueTwo", 0), f"{where}.args[{j}].valueTwo", 0, 2**64 - 1
                ),
                op=op[9:],
            )
        )
    errno_ret = _errno(entry, "errnoRet", action, where)
    return SeccompRule(names, action, errno_ret, tuple(args))
