"""The network namespace (config-linux.md#namespaces, and this project's own
guarantees): only loopback is visible in the container, and a service on the host's
loopback is unreachable from it.
"""

from __future__ import annotations

import os
import secrets
import socket

import pytest

from pytest_containers.requirements import not_applicable

from ._namespaces import plain
from ._shared import SharedContainers
from ._support import shell


@pytest.mark.requirement("RT-OWN-NET-IFACES-1", "RT-NS-NET-1")
def test_only_loopback_is_visible(shared: SharedContainers) -> None:
    netdev = shell(plain(shared), "cat /proc/net/dev")
    interfaces = {line.split(":")[0].strip() for line in netdev.splitlines() if ":" in line}
    assert interfaces == {"lo"}, (
        f"the container sees interfaces {sorted(interfaces)}; the host has "
        f"{sorted(os.listdir('/sys/class/net'))}"
    )


@pytest.mark.requirement("RT-OWN-NET-LOOPBACK-1", "RT-NS-NET-1")
def test_host_loopback_service_is_unreachable(shared: SharedContainers) -> None:
    c = plain(shared)
    # the control: nc in the container reaches a listener on its own loopback
    port = 40000 + secrets.randbelow(20000)
    control = c.exec(
        [
            "sh",
            "-c",
            f"(timeout 5 nc -l -p {port} >/dev/null 2>&1 &) ; sleep 0.1; "
            f"echo ping | timeout 3 nc -w 1 127.0.0.1 {port} && echo reached",
        ]
    )
    if "reached" not in control.stdout:
        not_applicable(
            "nc in the container cannot reach a listener on the container's own loopback "
            f"({control.stderr.strip() or 'no output'}), so an unreachable host cannot be told"
        )
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        host_port = server.getsockname()[1]
        attempt = c.exec(
            ["sh", "-c", f"echo ping | timeout 3 nc -w 1 127.0.0.1 {host_port} && echo reached"]
        )
        server.setblocking(False)  # a connection the attempt made waits in the backlog
        try:
            peer: socket.socket | None = server.accept()[0]
        except BlockingIOError:
            peer = None
        if peer is not None:
            peer.close()
    assert peer is None and "reached" not in attempt.stdout, (
        f"the container reached the host's 127.0.0.1:{host_port}"
    )
