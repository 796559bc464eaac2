"""Seccomp (config-linux.md#seccomp): the filter applies the listed and the default
actions with their errno, invalid filters are errors, and a notify filter sends its
listener the state and the notify descriptor.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_containers.adapters import HOST_KERNEL, HOST_PID, RuntimeAdapter
from pytest_containers.adapters.handle import Container
from pytest_containers.runtime import ContainerFactory

from ._namespaces import SLEEPER, WAIT
from ._shared import SharedContainers
from ._support import Config, create_error, edit_config

DENIED_ERRNO = errno.EMLINK
"""errnoRet of the mkdir rule: an errno mkdir never returns here, with one message in
glibc and musl alike."""


def seccomp_profile(**extra: Any) -> dict[str, Any]:
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": DENIED_ERRNO},
            {"names": ["symlink", "symlinkat"], "action": "SCMP_ACT_ERRNO"},
        ],
        **extra,
    }


SECCOMP_PROBE = (
    "exec > /outbox/seccomp 2>&1; grep Seccomp: /proc/self/status; "
    "mkdir /tmp/made; ls -d /tmp/made >/dev/null 2>&1 && echo mkdir-succeeded; "
    "ln -s target /tmp/link; touch /tmp/file && echo touched; echo done; exec sleep 3600"
)
"""The seccomp container's own process: what its syscalls did, into /outbox/seccomp."""


def seccomp_results(shared: SharedContainers) -> str:
    """What the container process of a seccomp-filtered container wrote (see
    ``SECCOMP_PROBE``); the filter is the spec's to apply to that process, whatever
    processes added later by the runtime get."""
    outbox = shared.directory / "seccomp-outbox"

    def edit(config: Config) -> None:
        config["linux"]["seccomp"] = seccomp_profile()
        config["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"})

    def make() -> str:
        outbox.mkdir()
        outbox.chmod(0o777)
        path = edit_config(shared.factory.make_bundle(
            shared.directory, ["sh", "-c", SECCOMP_PROBE], mounts=[(str(outbox), "/outbox")]
        ), edit)  # fmt: skip
        shared.made["seccomp-container"] = shared.factory.make_container(
            shared.directory, bundle=path
        )
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            with contextlib.suppress(FileNotFoundError):  # not written yet
                text = (outbox / "seccomp").read_text()
                if text.endswith("done\n"):
                    return text
            time.sleep(0.02)
        raise AssertionError(f"the container process did not finish its probe in {WAIT}s")

    made: str = shared.value("seccomp", make)
    return made


@pytest.mark.requirement("RT-SECCOMP-1")
def test_seccomp_filter_applies_listed_and_default_actions(
    shared: SharedContainers, runtime_adapter: RuntimeAdapter
) -> None:
    out = seccomp_results(shared)
    mode = [line.split()[-1] for line in out.splitlines() if line.startswith("Seccomp:")]
    if HOST_KERNEL not in runtime_adapter.unsupported:
        assert mode == ["2"], f"the container process runs in seccomp mode {mode}, not 2 (filter)"
    assert "mkdir-succeeded" not in out, (
        f"mkdir, listed with SCMP_ACT_ERRNO, was not refused: {out!r}"
    )
    assert "touched" in out, f"openat (defaultAction SCMP_ACT_ALLOW) was refused: {out!r}"


@pytest.mark.requirement("RT-SECCOMP-2")
def test_seccomp_errno_return(shared: SharedContainers) -> None:
    out = seccomp_results(shared)
    mkdir = [line for line in out.splitlines() if line.startswith("mkdir:")]
    link = [line for line in out.splitlines() if line.startswith("ln:")]
    assert mkdir and os.strerror(DENIED_ERRNO) in mkdir[0], (
        f"mkdir (errnoRet {DENIED_ERRNO}) did not fail with {os.strerror(DENIED_ERRNO)}: {out!r}"
    )
    assert link and os.strerror(errno.EPERM) in link[0], (
        f"symlink (no errnoRet) did not fail with EPERM: {out!r}"
    )


@pytest.mark.requirement("RT-SECCOMP-3")
@pytest.mark.parametrize("where", ["rule", "default"])
def test_errno_for_action_without_errno_is_an_error(
    where: str, bundle: Callable[..., Path], container_factory: ContainerFactory
) -> None:
    def edit(config: Config) -> None:
        if where == "rule":
            rule = {"names": ["mkdir"], "action": "SCMP_ACT_KILL", "errnoRet": 1}
            config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule]}
        else:
            config["linux"]["seccomp"] = seccomp_profile(defaultErrnoRet=1)

    path = edit_config(bundle(SLEEPER), edit)
    create_error(container_factory, path, f"errnoRet on an action that has no errno ({where})")


@pytest.mark.requirement("RT-SECCOMP-4")
@pytest.mark.parametrize("kind", ["empty-names", "metadata-without-listener"])
def test_invalid_seccomp_is_an_error(
    kind: str, bundle: Callable[..., Path], container_factory: ContainerFactory
) -> None:
    def edit(config: Config) -> None:
        if kind == "empty-names":
            rule = {"names": [], "action": "SCMP_ACT_ERRNO"}
            config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule]}
        else:
            config["linux"]["seccomp"] = seccomp_profile(listenerMetadata="pc-metadata")

    path = edit_config(bundle(SLEEPER), edit)
    create_error(container_factory, path, f"an invalid seccomp configuration ({kind})")


@dataclass
class Notification:
    """What the runtime sent to listenerPath while creating a container."""

    container: Container | None
    messages: list[bytes]  # the data of each connection
    fds: list[list[str]]  # per connection: what the passed descriptors are
    closed: list[bool]  # per connection: the runtime closed it after sending
    fds_with_first_read: bool


def _recv_connection(conn: socket.socket) -> tuple[bytes, list[str], bool, bool]:
    """(all the data, what the passed descriptors are, closed by the peer, whether the
    descriptors came with the first read) of one connection; bounded in time."""
    conn.settimeout(WAIT / 2)
    data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 16)
    kinds = []
    for fd in fds:
        kinds.append(os.readlink(f"/proc/self/fd/{fd}"))
        os.close(fd)
    closed = False
    deadline = time.monotonic() + WAIT / 2
    while time.monotonic() < deadline:
        try:
            more = conn.recv(1 << 16)
        except TimeoutError:
            break
        if not more:
            closed = True
            break
        data += more
    return data, kinds, closed, bool(fds)


def notification(shared: SharedContainers) -> Notification:
    def make() -> Notification:
        listener_path = shared.directory / "seccomp.sock"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
            server.bind(str(listener_path))
            server.listen(4)

            def edit(config: Config) -> None:
                config["linux"]["seccomp"] = {
                    "defaultAction": "SCMP_ACT_ALLOW",
                    "listenerPath": str(listener_path),
                    "listenerMetadata": "pc-metadata",
                    "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}],
                }

            path = edit_config(shared.factory.make_bundle(shared.directory, SLEEPER), edit)
            c = shared.factory.make_container(shared.directory, bundle=path)
            result = Notification(c, [], [], [], False)
            server.settimeout(2.0)  # the runtime connected during create, if at all
            while len(result.messages) < 3:  # bounded: the spec wants exactly one
                try:
                    conn, _ = server.accept()
                except TimeoutError:
                    break
                with conn:
                    data, kinds, closed, first = _recv_connection(conn)
                result.messages.append(data)
                result.fds.append(kinds)
                result.closed.append(closed)
                result.fds_with_first_read = result.fds_with_first_read or first
                server.settimeout(0.1)  # another connection made during create is queued
            return result

    made: Notification = shared.value("notification", make)
    return made


@pytest.mark.requirement("RT-SECCOMP-NOTIFY-1")
def test_seccomp_notify_sends_state_and_fd(shared: SharedContainers) -> None:
    got = notification(shared)
    assert got.messages, "the runtime never connected to listenerPath"
    json.loads(got.messages[0])
    assert got.fds[0] == ["anon_inode:seccomp notify"], (
        f"the first connection passed descriptors {got.fds[0]}, not one seccomp notify fd"
    )
    assert got.fds_with_first_read, "the seccomp fd did not come with the first sendmsg"


@pytest.mark.requirement("RT-SECCOMP-NOTIFY-2")
def test_seccomp_notify_one_state_per_connection(shared: SharedContainers) -> None:
    got = notification(shared)
    assert len(got.messages) == 1, f"the runtime connected {len(got.messages)} times"
    json.loads(got.messages[0])  # one JSON document, nothing after it
    assert got.closed[0], "the runtime did not close the connection after sending"


@pytest.mark.requirement("RT-SECCOMP-NOTIFY-4")
def test_seccomp_notify_state_document(
    shared: SharedContainers, runtime_adapter: RuntimeAdapter
) -> None:
    got = notification(shared)
    assert got.messages, "the runtime never connected to listenerPath"
    state = json.loads(got.messages[0])
    assert state.get("ociVersion") and state.get("fds") == ["seccompFd"], state
    assert state.get("metadata") == "pc-metadata", state
    assert isinstance(state.get("pid"), int) and state["pid"] > 0, state
    assert got.container is not None
    assert state.get("state", {}).get("id") == got.container.id, state
    if HOST_PID not in runtime_adapter.unsupported:
        assert state["pid"] == got.container.pid, (state["pid"], got.container.pid)


@pytest.mark.requirement("RT-SECCOMP-NOTIFY-3")
def test_seccomp_notify_without_listener_is_an_error(
    bundle: Callable[..., Path], container_factory: ContainerFactory, tmp_path: Path
) -> None:
    nobody_listens = tmp_path / "nobody.sock"

    def edit(config: Config) -> None:
        config["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": str(nobody_listens),
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}],
        }

    path = edit_config(bundle(SLEEPER), edit)
    create_error(container_factory, path, f"a listenerPath ({nobody_listens}) nobody listens on")
