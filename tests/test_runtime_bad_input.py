"""Bad input: one line on stderr, exit 1, no traceback, and nothing left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reference_runtime.rootfs_builder import make_bundle
from reference_runtime.spec import default_spec

pytestmark = pytest.mark.needs_root

CLI = [sys.executable, "-m", "reference_runtime.cli"]
# unique per worker process: the default cgroup path is named after the container ID
CID = f"bad-input-{os.getpid()}"


def _host_snapshot(cid: str = CID) -> dict[str, Any]:
    """What a failed create of ``cid`` could leak: its cgroups, mounts of its bundle or
    state, and our own child processes (other xdist workers make their own)."""
    root = Path("/sys/fs/cgroup")
    cgroups = sorted(str(p) for p in root.glob(f"*/reference-runtime-{cid}"))
    cgroups += sorted(str(p) for p in root.glob(f"reference-runtime-{cid}"))
    mounts = [
        m
        for m in Path("/proc/self/mounts").read_text().splitlines()
        if "/pytest-of-" in m or cid in m
    ]
    children = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split()
    return {"cgroups": cgroups, "mounts": mounts, "children": children}


def _run_cli(root: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "--root", str(root), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )


def _assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("reference-runtime: "), lines[0]
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def _bundle_with(tmp_path: Path, name: str, edit: Any) -> Path:
    config = default_spec(["true"])
    edit(config)
    return make_bundle(tmp_path / name, config=config)


def _set(path: str, value: Any) -> Any:
    def edit(config: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = config
        for key in parents:
            node = node[key]
        node[last] = value

    return edit


BAD_CONFIGS = [
    ("unknown-version", _set("ociVersion", "2.0.0"), "unsupported ociVersion '2.0.0'"),
    ("no-args", _set("process.args", []), "process.args must be a non-empty list"),
    ("bad-env", _set("process.env", ["NOEQUALS"]), "not of the form KEY=VALUE"),
    ("relative-cwd", _set("process.cwd", "tmp"), "must be an absolute path"),
    (
        "bad-rlimit",
        _set("process.rlimits", [{"type": "RLIMIT_NOPE", "soft": 1, "hard": 1}]),
        "RLIMIT_NOPE",
    ),
    (
        "bad-ns",
        _set("linux.namespaces", [{"type": "mount"}, {"type": "wormhole"}]),
        "'wormhole' is not one of",
    ),
    ("bad-memory", _set("linux.resources.memory", {"limit": -5}), "memory"),
    ("host-sysctl", _set("linux.sysctl", {"kernel.panic": "1"}), "not namespaced"),
    ("terminal", _set("process.terminal", True), "terminal"),
]


def _rules(action: str, *names: str, **extra: Any) -> dict[str, Any]:
    return {"syscalls": [{"names": list(names), "action": action, **extra}]}


def _arg(index: int, op: str) -> dict[str, Any]:
    return {"args": [{"index": index, "value": 0, "op": op}]}


NOTIFY = {"listenerPath": "/nonexistent/pc.sock", **_rules("SCMP_ACT_NOTIFY", "mkdir")}
SECCOMP_CONFIGS = [
    ("action", {"defaultAction": "SCMP_ACT_NOPE"}, "'SCMP_ACT_NOPE' is not one of"),
    ("default-errno", {"defaultErrnoRet": 1}, "SCMP_ACT_ALLOW returns no errno"),
    ("rule-errno", _rules("SCMP_ACT_KILL", "mkdir", errnoRet=1), "SCMP_ACT_KILL returns no"),
    ("empty-names", _rules("SCMP_ACT_ERRNO"), "at least one syscall name"),
    ("arch", {"architectures": ["SCMP_ARCH_Z80"]}, "unknown architecture 'SCMP_ARCH_Z80'"),
    ("flag", {"flags": ["SECCOMP_FILTER_FLAG_NOPE"]}, "unknown flag"),
    ("op", _rules("SCMP_ACT_ERRNO", "kill", **_arg(1, "SCMP_CMP_ABOUT")), "not a SCMP_CMP_"),
    ("arg-index", _rules("SCMP_ACT_ERRNO", "kill", **_arg(6, "SCMP_CMP_EQ")), "out of range"),
    ("metadata", {"listenerMetadata": "m"}, "listenerMetadata is set but listenerPath is not"),
    ("notify-default", {"defaultAction": "SCMP_ACT_NOTIFY"}, "defaultAction SCMP_ACT_NOTIFY"),
    ("notify-no-path", _rules("SCMP_ACT_NOTIFY", "mkdir"), "sets no listenerPath"),
    ("notify-handoff", {**NOTIFY, **_rules("SCMP_ACT_NOTIFY", "sendmsg")}, "apply to sendmsg"),
    # these two fail once the container process exists: it must be gone too
    ("nobody-listens", NOTIFY, "cannot send the seccomp listener to linux.seccomp.listenerPath"),
    ("kills-init", _rules("SCMP_ACT_KILL_PROCESS", "sendto"), "filter, once loaded, must allow"),
]
BAD_CONFIGS += [
    (f"seccomp-{name}", _set("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW", **seccomp}), msg)
    for name, seccomp, msg in SECCOMP_CONFIGS
]
MAPS = [{"containerID": 0, "hostID": 1000, "size": 1}]
BAD_CONFIGS += [
    (f"idmap-{name}", _set("mounts", [{"destination": "/mnt", **mount}]), msg)
    for name, mount, msg in [
        ("no-userns", {"source": "/tmp", "options": ["rbind", "idmap"]}, "no user namespace"),
        ("half", {"source": "/tmp", "options": ["rbind"], "uidMappings": MAPS}, "go together"),
        (
            "tmpfs",
            {"type": "tmpfs", "options": ["idmap"], "uidMappings": MAPS, "gidMappings": MAPS},
            "bind mounts only",
        ),
    ]
]


@pytest.mark.parametrize(("name", "edit", "message"), BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_is_one_line_and_leaves_nothing(tmp_path, name, edit, message):
    b = _bundle_with(tmp_path, name, edit)
    root = tmp_path / "state"
    before = _host_snapshot()
    result = _run_cli(root, "create", "--bundle", str(b), CID)
    _assert_one_line_error(result, message)
    assert _host_snapshot() == before
    assert not (root / CID).exists()


def test_missing_rootfs(tmp_path):
    b = make_bundle(tmp_path / "b", args=["true"])
    config = json.loads((b / "config.json").read_text())
    config["root"]["path"] = "nowhere"
    (b / "config.json").write_text(json.dumps(config))
    result = _run_cli(tmp_path / "state", "create", "--bundle", str(b), CID)
    _assert_one_line_error(result, "root.path", "nowhere does not exist")


def test_missing_and_invalid_config_json(tmp_path):
    root = tmp_path / "state"
    empty = tmp_path / "empty"
    empty.mkdir()
    _assert_one_line_error(
        _run_cli(root, "create", "--bundle", str(empty), CID), "config.json not found"
    )
    (empty / "config.json").write_text("{not json")
    _assert_one_line_error(_run_cli(root, "create", "--bundle", str(empty), CID), "not valid JSON")
    _assert_one_line_error(
        _run_cli(root, "create", "--bundle", str(tmp_path / "nope"), CID), "is not a directory"
    )
    assert not (root / CID).exists()


@pytest.mark.parametrize("bad_id", ["../x", "", "a/b", "x" * 300, "..", "sp ace"])
def test_invalid_container_ids(tmp_path, bad_id):
    b = make_bundle(tmp_path / "b", args=["true"])
    root = tmp_path / "state"
    result = _run_cli(root, "create", "--bundle", str(b), bad_id)
    _assert_one_line_error(result, "container ID")
    assert not root.exists() or not any(root.iterdir())
    assert not (tmp_path / "x").exists()


def test_bundle_defaults_to_the_current_directory(tmp_path):
    b = make_bundle(tmp_path / "b", args=["sh", "-c", "exit 7"])
    result = _run_cli(tmp_path / "state", "run", CID, cwd=b)
    assert result.returncode == 7, result.stderr


def test_duplicate_id_is_refused_and_the_first_container_is_untouched(tmp_path):
    b = make_bundle(tmp_path / "b", args=["sleep", "30"])
    root = tmp_path / "state"
    with open(os.devnull, "w") as null:
        subprocess.run(
            [*CLI, "--root", str(root), "create", "--bundle", str(b), CID],
            check=True,
            stdout=null,
            stderr=null,
        )
    try:
        state_before = json.loads(_run_cli(root, "state", CID).stdout)
        result = _run_cli(root, "create", "--bundle", str(b), CID)
        _assert_one_line_error(result, "already exists")
        assert json.loads(_run_cli(root, "state", CID).stdout) == state_before
    finally:
        _run_cli(root, "delete", "--force", CID)


def test_mount_through_a_symlink_out_of_the_rootfs_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    config = default_spec(["true"])
    config["mounts"].append({"destination": "/escape/inner", "type": "tmpfs", "source": "tmpfs"})
    b = make_bundle(tmp_path / "b", config=config)
    os.symlink("../../../outside", b / "rootfs" / "escape")
    before = _host_snapshot()
    result = _run_cli(tmp_path / "state", "create", "--bundle", str(b), CID)
    _assert_one_line_error(result, "escapes the root filesystem through symlink /escape")
    assert _host_snapshot() == before
    assert list(outside.iterdir()) == []


def test_absolute_symlink_is_resolved_inside_the_rootfs(tmp_path):
    """An absolute symlink (as /var/run -> /run in images) is followed inside the rootfs."""
    host_dir = tmp_path / "hostside"
    host_dir.mkdir()
    config = default_spec(["sh", "-c", "grep -c ' /inside tmpfs' /proc/mounts"])
    config["mounts"].append({"destination": "/link/x", "type": "tmpfs", "source": "tmpfs"})
    b = make_bundle(tmp_path / "b", config=config)
    (b / "rootfs" / "inside").mkdir()
    os.symlink(str(host_dir), b / "rootfs" / "link")  # absolute: means /<host_dir> inside
    result = _run_cli(tmp_path / "state", "run", "--bundle", str(b), CID)
    assert result.returncode == 1  # the tmpfs went to rootfs/<host_dir>/x, not /inside
    assert list(host_dir.iterdir()) == []
    assert (b / "rootfs" / str(host_dir).lstrip("/") / "x").is_dir()


def test_wrong_state_errors_are_one_line(tmp_path):
    b = make_bundle(tmp_path / "b", args=["sleep", "30"])
    root = tmp_path / "state"
    with open(os.devnull, "w") as null:
        subprocess.run(
            [*CLI, "--root", str(root), "create", "--bundle", str(b), CID],
            check=True,
            stdout=null,
            stderr=null,
        )
    try:
        _assert_one_line_error(_run_cli(root, "delete", CID), "it is created")
        assert _run_cli(root, "start", CID).returncode == 0
        _assert_one_line_error(_run_cli(root, "start", CID), "it is running, not created")
        _assert_one_line_error(_run_cli(root, "delete", CID), "use --force")
        _assert_one_line_error(_run_cli(root, "kill", CID, "NOTASIGNAL"), "unknown signal")
        assert _run_cli(root, "kill", CID, "9").returncode == 0
        for _ in range(100):
            if json.loads(_run_cli(root, "state", CID).stdout)["status"] == "stopped":
                break
        _assert_one_line_error(_run_cli(root, "kill", CID, "KILL"), "it is stopped")
    finally:
        _run_cli(root, "delete", "--force", CID)
    _assert_one_line_error(_run_cli(root, "state", CID), "does not exist")


def test_usage_errors_are_one_line(tmp_path):
    _assert_one_line_error(_run_cli(tmp_path, "frobnicate"), "invalid choice")
    _assert_one_line_error(_run_cli(tmp_path, "start"), "required")
