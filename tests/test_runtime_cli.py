"""The ``reference-runtime`` command line, and bundles shared with real runc."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reference_runtime.rootfs_builder import build_rootfs, make_bundle
from reference_runtime.spec import default_spec

pytestmark = pytest.mark.needs_root

CLI = [sys.executable, "-m", "reference_runtime.cli"]


def _cli(root: Path, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "--root", str(root), *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        **kwargs,
    )


def _cid(tmp_path: Path) -> str:
    return f"cli-{os.getpid()}-{tmp_path.name}"[:60]


def test_spec_writes_a_config_that_runc_and_we_both_run(tmp_path):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    shutil.copytree(build_rootfs(), bundle / "rootfs", symlinks=True)
    result = _cli(tmp_path / "state", "spec", "--bundle", str(bundle))
    assert result.returncode == 0, result.stderr
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["args"] = ["sh", "-c", "echo $$ $(hostname)"]
    (bundle / "config.json").write_text(json.dumps(config))
    ours = _cli(tmp_path / "state", "run", "--bundle", str(bundle), _cid(tmp_path))
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout.split() == ["1", "reference"]
    if shutil.which("runc") is None:
        pytest.skip("runc not installed: apt-get install runc")
    runc_root = tmp_path / "runc"
    cid = _cid(tmp_path) + "-runc"
    try:
        theirs = subprocess.run(
            ["runc", "--root", str(runc_root), "run", "--bundle", str(bundle), cid],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
    finally:
        subprocess.run(
            ["runc", "--root", str(runc_root), "delete", "--force", cid], capture_output=True
        )
    assert theirs.returncode == 0, theirs.stderr
    assert theirs.stdout.split() == ours.stdout.split()
    # a second spec refuses to overwrite
    again = _cli(tmp_path / "state", "spec", "--bundle", str(bundle))
    assert again.returncode == 1 and "already exists" in again.stderr


def test_log_file_in_json_and_text(tmp_path):
    log = tmp_path / "runtime.log"
    result = _cli(tmp_path / "state", "--log", str(log), "--log-format", "json", "state", "nope")
    assert result.returncode == 1
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["level"] == "error" and "does not exist" in entry["msg"] and entry["time"]
    _cli(tmp_path / "state", "--log", str(log), "state", "nope")
    assert log.read_text().splitlines()[-1].startswith('time="')


def test_exec_list_and_state_through_the_cli(tmp_path):
    root = tmp_path / "state"
    cid = _cid(tmp_path)
    bundle = make_bundle(tmp_path / "b", args=["sleep", "30"])
    with open(os.devnull, "w") as null:
        subprocess.run(
            [*CLI, "--root", str(root), "create", "--bundle", str(bundle), cid],
            check=True,
            stdout=null,
            stderr=null,
        )
    try:
        assert _cli(root, "start", cid).returncode == 0
        out = _cli(
            root,
            "exec",
            "--env",
            "X=42",
            "--cwd",
            "/tmp",
            cid,
            "sh",
            "-c",
            "echo $X $(pwd); exit 5",
        )
        assert out.returncode == 5 and out.stdout.split() == ["42", "/tmp"]
        listing = json.loads(_cli(root, "list", "--format", "json").stdout)
        assert [(c["id"], c["status"]) for c in listing] == [(cid, "running")]
        assert _cli(root, "list", "-q").stdout.split() == [cid]
        table = _cli(root, "list").stdout.splitlines()
        assert table[0].split()[:3] == ["ID", "PID", "STATUS"] and cid in table[1]
        state = json.loads(_cli(root, "state", cid).stdout)
        assert state["status"] == "running" and state["pid"] > 0 and state["bundle"] == str(bundle)
    finally:
        _cli(root, "delete", "--force", cid)
    assert _cli(root, "list", "-q").stdout == ""


def test_no_pivot_uses_move_and_chroot(tmp_path):
    bundle = make_bundle(tmp_path / "b", args=["sh", "-c", "echo $$; ls /"])
    result = _cli(tmp_path / "state", "run", "--no-pivot", "--bundle", str(bundle), _cid(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "1" and "bin" in result.stdout.split()


def test_cgroups_path_is_honoured_and_mounted_inside(tmp_path):
    cid = _cid(tmp_path)
    path = f"/reference-runtime-test-{cid}"
    config = default_spec(
        [
            "sh",
            "-c",
            "cat /sys/fs/cgroup/memory/memory.limit_in_bytes; cat /sys/fs/cgroup/pids/pids.max",
        ]
    )
    config["linux"]["cgroupsPath"] = path
    config["linux"]["resources"]["memory"] = {"limit": 64 << 20}
    config["linux"]["resources"]["pids"] = {"limit": 50}
    bundle = make_bundle(tmp_path / "b", config=config)
    marker = Path("/sys/fs/cgroup/memory") / path.lstrip("/")
    layout_v2 = not Path("/sys/fs/cgroup/memory").is_dir()
    if layout_v2:
        pytest.skip("v1 memory hierarchy not mounted on this host")
    result = _cli(tmp_path / "state", "run", "--bundle", str(bundle), cid)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(64 << 20), "50"]
    assert not marker.exists()


def test_version(tmp_path):
    result = _cli(tmp_path, "--version")
    assert result.returncode == 0 and result.stdout.startswith("reference-runtime version ")
    assert "spec: 1." in result.stdout


def test_the_console_script_runs_a_container_by_program_name(tmp_path):
    """The installed entry point imports less than ``python -m`` or pytest do: nothing
    the container process needs after pivot_root may be left to a lazy import."""
    script = Path(sys.executable).parent / "reference-runtime"
    if not script.exists():
        pytest.skip(f"{script} is not installed: pip install -e .")
    bundle = make_bundle(tmp_path / "b", args=["sh", "-c", "echo found $0"])
    result = subprocess.run(
        [
            str(script),
            "--root",
            str(tmp_path / "state"),
            "run",
            "--bundle",
            str(bundle),
            _cid(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "found sh"
    missing = make_bundle(tmp_path / "m", args=["no-such-program"])
    result = subprocess.run(
        [
            str(script),
            "--root",
            str(tmp_path / "state"),
            "run",
            "--bundle",
            str(missing),
            _cid(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 1
    assert "executable 'no-such-program' not found in the container" in result.stderr
