"""Mount options on the real kernel: the recursive options (mount_setattr with
AT_RECURSIVE), nosymfollow/symfollow, and idmapped mounts (idmap/ridmap)."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reference_runtime import kernel
from reference_runtime.rootfs import parse_options

pytestmark = pytest.mark.needs_root

WAIT = 30.0


def test_recursive_options_become_mount_setattr_attributes():
    opts = parse_options(("rbind", "rro", "rnosuid", "rnoatime", "rstrictatime", "rsymfollow"))
    assert opts.flags == kernel.MS_BIND | kernel.MS_REC
    assert opts.attr_set == (
        kernel.MOUNT_ATTR_RDONLY | kernel.MOUNT_ATTR_NOSUID | kernel.MOUNT_ATTR_STRICTATIME
    )
    assert opts.attr_clr == kernel.MOUNT_ATTR__ATIME | kernel.MOUNT_ATTR_NOSYMFOLLOW
    later = parse_options(("rro", "rrw", "rnodev", "rdev"))
    assert later.attr_set == 0
    assert later.attr_clr == kernel.MOUNT_ATTR_RDONLY | kernel.MOUNT_ATTR_NODEV
    assert parse_options(("symfollow",)).cleared == kernel.MS_NOSYMFOLLOW
    assert parse_options(("rbind", "idmap")).data == ""


# --------------------------------------------------------------------------- real kernel


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, timeout=WAIT, capture_output=True)


@pytest.fixture
def host_tree(tmp_path: Path) -> Iterator[Path]:
    """A host tmpfs with a file, a symlink to it and a tmpfs submount ``sub`` holding the
    same; unmounted afterwards."""
    tree = tmp_path / "tree"
    tree.mkdir()
    token = secrets.token_hex(3)
    _mount("-t", "tmpfs", f"pc-tree-{token}", str(tree))
    try:
        for where in (tree, tree / "sub"):
            if where != tree:
                where.mkdir()
                _mount("-t", "tmpfs", f"pc-sub-{token}", str(where))
            (where / "file").write_text("x\n")
            (where / "link").symlink_to("file")
        yield tree
    finally:
        subprocess.run(["umount", "-R", "-l", str(tree)], check=False, timeout=WAIT)


def _bind(source: Path, destination: str, *options: str, **extra: Any) -> dict[str, Any]:
    return {"destination": destination, "type": "bind", "source": str(source),
            "options": list(options), **extra}  # fmt: skip


def _run(busybox_bundle, run_capture, script: str, *mounts: dict[str, Any]) -> str:
    def edit(config: dict[str, Any]) -> None:
        config["mounts"].extend(mounts)

    code, out = run_capture(busybox_bundle(["sh", "-c", script], edit=edit))
    assert code == 0, out
    return out


def _options(mountinfo: str, point: str) -> set[str]:
    """The per-mount options of the last mount at ``point`` in a mountinfo text."""
    found = [line.split()[5] for line in mountinfo.splitlines() if line.split()[4] == point]
    assert found, f"nothing mounted at {point}: {mountinfo}"
    return set(found[-1].split(","))


def test_recursive_options_reach_submounts(busybox_bundle, run_capture, host_tree):
    out = _run(
        busybox_bundle,
        run_capture,
        "cat /proc/self/mountinfo; echo ==; touch /r/sub/new || echo refused; "
        "cat /r/sub/link || echo not-followed; touch /p/sub/new && echo plain-writable",
        _bind(host_tree, "/r", "rbind", "rro", "rnosuid", "rnoatime", "rnosymfollow"),
        _bind(host_tree, "/p", "rbind", "ro"),
    )
    mountinfo, _, rest = out.partition("==\n")
    for point in ("/r", "/r/sub"):
        assert {"ro", "nosuid", "noatime", "nosymfollow"} <= _options(mountinfo, point), point
    assert "ro" in _options(mountinfo, "/p") and "rw" in _options(mountinfo, "/p/sub")
    words = rest.split()
    assert {"refused", "not-followed", "plain-writable"} <= set(words), rest


def test_recursive_clearing_options(busybox_bundle, run_capture, host_tree):
    for point in (host_tree / "sub", host_tree):
        _mount("-o", "remount,bind,ro,nosymfollow,noexec", str(point))
    out = _run(
        busybox_bundle,
        run_capture,
        "cat /proc/self/mountinfo; echo ==; touch /r/sub/new && echo writable; "
        "cat /r/sub/link && cat /s/link",
        _bind(host_tree, "/r", "rbind", "rrw", "rsymfollow", "rexec"),
        _bind(host_tree, "/s", "bind", "symfollow"),
    )
    mountinfo, _, rest = out.partition("==\n")
    for point in ("/r", "/r/sub"):
        assert not {"ro", "nosymfollow", "noexec"} & _options(mountinfo, point), point
    assert rest.split() == ["writable", "x", "x"], rest


def test_nosymfollow_on_a_new_mount(busybox_bundle, run_capture):
    tmpfs = {"destination": "/n", "type": "tmpfs", "source": "tmpfs", "options": ["nosymfollow"]}
    out = _run(
        busybox_bundle,
        run_capture,
        "echo x > /n/file; ln -s file /n/link; cat /n/link || echo not-followed; readlink /n/link",
        tmpfs,
    )
    assert out.split()[-2:] == ["not-followed", "file"], out


MAP_UID = [{"containerID": 0, "hostID": 4242, "size": 1}]
MAP_GID = [{"containerID": 0, "hostID": 4343, "size": 1}]


@pytest.mark.parametrize("option", ["idmap", "ridmap"])
def test_idmapped_mount_shows_mapped_owners(busybox_bundle, run_capture, host_tree, option):
    """On-disk 0:0 shows as 4242:4343; ridmap maps the submount too, idmap only the top."""
    out = _run(
        busybox_bundle,
        run_capture,
        "stat -c %u:%g /i/file /i/sub/file",
        _bind(host_tree, "/i", "rbind", option, uidMappings=MAP_UID, gidMappings=MAP_GID),
    )
    assert out.split() == ["4242:4343", "4242:4343" if option == "ridmap" else "0:0"], out


def test_idmap_without_mappings_takes_the_user_namespace_of_the_container(
    busybox_bundle, run_capture, host_tree
):
    """With the container's mappings 0 -> 0 and 1.. -> 100001.., a host file owned by 5
    shows as nobody through a plain bind and as 5 through an idmap bind."""
    os.chown(host_tree / "file", 5, 5)
    maps = [
        {"containerID": 0, "hostID": 0, "size": 1},
        {"containerID": 1, "hostID": 100001, "size": 999},
    ]

    def edit(config: dict[str, Any]) -> None:
        linux = config["linux"]
        linux["namespaces"].append({"type": "user"})
        linux["uidMappings"] = linux["gidMappings"] = maps
        del linux["resources"]
        config["mounts"] = [
            m for m in config["mounts"] if m["destination"] not in ("/sys", "/sys/fs/cgroup")
        ]
        config["mounts"] += [
            _bind(host_tree, "/plain", "rbind"),
            _bind(host_tree, "/mapped", "rbind", "idmap"),
        ]

    script = "stat -c %u:%g /plain/file /mapped/file"
    code, out = run_capture(busybox_bundle(["sh", "-c", script], edit=edit))
    assert code == 0, out
    assert out.split() == ["65534:65534", "5:5"], out
