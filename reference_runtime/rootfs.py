"""The container's root filesystem: mounts, /dev, pivot_root, masked and read-only paths.

Runs inside the container's new mount namespace, in the kernel's order: stop mount
propagation to the host, make the rootfs a mount point, mount the config's mounts
(paths resolved inside the rootfs, never through a symlink out of it), populate /dev,
run the createContainer hooks, pivot_root (or MS_MOVE + chroot where pivot_root cannot
work), then mask and write-protect paths and finally make the root read-only.

Per-mount flags are set by mount(2) (a bind mount by a remount); the recursive options
("rro", "rnosuid"...) by mount_setattr(2) with AT_RECURSIVE. An idmapped bind mount is
prepared by the runtime before it forks (``open_idmapped``) and only moved into place
here.
"""

from __future__ import annotations

import errno
import os
import stat

from . import kernel, namespaces
from .config import Config, Device, IDMapping, Mount
from .errors import RootfsError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from dataclasses import dataclass
else:
    from ._lite import dataclass

_FLAGS: dict[str, tuple[bool, int]] = {
    # option: (clear, flag)
    "ro": (False, kernel.MS_RDONLY),
    "rw": (True, kernel.MS_RDONLY),
    "nosuid": (False, kernel.MS_NOSUID),
    "suid": (True, kernel.MS_NOSUID),
    "nodev": (False, kernel.MS_NODEV),
    "dev": (True, kernel.MS_NODEV),
    "noexec": (False, kernel.MS_NOEXEC),
    "exec": (True, kernel.MS_NOEXEC),
    "sync": (False, kernel.MS_SYNCHRONOUS),
    "async": (True, kernel.MS_SYNCHRONOUS),
    "dirsync": (False, kernel.MS_DIRSYNC),
    "remount": (False, kernel.MS_REMOUNT),
    "mand": (False, kernel.MS_MANDLOCK),
    "nomand": (True, kernel.MS_MANDLOCK),
    "atime": (True, kernel.MS_NOATIME),
    "noatime": (False, kernel.MS_NOATIME),
    "diratime": (True, kernel.MS_NODIRATIME),
    "nodiratime": (False, kernel.MS_NODIRATIME),
    "relatime": (False, kernel.MS_RELATIME),
    "norelatime": (True, kernel.MS_RELATIME),
    "strictatime": (False, kernel.MS_STRICTATIME),
    "nostrictatime": (True, kernel.MS_STRICTATIME),
    "bind": (False, kernel.MS_BIND),
    "rbind": (False, kernel.MS_BIND | kernel.MS_REC),
    "nosymfollow": (False, kernel.MS_NOSYMFOLLOW),
    "symfollow": (True, kernel.MS_NOSYMFOLLOW),
    "lazytime": (False, kernel.MS_LAZYTIME),
    "silent": (False, kernel.MS_SILENT),
    "loud": (True, kernel.MS_SILENT),
    "iversion": (False, kernel.MS_I_VERSION),
    "noiversion": (True, kernel.MS_I_VERSION),
}

PROPAGATION: dict[str, int] = {
    "private": kernel.MS_PRIVATE,
    "rprivate": kernel.MS_PRIVATE | kernel.MS_REC,
    "shared": kernel.MS_SHARED,
    "rshared": kernel.MS_SHARED | kernel.MS_REC,
    "slave": kernel.MS_SLAVE,
    "rslave": kernel.MS_SLAVE | kernel.MS_REC,
    "unbindable": kernel.MS_UNBINDABLE,
    "runbindable": kernel.MS_UNBINDABLE | kernel.MS_REC,
}

_ATIME = kernel.MOUNT_ATTR__ATIME
# The recursive options (config.md "Linux mount options"): applied with mount_setattr(2)
# and AT_RECURSIVE to the mount and every mount below it. option: (attr_set, attr_clr);
# an atime mode is set by clearing all three and setting one (RELATIME is 0).
_RECURSIVE: dict[str, tuple[int, int]] = {
    "rro": (kernel.MOUNT_ATTR_RDONLY, 0),
    "rrw": (0, kernel.MOUNT_ATTR_RDONLY),
    "rnosuid": (kernel.MOUNT_ATTR_NOSUID, 0),
    "rsuid": (0, kernel.MOUNT_ATTR_NOSUID),
    "rnodev": (kernel.MOUNT_ATTR_NODEV, 0),
    "rdev": (0, kernel.MOUNT_ATTR_NODEV),
    "rnoexec": (kernel.MOUNT_ATTR_NOEXEC, 0),
    "rexec": (0, kernel.MOUNT_ATTR_NOEXEC),
    "rnodiratime": (kernel.MOUNT_ATTR_NODIRATIME, 0),
    "rdiratime": (0, kernel.MOUNT_ATTR_NODIRATIME),
    "rnosymfollow": (kernel.MOUNT_ATTR_NOSYMFOLLOW, 0),
    "rsymfollow": (0, kernel.MOUNT_ATTR_NOSYMFOLLOW),
    "rnoatime": (kernel.MOUNT_ATTR_NOATIME, _ATIME),
    "ratime": (kernel.MOUNT_ATTR_RELATIME, _ATIME),  # no longer noatime: the default
    "rrelatime": (kernel.MOUNT_ATTR_RELATIME, _ATIME),
    "rnorelatime": (kernel.MOUNT_ATTR_STRICTATIME, _ATIME),
    "rstrictatime": (kernel.MOUNT_ATTR_STRICTATIME, _ATIME),
    "rnostrictatime": (kernel.MOUNT_ATTR_RELATIME, _ATIME),
}

# Options that runc accepts and that are not mount(2) flags or data; ignored here
# ("idmap"/"ridmap" make the mount idmapped: see ``open_idmapped``).
_IGNORED = frozenset({"defaults", "tmpcopyup", "idmap", "ridmap"})

# statvfs flags that a read-only remount of a bind mount must keep (the kernel refuses
# to clear them when they are locked, e.g. inside a user namespace).
_LOCKED = (
    (os.ST_NOSUID, kernel.MS_NOSUID),
    (os.ST_NODEV, kernel.MS_NODEV),
    (os.ST_NOEXEC, kernel.MS_NOEXEC),
    (os.ST_NOATIME, kernel.MS_NOATIME),
    (os.ST_NODIRATIME, kernel.MS_NODIRATIME),
    (os.ST_RELATIME, kernel.MS_RELATIME),
)


@dataclass(frozen=True)
class MountOptions:
    flags: int
    propagation: tuple[int, ...]
    data: str
    cleared: int = 0  # flags the options clear explicitly ("rw", "suid", "exec"...)
    attr_set: int = 0  # the recursive options, as mount_setattr(2) attributes
    attr_clr: int = 0


def parse_options(options: tuple[str, ...]) -> MountOptions:
    """Split a mount's ``options`` into mount(2) flags, propagation changes, recursive
    attributes and data."""
    flags = 0
    cleared = 0
    attr_set = 0
    attr_clr = 0
    propagation = []
    data = []
    for option in options:
        if option in _RECURSIVE:
            on, off = _RECURSIVE[option]
            if off == _ATIME:  # one atime mode replaces another
                attr_set = attr_set & ~_ATIME | on
                attr_clr |= _ATIME
            else:
                attr_set = attr_set & ~off | on
                attr_clr = attr_clr & ~on | off
        elif option in _FLAGS:
            clear, flag = _FLAGS[option]
            if clear:
                flags &= ~flag
                cleared |= flag
            else:
                flags |= flag
                cleared &= ~flag
        elif option in PROPAGATION:
            propagation.append(PROPAGATION[option])
        elif option not in _IGNORED:
            data.append(option)
    return MountOptions(flags, tuple(propagation), ",".join(data), cleared, attr_set, attr_clr)


_DEFAULT_DEVICES = (
    Device("/dev/null", "c", 1, 3, 0o666, 0, 0),
    Device("/dev/zero", "c", 1, 5, 0o666, 0, 0),
    Device("/dev/full", "c", 1, 7, 0o666, 0, 0),
    Device("/dev/random", "c", 1, 8, 0o666, 0, 0),
    Device("/dev/urandom", "c", 1, 9, 0o666, 0, 0),
    Device("/dev/tty", "c", 5, 0, 0o666, 0, 0),
)

_DEV_SYMLINKS = (
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
    ("pts/ptmx", "/dev/ptmx"),
)

_MAX_SYMLINKS = 40


def resolve_in_root(root: str, path: str) -> str:
    """Resolve ``path`` as the container will see it, returning the host path.

    Symlinks are followed inside ``root``: an absolute target starts again at ``root``;
    a ``..`` that would climb above ``root`` is an error, never a path on the host.
    Components that do not exist yet are appended as they are.
    """
    __tracebackhide__ = True
    pending = [c for c in path.split("/") if c not in ("", ".")]
    resolved: list[str] = []
    links = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if not resolved:
                raise RootfsError(f"{path} escapes the root filesystem through '..'")
            resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            resolved.append(part)
            continue
        except NotADirectoryError:
            raise RootfsError(f"{path}: a component of it is not a directory") from None
        if not stat.S_ISLNK(st.st_mode):
            resolved.append(part)
            continue
        links += 1
        if links > _MAX_SYMLINKS:
            raise RootfsError(f"{path}: too many levels of symbolic links")
        target = os.readlink(candidate)
        where = "/" + "/".join([*resolved, part])
        if target.startswith("/"):
            resolved = []
        climb = len(resolved)
        for c in target.split("/"):
            if c == "..":
                climb -= 1
                if climb < 0:
                    raise RootfsError(
                        f"{path} escapes the root filesystem through symlink {where} -> {target}"
                    )
            elif c not in ("", "."):
                climb += 1
        pending = [c for c in target.split("/") if c not in ("", ".")] + pending
    return os.path.join(root, *resolved)


def check_mounts(config: Config) -> None:
    """Check, before anything is created, that every mount destination stays inside."""
    for mount in config.mounts:
        resolve_in_root(config.root_path, mount.destination)
        if mount.is_bind:
            source = _bind_source(config, mount)
            if not os.path.exists(source):
                raise RootfsError(
                    f"bind mount source {source} (for {mount.destination}) does not exist"
                )


def _bind_source(config: Config, mount: Mount) -> str:
    source = mount.source or ""
    return source if os.path.isabs(source) else os.path.join(config.bundle, source)


def _mkdirs(path: str) -> None:
    try:
        os.makedirs(path, exist_ok=True)
    except FileExistsError:
        raise RootfsError(f"{path} exists and is not a directory") from None


def _ensure_target(target: str, like_source: str | None) -> None:
    """Create a mount point: a directory, or an empty file when binding a file."""
    if like_source is not None and not os.path.isdir(like_source):
        _mkdirs(os.path.dirname(target))
        if not os.path.lexists(target):
            os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
        return
    _mkdirs(target)


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    __tracebackhide__ = True
    try:
        kernel.mount(source, target, fstype, flags, data or None)
    except OSError as exc:
        what = fstype or source or "mount"
        raise RootfsError(f"cannot mount {what} on {target}: {exc.strerror}") from None


def _kept_flags(path: str) -> int:
    try:
        vfs = os.statvfs(path)
    except OSError:
        return 0
    return sum(ms for st_flag, ms in _LOCKED if vfs.f_flag & st_flag)


def _remount_bind(target: str, flags: int, cleared: int = 0) -> None:
    kept = _kept_flags(target) & ~cleared
    _mount(None, target, None, kernel.MS_BIND | kernel.MS_REMOUNT | kept | flags)


def mount_one(
    config: Config,
    mount: Mount,
    cgroup_paths: dict[str, str],
    new_cgroupns: bool,
    tree_fd: int | None = None,
) -> None:
    """Mount one entry of ``config.mounts`` inside the rootfs; ``tree_fd`` is the
    detached idmapped copy of its source (see ``open_idmapped``) when it is idmapped."""
    target = resolve_in_root(config.root_path, mount.destination)
    opts = parse_options(mount.options)
    if mount.type == "cgroup":
        _mount_cgroup(target, opts, cgroup_paths, new_cgroupns)
    elif mount.is_bind:
        source = _bind_source(config, mount)
        _ensure_target(target, source)
        if tree_fd is not None:
            try:
                kernel.move_mount(tree_fd, target)
            except OSError as exc:
                raise RootfsError(
                    f"cannot attach the idmapped mount of {source} on {target}: {exc.strerror}"
                ) from None
        else:
            bind = opts.flags & (kernel.MS_BIND | kernel.MS_REC) | kernel.MS_BIND
            _mount(source, target, None, bind)
        extra = opts.flags & ~(kernel.MS_BIND | kernel.MS_REC | kernel.MS_REMOUNT)
        if extra or opts.cleared:
            # a bind takes the source's flags; only a remount sets or clears them
            _remount_bind(target, extra, opts.cleared)
    else:
        _ensure_target(target, None)
        _mount(mount.source, target, mount.type, opts.flags, opts.data)
    if opts.attr_set or opts.attr_clr:
        try:
            kernel.mount_setattr(target, opts.attr_set, opts.attr_clr, kernel.AT_RECURSIVE)
        except OSError as exc:
            raise RootfsError(
                f"cannot apply the recursive options of {target}: {exc.strerror}"
            ) from None
    for prop in opts.propagation:
        _mount(None, target, None, prop)


def open_idmapped(config: Config, joined_userns_fd: int | None = None) -> dict[int, int]:
    """Detached, idmapped copies of the sources of the idmapped mounts, by mount index.

    Made by the runtime before it forks (it holds CAP_SYS_ADMIN over the sources'
    filesystems, which the kernel asks for, and a container in a user namespace does
    not): open_tree(OPEN_TREE_CLONE) of the source, recursive for an rbind, then
    mount_setattr(MOUNT_ATTR_IDMAP) with a user namespace carrying the mount's own
    mappings, else the container's ("ridmap": on every mount of the copy). The init
    moves each into place (``mount_one``); the caller closes the descriptors.
    """
    __tracebackhide__ = True
    trees: dict[int, int] = {}
    userns: dict[tuple[tuple[IDMapping, ...], tuple[IDMapping, ...]], int] = {}
    try:
        for i, mount in enumerate(config.mounts):
            if not mount.idmap:
                continue
            uid_maps, gid_maps = mount.uid_mappings, mount.gid_mappings
            if not uid_maps and config.new_namespace("user"):
                uid_maps, gid_maps = config.uid_mappings, config.gid_mappings
            maps = (uid_maps, gid_maps)
            if uid_maps and maps not in userns:
                userns[maps] = namespaces.mapped_user_namespace(uid_maps, gid_maps)
            ns_fd = userns[maps] if uid_maps else joined_userns_fd
            if ns_fd is None:  # config.py refuses this; kept as a guard
                raise RootfsError(f"{mount.destination}: an idmapped mount needs mappings")
            trees[i] = _idmapped_tree(config, mount, ns_fd)
    except BaseException:
        for fd in trees.values():
            os.close(fd)
        raise
    finally:
        for fd in userns.values():
            os.close(fd)
    return trees


def _idmapped_tree(config: Config, mount: Mount, userns_fd: int) -> int:
    __tracebackhide__ = True
    source = _bind_source(config, mount)
    clone = kernel.OPEN_TREE_CLONE | (kernel.AT_RECURSIVE if "rbind" in mount.options else 0)
    try:
        fd = kernel.open_tree(source, clone)
    except OSError as exc:
        raise RootfsError(f"cannot copy {source} for an idmapped mount: {exc.strerror}") from None
    flags = kernel.AT_EMPTY_PATH | (kernel.AT_RECURSIVE if "ridmap" in mount.options else 0)
    try:
        kernel.mount_setattr("", kernel.MOUNT_ATTR_IDMAP, 0, flags, dirfd=fd, userns_fd=userns_fd)
    except OSError as exc:
        os.close(fd)
        raise RootfsError(
            f"cannot idmap the mount of {source} for {mount.destination}: {exc.strerror}"
        ) from None
    return fd


def _mount_cgroup(
    target: str, opts: MountOptions, paths: dict[str, str], new_cgroupns: bool
) -> None:
    """Mount the container's own cgroups at ``target`` (v1: a tmpfs of hierarchies)."""
    ro = opts.flags & kernel.MS_RDONLY
    base = opts.flags & (kernel.MS_NOSUID | kernel.MS_NODEV | kernel.MS_NOEXEC | kernel.MS_RELATIME)
    _ensure_target(target, None)
    if set(paths) == {""}:  # pure v2
        _mount_cgroup2(target, paths[""], base | ro, new_cgroupns)
        return
    _mount("tmpfs", target, "tmpfs", base, "mode=755")
    for name, host_dir in sorted(paths.items()):
        sub = os.path.join(target, name or "unified")
        _mkdirs(sub)
        if name == "unified":
            _mount_cgroup2(sub, host_dir, base | ro, new_cgroupns)
            continue
        # v1 hierarchies are bind-mounted from the container's own directory: mounting
        # cgroup v1 afresh is not allowed inside a user namespace.
        _mount(host_dir, sub, None, kernel.MS_BIND | kernel.MS_REC)
        _remount_bind(sub, base | ro)
        for alias in name.split(",")[1:] if "," in name else ():
            link = os.path.join(target, alias)
            if not os.path.lexists(link):
                os.symlink(name, link)
    if ro:
        _mount(None, target, None, kernel.MS_REMOUNT | base | kernel.MS_RDONLY, "mode=755")


def _mount_cgroup2(target: str, host_dir: str, flags: int, new_cgroupns: bool) -> None:
    if new_cgroupns:
        try:
            kernel.mount("cgroup2", target, "cgroup2", flags)
            return
        except OSError:  # e.g. EPERM without CAP_SYS_ADMIN over the cgroupns: bind below
            pass
    _mount(host_dir, target, None, kernel.MS_BIND | kernel.MS_REC)
    _remount_bind(target, flags)


def create_devices(
    root: str, devices: tuple[Device, ...], in_user_namespace: bool, defaults: bool = True
) -> None:
    """Populate /dev: the spec's default devices and symlinks (into a fresh /dev only),
    then the config's own devices."""
    wanted = {d.path: d for d in _DEFAULT_DEVICES} if defaults else {}
    wanted.update({d.path: d for d in devices})
    for device in wanted.values():
        target = resolve_in_root(root, device.path)
        _mkdirs(os.path.dirname(target))
        if in_user_namespace:
            # mknod needs CAP_MKNOD in the initial user namespace: bind the host's node.
            _ensure_target(target, device.path)
            _mount(device.path, target, None, kernel.MS_BIND)
            continue
        kind = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}[
            device.type
        ]
        mode = device.file_mode if device.file_mode is not None else 0o666
        try:
            if os.path.lexists(target):
                os.unlink(target)
            os.mknod(target, kind | mode, os.makedev(device.major, device.minor))
            os.chmod(target, mode)
            os.chown(target, device.uid or 0, device.gid or 0)
        except OSError as exc:
            raise RootfsError(f"cannot create device {device.path}: {exc.strerror}") from None
    for source, link in _DEV_SYMLINKS if defaults else ():
        target = os.path.join(root, link.lstrip("/"))
        if not os.path.lexists(target):
            os.symlink(source, target)


def pivot(root: str, no_pivot: bool = False) -> None:
    """Make ``root`` the process's root: pivot_root, or MS_MOVE + chroot as a fallback."""
    __tracebackhide__ = True
    if not no_pivot:
        try:
            _pivot_root(root)
            return
        except OSError as exc:
            if exc.errno != errno.EINVAL:  # EINVAL: e.g. rootfs on initramfs
                raise RootfsError(f"pivot_root into {root}: {exc.strerror}") from None
    try:
        os.chdir(root)
        kernel.mount(root, "/", None, kernel.MS_MOVE)
        os.chroot(".")
        os.chdir("/")
    except OSError as exc:
        raise RootfsError(f"cannot move {root} to / and chroot: {exc.strerror}") from None


def _pivot_root(root: str) -> None:
    old = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    new = os.open(root, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fchdir(new)
        # pivot_root(".", ".") stacks the old root on top of the new one; it is then
        # unmounted from where it sits, without a directory for it in the rootfs.
        kernel.pivot_root(".", ".")
        os.fchdir(old)
        kernel.mount(None, ".", None, kernel.MS_SLAVE | kernel.MS_REC)
        kernel.umount(".", kernel.MNT_DETACH)
        os.chdir("/")
    finally:
        os.close(old)
        os.close(new)


def mask_paths(paths: tuple[str, ...]) -> None:
    """Make each path unreadable: /dev/null over files, an empty read-only tmpfs on dirs."""
    for path in paths:
        try:
            is_dir = os.path.isdir(path) and not os.path.islink(path)
            if not os.path.lexists(path):
                continue
            if is_dir:
                kernel.mount("tmpfs", path, "tmpfs", kernel.MS_RDONLY, None)
            else:
                kernel.mount("/dev/null", path, None, kernel.MS_BIND)
        except OSError as exc:
            if exc.errno == errno.ENOENT:  # gone between the check and the mount
                continue
            raise RootfsError(f"cannot mask {path}: {exc.strerror}") from None


def readonly_paths(paths: tuple[str, ...]) -> None:
    """Bind each path onto itself and remount it read-only."""
    for path in paths:
        if not os.path.lexists(path):
            continue
        try:
            kernel.mount(path, path, None, kernel.MS_BIND | kernel.MS_REC)
        except OSError as exc:
            raise RootfsError(f"cannot make {path} read-only: {exc.strerror}") from None
        _remount_bind(path, kernel.MS_RDONLY | kernel.MS_REC)


def prepare(
    config: Config,
    cgroup_paths: dict[str, str],
    in_user_namespace: bool,
    create_container_hooks: Callable[[], None],
    no_pivot: bool = False,
    mount_fds: dict[int, int] | None = None,
    after_pivot: Callable[[], None] | None = None,
) -> None:
    """Build the container's filesystem view and enter it (runs in the container init).

    ``after_pivot`` runs inside the new root before paths are masked or made read-only
    (the console is set up there, as runc does)."""
    root = config.root_path
    propagation = PROPAGATION.get(
        config.rootfs_propagation or "rslave", kernel.MS_SLAVE | kernel.MS_REC
    )
    # Nothing mounted below may propagate back to the host.
    _mount(None, "/", None, kernel.MS_SLAVE | kernel.MS_REC)
    _mount(root, root, None, kernel.MS_BIND | kernel.MS_REC)
    new_cgroupns = config.new_namespace("cgroup")
    dev_is_fresh = False
    trees = mount_fds or {}
    for i, mount in enumerate(config.mounts):
        mount_one(config, mount, cgroup_paths, new_cgroupns, trees.get(i))
        if mount.destination == "/dev" and not mount.is_bind:
            dev_is_fresh = True
    if dev_is_fresh or config.devices:
        create_devices(root, config.devices, in_user_namespace, defaults=dev_is_fresh)
    create_container_hooks()
    pivot(root, no_pivot)
    if propagation not in (kernel.MS_SLAVE | kernel.MS_REC,):
        _mount(None, "/", None, propagation)
    if after_pivot is not None:
        after_pivot()
    mask_paths(config.masked_paths)
    readonly_paths(config.readonly_paths)
    if config.root_readonly:
        _remount_bind("/", kernel.MS_RDONLY)
