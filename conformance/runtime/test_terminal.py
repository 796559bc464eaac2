"""``process.terminal`` (config.md#process) and /dev/console (config-linux.md "Default
Devices"), through runc's console socket.

Each container's program reports about its own stdio with busybox and shell builtins,
on its terminal; the test reads the report from the pty master the runtime sent to the
adapter's console socket, and types input into it. Output on a terminal ends its lines
with ``\\r\\n``, and typed input is echoed back: both are allowed for when parsing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from pytest_containers.adapters.handle import Container
from pytest_containers.runtime import ContainerFactory

from ._support import Config, edit_config, expressible

WAIT = 30.0  # seconds for a report to arrive; generous, the machine is shared
END = "pc-report-end"

# Every example makes a container: failures are reported as generated, not shrunk.
FEWER = settings(
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    max_examples=max(1, round(settings().max_examples * 0.6)),
)

# What the program reports, one "key=value" line each, then waits for a typed line.
REPORT = (
    'for fd in 0 1 2; do [ -t $fd ] && echo "tty$fd=yes"; done; '
    'for fd in 0 1 2; do echo "link$fd=$(readlink /proc/$$/fd/$fd)"; done; '
    'echo "size=$(stty size)"; '
    'echo "pty=$(stat -L -c %t:%T /proc/$$/fd/0)"; '
    'echo "console=$(stat -c %t:%T /dev/console)"; '
    'while read -r _ _ _ _ point _; do [ "$point" = /dev/console ] && echo console-mounted; '
    "done < /proc/$$/mountinfo; "
    'echo "stderr=yes" >&2; '
    'read -r line; echo "typed=$line"; echo ' + END
)


def _terminal_config(size: tuple[int, int] | None = None) -> Callable[[Config], None]:
    def edit(config: Config) -> None:
        config["process"]["args"] = ["sh", "-c", REPORT]
        config["process"]["terminal"] = True
        if size is not None:
            config["process"]["consoleSize"] = {"height": size[0], "width": size[1]}

    return edit


def _report(
    factory: ContainerFactory, tmp_path: Path, size: tuple[int, int] | None
) -> dict[str, str]:
    """Run the report on a terminal; its ``key=value`` lines (and flags) as a dict."""
    __tracebackhide__ = True
    bundle = edit_config(factory.make_bundle(tmp_path), _terminal_config(size))
    with expressible():
        container: Container = factory.make_container(tmp_path, bundle=bundle)
    try:
        with expressible():
            terminal = container.terminal
        terminal.write("pc-typed-line\n")
        text = terminal.read_until(END, WAIT)
        assert container.wait(timeout=WAIT) == 0, f"the report failed: {text!r}"
    finally:
        factory.remove(container)
    report: dict[str, str] = {}
    for line in text.replace("\r", "").splitlines():
        key, sep, value = line.partition("=")
        report[key] = value if sep else "yes"
    return report


@pytest.mark.requirement("RT-PROC-TERM-1")
def test_the_terminal_is_the_process_stdin_stdout_and_stderr(
    container_factory: ContainerFactory, tmp_path: Path
) -> None:
    """Output on fds 1 and 2 arrives through the master the runtime sent, input typed
    into that master is read from fd 0, and the three are one terminal (the spec does
    not say where the pty lives: /dev/pts/N of the container's devpts with runc, a host
    pty behind gVisor's kernel)."""
    report = _report(container_factory, tmp_path, None)
    not_ttys = [fd for fd in "012" if report.get(f"tty{fd}") != "yes"]
    assert not not_ttys, f"fds {not_ttys} are not a terminal (test -t): {report}"
    links = {report.get(f"link{fd}") for fd in "012"}
    assert len(links) == 1, f"stdin, stdout and stderr are not the same pty: {links}"
    assert report.get("stderr") == "yes", "what the process wrote to stderr never arrived"
    assert report.get("typed") == "pc-typed-line", f"input typed into the master: {report}"


@pytest.mark.requirement("RT-PROC-TERM-3")
@FEWER
# from 2: busybox's stty reports a side of 1 as its default (24 rows, 80 columns)
@given(height=st.integers(2, 400), width=st.integers(2, 400))
def test_the_terminal_has_the_configured_console_size(
    container_factory: ContainerFactory,
    tmp_path_factory: pytest.TempPathFactory,
    height: int,
    width: int,
) -> None:
    report = _report(container_factory, tmp_path_factory.mktemp("size"), (height, width))
    assert report.get("size") == f"{height} {width}", (
        f"stty size inside says {report.get('size')!r}; consoleSize is "
        f"{{height: {height}, width: {width}}}"
    )


@pytest.mark.requirement("RT-DEV-CONSOLE-1")
def test_dev_console_is_a_bind_mount_of_the_pty(
    container_factory: ContainerFactory, tmp_path: Path
) -> None:
    """/dev/console is the same device (major:minor) as the process's pty, and is a
    mount point of its own."""
    report = _report(container_factory, tmp_path, None)
    pty, console = report.get("pty"), report.get("console")
    assert pty and pty != "0:0", f"the process's stdin is no device: {report}"
    assert console == pty, f"/dev/console is {console!r}, the pty is {pty!r}"
    assert report.get("console-mounted") == "yes", "/dev/console is not a mount point"
