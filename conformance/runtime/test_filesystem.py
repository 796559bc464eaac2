"""The container's filesystem (runtime-spec config.md "Root" and "Mounts",
config-linux.md "Default Filesystems", "Masked Paths", "Readonly Paths" and "Rootfs
Mount Propagation", runtime-linux.md "Dev symbolic links").

What a test reads is the kernel's own account, from inside: ``/proc/self/mountinfo``
(each mount's point, options, propagation tags, type and source), what a write, an
exec or an open does, and, where a host directory is mounted in, what the host sees
after the container wrote. Mounts that need the host's side of propagation (a shared
tree with a submount, events mounted after the container started) are made by the
test on the host and unmounted by it.

Tests that only look share a container of the module (``shared``), made on first use
inside the first test that needs it (so that a refused create fails a test) and
deleted at the end of the module.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import shutil
import stat
import subprocess
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_containers.adapters import HOST_KERNEL, RuntimeAdapter, parse_size
from pytest_containers.adapters.handle import Container
from pytest_containers.errors import ContainersError
from pytest_containers.runtime import ContainerFactory

from ._support import add_capabilities, create_error, edit_config, expressible, shell, start

Config = dict[str, Any]
Edit = Callable[[Config], None]

SLEEPER = ["sleep", "3600"]
WAIT = 10.0
"""Seconds any one host command in these tests may take."""


# --------------------------------------------------------------------------- support


class SharedContainers:
    """Containers that several read-only tests of a module look at, made on first use."""

    def __init__(self, factory: ContainerFactory, directory: Path) -> None:
        self.factory = factory
        self.directory = directory
        self.made: dict[str, Container | Exception] = {}

    def get(
        self,
        key: str,
        command: Sequence[str],
        *edits: Edit,
        prepare: Callable[[Path], None] | None = None,
        **args: Any,
    ) -> Container:
        """The container ``key``: ``command`` in a bundle of ``args`` with ``edits``
        (``prepare(bundle)`` runs before create)."""
        __tracebackhide__ = True
        if key not in self.made:
            try:
                path = edit_config(
                    self.factory.make_bundle(self.directory, command, **args), *edits
                )
                if prepare is not None:
                    prepare(path)
                self.made[key] = self.factory.make_container(self.directory, bundle=path)
            except Exception as exc:
                self.made[key] = exc  # the next test that needs it fails the same way
        made = self.made[key]
        if isinstance(made, Exception):
            with expressible():
                raise made
        assert isinstance(made, Container)
        return made

    def close(self) -> None:
        """Delete every shared container: all are killed first, so that the runtimes'
        waits for them to stop overlap; the first error is raised once all were tried."""
        made = [m if isinstance(m, Container) else getattr(m, "container", None)
                for m in self.made.values()]  # fmt: skip
        handles = [m for m in made if isinstance(m, Container)]
        for handle in handles:
            with contextlib.suppress(ContainersError):  # stopped already, or gone
                handle.kill("KILL")
        errors = []
        for handle in handles:
            try:
                self.factory.remove(handle)
            except ContainersError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


@pytest.fixture(scope="module")
def shared(
    container_factory: ContainerFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SharedContainers]:
    """The module's shared containers, deleted at the end of the module."""
    made = SharedContainers(container_factory, tmp_path_factory.mktemp("shared"))
    yield made
    made.close()


def add_mounts(*mounts: dict[str, Any]) -> Edit:
    def edit(config: Config) -> None:
        config["mounts"].extend(dict(m) for m in mounts)

    return edit


def tmpfs(destination: str, *options: str) -> dict[str, Any]:
    return {"destination": destination, "type": "tmpfs", "source": "tmpfs", "options": [*options]}


def bind(source: str | Path, destination: str, *options: str) -> dict[str, Any]:
    """A bind mount as the spec writes one: type "none", "bind" or "rbind" in options."""
    opts = [*options] if {"bind", "rbind"} & set(options) else ["bind", *options]
    return {"destination": destination, "type": "none", "source": str(source), "options": opts}


def host_mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, timeout=WAIT, capture_output=True)


def host_umount(path: Path) -> None:
    """Detach ``path`` and everything under it (lazily: a container may still hold it)."""
    subprocess.run(
        ["umount", "-R", "-l", str(path)], check=False, timeout=WAIT, capture_output=True
    )


# --------------------------------------------------------------------------- mountinfo


def _unescape(field: str) -> str:
    return field.encode().decode("unicode_escape") if "\\" in field else field


@dataclass(frozen=True)
class Mount:
    """One line of /proc/PID/mountinfo."""

    point: str
    root: str
    device: str  # major:minor
    options: frozenset[str]  # per-mount: ro, nosuid, nodev, noexec, relatime...
    tags: tuple[str, ...]  # propagation: shared:N, master:N, propagate_from:N, unbindable
    fstype: str
    source: str
    super_options: tuple[str, ...]  # per filesystem: sync, dirsync, size=..., mode=...

    @classmethod
    def parse(cls, line: str) -> Mount:
        fields = line.split()
        dash = fields.index("-", 6)
        return cls(
            point=_unescape(fields[4]),
            root=_unescape(fields[3]),
            device=fields[2],
            options=frozenset(fields[5].split(",")),
            tags=tuple(fields[6:dash]),
            fstype=fields[dash + 1],
            source=_unescape(fields[dash + 2]),
            super_options=tuple(fields[dash + 3].split(",")) if len(fields) > dash + 3 else (),
        )

    def tag(self, name: str) -> str | None:
        """The peer group of the ``shared`` or ``master`` tag, or None."""
        for tag in self.tags:
            if tag.startswith(name + ":"):
                return tag.split(":", 1)[1]
        return None


def mountinfo(c: Container) -> list[Mount]:
    return [Mount.parse(line) for line in shell(c, "cat /proc/self/mountinfo").splitlines()]


def host_mountinfo() -> list[Mount]:
    return [Mount.parse(line) for line in Path("/proc/self/mountinfo").read_text().splitlines()]


def top(mounts: list[Mount], point: str) -> Mount:
    """The mount a path resolves to at ``point`` (the last one mounted there)."""
    __tracebackhide__ = True
    at = [m for m in mounts if m.point == point]
    assert at, f"nothing is mounted at {point}; mount points: {[m.point for m in mounts]}"
    return at[-1]


# --------------------------------------------------------------------------- host trees


@pytest.fixture(scope="module")
def host_tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A shared tmpfs on the host with a marker and a submount holding its own marker:
    ``TREE/top-marker``, ``TREE/sub/sub-marker``. Unmounted at the end of the module."""
    tree = tmp_path_factory.mktemp("tree")
    token = secrets.token_hex(4)
    host_mount("-t", "tmpfs", f"pc-tree-{token}", str(tree))
    try:
        host_mount("--make-shared", str(tree))
        (tree / "top-marker").write_text("top\n")
        (tree / "sub").mkdir()
        host_mount("-t", "tmpfs", f"pc-sub-{token}", str(tree / "sub"))
        (tree / "sub" / "sub-marker").write_text("sub\n")
        yield tree
    finally:
        host_umount(tree)


LOCKED_FLAGS = "ro,nosuid,nodev,noexec,noatime,nodiratime,nosymfollow"
"""The per-mount flags of ``locked_tree`` and of its submount."""


@pytest.fixture(scope="module")
def locked_tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A host tmpfs whose mount carries every flag of ``LOCKED_FLAGS`` (the filesystem
    itself stays writable), with a submount carrying them too. It holds ``true`` (a
    busybox), ``null`` (c 1:3), ``link`` (a symlink to ``marker``) and ``sub/marker``.
    Unmounted at the end of the module."""
    tree = tmp_path_factory.mktemp("locked")
    token = secrets.token_hex(4)
    host_mount("-t", "tmpfs", f"pc-locked-{token}", str(tree))
    try:
        busybox = shutil.which("busybox") or "/bin/busybox"
        shutil.copy2(os.path.realpath(busybox), tree / "true")
        os.mknod(tree / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        os.chmod(tree / "null", 0o666)
        (tree / "marker").write_text("locked\n")
        (tree / "link").symlink_to("marker")
        (tree / "sub").mkdir()
        host_mount("-t", "tmpfs", f"pc-locked-sub-{token}", str(tree / "sub"))
        (tree / "sub" / "marker").write_text("locked-sub\n")
        for point in (tree / "sub", tree):
            host_mount("-o", f"remount,bind,{LOCKED_FLAGS}", str(point))
        yield tree
    finally:
        host_umount(tree)


def marked_dir(parent: Path, name: str) -> tuple[Path, str]:
    """A host directory holding ``marker`` with a token; (directory, token)."""
    directory = parent / name
    directory.mkdir(parents=True, exist_ok=True)
    token = f"{name}-{secrets.token_hex(4)}"
    (directory / "marker").write_text(token + "\n")
    return directory, token


# --------------------------------------------------------------------------- root


@pytest.mark.requirement("RT-FS-ROOT-1")
def test_config_without_root_is_an_error(
    bundle: Callable[..., Path], container_factory: ContainerFactory
) -> None:
    path = edit_config(bundle(SLEEPER), lambda config: config.pop("root"))
    create_error(container_factory, path, "no root in config.json")


@pytest.mark.requirement("RT-FS-ROOT-2")
@pytest.mark.parametrize("form", ["relative", "absolute"])
def test_root_path(
    form: str, bundle: Callable[..., Path], container: Callable[..., Container], tmp_path: Path
) -> None:
    """root.path is the rootfs, relative to the bundle (under a name other than the
    usual one) or absolute (outside the bundle)."""
    path = bundle(SLEEPER)
    token = secrets.token_hex(8)
    if form == "relative":
        rootfs = path / f"pc-root-{token}"
        root_path = rootfs.name
    else:
        rootfs = tmp_path / f"elsewhere-{token}" / "rootfs"
        rootfs.parent.mkdir()
        root_path = str(rootfs)
    (path / "rootfs").rename(rootfs)
    (rootfs / "pc-marker").write_text(token + "\n")
    edit_config(path, lambda config: config["root"].update(path=root_path))
    c = start(container, path)
    assert shell(c, "cat /pc-marker").strip() == token, f"/ is not {root_path}"


@pytest.mark.requirement("RT-FS-ROOT-3")
@pytest.mark.parametrize("kind", ["missing", "a-file"])
def test_root_path_without_directory_is_an_error(
    kind: str, bundle: Callable[..., Path], container_factory: ContainerFactory
) -> None:
    path = bundle(SLEEPER)
    if kind == "a-file":
        (path / "pc-not-a-directory").write_text("a file\n")
    name = "pc-not-a-directory" if kind == "a-file" else "pc-no-such-rootfs"
    edit_config(path, lambda config: config["root"].update(path=name))
    create_error(container_factory, path, f"root.path {name} ({kind})")


@pytest.fixture(scope="module")
def fs_host(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Host directories the shared containers mount."""
    return tmp_path_factory.mktemp("fs-host")


SECRET = f"pc-secret-{secrets.token_hex(4)}"
"""What the masked files of the shared ``fs`` container hold."""


def fs(shared: SharedContainers, host: Path, locked: Path) -> Container:
    """The default configuration (a read-only root) plus the mounts, masked and
    read-only paths the looking tests need; ``host`` holds the host directories."""
    rw, deep = host / "rw", host / "deep"

    def prepare(path: Path) -> None:
        for sub in ("locked", "open"):
            (rw / sub).mkdir(parents=True)
        rw.chmod(0o777)
        marked_dir(host, "deep")
        rootfs = path / "rootfs"
        (rootfs / "etc" / "pc-secret").write_text(SECRET + "-file\n")
        (rootfs / "opt" / "pc-secret-dir").mkdir(parents=True)
        (rootfs / "opt" / "pc-secret-dir" / "inside").write_text(SECRET + "-in-dir\n")

    def masked_and_readonly(config: Config) -> None:
        config["linux"]["maskedPaths"] += ["/etc/pc-secret", "/opt/pc-secret-dir"]
        config["linux"]["readonlyPaths"] += ["/pc/rw/locked"]

    return shared.get(
        "fs",
        SLEEPER,
        add_mounts(
            bind(deep, "/pc/dest/deep/point"),
            bind(rw, "/pc/rw", "rw"),
            bind(deep, "/pc/ro", "ro"),
            bind(locked, "/pc/unlocked", "rbind", "rw", "suid", "dev", "exec"),
            tmpfs("/pc/data", "size=1m", "mode=0711", "uid=1234", "gid=5678"),
            tmpfs("/pc/noexec", "noexec"),
            tmpfs("/pc/nodev", "nodev"),
            tmpfs("/pc/nosuid", "nosuid"),
        ),
        masked_and_readonly,
        add_capabilities("CAP_MKNOD"),
        prepare=prepare,
    )


def binds(shared: SharedContainers, host: Path, tree: Path) -> Container:
    """A writable root (root.readonly absent) with two mounts at each of two points (in
    both orders), a bind source relative to the bundle, and a bind and an rbind of a
    host tree with a submount."""
    ordered = host / "ordered"

    def prepare(path: Path) -> None:
        marked_dir(host, "ordered")
        marked_dir(path, "pc-source")

    def no_readonly(config: Config) -> None:
        del config["root"]["readonly"]

    return shared.get(
        "binds",
        SLEEPER,
        no_readonly,
        add_mounts(
            tmpfs("/pc/a"),
            bind(ordered, "/pc/a"),
            bind(ordered, "/pc/b"),
            tmpfs("/pc/b"),
            bind("pc-source", "/pc/source"),
            bind(tree, "/pc/bind", "bind"),
            bind(tree, "/pc/rbind", "rbind"),
        ),
        prepare=prepare,
    )


@pytest.mark.requirement("RT-FS-ROOT-4")
def test_readonly_root(shared: SharedContainers, fs_host: Path, locked_tree: Path) -> None:
    c = fs(shared, fs_host, locked_tree)
    assert "ro" in top(mountinfo(c), "/").options, "/ is not mounted read-only"
    out = shell(c, "touch /pc-written 2>&1; true")
    assert os.strerror(errno.EROFS) in out, f"writing to / said {out!r}, not EROFS"


BUNDLE_ROOTFS = "bundle-rootfs"
"""The adapter feature "the container's root is the bundle's rootfs directory itself"
(an adapter that runs the container on an imported copy declares it unsupported)."""


def check_writable_root(c: Container, rootfs: Path) -> None:
    """/ is read-write, and what is written there lands in the rootfs directory."""
    __tracebackhide__ = True
    assert "rw" in top(mountinfo(c), "/").options, "/ is not mounted read-write"
    name = f"pc-written-{secrets.token_hex(4)}"
    shell(c, f"echo {name} > /{name}")
    if BUNDLE_ROOTFS in c.adapter.unsupported:
        return
    assert (rootfs / name).exists(), "what the container wrote to / is not in the rootfs"


@pytest.mark.requirement("RT-FS-ROOT-5")
def test_writable_root_when_readonly_is_false(
    bundle: Callable[..., Path], container: Callable[..., Container]
) -> None:
    path = edit_config(bundle(SLEEPER, readonly=False))
    check_writable_root(start(container, path), path / "rootfs")


@pytest.mark.requirement("RT-FS-ROOT-5")
def test_writable_root_when_readonly_is_absent(
    shared: SharedContainers, fs_host: Path, host_tree: Path
) -> None:
    c = binds(shared, fs_host, host_tree)
    check_writable_root(c, Path(c.bundle) / "rootfs")


# --------------------------------------------------------------------------- mounts


@pytest.mark.requirement("RT-MNT-DEST-1")
def test_mount_at_destination(shared: SharedContainers, fs_host: Path, locked_tree: Path) -> None:
    c = fs(shared, fs_host, locked_tree)
    top(mountinfo(c), "/pc/dest/deep/point")
    want = (fs_host / "deep" / "marker").read_text().strip()
    assert shell(c, "cat /pc/dest/deep/point/marker").strip() == want


def config_mounts(c: Container) -> list[dict[str, Any]]:
    """The mounts of the container's config.json that are not bind mounts."""
    config = json.loads((Path(c.bundle) / "config.json").read_text())
    return [m for m in config["mounts"] if not {"bind", "rbind"} & set(m.get("options", []))]


def _same_type(want: str, got: str) -> bool:
    # a cgroup mount is a cgroup2 mount, or on v1 a tmpfs of one mount per hierarchy
    return got == want or (want == "cgroup" and got in ("cgroup2", "tmpfs"))


@pytest.mark.requirement("RT-MNT-DEST-1", "RT-MNT-TYPE-1")
def test_config_mounts_at_destinations_with_types(
    shared: SharedContainers, fs_host: Path, locked_tree: Path
) -> None:
    """Every non-bind mount of the configuration is at its destination, of its type."""
    c = fs(shared, fs_host, locked_tree)
    seen = {m.point: m for m in mountinfo(c)}
    wrong = [
        f"{m['destination']}: {seen[m['destination']].fstype if m['destination'] in seen else '-'}"
        f" (want {m['type']})"
        for m in config_mounts(c)
        if m["destination"] not in seen or not _same_type(m["type"], seen[m["destination"]].fstype)
    ]
    assert not wrong, f"mounts of the configuration missing or of another type: {wrong}"


@pytest.mark.parametrize(
    "flags",
    [
        pytest.param(("ro",), marks=pytest.mark.requirement("RT-MNT-OPT-1"), id="ro"),
        pytest.param(
            ("nosuid", "nodev", "noexec"),
            marks=pytest.mark.requirement("RT-MNT-OPT-2"),
            id="nosuid-nodev-noexec",
        ),
    ],
)
def test_config_mounts_have_their_flags(
    flags: tuple[str, ...], shared: SharedContainers, fs_host: Path, locked_tree: Path
) -> None:
    """Each of ``flags`` among the options of the configuration's mounts (proc, /dev,
    devpts, shm, mqueue, sysfs, cgroup) is on its mount."""
    c = fs(shared, fs_host, locked_tree)
    seen = mountinfo(c)
    wrong = []
    for m in config_mounts(c):
        at = top(seen, m["destination"])
        on = at.options | ({"ro"} if "ro" in at.super_options else set())
        missing = [f for f in flags if f in m.get("options", []) and f not in on]
        if missing:
            wrong.append(f"{m['destination']} lacks {missing} ({sorted(at.options)})")
    assert not wrong, f"mount options not applied: {wrong}"


@pytest.mark.requirement("RT-MNT-ORDER-1")
def test_mounts_in_listed_order(shared: SharedContainers, fs_host: Path, host_tree: Path) -> None:
    """Two mounts at one destination: the later one covers the earlier one, both ways."""
    c = binds(shared, fs_host, host_tree)
    token = (fs_host / "ordered" / "marker").read_text().strip()
    seen = shell(c, "cat /pc/a/marker; ls -A /pc/b").split()
    assert seen == [token], (
        f"/pc/a (tmpfs, then a bind) and /pc/b (a bind, then tmpfs) show {seen}; "
        f"the later mounts should cover the earlier ones: ['{token}'] and an empty tmpfs"
    )


@pytest.mark.requirement("RT-MNT-DEST-2")
def test_relative_destination(
    bundle: Callable[..., Path], container: Callable[..., Container], tmp_path: Path
) -> None:
    """A relative destination is relative to / (not to the process's cwd)."""
    source, token = marked_dir(tmp_path, "relative")
    path = edit_config(
        bundle(SLEEPER, cwd="/tmp"),
        add_mounts(bind(source, "pc-relative/point")),
    )
    c = start(container, path)
    out = shell(c, "cat /pc-relative/point/marker 2>&1; true").strip()
    assert out == token, f"/pc-relative/point holds {out!r}, not the mounted directory"


@pytest.mark.requirement("RT-MNT-TYPE-1")
def test_mount_types(bundle: Callable[..., Path], container: Callable[..., Container]) -> None:
    kinds = {"/pc/t": "tmpfs", "/pc/p": "proc", "/pc/m": "mqueue", "/pc/s": "sysfs"}
    mounts = [{"destination": d, "type": t, "source": t} for d, t in kinds.items()]
    c = start(container, edit_config(bundle(SLEEPER), add_mounts(*mounts)))
    seen = mountinfo(c)
    got = {d: top(seen, d).fstype for d in kinds}
    assert got == kinds, f"the mounts have types {got}"
    shell(c, "test -r /pc/p/self/status && test -d /pc/s/kernel")


@pytest.mark.requirement("RT-MNT-SOURCE-1")
def test_relative_bind_source(shared: SharedContainers, fs_host: Path, host_tree: Path) -> None:
    c = binds(shared, fs_host, host_tree)
    token = (Path(c.bundle) / "pc-source" / "marker").read_text().strip()
    assert shell(c, "cat /pc/source/marker").strip() == token


@pytest.mark.requirement("RT-MNT-BIND-1")
def test_bind_and_rbind(shared: SharedContainers, fs_host: Path, host_tree: Path) -> None:
    """bind brings the source alone; rbind brings the mounts under it too."""
    c = binds(shared, fs_host, host_tree)
    out = shell(
        c,
        "cat /pc/bind/top-marker /pc/rbind/top-marker /pc/rbind/sub/sub-marker; ls -A /pc/bind/sub",
    ).split()
    assert out == ["top", "top", "sub"], (
        f"bind and rbind of a tree with a submount show {out}: want the submount's "
        "marker through rbind only"
    )


@pytest.mark.requirement("RT-MNT-OPT-1")
def test_ro_and_rw(shared: SharedContainers, fs_host: Path, locked_tree: Path) -> None:
    """ro makes a bind of a writable directory read-only; rw makes a bind of a read-only
    mount writable (the write reaches the host)."""
    c = fs(shared, fs_host, locked_tree)
    seen = mountinfo(c)
    assert "ro" in top(seen, "/pc/ro").options, "/pc/ro (ro) is not read-only"
    assert "ro" not in top(seen, "/pc/unlocked").options, "/pc/unlocked (rw) is read-only"
    name = f"written-{secrets.token_hex(4)}"
    out = shell(c, f"touch /pc/ro/{name} 2>&1; touch /pc/unlocked/{name} && echo written")
    assert os.strerror(errno.EROFS) in out, f"writing the ro mount said {out!r}"
    assert "written" in out and (locked_tree / name).exists(), (
        f"a write to the rw mount did not reach the host: {out!r}"
    )


@pytest.mark.requirement("RT-MNT-OPT-2")
def test_nosuid_nodev_noexec_and_opposites(
    shared: SharedContainers, fs_host: Path, locked_tree: Path
) -> None:
    """nosuid, nodev and noexec on fresh tmpfs mounts, and suid, dev and exec on a bind
    of a mount that has them all off: the flags in mountinfo, and what an exec of a
    binary and an open of a device node (c 1:3) do there."""
    c = fs(shared, fs_host, locked_tree)
    seen = mountinfo(c)
    wrong = [
        f"{point}: {sorted(top(seen, point).options)}"
        for point, flag in (("/pc/noexec", "noexec"), ("/pc/nodev", "nodev"))
        if flag not in top(seen, point).options
    ]
    if "nosuid" not in top(seen, "/pc/nosuid").options:
        wrong.append(f"/pc/nosuid: {sorted(top(seen, '/pc/nosuid').options)}")
    unlocked = top(seen, "/pc/unlocked").options
    wrong += [
        f"/pc/unlocked keeps {flag}" for flag in ("nosuid", "nodev", "noexec") if flag in unlocked
    ]
    out = shell(
        c,
        "cp /bin/busybox /pc/noexec/true; mknod /pc/nodev/null c 1 3; "
        "for d in noexec unlocked; do /pc/$d/true 2>/dev/null && echo $d:ran || echo $d:refused; "
        "done; for d in nodev unlocked; do (echo x > /pc/$d/null) 2>/dev/null && echo $d:opened "
        "|| echo $d:refused; done",
    ).split()
    if out != ["noexec:refused", "unlocked:ran", "nodev:refused", "unlocked:opened"]:
        wrong.append(f"exec and open: {out}")
    assert not wrong, f"options not applied: {wrong}"


@pytest.mark.requirement("RT-MNT-OPT-6")
def test_filesystem_specific_options_are_data(
    shared: SharedContainers, fs_host: Path, locked_tree: Path
) -> None:
    """size=1m, mode=0711, uid=1234 and gid=5678 reach tmpfs as its data."""
    c = fs(shared, fs_host, locked_tree)
    owner = shell(c, "stat -c '%a %u %g' /pc/data").split()
    assert owner == ["711", "1234", "5678"], f"the tmpfs root has mode, uid, gid {owner}"
    size = shell(c, "df -k /pc/data | tail -n 1").split()
    assert size[1:2] == ["1024"], f"the tmpfs is not 1 MiB: df says {size}"
    # and the data options of the configuration's own mounts: mode, ptmxmode, size
    checks = []
    for m in config_mounts(c):
        data = dict(o.split("=", 1) for o in m.get("options", []) if "=" in o)
        point = m["destination"]
        if m["type"] == "devpts":  # mode and gid are those of each new terminal
            new_pty = f"exec 3<>{point}/ptmx; stat -c '%a:%g' $(ls -d {point}/[0-9]* | tail -n 1)"
            want = f"{int(data.get('mode', '600'), 8):o}:{data.get('gid', '0')}"
            checks.append((new_pty, want, f"a new terminal in {point} (mode:gid)"))
        elif "mode" in data:
            checks.append((f"stat -c %a {point}", f"{int(data['mode'], 8):o}", f"{point} mode"))
        if "ptmxmode" in data:
            want = f"{int(data['ptmxmode'], 8):o}"
            checks.append((f"stat -c %a {point}/ptmx", want, f"{point}/ptmx mode"))
        if "size" in data and m["type"] == "tmpfs":
            want = str(parse_size(data["size"]) // 1024)
            checks.append((f"df -k {point} | tail -n 1 | awk '{{print $2}}'", want, f"{point} KiB"))
    got = shell(c, "; ".join(command for command, _, _ in checks)).split()
    wrong = [
        f"{what}: {g} (want {w})" for (_, w, what), g in zip(checks, got, strict=True) if g != w
    ]
    assert not wrong, f"filesystem options of the configuration not applied: {wrong}"


# --------------------------------------------------------------------------- mount options


OTHER_OPTIONS: dict[str, tuple[str, ...]] = {
    # on a fresh tmpfs
    "async": ("async",),
    "sync": ("sync",),
    "dirsync": ("dirsync",),
    "defaults": ("defaults",),
    "loud": ("loud",),
    "silent": ("silent",),
    "iversion": ("iversion",),
    "noiversion": ("noiversion",),
    "lazytime": ("lazytime",),
    "nolazytime": ("nolazytime",),
    "noatime": ("noatime",),
    "nodiratime": ("nodiratime",),
    "relatime": ("relatime",),
    "norelatime": ("norelatime",),
    "strictatime": ("strictatime",),
    "nostrictatime": ("nostrictatime",),
}
"""Mount point name -> the options of the tmpfs mounted there."""

CLEARING_OPTIONS = ("atime", "diratime")
"""Options tried on a bind of ``locked_tree`` (noatime, nodiratime), where they clear."""


OTHER_EFFECTS: dict[str, tuple[Callable[[Mount], bool], str]] = {
    # mount point name -> (what its mount must show, what it shows otherwise)
    "sync": (lambda m: "sync" in m.super_options, "not sync"),
    "async": (lambda m: "sync" not in m.super_options, "sync"),
    "dirsync": (lambda m: "dirsync" in m.super_options, "not dirsync"),
    "lazytime": (lambda m: "lazytime" in m.super_options, "not lazytime"),
    "nolazytime": (lambda m: "lazytime" not in m.super_options, "lazytime"),
    "noatime": (lambda m: "noatime" in m.options, "not noatime"),
    "atime": (lambda m: "noatime" not in m.options, "noatime"),
    "nodiratime": (lambda m: "nodiratime" in m.options, "not nodiratime"),
    "diratime": (lambda m: "nodiratime" not in m.options, "nodiratime"),
    "relatime": (lambda m: "relatime" in m.options, "not relatime"),
    "strictatime": (lambda m: not {"relatime", "noatime"} & m.options, "not strictatime"),
    "nostrictatime": (lambda m: "relatime" in m.options, "strictatime"),
    "defaults": (lambda m: "rw" in m.options, "not rw"),
    "remounted": (lambda m: "ro" in m.options, "remount,ro left it writable"),
}
"""The options whose effect mountinfo shows; the others (loud, silent, iversion...)
must be accepted, and leave a tmpfs."""


def _check_other_options(seen: list[Mount], refused: set[str]) -> list[str]:
    """What is wrong with the mounts of ``OTHER_OPTIONS`` that were not ``refused``."""
    wrong = []
    for name in [*OTHER_OPTIONS, *CLEARING_OPTIONS, "remounted"]:
        if name in refused:
            continue
        m = top(seen, f"/pc/o/{name}")
        effect, otherwise = OTHER_EFFECTS.get(name, (lambda m: True, ""))
        if (m.fstype != "tmpfs" and name not in CLEARING_OPTIONS) or not effect(m):
            shown = f"{m.fstype}, {sorted(m.options)}, {m.super_options}"
            wrong.append(f"{name}: {otherwise or 'not a tmpfs'} ({shown})")
    return wrong


_MOUNT_POINT = re.compile(r"pc/[or]/([a-z]+)")


def start_dropping_refused(
    container: Callable[..., Container], path: Path, mounts: list[dict[str, Any]]
) -> tuple[Container, dict[str, str]]:
    """Start a container with ``mounts`` (each at ``/pc/o/NAME`` or ``/pc/r/NAME``); each
    time the runtime refuses one it names, drop it and try again (at most once a mount).
    The container, and NAME -> the runtime's words for each mount it refused."""
    __tracebackhide__ = True
    base = json.loads((path / "config.json").read_text())["mounts"]
    refused: dict[str, str] = {}
    for _ in range(len(mounts) + 1):
        kept = [m for m in mounts if _name_of(m) not in refused]
        config = json.loads((path / "config.json").read_text())
        config["mounts"] = base + kept
        (path / "config.json").write_text(json.dumps(config, indent=2))
        try:
            return start(container, path), refused
        except ContainersError as exc:
            named = _MOUNT_POINT.findall(str(exc))
            if not named or named[0] in refused:
                raise
            refused[named[0]] = str(exc).rsplit(":", 1)[-1].strip()
    raise AssertionError(f"the runtime refused every mount: {refused}")


def _name_of(mount: dict[str, Any]) -> str:
    return str(mount["destination"]).rsplit("/", 1)[-1]


@pytest.mark.requirement("RT-MNT-OPT-4")
def test_other_mount_options(
    bundle: Callable[..., Path], container: Callable[..., Container], locked_tree: Path
) -> None:
    mounts = [tmpfs(f"/pc/o/{name}", *opts) for name, opts in OTHER_OPTIONS.items()]
    mounts += [bind(locked_tree, f"/pc/o/{name}", "bind", name) for name in CLEARING_OPTIONS]
    mounts += [tmpfs("/pc/o/remounted"), tmpfs("/pc/o/remounted", "remount", "ro")]
    c, refused = start_dropping_refused(container, bundle(SLEEPER), mounts)
    wrong = _check_other_options(mountinfo(c), set(refused))
    assert not refused and not wrong, f"options refused: {refused}; not applied: {wrong}"


RECURSIVE_OPTIONS: dict[str, tuple[str, str, bool]] = {
    # name -> (tree: plain or locked, per-mount flag, whether the flag must be there)
    "rro": ("plain", "ro", True),
    "rrw": ("locked", "ro", False),
    "rnosuid": ("plain", "nosuid", True),
    "rsuid": ("locked", "nosuid", False),
    "rnodev": ("plain", "nodev", True),
    "rdev": ("locked", "nodev", False),
    "rnoexec": ("plain", "noexec", True),
    "rexec": ("locked", "noexec", False),
    "rnoatime": ("plain", "noatime", True),
    "ratime": ("locked", "noatime", False),
    "rnodiratime": ("plain", "nodiratime", True),
    "rdiratime": ("locked", "nodiratime", False),
    "rrelatime": ("locked", "relatime", True),
    "rstrictatime": ("plain", "relatime", False),
    "rnosymfollow": ("plain", "nosymfollow", True),
    "rsymfollow": ("locked", "nosymfollow", False),
}


@pytest.mark.requirement("RT-MNT-OPT-5")
def test_recursive_options_and_symfollow(
    bundle: Callable[..., Path],
    container: Callable[..., Container],
    host_tree: Path,
    locked_tree: Path,
) -> None:
    """Each recursive option, on an rbind of a host tree whose flags it changes, applies
    to the submount too; nosymfollow stops a symlink from being followed, symfollow on a
    bind of a nosymfollow mount lets it be followed again."""
    trees = {"plain": host_tree, "locked": locked_tree}
    mounts = [
        bind(trees[tree], f"/pc/r/{name}", "rbind", name)
        for name, (tree, _, _) in RECURSIVE_OPTIONS.items()
    ]
    mounts += [tmpfs("/pc/r/nosymfollow", "nosymfollow")]
    mounts += [bind(locked_tree, "/pc/r/symfollow", "bind", "symfollow")]
    c, refused = start_dropping_refused(container, bundle(SLEEPER), mounts)
    seen = mountinfo(c)
    wrong = []
    for name, (_, flag, present) in RECURSIVE_OPTIONS.items():
        for point in (f"/pc/r/{name}", f"/pc/r/{name}/sub") if name not in refused else ():
            if (flag in top(seen, point).options) != present:
                wrong.append(f"{point}: {sorted(top(seen, point).options)}")
    script = []
    if "nosymfollow" not in refused:
        script.append(
            "echo x > /pc/r/nosymfollow/t; ln -s t /pc/r/nosymfollow/link; "
            "cat /pc/r/nosymfollow/link >/dev/null 2>&1 && echo nosymfollow:followed"
        )
    if "symfollow" not in refused:
        script.append("cat /pc/r/symfollow/link >/dev/null 2>&1 || echo symfollow:refused")
    out = shell(c, "; ".join([*script, "true"])).split()
    wrong += out
    assert not refused and not wrong, f"options refused: {refused}; not applied: {wrong}"


# --------------------------------------------------------------------------- propagation


PROPAGATIONS = ("shared", "private", "slave", "unbindable")


@pytest.mark.requirement("RT-MNT-OPT-3")
def test_propagation_options(
    bundle: Callable[..., Path], container: Callable[..., Container], host_tree: Path
) -> None:
    """Each propagation option, recursive or not, on rbinds of a shared host tree with a
    submount, against a control rbind with none; then the host mounts under the tree."""
    mounts = [bind(host_tree, "/pc/p/control", "rbind")]
    for name in PROPAGATIONS:
        mounts.append(bind(host_tree, f"/pc/p/{name}", "rbind", name))
        mounts.append(bind(host_tree, f"/pc/p/r{name}", "rbind", f"r{name}"))
    c = start(container, edit_config(bundle(SLEEPER), add_mounts(*mounts)))
    seen = mountinfo(c)
    wrong = []
    for sub in ("", "/sub"):
        control = top(seen, f"/pc/p/control{sub}")
        source = control.tag("shared") or control.tag("master")
        for name in PROPAGATIONS:
            for point in [f"/pc/p/{name}", f"/pc/p/r{name}"] if not sub else [f"/pc/p/r{name}"]:
                m = top(seen, point + sub)
                ok = {
                    "shared": m.tag("shared") is not None,
                    "private": not m.tag("shared") and not m.tag("master"),
                    "slave": not m.tag("shared") and m.tag("master") == source,
                    "unbindable": "unbindable" in m.tags and not m.tag("shared"),
                }[name]
                if not ok:
                    wrong.append(f"{point + sub} ({name}): {m.tags} (control: {control.tags})")
    assert not wrong, f"propagation not applied: {wrong}"
    # events: a mount the host makes under the tree reaches slaves and not private mounts
    event = host_tree / f"event-{secrets.token_hex(3)}"
    event.mkdir()
    host_mount("-t", "tmpfs", "pc-event", str(event))
    try:
        points = {m.point for m in mountinfo(c)}
    finally:
        host_umount(event)
    connected = top(seen, "/pc/p/control").tag("shared") or top(seen, "/pc/p/control").tag("master")
    for name in ("private", "unbindable"):
        assert f"/pc/p/{name}/{event.name}" not in points, f"the {name} mount received it"
    if connected:
        assert f"/pc/p/slave/{event.name}" in points, "the slave mount did not receive it"


# --------------------------------------------------------------------------- idmap


@pytest.mark.requirement("RT-MNT-IDMAP-1")
def test_idmapped_mount(
    bundle: Callable[..., Path], container: Callable[..., Container], tmp_path: Path
) -> None:
    """Files owned by 0:0 on the host show through an idmap mount with the mappings
    0 -> 4242 (uid) and 0 -> 4343 (gid) as owned by 4242:4343."""
    source, _ = marked_dir(tmp_path, "idmapped")
    mount = bind(source, "/pc/idmapped", "rbind", "idmap")
    mount["uidMappings"] = [{"containerID": 0, "hostID": 4242, "size": 1}]
    mount["gidMappings"] = [{"containerID": 0, "hostID": 4343, "size": 1}]
    c = start(container, edit_config(bundle(SLEEPER), add_mounts(mount)))
    owner = shell(c, "stat -c '%u:%g' /pc/idmapped/marker").strip()
    assert owner == "4242:4343", f"/pc/idmapped/marker shows as owned by {owner}"


@pytest.mark.requirement("RT-MNT-IDMAP-2")
def test_idmap_without_mappings_or_user_namespace_is_an_error(
    bundle: Callable[..., Path], container_factory: ContainerFactory, tmp_path: Path
) -> None:
    source, _ = marked_dir(tmp_path, "idmap")
    path = edit_config(bundle(SLEEPER), add_mounts(bind(source, "/pc/idmap", "rbind", "idmap")))
    create_error(container_factory, path, "an idmap mount with no mappings and no user namespace")


@pytest.mark.requirement("RT-MNT-IDMAP-3")
@pytest.mark.parametrize("only", ["uidMappings", "gidMappings"])
def test_one_of_the_mount_mappings_is_an_error(
    only: str, bundle: Callable[..., Path], container_factory: ContainerFactory, tmp_path: Path
) -> None:
    source, _ = marked_dir(tmp_path, "mapped")
    mount = bind(source, "/pc/mapped", "rbind")
    mount[only] = [{"containerID": 0, "hostID": 4242, "size": 1}]
    path = edit_config(bundle(SLEEPER), add_mounts(mount))
    create_error(container_factory, path, f"a mount with {only} alone")


# --------------------------------------------------------------------------- defaults


DEFAULT_FILESYSTEMS = {"/proc": "proc", "/sys": "sysfs", "/dev/pts": "devpts", "/dev/shm": "tmpfs"}
DEFAULT_CHECKS = {
    "/proc": "test -r /proc/self/status",
    "/sys": "test -d /sys/kernel",
    "/dev/pts": "test -e /dev/pts/ptmx",
    "/dev/shm": "touch /dev/shm/pc-probe && rm /dev/shm/pc-probe",
}


@pytest.mark.parametrize(
    "point",
    [
        pytest.param(p, marks=pytest.mark.requirement(f"RT-FS-DEFAULT-{i}"))
        for i, p in enumerate(DEFAULT_FILESYSTEMS, 1)
    ],
)
def test_default_filesystems(
    point: str, shared: SharedContainers, fs_host: Path, locked_tree: Path
) -> None:
    c = fs(shared, fs_host, locked_tree)
    got = top(mountinfo(c), point).fstype
    assert got == DEFAULT_FILESYSTEMS[point], f"{point} is a {got}"
    shell(c, DEFAULT_CHECKS[point])


@pytest.mark.requirement("RT-FS-DEVLINK-1")
def test_dev_fd_link(shared: SharedContainers, fs_host: Path, locked_tree: Path) -> None:
    c = fs(shared, fs_host, locked_tree)
    assert shell(c, "readlink /dev/fd").strip() == "/proc/self/fd"
    assert shell(c, "exec 7</etc/passwd; ls /dev/fd/").split().count("7") == 1


@pytest.mark.requirement("RT-FS-DEVLINK-2")
def test_dev_stdio_links(shared: SharedContainers, fs_host: Path, locked_tree: Path) -> None:
    c = fs(shared, fs_host, locked_tree)
    links = shell(c, "for n in stdin stdout stderr; do readlink /dev/$n; done").split()
    assert links == ["/proc/self/fd/0", "/proc/self/fd/1", "/proc/self/fd/2"], links
    result = c.exec(["sh", "-c", "echo out > /dev/stdout; echo err > /dev/stderr"])
    assert (result.stdout, result.stderr) == ("out\n", "err\n")


# --------------------------------------------------------------------------- masked, read-only


def _has_content(path: Path) -> bool:
    try:
        if path.is_dir():
            return any(path.iterdir())
        with path.open("rb") as f:
            return bool(f.read(1))
    except OSError:  # unreadable on the host too: nothing to compare with
        return False


@pytest.mark.requirement("RT-FS-MASKED-1")
def test_masked_paths_cannot_be_read(
    shared: SharedContainers, fs_host: Path, locked_tree: Path
) -> None:
    """Our masked file and directory show nothing of what they hold, and nor does any
    path of the default list that has something to show on this host."""
    c = fs(shared, fs_host, locked_tree)
    config = json.loads((Path(c.bundle) / "config.json").read_text())
    defaults = [p for p in config["linux"]["maskedPaths"] if _has_content(Path(p))]
    paths = ["/etc/pc-secret", "/opt/pc-secret-dir", *defaults]
    script = "; ".join(
        f'if [ -d {p} ]; then echo "{p}: $(ls -A {p} 2>&1)"; '
        f'else echo "{p}: $(head -c 64 {p} 2>/dev/null | wc -c)"; fi'
        for p in paths
    )
    out = shell(c, script)
    inside = shell(c, "cat /etc/pc-secret /opt/pc-secret-dir/inside 2>&1; true")
    assert SECRET not in inside, f"a masked path could be read: {inside.strip()!r}"
    shown = {line.split(": ", 1)[0]: line.split(": ", 1)[1] for line in out.splitlines()}
    readable = {p: v for p, v in shown.items() if v not in ("", "0")}
    assert not readable, f"masked paths show what they hold: {readable}"


@pytest.mark.requirement("RT-FS-MASKED-2")
def test_relative_masked_path_is_an_error(
    bundle: Callable[..., Path], container_factory: ContainerFactory
) -> None:
    path = edit_config(bundle(SLEEPER), lambda c: c["linux"]["maskedPaths"].append("proc/kcore"))
    create_error(container_factory, path, "the relative maskedPaths entry 'proc/kcore'")


@pytest.mark.requirement("RT-FS-RO-1")
def test_readonly_paths_cannot_be_written(
    shared: SharedContainers, fs_host: Path, locked_tree: Path
) -> None:
    c = fs(shared, fs_host, locked_tree)
    name = f"w-{secrets.token_hex(4)}"
    out = shell(c, f"touch /pc/rw/locked/{name} 2>&1; touch /pc/rw/open/{name} && echo open-ok")
    assert os.strerror(errno.EROFS) in out, f"writing a readonlyPaths entry said {out!r}"
    assert "open-ok" in out, f"writing beside it failed: {out!r}"
    assert not (fs_host / "rw" / "locked" / name).exists()
    assert "ro" in top(mountinfo(c), "/pc/rw/locked").options


@pytest.mark.requirement("RT-FS-RO-2")
def test_relative_readonly_path_is_an_error(
    bundle: Callable[..., Path], container_factory: ContainerFactory
) -> None:
    path = edit_config(bundle(SLEEPER), lambda c: c["linux"]["readonlyPaths"].append("proc/sys"))
    create_error(container_factory, path, "the relative readonlyPaths entry 'proc/sys'")


# --------------------------------------------------------------------------- rootfs propagation


@contextlib.contextmanager
def shared_bundle(path: Path) -> Iterator[None]:
    """The bundle as a shared mount of its own on the host (as on a host whose / is
    shared), so that mounts the host makes under the rootfs can propagate."""
    host_mount("--bind", str(path), str(path))
    try:
        host_mount("--make-shared", str(path))
        yield
    finally:
        host_umount(path)


def propagation_bundle(bundle: Callable[..., Path], propagation: str) -> Path:
    """A bundle with ``rootfsPropagation``, CAP_SYS_ADMIN and two empty mount points."""
    path = bundle(SLEEPER)
    for name in ("pc-from-host", "pc-from-container"):
        (path / "rootfs" / name).mkdir()

    def edit(config: Config) -> None:
        config["linux"]["rootfsPropagation"] = propagation

    return edit_config(path, edit, add_capabilities("CAP_SYS_ADMIN"))


def events(c: Container, path: Path) -> tuple[bool, bool]:
    """(the container saw the host's mount under the rootfs, the host saw the container's)."""
    rootfs = path / "rootfs"
    host_mount("-t", "tmpfs", "pc-from-host", str(rootfs / "pc-from-host"))
    shell(c, "mount -t tmpfs pc-from-container /pc-from-container")
    inside = {m.point for m in mountinfo(c)}
    outside = {m.point for m in host_mountinfo()}
    return "/pc-from-host" in inside, str(rootfs / "pc-from-container") in outside


@pytest.mark.requirement("RT-FS-PROP-1")
def test_rootfs_propagation_shared(
    bundle: Callable[..., Path],
    container: Callable[..., Container],
    runtime_adapter: RuntimeAdapter,
) -> None:
    path = propagation_bundle(bundle, "shared")
    c = start(container, path)
    root = top(mountinfo(c), "/")
    group = root.tag("shared")
    assert group is not None, f"/ is not shared: {root.tags}"
    if HOST_KERNEL not in runtime_adapter.unsupported:
        host_groups = {m.tag("shared") for m in host_mountinfo()}
        assert group not in host_groups, f"/ is in the host's peer group {group}"


@pytest.mark.requirement("RT-FS-PROP-2")
def test_rootfs_propagation_slave(
    bundle: Callable[..., Path], container: Callable[..., Container]
) -> None:
    path = propagation_bundle(bundle, "slave")
    with shared_bundle(path):
        c = start(container, path)
        received, sent = events(c, path)
    assert received, "a mount the host made under the rootfs did not reach the container"
    assert not sent, "a mount the container made reached the host"


@pytest.mark.requirement("RT-FS-PROP-3")
def test_rootfs_propagation_private(
    bundle: Callable[..., Path], container: Callable[..., Container]
) -> None:
    path = propagation_bundle(bundle, "private")
    with shared_bundle(path):
        c = start(container, path)
        received, sent = events(c, path)
    root = top(mountinfo(c), "/")
    assert not received, "a mount the host made under the rootfs reached the container"
    assert not sent, "a mount the container made reached the host"
    assert not root.tag("shared") and not root.tag("master"), f"/ is not private: {root.tags}"


@pytest.mark.requirement("RT-FS-PROP-4")
def test_rootfs_propagation_unbindable(
    bundle: Callable[..., Path], container: Callable[..., Container]
) -> None:
    path = propagation_bundle(bundle, "unbindable")
    c = start(container, path)
    root = top(mountinfo(c), "/")
    assert "unbindable" in root.tags, f"/ is not unbindable: {root.tags}"
    out = shell(c, "mount --bind / /pc-from-container 2>&1 && echo bound; true")
    assert "bound" not in out, "the unbindable root could be bind-mounted"
