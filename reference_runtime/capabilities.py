"""Linux capability names and numbers (linux/capability.h), and set arithmetic."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .config import CapabilitySets

CAPABILITIES: dict[str, int] = {
    "CAP_CHOWN": 0,
    "CAP_DAC_OVERRIDE": 1,
    "CAP_DAC_READ_SEARCH": 2,
    "CAP_FOWNER": 3,
    "CAP_FSETID": 4,
    "CAP_KILL": 5,
    "CAP_SETGID": 6,
    "CAP_SETUID": 7,
    "CAP_SETPCAP": 8,
    "CAP_LINUX_IMMUTABLE": 9,
    "CAP_NET_BIND_SERVICE": 10,
    "CAP_NET_BROADCAST": 11,
    "CAP_NET_ADMIN": 12,
    "CAP_NET_RAW": 13,
    "CAP_IPC_LOCK": 14,
    "CAP_IPC_OWNER": 15,
    "CAP_SYS_MODULE": 16,
    "CAP_SYS_RAWIO": 17,
    "CAP_SYS_CHROOT": 18,
    "CAP_SYS_PTRACE": 19,
    "CAP_SYS_PACCT": 20,
    "CAP_SYS_ADMIN": 21,
    "CAP_SYS_BOOT": 22,
    "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24,
    "CAP_SYS_TIME": 25,
    "CAP_SYS_TTY_CONFIG": 26,
    "CAP_MKNOD": 27,
    "CAP_LEASE": 28,
    "CAP_AUDIT_WRITE": 29,
    "CAP_AUDIT_CONTROL": 30,
    "CAP_SETFCAP": 31,
    "CAP_MAC_OVERRIDE": 32,
    "CAP_MAC_ADMIN": 33,
    "CAP_SYSLOG": 34,
    "CAP_WAKE_ALARM": 35,
    "CAP_BLOCK_SUSPEND": 36,
    "CAP_AUDIT_READ": 37,
    "CAP_PERFMON": 38,
    "CAP_BPF": 39,
    "CAP_CHECKPOINT_RESTORE": 40,
}

NUMBERS: dict[int, str] = {number: name for name, number in CAPABILITIES.items()}


def last_cap() -> int:
    """The highest capability number this kernel knows."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:  # no procfs: fall back to the table
        return max(NUMBERS)


def mask(names: list[str], where: str, warnings: list[str]) -> int:
    """The bitmask of the capability ``names`` this kernel knows.

    config.md: a capability that cannot be granted "MUST be logged as a warning" and
    runtimes "SHOULD NOT fail": unknown names are skipped with a warning.
    """
    bits = 0
    last = last_cap()
    for name in names:
        number = CAPABILITIES.get(name)
        if number is None or number > last:
            warnings.append(f"{where}: capability {name!r} is not known to this kernel; skipped")
            continue
        bits |= 1 << number
    return bits


def names_of(bits: int) -> list[str]:
    """Capability names set in ``bits``, in number order."""
    return [NUMBERS.get(n, f"CAP_{n}") for n in range(64) if bits >> n & 1]


def grantable(
    caps: CapabilitySets, bounding: int, permitted: int, warnings: list[str]
) -> CapabilitySets:
    """``caps`` without what a process holding ``bounding`` and ``permitted`` cannot grant.

    config.md: a capability that "cannot be granted otherwise MUST be logged as a
    warning" and runtimes "SHOULD NOT fail": each one is skipped with a warning. The
    ambient set keeps only what is also permitted and inheritable, which is all the
    kernel raises (runc skips the others with a warning too).
    """
    held = bounding & permitted
    wanted = caps.bounding | caps.effective | caps.permitted | caps.inheritable
    for name in names_of(wanted & ~held):
        sets = [
            kind
            for kind, bits in (
                ("bounding", caps.bounding),
                ("effective", caps.effective),
                ("permitted", caps.permitted),
                ("inheritable", caps.inheritable),
            )
            if bits >> CAPABILITIES.get(name, 64) & 1
        ]
        warnings.append(
            f"process.capabilities ({', '.join(sets)}): {name} cannot be granted, the "
            "runtime does not hold it; skipped"
        )
    permitted_out = caps.permitted & held
    inheritable_out = caps.inheritable & held
    ambient = caps.ambient & permitted_out & inheritable_out
    for name in names_of(caps.ambient & ~ambient):
        warnings.append(
            f"process.capabilities.ambient: {name} is not also permitted and inheritable, "
            "so the kernel cannot raise it; skipped"
        )
    from ._lite import replace  # already loaded: this runs after pivot_root

    return replace(
        caps,
        bounding=caps.bounding & bounding,
        effective=caps.effective & held,
        inheritable=inheritable_out,
        permitted=permitted_out,
        ambient=ambient,
    )
