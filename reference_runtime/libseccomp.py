"""A ctypes binding of the system's libseccomp (``libseccomp.so.2``, Debian ``libseccomp2``).

Only what the runtime uses: build a filter context, add architectures and rules, set
filter attributes, load it into the calling thread and get its notification listener.
libseccomp returns negative errno values; they are raised as ``OSError`` here, at the
boundary. The library is opened on first use (only configs with ``linux.seccomp`` pay
for it), in the runtime, before any fork: after pivot_root a container process could
no longer reach the file.
"""

from __future__ import annotations

import ctypes
import os

_LIBRARY = "libseccomp.so.2"

# Actions (seccomp.h; the kernel's SECCOMP_RET_* values).
ACT_KILL_THREAD = 0x00000000
ACT_KILL_PROCESS = 0x80000000
ACT_TRAP = 0x00030000
ACT_ERRNO = 0x00050000  # | errno
ACT_NOTIFY = 0x7FC00000
ACT_TRACE = 0x7FF00000  # | message
ACT_LOG = 0x7FFC0000
ACT_ALLOW = 0x7FFF0000

# enum scmp_filter_attr
ATTR_CTL_NNP = 3
ATTR_CTL_TSYNC = 4
ATTR_CTL_LOG = 6
ATTR_CTL_SSB = 7
ATTR_API_SYSRAWRC = 9
ATTR_CTL_WAITKILL = 10  # libseccomp 2.6 and later

# enum scmp_compare
CMP_NE = 1
CMP_LT = 2
CMP_LE = 3
CMP_EQ = 4
CMP_GE = 5
CMP_GT = 6
CMP_MASKED_EQ = 7

NR_SCMP_ERROR = -1  # what seccomp_syscall_resolve_name returns for an unknown name


class ArgCmp(ctypes.Structure):
    """``struct scmp_arg_cmp``: one condition on a system call argument."""

    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]


_lib: ctypes.CDLL | None = None


def library() -> ctypes.CDLL:
    """The opened library, with the signatures of the functions used here."""
    global _lib
    if _lib is not None:
        return _lib
    try:
        lib = ctypes.CDLL(_LIBRARY, use_errno=True)
    except OSError as exc:
        raise OSError(0, f"cannot load {_LIBRARY}: {exc} (apt-get install libseccomp2)") from None
    ctx = ctypes.c_void_p
    for name, restype, argtypes in (
        ("seccomp_init", ctx, [ctypes.c_uint32]),
        ("seccomp_release", None, [ctx]),
        ("seccomp_load", ctypes.c_int, [ctx]),
        ("seccomp_arch_resolve_name", ctypes.c_uint32, [ctypes.c_char_p]),
        ("seccomp_arch_add", ctypes.c_int, [ctx, ctypes.c_uint32]),
        ("seccomp_syscall_resolve_name", ctypes.c_int, [ctypes.c_char_p]),
        (
            "seccomp_rule_add_array",
            ctypes.c_int,
            [ctx, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(ArgCmp)],
        ),
        ("seccomp_attr_set", ctypes.c_int, [ctx, ctypes.c_int, ctypes.c_uint32]),
        ("seccomp_notify_fd", ctypes.c_int, [ctx]),
        ("seccomp_api_get", ctypes.c_uint, []),
        ("seccomp_version", ctypes.POINTER(_Version), []),
    ):
        func = getattr(lib, name)
        func.restype = restype
        func.argtypes = argtypes
    _lib = lib
    return lib


def _check(rc: int, what: str) -> int:
    if rc < 0:
        raise OSError(-rc, f"{what}: {os.strerror(-rc)}")
    return rc


def version() -> str:
    v = library().seccomp_version().contents
    return f"{v.major}.{v.minor}.{v.micro}"


def api_level() -> int:
    """The API level libseccomp found on this kernel (probed once, cached in the library)."""
    return int(library().seccomp_api_get())


def new_filter(default_action: int) -> int:
    """``seccomp_init``: a new filter context for the native architecture."""
    ctx = library().seccomp_init(default_action)
    if not ctx:
        raise OSError(0, f"seccomp_init({default_action:#x}) failed")
    return int(ctx)


def release(ctx: int) -> None:
    library().seccomp_release(ctx)


def resolve_arch(name: str) -> int:
    """The libseccomp token of an architecture (``x86_64``, ``aarch64``...); 0 if unknown."""
    return int(library().seccomp_arch_resolve_name(name.encode()))


def add_arch(ctx: int, token: int) -> None:
    rc = library().seccomp_arch_add(ctx, token)
    if rc != -17:  # EEXIST: the native architecture is there from the start
        _check(rc, "seccomp_arch_add")


def resolve_syscall(name: str) -> int:
    """The native number of a system call, or ``NR_SCMP_ERROR``."""
    return int(library().seccomp_syscall_resolve_name(name.encode()))


def add_rule(ctx: int, action: int, syscall: int, conditions: list[ArgCmp], what: str) -> None:
    array = (ArgCmp * max(len(conditions), 1))(*conditions)
    _check(library().seccomp_rule_add_array(ctx, action, syscall, len(conditions), array), what)


def set_attr(ctx: int, attr: int, value: int, what: str) -> None:
    _check(library().seccomp_attr_set(ctx, attr, value), what)


def load(ctx: int) -> None:
    """``seccomp_load``: install the filter on the calling thread (or all, with TSYNC)."""
    _check(library().seccomp_load(ctx), "seccomp_load")


def notify_fd(ctx: int) -> int:
    """The listener descriptor of a loaded filter with an SCMP_ACT_NOTIFY action."""
    return _check(library().seccomp_notify_fd(ctx), "seccomp_notify_fd")
