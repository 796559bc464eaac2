"""process.terminal on the real kernel: runc's console socket protocol, the pty as the
process's controlling terminal and stdio, consoleSize, /dev/console, ``exec`` with a
terminal, and bad input (one line, nothing left behind)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_containers.adapters.console import ConsoleSocket, Terminal
from reference_runtime import ConfigError, Runtime

pytestmark = pytest.mark.needs_root

WAIT = 20.0  # seconds; generous, the machine is shared
END = "pc-end"


def terminal(
    args: list[str], size: dict[str, int] | None = None
) -> Callable[[dict[str, Any]], None]:
    def edit(config: dict[str, Any]) -> None:
        config["process"]["args"] = args
        config["process"]["terminal"] = True
        if size is not None:
            config["process"]["consoleSize"] = size

    return edit


@pytest.fixture
def console() -> Iterator[ConsoleSocket]:
    with ConsoleSocket() as sock:
        yield sock


def lines(text: str) -> dict[str, str]:
    found = {}
    for line in text.replace("\r", "").splitlines():
        key, _, value = line.partition("=")
        found[key] = value
    return found


def test_the_pty_is_the_controlling_terminal_and_stdio(
    runtime: Runtime, busybox_bundle, container_id, console: ConsoleSocket
) -> None:
    script = (
        'for fd in 0 1 2; do [ -t $fd ] && echo "tty$fd=yes"; done; '
        'echo "link=$(readlink /proc/$$/fd/0)"; '
        # field 7 of /proc/PID/stat: the controlling terminal's device number
        'read -r _ _ _ _ _ _ ctty _ < /proc/$$/stat; echo "ctty=$ctty"; '
        'echo "size=$(stty size)"; echo "rdev=$(stat -L -c %t:%T /proc/$$/fd/0)"; '
        'echo "console=$(stat -c %t:%T /dev/console)"; '
        'read -r typed; echo "typed=$typed"; echo ' + END
    )
    bundle = busybox_bundle(edit=terminal(["sh", "-c", script], {"height": 33, "width": 111}))
    cid = container_id()
    runtime.create(cid, bundle, console_socket=console.path)
    try:
        tty = Terminal(console.receive(timeout=WAIT))
        assert tty.size() == (33, 111), "TIOCGWINSZ on the master"
        runtime.start(cid)
        tty.write("hello\n")
        report = lines(tty.read_until(END, WAIT))
        assert runtime.wait(cid, WAIT) == 0
    finally:
        runtime.delete(cid, force=True)
    tty.close()
    assert [report.get(f"tty{fd}") for fd in "012"] == ["yes"] * 3, report
    assert report["link"].startswith("/dev/pts/"), report
    major, minor = (int(x, 16) for x in report["rdev"].split(":"))
    assert int(report["ctty"]) == os.makedev(major, minor), "not the controlling terminal"
    assert report["size"] == "33 111"
    assert report["console"] == report["rdev"], "/dev/console is not the pty"
    assert report["typed"] == "hello"


def test_create_returns_after_the_master_was_sent(
    runtime: Runtime, busybox_bundle, container_id, console: ConsoleSocket
) -> None:
    """The master is waiting on the socket when create returns: receive needs no wait."""
    bundle = busybox_bundle(edit=terminal(["sh", "-c", "echo " + END]))
    cid = container_id()
    runtime.create(cid, bundle, console_socket=console.path)
    try:
        tty = Terminal(console.receive(timeout=0.5))
        runtime.start(cid)
        assert END in tty.read_until(END, WAIT)
        assert runtime.wait(cid, WAIT) == 0
        tty.read_all(WAIT)
        assert tty.closed, "the terminal did not close when the container exited"
    finally:
        runtime.delete(cid, force=True)
    tty.close()


def test_cli_create_and_run_take_a_console_socket(
    tmp_path: Path, busybox_bundle, container_id, console: ConsoleSocket
) -> None:
    bundle = busybox_bundle(edit=terminal(["sh", "-c", "echo from-run; exit 3"]))
    root = tmp_path / "cli-state"
    cid = container_id()
    received: list[int] = []
    receiver = threading.Thread(target=lambda: received.append(console.receive(timeout=WAIT)))
    receiver.start()
    cli = [sys.executable, "-m", "reference_runtime", "--root", str(root)]
    proc = subprocess.run(
        [*cli, "run", "--console-socket", console.path, "--bundle", str(bundle), cid],
        capture_output=True,
        text=True,
        timeout=60,
    )
    receiver.join(WAIT)
    assert proc.returncode == 3, proc.stderr
    tty = Terminal(received[0])
    assert "from-run" in tty.read_all(WAIT)
    tty.close()
    assert not list(root.iterdir()), "run left its container behind"


def test_exec_with_a_terminal(
    runtime: Runtime, busybox_bundle, container_id, console: ConsoleSocket
) -> None:
    bundle = busybox_bundle(["sleep", "600"])
    cid = container_id()
    runtime.create(cid, bundle)
    try:
        runtime.start(cid)
        codes: list[int] = []
        script = '[ -t 0 ] && [ -t 1 ] && echo "exec-tty=$(readlink /proc/$$/fd/1)"; exit 5'
        worker = threading.Thread(
            target=lambda: codes.append(
                runtime.exec(cid, ["sh", "-c", script], console_socket=console.path)
            )
        )
        worker.start()
        tty = Terminal(console.receive(timeout=WAIT))
        text = tty.read_all(WAIT)
        worker.join(WAIT)
        tty.close()
    finally:
        runtime.delete(cid, force=True)
    assert codes == [5]
    assert "exec-tty=/dev/pts/" in text


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no-socket", "process.terminal is true: pass --console-socket PATH"),
        ("nobody-listens", "cannot connect to the console socket"),
        ("no-terminal", "but process.terminal is not true"),
    ],
)
def test_bad_console_input_is_one_line_and_leaves_nothing(
    runtime: Runtime, busybox_bundle, container_id, tmp_path: Path, case: str, message: str
) -> None:
    if case == "no-terminal":
        bundle = busybox_bundle(["true"])
    else:
        bundle = busybox_bundle(edit=terminal(["true"]))
    path = None
    if case == "nobody-listens":
        path = str(tmp_path / "nobody.sock")
        bound = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        bound.bind(path)  # bound but not listening: connect is refused
        bound.close()
    elif case == "no-terminal":
        path = str(tmp_path / "unused.sock")
    cid = container_id()
    with pytest.raises(ConfigError, match=message) as caught:
        runtime.create(cid, bundle, console_socket=path)
    assert "\n" not in str(caught.value)
    assert runtime.list() == []
    assert not Path(f"/sys/fs/cgroup/pids/reference-runtime-{cid}").exists()


def test_cli_bad_console_input(tmp_path: Path, busybox_bundle, container_id) -> None:
    bundle = busybox_bundle(edit=terminal(["true"]))
    root = tmp_path / "cli-state"
    proc = subprocess.run(
        [sys.executable, "-m", "reference_runtime", "--root", str(root), "create", "-b",
         str(bundle), "--console-socket", str(tmp_path / "none.sock"), container_id()],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "cannot connect to the console socket" in proc.stderr
    assert not root.exists() or not list(root.iterdir())
