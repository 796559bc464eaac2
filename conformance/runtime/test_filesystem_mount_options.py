"""Mount options (config.md "Mounts"): the other options of mount(8), the recursive
ones and symfollow, and the propagation options of each mount.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_containers.adapters.handle import Container
from pytest_containers.errors import ContainersError

from ._mounts import (
    SLEEPER,
    Mount,
    add_mounts,
    bind,
    host_mount,
    host_umount,
    mountinfo,
    tmpfs,
    top,
)
from ._support import edit_config, shell, start

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
