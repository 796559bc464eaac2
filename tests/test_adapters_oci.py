"""The OCI command-line adapter against the real runc, crun and runsc (gVisor).

Each test runs once per installed runtime; a runtime that is not installed is skipped
with the reason. Where a runtime differs from runc, the test says so and pins what it
does, so a change shows up here first.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_containers.adapters import (
    HOST_KERNEL,
    HOST_PID,
    ExecResult,
    OciAdapter,
    RuntimeAdapter,
    bundle_config,
    open_adapter,
    require,
    terminal_of,
    warnings_of,
)
from pytest_containers.adapters.monitor import hybrid_cgroup2_mounts
from pytest_containers.errors import (
    ContainerNotFoundError,
    NotApplicableError,
    RuntimeCommandError,
)
from reference_runtime.rootfs_builder import make_bundle

pytestmark = pytest.mark.needs_root

MiB = 1 << 20
RUNTIMES = ("runc", "crun", "runsc")


@pytest.fixture(params=RUNTIMES)
def adapter(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OciAdapter]:
    name = request.param
    if shutil.which(name) is None:
        pytest.skip(f"{name} is not installed (apt-get install {name})")
    adapter = open_adapter(name, tmp_path / "state", workdir=tmp_path / "work")
    assert isinstance(adapter, OciAdapter)
    yield adapter
    leftovers = sorted(os.listdir(adapter.root)) if os.path.isdir(adapter.root) else []
    for cid in leftovers:
        try:
            adapter.delete(cid, force=True)
        except ContainerNotFoundError:  # runsc keeps non-container files in its root
            leftovers.remove(cid)
    adapter.close()
    assert not leftovers, f"test left containers behind: {leftovers}"


@pytest.fixture
def make(tmp_path: Path) -> Callable[..., Path]:
    """``make(command, **bundle_config_args)`` -> a bundle directory."""
    count = iter(range(1000))

    def build(command: list[str], **args: Any) -> Path:
        return make_bundle(tmp_path / f"b{next(count)}", config=bundle_config(command, **args))

    return build


def test_names_and_versions(adapter: OciAdapter) -> None:
    assert adapter.name in RUNTIMES
    assert adapter.name.split(":")[-1] in adapter.version()
    assert isinstance(adapter, RuntimeAdapter)


def test_lifecycle(adapter: OciAdapter, make: Callable[..., Path]) -> None:
    bundle = make(["sleep", "30"])
    adapter.create("life", bundle)
    state = adapter.state("life")
    assert (state["status"], state["id"], state["bundle"]) == ("created", "life", str(bundle))
    assert state["pid"] > 0
    adapter.start("life")
    assert adapter.state("life")["status"] == "running"
    adapter.kill("life", "SIGKILL")
    assert adapter.wait("life", timeout=10) == 128 + signal.SIGKILL
    assert adapter.state("life")["status"] == "stopped"
    adapter.delete("life")
    with pytest.raises(ContainerNotFoundError, match="life"):
        adapter.state("life")
    with pytest.raises(ContainerNotFoundError):
        adapter.delete("life", force=True)


def test_delete_and_kill_of_a_created_container(
    adapter: OciAdapter, make: Callable[..., Path]
) -> None:
    """runtime-spec says delete MUST refuse a container that is not stopped, and kill
    signals a created one. What each runtime does instead is pinned here."""
    bundle = make(["sleep", "30"])
    adapter.create("made", bundle)
    adapter.delete("made")  # all three delete a created container without --force
    with pytest.raises(ContainerNotFoundError):
        adapter.state("made")
    adapter.create("sig", bundle)
    try:
        if adapter.name == "runsc":
            with pytest.raises(RuntimeCommandError, match="cannot signal container"):
                adapter.kill("sig", "TERM")
        else:
            adapter.kill("sig", "TERM")
            # runc's init (Go, with a handler) dies of it; crun's ignores it, still created
            expected = {"runc": "stopped", "crun": "created"}[adapter.name]
            deadline = time.monotonic() + 5
            while adapter.state("sig")["status"] != expected and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(0.1)  # and it stays so
            assert adapter.state("sig")["status"] == expected
    finally:
        adapter.delete("sig", force=True)


def test_host_pid(adapter: OciAdapter, make: Callable[..., Path]) -> None:
    adapter.create("hp", make(["sleep", "30"]))
    try:
        if adapter.name == "runsc":
            # gVisor: state.pid is the sandbox, not a process of the container
            with pytest.raises(NotApplicableError, match="Sentry"):
                adapter.host_pid("hp")
            with pytest.raises(NotApplicableError):
                require(adapter, HOST_KERNEL)
            return
        pid = adapter.host_pid("hp")
        assert os.readlink(f"/proc/{pid}/ns/pid") != os.readlink("/proc/self/ns/pid")
    finally:
        adapter.delete("hp", force=True)


def test_exec_returns_status_and_output(adapter: OciAdapter, make: Callable[..., Path]) -> None:
    adapter.create("ex", make(["sleep", "30"], env={"FROM_CONFIG": "1"}))
    adapter.start("ex")
    try:
        result = adapter.exec(
            "ex",
            ["sh", "-c", "echo out $FROM_CONFIG $EXTRA; pwd; echo err >&2; exit 3"],
            env=["EXTRA=2"],  # crun alone would drop FROM_CONFIG and PATH: see OciAdapter.exec
            cwd="/tmp",
        )
        assert result == ExecResult(3, "out 1 2\n/tmp\n", "err\n")
    finally:
        adapter.delete("ex", force=True)


def test_exit_status(adapter: OciAdapter, make: Callable[..., Path]) -> None:
    assert adapter.run("r7", make(["sh", "-c", "exit 7"])) == 7
    adapter.create("w5", make(["sh", "-c", "exit 5"]))
    adapter.start("w5")
    assert adapter.wait("w5", timeout=20) == 5
    adapter.delete("w5")


def test_hostname_and_env_applied(
    adapter: OciAdapter, make: Callable[..., Path], tmp_path: Path
) -> None:
    bundle = make(
        ["sh", "-c", "hostname; echo $GREETING"], hostname="web-1", env={"GREETING": "hi"}
    )
    # O_APPEND: gVisor writes at its own offset per descriptor, so a shared plain file
    # would have stderr overwrite stdout
    fd = os.open(tmp_path / "out", os.O_RDWR | os.O_CREAT | os.O_APPEND)
    try:
        assert adapter.run("hn", bundle, stdio=(fd, fd, fd)) == 0
    finally:
        os.close(fd)
    assert (tmp_path / "out").read_text() == "web-1\nhi\n"


def test_memory_limit_applied(adapter: OciAdapter, make: Callable[..., Path]) -> None:
    adapter.create("mem", make(["sleep", "30"], memory="48m"))
    adapter.start("mem")
    try:
        if adapter.name == "runsc":
            # gVisor's /sys/fs/cgroup is empty; its /proc/meminfo shows the limit
            meminfo = adapter.exec("mem", ["head", "-1", "/proc/meminfo"]).stdout.split()
            assert meminfo[1:] == [str(48 * 1024), "kB"]
        else:
            seen = adapter.exec("mem", ["cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"])
            assert seen.stdout.strip() == str(48 * MiB)
        dd = ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"]
        if adapter.name == "runsc":
            # gVisor: the host's OOM killer takes the whole sandbox, not the process
            with pytest.raises(RuntimeCommandError, match="sandbox"):
                adapter.exec("mem", dd)
            assert adapter.state("mem")["status"] == "stopped"
        else:
            assert adapter.exec("mem", dd).exit_code == 128 + signal.SIGKILL
    finally:
        adapter.delete("mem", force=True)


def test_runtime_errors_are_surfaced(adapter: OciAdapter, make: Callable[..., Path]) -> None:
    with pytest.raises(ContainerNotFoundError, match="start nosuch"):
        adapter.start("nosuch")
    bundle = make(["sleep", "30"])
    adapter.create("twice", bundle)
    with pytest.raises(RuntimeCommandError, match=rf"create twice: {adapter.name}: .*exists"):
        adapter.create("twice", bundle)
    if adapter.name != "runsc":
        with pytest.raises(RuntimeCommandError, match="exists"):
            adapter.run("twice", bundle)
        assert adapter.state("twice")["status"] == "created"  # run left it alone
        adapter.delete("twice", force=True)
        return
    # runsc bug: the refused second create removed the first container's state while
    # its sandbox kept running. The adapter kills the orphan and says so.
    with pytest.raises(ContainerNotFoundError):
        adapter.state("twice")
    with pytest.raises(RuntimeCommandError, match="lost the state of twice"):
        adapter.delete("twice", force=True)


def test_crun_runs_on_a_hybrid_cgroup_host(tmp_path: Path) -> None:
    if shutil.which("crun") is None:
        pytest.skip("crun is not installed (apt-get install crun)")
    adapter = OciAdapter.for_binary("crun", tmp_path / "state")
    try:
        assert adapter.hide_mounts == hybrid_cgroup2_mounts()
        if not adapter.hide_mounts:
            pytest.skip("this host's cgroup layout is not hybrid")
        # without the private mount namespace crun refuses the layout outright
        plain = OciAdapter("crun", tmp_path / "plain")
        bundle = make_bundle(tmp_path / "b", config=bundle_config(["true"]))
        with pytest.raises(RuntimeCommandError, match="hybrid mode not supported"):
            plain.run("plain", bundle)
        plain.close()
        assert adapter.run("viahelper", bundle) == 0
    finally:
        adapter.close()


def test_unsupported_features_say_why(tmp_path: Path) -> None:
    runsc = OciAdapter("/usr/bin/runsc", tmp_path, name="runsc")
    runc = OciAdapter("/usr/sbin/runc", tmp_path, name="runc")
    try:
        assert HOST_PID not in runsc.unsupported  # made by hand: no quirks applied
        require(runc, HOST_PID)
        with pytest.raises(ValueError, match="FEATURES"):
            require(runc, "teleport")
    finally:
        runsc.close()
        runc.close()


def _terminal_bundle(make: Callable[..., Path], script: str, **process: Any) -> Path:
    path = make(["sh", "-c", script])
    config_file = path / "config.json"
    config = json.loads(config_file.read_text())
    config["process"].update(terminal=True, **process)
    config_file.write_text(json.dumps(config))
    return path


def test_terminal_through_the_console_socket(
    adapter: OciAdapter, make: Callable[..., Path]
) -> None:
    """create --console-socket: the adapter holds the master; output and input go
    through it; delete closes it; run copies the terminal's output to stdout."""
    bundle = _terminal_bundle(
        make,
        "[ -t 1 ] && echo tty-out; read -r x; echo typed=$x",
        consoleSize={"height": 9, "width": 42},
    )
    adapter.create("pc-tty", bundle)
    terminal = terminal_of(adapter, "pc-tty")
    adapter.start("pc-tty")
    terminal.write("abc\n")
    assert "typed=abc" in terminal.read_until("typed=abc", 30)
    assert "tty-out" in terminal.text()
    assert adapter.wait("pc-tty", 30) == 0
    adapter.delete("pc-tty")
    assert terminal.fd == -1, "delete did not close the master"
    with tempfile.TemporaryFile() as out, open(os.devnull, "rb") as null:
        stdio = (null.fileno(), out.fileno(), out.fileno())
        code = adapter.run("pc-tty-run", _terminal_bundle(make, "echo ran; exit 4"), stdio=stdio)
        out.seek(0)
        assert (code, b"ran" in out.read()) == (4, True)


def test_terminal_of_a_container_without_one(
    adapter: OciAdapter, make: Callable[..., Path]
) -> None:
    adapter.create("pc-notty", make(["sleep", "60"]))
    try:
        with pytest.raises(RuntimeCommandError, match=r"not created with process\.terminal"):
            terminal_of(adapter, "pc-notty")
    finally:
        adapter.delete("pc-notty", force=True)


def test_warnings_of_the_last_command(adapter: OciAdapter, make: Callable[..., Path]) -> None:
    """runc logs an unknown capability as a warning at create; the next command has none
    of its own. crun 1.8 logs nothing (ignores the name), runsc refuses it."""
    path = make(["true"])
    config = json.loads((path / "config.json").read_text())
    for kind in ("bounding", "effective", "permitted"):
        config["process"]["capabilities"][kind].append("CAP_PC_NO_SUCH")
    (path / "config.json").write_text(json.dumps(config))
    name = os.path.basename(adapter.binary)
    if name == "runsc":
        try:
            with pytest.raises(RuntimeCommandError, match="unknown capability"):
                adapter.create("pc-warn", path)
        finally:
            # runsc leaves the refused container's cgroups behind (empty): ours to remove
            for leftover in Path("/sys/fs/cgroup").glob("*/pc-warn"):
                with contextlib.suppress(FileNotFoundError):  # gone already
                    leftover.rmdir()
        return
    adapter.create("pc-warn", path)
    try:
        created = warnings_of(adapter)
        adapter.state("pc-warn")
        after = warnings_of(adapter)
    finally:
        adapter.delete("pc-warn", force=True)
    expected = ["CAP_PC_NO_SUCH"] if name == "runc" else []
    assert [w for w in expected if any(w in line for line in created)] == expected, created
    assert after == []
