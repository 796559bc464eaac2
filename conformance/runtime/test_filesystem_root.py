"""The container's root and default filesystems (config.md "Root", config-linux.md
"Default Filesystems", "Masked Paths", "Readonly Paths", runtime-linux.md "Dev symbolic
links"): the root path and its read-only flag, /proc, /sys, /dev/pts and /dev/shm, the
/dev links, and masked and read-only paths.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_containers.adapters.handle import Container
from pytest_containers.runtime import ContainerFactory

from ._mounts import SECRET, SLEEPER, binds, fs, mountinfo, top
from ._shared import SharedContainers
from ._support import create_error, edit_config, shell, start

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
