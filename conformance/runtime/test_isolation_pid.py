"""The pid namespace (config-linux.md#namespaces, and this project's own guarantees):
the container's process is PID 1 of its namespace, and host processes are invisible.
"""

from __future__ import annotations

import re
import secrets
import subprocess
from pathlib import Path

import pytest

from pytest_containers.adapters import HOST_PID, RuntimeAdapter

from ._namespaces import SLEEPER, WAIT, plain
from ._shared import SharedContainers
from ._support import shell


@pytest.mark.requirement("RT-OWN-PID-INIT-1")
def test_container_process_is_pid_1(
    shared: SharedContainers, runtime_adapter: RuntimeAdapter
) -> None:
    c = plain(shared)
    cmdline = shell(c, "tr '\\0' ' ' < /proc/1/cmdline").strip()
    assert cmdline == " ".join(SLEEPER), (
        f"PID 1 in the container runs {cmdline!r}, not the container process {SLEEPER}"
    )
    if HOST_PID not in runtime_adapter.unsupported:  # and from outside: NSpid ends in 1
        status = Path(f"/proc/{c.pid}/status").read_text()
        nspid = re.search(r"^NSpid:\s*(.*)$", status, re.MULTILINE)
        assert nspid is not None and nspid.group(1).split()[-1] == "1", (
            f"host PID {c.pid} of the container process is not PID 1 in its pid namespace "
            f"({nspid.group(0) if nspid else 'no NSpid line'})"
        )


@pytest.mark.requirement("RT-OWN-PID-HIDDEN-1", "RT-NS-PID-1")
def test_host_processes_are_invisible(shared: SharedContainers) -> None:
    c = plain(shared)
    token = f"pc-host-process-{secrets.token_hex(4)}"
    host = subprocess.Popen(["sh", "-c", f"sleep {WAIT * 6}; : {token}"])
    try:
        listing = shell(
            c,
            "for p in /proc/[0-9]*; do echo \"${p#/proc/} $(tr '\\0' ' ' < $p/cmdline)\"; "
            "done 2>/dev/null",
        )
        signalled = c.exec(["kill", "-0", str(host.pid)])
    finally:
        host.kill()
        host.wait()
    seen = {int(line.split()[0]): line for line in listing.splitlines() if line[:1].isdigit()}
    assert token not in listing, f"a host process is visible in the container:\n{listing}"
    assert signalled.exit_code != 0 or host.pid in seen, (
        f"the container could signal host PID {host.pid}"
    )
    assert len(seen) <= 6, f"the container sees {len(seen)} processes:\n{listing}"
    assert 1 in seen, f"the container does not see its own PID 1:\n{listing}"
