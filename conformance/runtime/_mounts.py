"""Mounts, the mount table and host trees, for the filesystem modules (not a test module).

What a test reads is the kernel's own account, from inside: ``/proc/self/mountinfo``
(each mount's point, options, propagation tags, type and source), what a write, an
exec or an open does, and, where a host directory is mounted in, what the host sees
after the container wrote.

Mounts that need the host's side of propagation (a shared tree with a submount, a tree
whose mounts carry every flag) are made on the host by module-scoped fixtures, which
``conftest.py`` offers, and unmounted at the end of the module. ``fs`` and ``binds`` are
the shared containers the looking tests read.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_containers.adapters.handle import Container

from ._shared import SharedContainers
from ._support import Config, Edit, add_capabilities, shell

SLEEPER = ["sleep", "3600"]
WAIT = 10.0
"""Seconds any one host command in these tests may take."""


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
