"""Lifecycle of the reference runtime on the real kernel (runtime-spec runtime.md)."""

from __future__ import annotations

import json
import os
import signal
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from reference_runtime import (
    ContainerNotFoundError,
    HookError,
    ProcessError,
    Runtime,
    StateError,
    Status,
)
from reference_runtime.state import process_start_time

pytestmark = pytest.mark.needs_root


def _cgroup_dirs(cgroups_path: str) -> list[Path]:
    """The directories of ``cgroups_path`` in every hierarchy (v1, v2 or hybrid)."""
    root = Path("/sys/fs/cgroup")
    candidates = [root / cgroups_path.lstrip("/")]
    candidates += [d / cgroups_path.lstrip("/") for d in root.iterdir() if d.is_dir()]
    return [p for p in candidates if p.is_dir()]


def test_create_does_not_run_the_program_until_start(
    runtime, busybox_bundle, container_id, tmp_path, output
):
    marker = tmp_path / "ran"
    cid = container_id()
    b = busybox_bundle(["sh", "-c", "touch /mnt/ran; sleep 30"], edit=_bind(tmp_path, "/mnt"))
    out = output()
    state = runtime.create(cid, b, stdio=out.stdio)
    assert state.status is Status.CREATED
    spec = runtime.state(cid).spec_state()
    assert spec["status"] == "created" and spec["pid"] == state.pid and spec["bundle"] == str(b)
    assert spec["ociVersion"].startswith("1.") and spec["id"] == cid
    time.sleep(0.3)
    assert not marker.exists(), "the program ran before start"
    runtime.start(cid)
    deadline = time.monotonic() + 5
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert marker.exists()
    assert runtime.state(cid).status is Status.RUNNING
    runtime.kill(cid, "KILL")
    assert runtime.wait(cid, timeout=5) == 128 + signal.SIGKILL
    assert runtime.state(cid).status is Status.STOPPED
    runtime.delete(cid)
    with pytest.raises(ContainerNotFoundError):
        runtime.state(cid)


def _bind(host_dir: Path, dest: str) -> Any:
    def edit(config: dict[str, Any]) -> None:
        config["mounts"].append(
            {
                "destination": dest,
                "type": "bind",
                "source": str(host_dir),
                "options": ["rbind", "rw"],
            }
        )

    return edit


def test_exit_status_is_propagated(runtime, busybox_bundle, run_capture):
    code, _ = run_capture(busybox_bundle(["sh", "-c", "exit 42"]))
    assert code == 42


def test_signal_is_delivered_as_asked(runtime, busybox_bundle, container_id, tmp_path, output):
    cid = container_id()
    script = (
        "trap 'echo got-USR1 > /mnt/sig; exit 0' USR1; echo ready > /mnt/ready;"
        " while true; do sleep 0.05; done"
    )
    b = busybox_bundle(["sh", "-c", script], edit=_bind(tmp_path, "/mnt"))
    runtime.create(cid, b, stdio=output().stdio)
    runtime.start(cid)
    _wait_for(tmp_path / "ready")
    runtime.kill(cid, "USR1")
    assert runtime.wait(cid, timeout=5) == 0
    assert (tmp_path / "sig").read_text().strip() == "got-USR1"
    runtime.delete(cid)


def _wait_for(path: Path, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


# status x verb: what the runtime-spec allows (True) or requires an error for (False)
_TABLE = {
    Status.CREATED: {"start": True, "kill": True, "delete": False, "delete_force": True},
    Status.RUNNING: {"start": False, "kill": True, "delete": False, "delete_force": True},
    Status.STOPPED: {"start": False, "kill": False, "delete": True, "delete_force": True},
}


def _container_in(
    runtime: Runtime, status: Status, cid: str, b: Path, stdio: tuple[int, int, int]
) -> None:
    runtime.create(cid, b, stdio=stdio)
    if status is Status.CREATED:
        return
    runtime.start(cid)
    if status is Status.STOPPED:
        runtime.kill(cid, "KILL")
        runtime.wait(cid, timeout=5)


@pytest.mark.parametrize("status", list(_TABLE), ids=lambda s: s.value)
@pytest.mark.parametrize("verb", ["start", "kill", "delete", "delete_force"])
def test_every_verb_in_every_status(runtime, busybox_bundle, container_id, output, status, verb):
    cid = container_id()
    _container_in(runtime, status, cid, busybox_bundle(["sleep", "30"]), output().stdio)
    assert runtime.state(cid).status is status
    allowed = _TABLE[status][verb]
    call = {
        "start": lambda: runtime.start(cid),
        "kill": lambda: runtime.kill(cid, "KILL"),
        "delete": lambda: runtime.delete(cid),
        "delete_force": lambda: runtime.delete(cid, force=True),
    }[verb]
    if allowed:
        call()
    else:
        with pytest.raises(StateError, match=status.value):
            call()
        assert runtime.state(cid).status is status, "a refused verb must not change the container"
    if verb not in ("delete", "delete_force") or not allowed:
        runtime.delete(cid, force=True)
    with pytest.raises(ContainerNotFoundError):
        runtime.state(cid)


def test_unknown_id_is_an_error_for_every_verb(runtime):
    for call in (
        lambda: runtime.start("nope"),
        lambda: runtime.state("nope"),
        lambda: runtime.kill("nope", "KILL"),
        lambda: runtime.delete("nope"),
        lambda: runtime.exec("nope", ["true"]),
    ):
        with pytest.raises(ContainerNotFoundError, match="'nope' does not exist"):
            call()


def test_delete_removes_every_trace(runtime, busybox_bundle, container_id, output):
    cid = container_id()
    state = runtime.create(cid, busybox_bundle(["sleep", "30"]), stdio=output().stdio)
    runtime.start(cid)
    cgroup = f"/reference-runtime-{cid}"
    assert _cgroup_dirs(cgroup)
    runtime.delete(cid, force=True)
    assert process_start_time(state.pid) is None
    assert not _cgroup_dirs(cgroup)
    assert not (Path(runtime.root) / cid).exists()
    assert cid not in Path("/proc/self/mounts").read_text()


def test_exec_runs_inside_the_container(runtime, busybox_bundle, container_id, output, tmp_path):
    cid = container_id()
    runtime.create(cid, busybox_bundle(["sleep", "30"], hostname="exec-box"), stdio=output().stdio)
    runtime.start(cid)
    out = output()
    code = runtime.exec(
        cid,
        ["sh", "-c", "hostname; echo $$; cat /proc/1/cmdline | tr '\\0' ' '; exit 3"],
        stdio=out.stdio,
    )
    assert code == 3
    lines = out.read().splitlines()
    assert lines[0] == "exec-box"
    assert int(lines[1]) > 1  # a member of the container's pid namespace, not PID 1
    assert lines[2].strip() == "sleep 30"
    with pytest.raises(ProcessError, match="not found"):
        runtime.exec(cid, ["no-such-program"], stdio=output().stdio)
    runtime.delete(cid, force=True)


def test_hooks_run_at_their_stage_with_the_state_on_stdin(
    runtime, busybox_bundle, container_id, tmp_path, output
):
    log = tmp_path / "hooks.log"
    script = tmp_path / "hook.sh"
    script.write_text(f'#!/bin/sh\nread -r state\necho "$1 $state" >> {log}\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)

    def edit(config: dict[str, Any]) -> None:
        config["hooks"] = {
            stage: [{"path": str(script), "args": ["hook.sh", stage]}]
            for stage in ("prestart", "createRuntime", "createContainer", "poststart", "poststop")
        }

    cid = container_id()
    runtime.create(cid, busybox_bundle(["true"], edit=edit), stdio=output().stdio)
    runtime.start(cid)
    runtime.wait(cid, timeout=5)
    runtime.delete(cid)
    entries = [line.split(" ", 1) for line in log.read_text().splitlines()]
    assert [stage for stage, _ in entries] == [
        "prestart",
        "createRuntime",
        "createContainer",
        "poststart",
        "poststop",
    ]
    for _, state in entries:
        doc = json.loads(state)
        assert doc["id"] == cid and doc["ociVersion"].startswith("1.")
    assert json.loads(entries[0][1])["pid"] > 0


def test_failing_create_runtime_hook_fails_create_and_leaves_nothing(
    runtime, busybox_bundle, container_id, tmp_path
):
    def edit(config: dict[str, Any]) -> None:
        config["hooks"] = {"createRuntime": [{"path": "/bin/false"}]}

    cid = container_id()
    with pytest.raises(HookError, match="createRuntime hook /bin/false exited with status 1"):
        runtime.create(cid, busybox_bundle(["true"], edit=edit))
    assert not (Path(runtime.root) / cid).exists()
    assert not _cgroup_dirs(f"/reference-runtime-{cid}")


def test_pid_file_and_list(runtime, busybox_bundle, container_id, tmp_path, output):
    cid = container_id()
    pid_file = tmp_path / "pid"
    state = runtime.create(
        cid, busybox_bundle(["sleep", "30"]), pid_file=pid_file, stdio=output().stdio
    )
    assert int(pid_file.read_text()) == state.pid
    assert [s.id for s in runtime.list()] == [cid]
    runtime.delete(cid, force=True)
    assert runtime.list() == []


def test_program_not_found_fails_start_and_container_stops(
    runtime, busybox_bundle, container_id, output
):
    cid = container_id()
    runtime.create(cid, busybox_bundle(["/no/such/binary"]), stdio=output().stdio)
    with pytest.raises(ProcessError, match="not found"):
        runtime.start(cid)
    runtime.wait(cid, timeout=5)
    assert runtime.state(cid).status is Status.STOPPED
    runtime.delete(cid)


def test_container_survives_its_creator_process(tmp_path, busybox_bundle, container_id):
    """A container made by one process (a CLI `create`) is started and deleted by others."""
    import subprocess
    import sys

    root = tmp_path / "state"
    cid = container_id()
    b = busybox_bundle(["sleep", "30"])
    args = [sys.executable, "-m", "reference_runtime.cli", "--root", str(root)]
    with open(os.devnull, "w") as null:
        subprocess.run(
            [*args, "create", "--bundle", str(b), cid], check=True, stdout=null, stderr=null
        )
    rt = Runtime(root)
    try:
        assert rt.state(cid).status is Status.CREATED
        subprocess.run([*args, "start", cid], check=True)
        assert rt.state(cid).status is Status.RUNNING
    finally:
        subprocess.run([*args, "delete", "--force", cid], check=True)
    assert rt.list() == []
