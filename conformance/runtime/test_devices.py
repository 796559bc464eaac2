"""Devices (runtime-spec config-linux.md "Devices", "Default Devices" and "Allowed
Device List").

Every check looks from inside the container, at the node the runtime made and at what
the kernel does when a process opens it. The device numbers are chosen so that an open
has no effect anywhere: majors 241-243 are the kernel's "local/experimental" range,
with no driver behind them here, so an open the device cgroup lets through fails with
ENXIO ("No such device or address") and one it stops fails with EPERM ("Operation not
permitted"). That difference is what the device cgroup tests read.

Tests that only look share a container of the module (``shared``), made on first use
inside the first test that needs it, so that a refused create fails a test, and deleted
at the end of the module.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_containers.adapters.handle import Container
from pytest_containers.errors import ContainersError
from pytest_containers.requirements import not_applicable
from pytest_containers.runtime import ContainerFactory

from ._shared import SharedContainers
from ._support import create_error, edit_config, shell, start

Config = dict[str, Any]
Edit = Callable[[Config], None]

FREE_MAJOR = 241
"""A character/block major with no driver: opening one of its nodes has no effect."""

NOBODY = 65534

# what a process sees when it opens a node
ALLOWED = "ENXIO"  # let through by the device cgroup, then no driver answers
DENIED = "EPERM"  # stopped by the device cgroup
OPENED = "opened"  # a real device
NO_TERMINAL = "EIO"  # /dev/tty with no controlling terminal, on gVisor's kernel

CHAR = "character special file"
BLOCK = "block special file"
FIFO = "fifo"


# --------------------------------------------------------------------------- devices


def set_devices(*entries: dict[str, Any]) -> Edit:
    def edit(config: Config) -> None:
        config["linux"]["devices"] = [dict(e) for e in entries]

    return edit


def set_rules(*entries: dict[str, Any]) -> Edit:
    def edit(config: Config) -> None:
        config["linux"].setdefault("resources", {})["devices"] = [dict(e) for e in entries]

    return edit


def node(path: str, kind: str, major: int, minor: int, mode: int = 0o666) -> dict[str, Any]:
    return {"path": path, "type": kind, "major": major, "minor": minor, "fileMode": mode}


def stat_nodes(c: Container, paths: list[str]) -> dict[str, tuple[str, int, int, int, int, int]]:
    """path -> (file type, major, minor, permission bits, uid, gid), as the container sees it."""
    out = shell(c, " ".join(["stat", "-c", "'%n|%F|%t|%T|%a|%u|%g'", *paths]))
    seen = {}
    for line in out.splitlines():
        name, kind, major, minor, mode, uid, gid = line.split("|")
        seen[name] = (kind, int(major, 16), int(minor, 16), int(mode, 8), int(uid), int(gid))
    return seen


_PROBE = (
    'probe() { [ -e "$1" ] || { echo "$1|$2|1|missing"; return; }; '
    'if [ "$2" = r ]; then m=$( (exec 3<"$1") 2>&1 ); else m=$( (exec 3>"$1") 2>&1 ); fi; '
    'echo "$1|$2|$?|$m"; }'
)


def open_results(c: Container, probes: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """(path, "r" or "w") -> OPENED, ALLOWED (ENXIO), DENIED (EPERM), NO_TERMINAL (EIO)
    or the shell's own message."""
    script = "\n".join([_PROBE, *(f"probe {path} {mode}" for path, mode in probes)])
    meanings = {errno.ENXIO: ALLOWED, errno.EPERM: DENIED, errno.EIO: NO_TERMINAL}
    results = {}
    for line in shell(c, script).splitlines():
        path, mode, status, message = line.split("|", 3)
        results[(path, mode)] = OPENED if status == "0" else message.strip()
        for number, meaning in meanings.items():
            if status != "0" and os.strerror(number) in message:
                results[(path, mode)] = meaning
    return results


# --------------------------------------------------------------------------- default devices


def plain(shared: SharedContainers) -> Container:
    """The default configuration, its process running as nobody."""
    return shared.get("plain", ["sleep", "3600"], user=(NOBODY, NOBODY))


def check_default(c: Container, name: str, major: int, minor: int) -> None:
    __tracebackhide__ = True
    kind, got_major, got_minor, mode, _, _ = stat_nodes(c, [f"/dev/{name}"])[f"/dev/{name}"]
    assert (kind, got_major, got_minor) == (CHAR, major, minor), (
        f"/dev/{name} is a {kind} {got_major}:{got_minor}; the spec's {name} is "
        f"a character device {major}:{minor}"
    )
    assert mode & 0o006 == 0o006, f"/dev/{name} has mode {mode:o}: others cannot read and write"


@pytest.mark.requirement("RT-DEV-DEFAULT-1")
def test_null_zero_and_full_are_supplied(shared: SharedContainers) -> None:
    """/dev/null, /dev/zero and /dev/full are the kernel's devices, usable by any user."""
    c = plain(shared)
    for name, minor in (("null", 3), ("zero", 5), ("full", 7)):
        check_default(c, name, 1, minor)
    out = shell(
        c,
        "echo discarded > /dev/null && echo null-ok; "
        "head -c 8 /dev/zero | od -An -tx1 | tr -d ' \\n'; echo; "
        "head -c 4 /dev/full | wc -c; "
        "(echo x > /dev/full) 2>&1; true",
    ).splitlines()
    assert out[0] == "null-ok"
    assert out[1] == "00" * 8, f"/dev/zero reads {out[1]!r}, not zero bytes"
    assert out[2].strip() == "4", "/dev/full does not read as zero bytes"
    assert os.strerror(errno.ENOSPC) in out[3], f"writing /dev/full said {out[3]!r}, not ENOSPC"


@pytest.mark.requirement("RT-DEV-DEFAULT-2")
def test_random_and_urandom_are_supplied(shared: SharedContainers) -> None:
    c = plain(shared)
    check_default(c, "random", 1, 8)
    check_default(c, "urandom", 1, 9)
    out = shell(c, "head -c 32 /dev/urandom | wc -c; head -c 16 /dev/random | wc -c").split()
    assert out == ["32", "16"], f"reading /dev/urandom and /dev/random gave {out} bytes"


@pytest.mark.requirement("RT-DEV-DEFAULT-3")
def test_tty_is_supplied(shared: SharedContainers) -> None:
    """/dev/tty is the tty device: opening it reaches the driver (which, with no
    controlling terminal, says ENXIO), where the device cgroup would say EPERM."""
    c = plain(shared)
    check_default(c, "tty", 5, 0)
    got = open_results(c, [("/dev/tty", "r")])[("/dev/tty", "r")]
    assert got in (ALLOWED, NO_TERMINAL), (
        f"opening /dev/tty without a controlling terminal said {got!r}; the tty driver "
        "says ENXIO (gVisor's, EIO)"
    )


@pytest.mark.requirement("RT-DEV-DEFAULT-4")
def test_ptmx_is_the_devpts_ptmx(shared: SharedContainers) -> None:
    """/dev/ptmx is /dev/pts/ptmx (a symlink or a bind mount), and opening it makes a
    terminal in the container's own devpts."""
    c = plain(shared)
    link = shell(c, "readlink /dev/ptmx || true").strip()
    same = shell(c, "stat -L -c '%d:%i' /dev/ptmx /dev/pts/ptmx").split()
    assert link in ("pts/ptmx", "/dev/pts/ptmx") or (len(same) == 2 and same[0] == same[1]), (
        f"/dev/ptmx is neither a symlink to pts/ptmx (readlink: {link!r}) nor the same "
        f"file as /dev/pts/ptmx (device:inode {same})"
    )
    listed = shell(c, "exec 3<>/dev/ptmx && ls /dev/pts").split()
    assert any(n.isdigit() for n in listed), (
        f"opening /dev/ptmx made no terminal in /dev/pts (it holds {listed})"
    )


# --------------------------------------------------------------------------- linux.devices

LISTED: tuple[dict[str, Any], ...] = (
    node("/dev/pc-null", "c", 1, 3, 0o640) | {"uid": 1234, "gid": 5678},
    node("/dev/pc-zero", "u", 1, 5, 0o666) | {"uid": 0, "gid": 0},
    node("/dev/pc-block", "b", FREE_MAJOR, 3, 0o600) | {"uid": 42, "gid": 6},
    {"path": "/dev/pc-fifo", "type": "p", "fileMode": 0o620, "uid": 7, "gid": 8},
)
KINDS = {"c": CHAR, "u": CHAR, "b": BLOCK, "p": FIFO}


def listed(shared: SharedContainers) -> Container:
    return shared.get("listed", ["sleep", "3600"], set_devices(*LISTED))


@pytest.mark.requirement("RT-DEV-LIST-1")
def test_listed_devices_have_their_type_and_numbers(shared: SharedContainers) -> None:
    c = listed(shared)
    seen = stat_nodes(c, [d["path"] for d in LISTED])
    for d in LISTED:
        want = (KINDS[d["type"]], d.get("major", 0), d.get("minor", 0))
        got = seen[d["path"]][:3]
        assert got == want, f"{d['path']} is {got}; linux.devices asks for {want}"
    # it is the real device: the unbuffered zero reads zeros
    out = shell(c, "head -c 3 /dev/pc-zero | od -An -tx1").split()
    assert out == ["00", "00", "00"], f"/dev/pc-zero (u 1:5) reads as {out}"


@pytest.mark.requirement("RT-DEV-LIST-2")
def test_listed_devices_have_their_mode_and_owner(shared: SharedContainers) -> None:
    seen = stat_nodes(listed(shared), [d["path"] for d in LISTED])
    for d in LISTED:
        want = (d["fileMode"], d["uid"], d["gid"])
        got = seen[d["path"]][3:]
        assert got == want, (
            f"{d['path']} has mode {got[0]:o}, owner {got[1]}:{got[2]}; linux.devices asks "
            f"for mode {want[0]:o}, owner {want[1]}:{want[2]}"
        )


def _another_device(tmp_path: Path) -> Edit:
    return set_devices(node("/dev/pc-clash", "c", 1, 3), node("/dev/pc-clash", "c", 1, 5))


def _a_mounted_file(tmp_path: Path) -> Edit:
    plain_file = tmp_path / "plain-file"
    plain_file.write_text("not a device\n")
    mount: dict[str, Any] = {"destination": "/dev/pc-clash", "type": "none"}
    mount |= {"source": str(plain_file), "options": ["bind", "ro"]}

    def edit(config: Config) -> None:
        config["mounts"].append(mount)
        set_devices(node("/dev/pc-clash", "c", 1, 3))(config)

    return edit


@pytest.mark.requirement("RT-DEV-LIST-3")
@pytest.mark.parametrize("clash", [_another_device, _a_mounted_file], ids=lambda f: f.__name__[1:])
def test_existing_file_at_device_path_is_an_error(
    clash: Callable[[Path], Edit],
    bundle: Callable[..., Path],
    container_factory: ContainerFactory,
    tmp_path: Path,
) -> None:
    path = edit_config(bundle(["true"]), clash(tmp_path))
    create_error(container_factory, path, "a device path taken by a different file")


@pytest.mark.requirement("RT-DEV-LIST-4")
def test_device_outside_dev(
    bundle: Callable[..., Path], container: Callable[..., Container]
) -> None:
    """MAY: where the runtime offers it, a device outside /dev is the right device."""
    outside = node("/pc-devices/null", "c", 1, 3, 0o666) | {"uid": 0, "gid": 0}
    path = edit_config(bundle(["sleep", "3600"], readonly=False), set_devices(outside))
    try:
        c = start(container, path)
    except ContainersError as exc:
        not_applicable(f"the runtime does not offer devices outside /dev (a MAY): {exc}")
    got = stat_nodes(c, ["/pc-devices/null"])["/pc-devices/null"]
    assert got[:4] == (CHAR, 1, 3, 0o666), f"/pc-devices/null is {got}"
    assert shell(c, "echo x > /pc-devices/null && wc -c < /pc-devices/null").strip() == "0"


@pytest.mark.requirement("RT-DEV-LIST-5")
@pytest.mark.parametrize(
    ("kind", "missing"),
    [("c", ("major", "minor")), ("b", ("minor",))],
    ids=["c-without-numbers", "b-without-minor"],
)
def test_device_without_numbers_is_an_error(
    kind: str,
    missing: tuple[str, ...],
    bundle: Callable[..., Path],
    container_factory: ContainerFactory,
) -> None:
    entry = node("/dev/pc-nonumbers", kind, FREE_MAJOR, 1)
    for key in missing:
        del entry[key]
    path = edit_config(bundle(["true"]), set_devices(entry))
    create_error(container_factory, path, f"a {kind} device without {' and '.join(missing)}")


# --------------------------------------------------------------------------- device cgroup

DEFAULT_NUMBERS = {(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2)}
"""null, zero, full, random, urandom, tty, console, ptmx: what every container may use."""
PTS_MAJOR = 136

C7, C8, C9, B9, OTHER = "/dev/pc-c7", "/dev/pc-c8", "/dev/pc-c9", "/dev/pc-b9", "/dev/pc-other"
RULED_NODES = (
    node(C7, "c", FREE_MAJOR, 7),
    node(C8, "c", FREE_MAJOR, 8),
    node(C9, "c", FREE_MAJOR + 1, 9),
    node(B9, "b", FREE_MAJOR, 9),
    node(OTHER, "c", FREE_MAJOR + 2, 1),
)
RULES = (
    {"allow": False, "access": "rwm"},  # no type, no numbers: every device
    {"allow": True, "type": "c", "major": FREE_MAJOR, "minor": 7, "access": "rw"},
    {"allow": False, "type": "c", "major": FREE_MAJOR, "minor": 7, "access": "w"},
    {"allow": False, "type": "c", "major": FREE_MAJOR, "minor": 8, "access": "w"},
    {"allow": True, "type": "c", "major": FREE_MAJOR, "minor": 8, "access": "rw"},
    {"allow": True, "type": "c", "major": FREE_MAJOR + 1, "access": "r"},  # every minor
    {"allow": True, "type": "b", "major": FREE_MAJOR, "minor": 9, "access": "r"},
)


def ruled(shared: SharedContainers) -> Container:
    return shared.get("ruled", ["sleep", "3600"], set_devices(*RULED_NODES), set_rules(*RULES))


@pytest.mark.requirement("RT-CG-DEV-1", "RT-CG-DEV-2", "RT-CG-DEV-3")
def test_device_cgroup_rules_apply_in_order(shared: SharedContainers) -> None:
    """A later entry overrides an earlier one, both ways; no minor means every minor."""
    want = {
        (C7, "r"): ALLOWED,
        (C7, "w"): DENIED,  # the later deny of w wins over the allow before it
        (C8, "r"): ALLOWED,
        (C8, "w"): ALLOWED,  # the later allow wins over the deny before it
        (C9, "r"): ALLOWED,  # allowed by c 242:* r
        (C9, "w"): DENIED,
        (B9, "r"): ALLOWED,
        (B9, "w"): DENIED,
    }
    got = open_results(ruled(shared), list(want))
    wrong = {k: f"{got.get(k)} (want {v})" for k, v in want.items() if got.get(k) != v}
    assert not wrong, f"the device cgroup did not apply the rules in order: {wrong}"


@pytest.mark.requirement("RT-CG-DEV-2", "RT-CG-DEV-3")
def test_device_cgroup_denies_what_no_rule_allows(shared: SharedContainers) -> None:
    """After the first rule, deny everything (no type, no numbers), a device no later
    rule allows cannot be opened, and no other device node in the container can be
    either, the spec's default devices excepted."""
    c = ruled(shared)
    nodes = shell(c, "find /dev -type c -o -type b").split()
    numbers = {path: (got[1], got[2]) for path, got in stat_nodes(c, nodes).items()}
    ruled_paths = {n["path"] for n in RULED_NODES} - {OTHER}
    unruled = [
        p
        for p, (major, minor) in numbers.items()
        if (major, minor) not in DEFAULT_NUMBERS and major != PTS_MAJOR and p not in ruled_paths
    ]
    results = open_results(c, [(p, mode) for p in unruled for mode in ("r", "w")])
    let_through = {k: v for k, v in results.items() if v != DENIED}
    missing = "" if OTHER in nodes else f"{OTHER} (listed in linux.devices) is missing; "
    assert not let_through and not missing, (
        f"{missing}devices that no rule allows could be opened: {let_through} "
        f"(device numbers: {numbers})"
    )
    # the deny-all rule did not take the default devices away
    assert open_results(c, [("/dev/null", "w")]) == {("/dev/null", "w"): OPENED}
