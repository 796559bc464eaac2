"""The kernel boundary: every system call that changes the host or a namespace.

Everything that unshares, joins, mounts, pivots or changes credentials goes through
this module, so it is easy to see what touches the host. Functions raise ``OSError``
with the errno and the arguments; callers translate it into the runtime's own errors.
"""

from __future__ import annotations

import _socket
import ctypes
import fcntl
import os
import struct

# CDLL(None) is the running interpreter's own libc: no ldconfig lookup at start-up.
_libc = ctypes.CDLL(None, use_errno=True)
# The same libc, called with the GIL held (for clone3: see fork_into_cgroup).
_libc_gil = ctypes.PyDLL(None, use_errno=True)

# Namespace clone flags (linux/sched.h).
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080

# Mount flags (linux/mount.h).
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_I_VERSION = 1 << 23
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25

MNT_DETACH = 2

# mount_setattr(2) attributes (linux/mount.h) and the new mount API's flags.
MOUNT_ATTR_RDONLY = 0x00000001
MOUNT_ATTR_NOSUID = 0x00000002
MOUNT_ATTR_NODEV = 0x00000004
MOUNT_ATTR_NOEXEC = 0x00000008
MOUNT_ATTR__ATIME = 0x00000070  # the three atime modes below, one at a time
MOUNT_ATTR_RELATIME = 0x00000000
MOUNT_ATTR_NOATIME = 0x00000010
MOUNT_ATTR_STRICTATIME = 0x00000020
MOUNT_ATTR_NODIRATIME = 0x00000080
MOUNT_ATTR_IDMAP = 0x00100000
MOUNT_ATTR_NOSYMFOLLOW = 0x00200000
OPEN_TREE_CLONE = 1
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
MOVE_MOUNT_F_EMPTY_PATH = 0x00000004

# prctl options (linux/prctl.h).
PR_SET_PDEATHSIG = 1
PR_SET_KEEPCAPS = 8
PR_SET_NAME = 15
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

CLONE_INTO_CGROUP = 0x200000000
_SIGCHLD = 17

_SYS_CLONE3 = 435
_SYS_OPEN_TREE = 428
_SYS_MOVE_MOUNT = 429
_SYS_MOUNT_SETATTR = 442
_SYS_SCHED_SETATTR = 314
_SYS_IOPRIO_SET = 251
_SYS_PERSONALITY = 135
_IOPRIO_WHO_PROCESS = 1
_SYS_PIVOT_ROOT = 155  # x86_64
_SYS_CAPSET = 126
_SYS_CAPGET = 125
_SYS_SETNS = 308
_SYS_UNSHARE = 272
_SYS_SETRESUID = 117
_SYS_SETRESGID = 119
_SYS_SETGROUPS = 116
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


def _check(result: int, what: str, path: str | None = None) -> int:
    if result == -1:
        err = ctypes.get_errno()
        if path is None:
            raise OSError(err, f"{what}: {os.strerror(err)}")
        raise OSError(err, f"{what}: {os.strerror(err)}", path)
    return result


def _syscall(number: int, *args: object, what: str) -> int:
    return _check(_libc.syscall(number, *args), what)


def unshare(flags: int) -> None:
    """unshare(2) the namespaces in ``flags``."""
    _syscall(_SYS_UNSHARE, ctypes.c_int(flags), what="unshare")


def setns(fd: int, nstype: int = 0) -> None:
    """setns(2) into the namespace open at ``fd``."""
    _syscall(_SYS_SETNS, ctypes.c_int(fd), ctypes.c_int(nstype), what="setns")


def mount(
    source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None
) -> None:
    """mount(2); ``data`` is the filesystem-specific option string."""
    src = source.encode() if source is not None else None
    fst = fstype.encode() if fstype is not None else None
    dat = data.encode() if data else None
    res = _libc.mount(src, target.encode(), fst, ctypes.c_ulong(flags), dat)
    _check(res, f"mount {source or fstype} on {target}", target)


def umount(target: str, flags: int = 0) -> None:
    """umount2(2)."""
    _check(_libc.umount2(target.encode(), ctypes.c_int(flags)), f"umount {target}", target)


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def mount_setattr(
    path: str,
    attr_set: int,
    attr_clr: int,
    flags: int = 0,
    *,
    dirfd: int = AT_FDCWD,
    userns_fd: int = 0,
) -> None:
    """mount_setattr(2): change the flags of the mount at ``path`` (with ``AT_RECURSIVE``,
    of every mount below it too); ``userns_fd`` with ``MOUNT_ATTR_IDMAP``."""
    attr = _MountAttr(attr_set, attr_clr, 0, userns_fd)
    _check(
        _libc.syscall(
            ctypes.c_long(_SYS_MOUNT_SETATTR),
            ctypes.c_int(dirfd),
            path.encode(),
            ctypes.c_uint(flags),
            ctypes.byref(attr),
            ctypes.c_size_t(ctypes.sizeof(attr)),
        ),
        f"mount_setattr {path or dirfd}",
        path or None,
    )


def open_tree(path: str, flags: int) -> int:
    """open_tree(2); with ``OPEN_TREE_CLONE``, a detached copy of the mount at ``path``."""
    return _check(
        _libc.syscall(
            ctypes.c_long(_SYS_OPEN_TREE),
            ctypes.c_int(AT_FDCWD),
            path.encode(),
            ctypes.c_uint(flags | os.O_CLOEXEC),
        ),
        f"open_tree {path}",
        path,
    )


def move_mount(tree_fd: int, target: str) -> None:
    """move_mount(2) of the detached tree open at ``tree_fd`` onto ``target``."""
    _check(
        _libc.syscall(
            ctypes.c_long(_SYS_MOVE_MOUNT),
            ctypes.c_int(tree_fd),
            b"",
            ctypes.c_int(AT_FDCWD),
            target.encode(),
            ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH),
        ),
        f"move_mount onto {target}",
        target,
    )


def pivot_root(new_root: str, put_old: str) -> None:
    """pivot_root(2)."""
    _syscall(_SYS_PIVOT_ROOT, new_root.encode(), put_old.encode(), what="pivot_root")


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, ctypes.c_size_t(len(raw))), "sethostname")


def setdomainname(name: str) -> None:
    raw = name.encode()
    _check(_libc.setdomainname(raw, ctypes.c_size_t(len(raw))), "setdomainname")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return _check(
        _libc.prctl(
            ctypes.c_int(option),
            ctypes.c_ulong(arg2),
            ctypes.c_ulong(arg3),
            ctypes.c_ulong(arg4),
            ctypes.c_ulong(arg5),
        ),
        f"prctl({option})",
    )


def setresuid(uid: int) -> None:
    """Set real, effective and saved uid with the raw syscall (this thread only is fine:
    the runtime's container processes are single-threaded)."""
    _syscall(
        _SYS_SETRESUID, ctypes.c_uint(uid), ctypes.c_uint(uid), ctypes.c_uint(uid), what="setresuid"
    )


def setresgid(gid: int) -> None:
    _syscall(
        _SYS_SETRESGID, ctypes.c_uint(gid), ctypes.c_uint(gid), ctypes.c_uint(gid), what="setresgid"
    )


def setgroups(gids: list[int]) -> None:
    arr = (ctypes.c_uint * max(len(gids), 1))(*gids)
    _syscall(_SYS_SETGROUPS, ctypes.c_size_t(len(gids)), arr, what="setgroups")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """capset(2) for the calling thread with 64-bit masks."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in range(2):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _syscall(_SYS_CAPSET, ctypes.byref(header), data, what="capset")


def capget() -> tuple[int, int, int]:
    """capget(2) of the calling thread: (effective, permitted, inheritable) as 64-bit masks."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _syscall(_SYS_CAPGET, ctypes.byref(header), data, what="capget")
    return (
        data[0].effective | data[1].effective << 32,
        data[0].permitted | data[1].permitted << 32,
        data[0].inheritable | data[1].inheritable << 32,
    )


def capbset_read(cap: int) -> bool:
    return prctl(PR_CAPBSET_READ, cap) == 1


def capbset_drop(cap: int) -> None:
    prctl(PR_CAPBSET_DROP, cap)


def ambient_raise(cap: int) -> None:
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap)


def ambient_clear() -> None:
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)


def set_no_new_privs() -> None:
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def set_child_subreaper(on: bool = True) -> None:
    """Make orphaned descendants be reparented to us (``on``) or not."""
    prctl(PR_SET_CHILD_SUBREAPER, int(on))


def get_child_subreaper() -> bool:
    flag = ctypes.c_int(0)
    _check(
        _libc.prctl(
            ctypes.c_int(PR_GET_CHILD_SUBREAPER),
            ctypes.byref(flag),
            ctypes.c_ulong(0),
            ctypes.c_ulong(0),
            ctypes.c_ulong(0),
        ),
        "prctl(PR_GET_CHILD_SUBREAPER)",
    )
    return bool(flag.value)


def set_pdeathsig(sig: int) -> None:
    prctl(PR_SET_PDEATHSIG, sig)


def set_process_name(name: str) -> None:
    """Name the calling thread (what ``ps`` shows as its command)."""
    buf = ctypes.create_string_buffer(name.encode()[:15])
    _check(
        _libc.prctl(
            ctypes.c_int(PR_SET_NAME), buf, ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0)
        ),
        "prctl(PR_SET_NAME)",
    )


class _CloneArgs(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_uint64)
        for name in (
            "flags",
            "pidfd",
            "child_tid",
            "parent_tid",
            "exit_signal",
            "stack",
            "stack_size",
            "tls",
            "set_tid",
            "set_tid_size",
            "cgroup",
        )
    ]


def fork_into_cgroup(cgroup_fd: int) -> int:
    """``os.fork()``, with the child born in the cgroup2 directory open at ``cgroup_fd``.

    clone3(CLONE_INTO_CGROUP) places the child without the global threadgroup lock that
    writing its PID to ``cgroup.procs`` takes (an RCU grace period, ~10 ms). The
    interpreter's fork hooks run as they do in ``os.fork``, and the system call is made
    with the GIL held; still, glibc's own fork handlers do not run, so the caller must
    be single-threaded (the runtime calls this from a freshly forked process).
    """
    args = _CloneArgs(flags=CLONE_INTO_CGROUP, exit_signal=_SIGCHLD, cgroup=cgroup_fd)
    ctypes.pythonapi.PyOS_BeforeFork()
    pid = _libc_gil.syscall(
        ctypes.c_long(_SYS_CLONE3), ctypes.byref(args), ctypes.c_size_t(ctypes.sizeof(args))
    )
    if pid == 0:
        ctypes.pythonapi.PyOS_AfterFork_Child()
        return 0
    err = ctypes.get_errno()
    ctypes.pythonapi.PyOS_AfterFork_Parent()
    if pid < 0:
        raise OSError(err, f"clone3(CLONE_INTO_CGROUP): {os.strerror(err)}")
    return int(pid)


class _SchedAttr(ctypes.Structure):
    _fields_ = [
        ("size", ctypes.c_uint32),
        ("sched_policy", ctypes.c_uint32),
        ("sched_flags", ctypes.c_uint64),
        ("sched_nice", ctypes.c_int32),
        ("sched_priority", ctypes.c_uint32),
        ("sched_runtime", ctypes.c_uint64),
        ("sched_deadline", ctypes.c_uint64),
        ("sched_period", ctypes.c_uint64),
    ]


def sched_setattr(
    policy: int, nice: int, priority: int, flags: int, runtime: int, deadline: int, period: int
) -> None:
    """sched_setattr(2) for the calling thread."""
    attr = _SchedAttr(
        ctypes.sizeof(_SchedAttr), policy, flags, nice, priority, runtime, deadline, period
    )
    _syscall(
        _SYS_SCHED_SETATTR,
        ctypes.c_int(0),
        ctypes.byref(attr),
        ctypes.c_uint(0),
        what="sched_setattr",
    )


def ioprio_set(io_class: int, priority: int) -> None:
    """ioprio_set(2) for the calling process."""
    value = (io_class << 13) | priority
    _syscall(
        _SYS_IOPRIO_SET,
        ctypes.c_int(_IOPRIO_WHO_PROCESS),
        ctypes.c_int(0),
        ctypes.c_int(value),
        what="ioprio_set",
    )


def personality(persona: int) -> None:
    _syscall(_SYS_PERSONALITY, ctypes.c_ulong(persona), what="personality")


def loopback_up() -> None:
    """Bring ``lo`` up in the calling process's network namespace."""
    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        req = struct.pack("16sH14x", b"lo", 0)
        res = fcntl.ioctl(sock.fileno(), _SIOCGIFFLAGS, req)
        flags = struct.unpack("16sH14x", res)[1]
        fcntl.ioctl(sock.fileno(), _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))
    finally:
        sock.close()


def send_fd(sock: _socket.socket, data: bytes, fd: int) -> None:
    """Send ``data`` with ``fd`` passed by SCM_RIGHTS in the first sendmsg(2)."""
    rights = struct.pack("i", fd)
    sent = sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights)])
    if sent < len(data):
        sock.sendall(data[sent:])


def recv_fds(sock: _socket.socket, size: int, max_fds: int = 1) -> tuple[bytes, list[int]]:
    """recvmsg(2): one message and the descriptors passed with it by SCM_RIGHTS."""
    int_size = struct.calcsize("i")
    data, ancillary, _, _ = sock.recvmsg(size, _socket.CMSG_SPACE(max_fds * int_size))
    fds: list[int] = []
    for level, kind, payload in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            count = len(payload) // int_size
            fds.extend(struct.unpack(f"{count}i", payload[: count * int_size]))
    return data, fds


def write_file(path: str, data: str) -> None:
    """Write ``data`` to a kernel file (procfs, sysfs, cgroupfs) in one write(2)."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, data.encode())
    finally:
        os.close(fd)
