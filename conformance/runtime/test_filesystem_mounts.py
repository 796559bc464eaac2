"""The configured mounts (config.md "Mounts"): each at its destination, with its type,
source and flags, in the listed order; bind and rbind, ro and rw, nosuid, nodev and
noexec, and filesystem-specific options passed as data.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_containers.adapters import parse_size
from pytest_containers.adapters.handle import Container

from ._mounts import SLEEPER, add_mounts, bind, binds, fs, marked_dir, mountinfo, top
from ._shared import SharedContainers
from ._support import edit_config, shell, start


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
