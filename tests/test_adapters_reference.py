"""The reference adapter against the reference runtime, in-process, on the real kernel."""

from __future__ import annotations

import json
import os
import signal
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_containers.adapters import (
    ExecResult,
    ReferenceAdapter,
    RuntimeAdapter,
    bundle_config,
    open_adapter,
    terminal_of,
    warnings_of,
)
from pytest_containers.errors import ContainerNotFoundError, RuntimeCommandError
from reference_runtime.rootfs_builder import make_bundle

pytestmark = pytest.mark.needs_root

MiB = 1 << 20


@pytest.fixture
def adapter(tmp_path: Path) -> Iterator[RuntimeAdapter]:
    adapter = open_adapter("reference", tmp_path / "state")
    yield adapter
    leftovers = (
        [cid for cid in os.listdir(tmp_path / "state")] if (tmp_path / "state").exists() else []
    )
    for cid in leftovers:
        adapter.delete(cid, force=True)
    adapter.close()
    assert not leftovers, f"test left containers behind: {leftovers}"


@pytest.fixture
def make(tmp_path: Path) -> Callable[..., Path]:
    """``make(command, **bundle_config_args)`` -> a bundle directory."""
    count = iter(range(1000))

    def build(command: list[str], **args: Any) -> Path:
        return make_bundle(tmp_path / f"b{next(count)}", config=bundle_config(command, **args))

    return build


def test_open_adapter_gives_the_reference_adapter(adapter: RuntimeAdapter) -> None:
    assert isinstance(adapter, ReferenceAdapter)
    assert isinstance(adapter, RuntimeAdapter)
    assert adapter.name == "reference"
    assert dict(adapter.unsupported) == {}
    assert "runtime-spec" in adapter.version()


def test_lifecycle(adapter: RuntimeAdapter, make: Callable[..., Path]) -> None:
    bundle = make(["sleep", "30"])
    adapter.create("life", bundle)
    state = adapter.state("life")
    assert state["status"] == "created"
    assert state["id"] == "life" and state["bundle"] == str(bundle)
    assert state["pid"] == adapter.host_pid("life") > 0
    adapter.start("life")
    assert adapter.state("life")["status"] == "running"
    adapter.kill("life", "KILL")
    assert adapter.wait("life", timeout=10) == 128 + signal.SIGKILL
    assert adapter.state("life")["status"] == "stopped"
    adapter.delete("life")
    with pytest.raises(ContainerNotFoundError, match="life"):
        adapter.state("life")
    with pytest.raises(ContainerNotFoundError):
        adapter.delete("life", force=True)


def test_delete_of_a_running_container_needs_force(
    adapter: RuntimeAdapter, make: Callable[..., Path]
) -> None:
    adapter.create("busy", make(["sleep", "30"]))
    adapter.start("busy")
    with pytest.raises(RuntimeCommandError, match="StateError"):
        adapter.delete("busy")
    adapter.delete("busy", force=True)


def test_exec_returns_status_and_output(adapter: RuntimeAdapter, make: Callable[..., Path]) -> None:
    adapter.create("ex", make(["sleep", "30"], env={"FROM_CONFIG": "1"}))
    adapter.start("ex")
    try:
        result = adapter.exec(
            "ex",
            ["sh", "-c", "echo out $FROM_CONFIG $EXTRA; pwd; echo err >&2; exit 3"],
            env=["EXTRA=2"],
            cwd="/tmp",
        )
        assert result == ExecResult(3, "out 1 2\n/tmp\n", "err\n")
    finally:
        adapter.delete("ex", force=True)


def test_exit_status(adapter: RuntimeAdapter, make: Callable[..., Path]) -> None:
    assert adapter.run("r7", make(["sh", "-c", "exit 7"])) == 7
    adapter.create("w5", make(["sh", "-c", "exit 5"]))
    adapter.start("w5")
    assert adapter.wait("w5", timeout=10) == 5
    adapter.delete("w5")


def test_hostname_and_env_applied(
    adapter: RuntimeAdapter, make: Callable[..., Path], tmp_path: Path
) -> None:
    bundle = make(
        ["sh", "-c", "hostname; echo $GREETING"], hostname="web-1", env={"GREETING": "hi"}
    )
    with open(tmp_path / "out", "w+b") as out:
        assert adapter.run("hn", bundle, stdio=(0, out.fileno(), out.fileno())) == 0
        out.seek(0)
        assert out.read() == b"web-1\nhi\n"


def test_memory_limit_applied(adapter: RuntimeAdapter, make: Callable[..., Path]) -> None:
    adapter.create("mem", make(["sleep", "30"], memory="48m"))
    adapter.start("mem")
    try:
        seen = adapter.exec("mem", ["cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"])
        assert seen.stdout.strip() == str(48 * MiB)
        # and enforced: a 64 MiB buffer is more than the container may have
        assert (
            adapter.exec("mem", ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"])[0]
            == 128 + signal.SIGKILL
        )
    finally:
        adapter.delete("mem", force=True)


def test_errors_are_the_plugins(adapter: RuntimeAdapter, make: Callable[..., Path]) -> None:
    with pytest.raises(ContainerNotFoundError, match="nosuch"):
        adapter.start("nosuch")
    with pytest.raises(ValueError, match=r"kill\(id, 'TERM'\)"):
        adapter.kill("nosuch", "NOTASIGNAL")
    with pytest.raises(RuntimeCommandError, match="ConfigError"):
        adapter.create("bad", make(["true"], hostname="x" * 300))


def _edited(path: Path, **process: Any) -> Path:
    config = json.loads((path / "config.json").read_text())
    config["process"].update(process)
    (path / "config.json").write_text(json.dumps(config))
    return path


def test_terminal_through_the_console_socket(
    adapter: RuntimeAdapter, make: Callable[..., Path]
) -> None:
    script = 'stty size; read -r x; echo "typed=$x"'
    bundle = _edited(
        make(["sh", "-c", script]), terminal=True, consoleSize={"height": 7, "width": 50}
    )
    adapter.create("pc-tty", bundle)
    terminal = terminal_of(adapter, "pc-tty")
    adapter.start("pc-tty")
    terminal.write("xyz\n")
    text = terminal.read_until("typed=xyz", 30)
    assert "7 50" in text
    assert adapter.wait("pc-tty", 30) == 0
    adapter.delete("pc-tty")
    assert terminal.fd == -1, "delete did not close the master"
    with tempfile.TemporaryFile() as out, open(os.devnull, "rb") as null:
        bundle = _edited(make(["sh", "-c", "echo ran; exit 6"]), terminal=True)
        code = adapter.run("pc-run", bundle, stdio=(null.fileno(), out.fileno(), out.fileno()))
        out.seek(0)
        assert (code, out.read().replace(b"\r", b"")) == (6, b"ran\n")


def test_capabilities_that_cannot_be_granted_are_warnings(
    adapter: RuntimeAdapter, make: Callable[..., Path]
) -> None:
    """An unknown name and one the runtime lacks (CAP_SYS_RESOURCE is outside this VM's
    bounding set; another kernel may hold it) are skipped, each with a warning."""
    caps = ["CAP_KILL", "CAP_PC_NO_SUCH", "CAP_SYS_RESOURCE"]
    bundle = _edited(
        make(["true"]),
        capabilities={k: caps for k in ("bounding", "effective", "permitted", "ambient")},
    )
    adapter.create("pc-caps", bundle)
    try:
        warnings = warnings_of(adapter)
        adapter.start("pc-caps")
        assert adapter.wait("pc-caps", 30) == 0
    finally:
        adapter.delete("pc-caps", force=True)
    assert any("CAP_PC_NO_SUCH" in w for w in warnings), warnings
    with open("/proc/self/status") as f:
        bounding = int(next(line for line in f if line.startswith("CapBnd:")).split()[1], 16)
    if not bounding >> 24 & 1:
        assert any("CAP_SYS_RESOURCE cannot be granted" in w for w in warnings), warnings
    assert any("ambient: CAP_KILL is not also permitted and inheritable" in w for w in warnings)
