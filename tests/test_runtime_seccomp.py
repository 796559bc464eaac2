"""linux.seccomp on the real kernel: actions, errno returns, argument conditions, the
default action, flags and architectures, and SCMP_ACT_NOTIFY's listener hand-over.

Bad seccomp configs (one line, nothing left behind) are in ``test_runtime_bad_input.py``.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import select
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reference_runtime import Runtime, UnsupportedError

pytestmark = pytest.mark.needs_root

WAIT = 20.0  # seconds; generous, the machine is shared

# linux/seccomp.h: SECCOMP_IOWR(0, struct seccomp_notif), SECCOMP_IOWR(1, ..._resp)
NOTIF_RECV = 0xC0502100
NOTIF_SEND = 0xC0182101
NOTIF_SIZE = 80


def _libseccomp() -> ctypes.CDLL:
    lib = ctypes.CDLL("libseccomp.so.2")
    lib.seccomp_syscall_resolve_name.restype = ctypes.c_int
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_syscall_resolve_num_arch.restype = ctypes.c_char_p
    lib.seccomp_syscall_resolve_num_arch.argtypes = [ctypes.c_uint32, ctypes.c_int]
    return lib


def syscall_number(name: str) -> int:
    return int(_libseccomp().seccomp_syscall_resolve_name(name.encode()))


def all_syscall_names() -> list[str]:
    """Every system call libseccomp knows on this architecture (an oracle of its own)."""
    lib = _libseccomp()
    names = (lib.seccomp_syscall_resolve_num_arch(0, nr) for nr in range(1024))
    return sorted({n.decode() for n in names if n})


def profile(*rules: dict[str, Any], **top: Any) -> Callable[[dict[str, Any]], None]:
    def edit(config: dict[str, Any]) -> None:
        config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": list(rules)}
        config["linux"]["seccomp"].update(top)

    return edit


def both(*edits: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def edit(config: dict[str, Any]) -> None:
        for one in edits:
            one(config)

    return edit


def no_new_privileges(value: bool) -> Callable[[dict[str, Any]], None]:
    def edit(config: dict[str, Any]) -> None:
        config["process"]["noNewPrivileges"] = value

    return edit


@pytest.mark.parametrize("nnp", [True, False], ids=["noNewPrivileges", "privileged-load"])
def test_listed_syscall_fails_with_its_errno_and_others_run(busybox_bundle, run_capture, nnp):
    rules = (
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EMLINK},
        {"names": ["symlink", "symlinkat"], "action": "SCMP_ACT_ERRNO"},
    )
    script = (
        "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; mkdir /dev/shm/d; "
        "ln -s x /dev/shm/l; touch /dev/shm/f && echo touched"
    )
    edit = both(profile(*rules), no_new_privileges(nnp))
    code, out = run_capture(busybox_bundle(["sh", "-c", script], edit=edit))
    assert code == 0, out
    assert "Seccomp:\t2" in out and f"NoNewPrivs:\t{int(nnp)}" in out, out
    assert "mkdir: can't create directory '/dev/shm/d': Too many links" in out, out
    assert "ln: /dev/shm/l: Operation not permitted" in out, out  # EPERM by default
    assert "touched" in out, out


def test_default_action_applies_to_unlisted_syscalls(busybox_bundle, run_capture):
    allowed = [n for n in all_syscall_names() if n not in ("mkdir", "mkdirat")]
    edit = profile(
        {"names": allowed, "action": "SCMP_ACT_ALLOW"},
        defaultAction="SCMP_ACT_ERRNO",
        defaultErrnoRet=errno.EXDEV,
    )
    script = "mkdir /dev/shm/d; touch /dev/shm/f && echo touched"
    code, out = run_capture(busybox_bundle(["sh", "-c", script], edit=edit))
    assert code == 0, out
    assert "Invalid cross-device link" in out and "touched" in out, out


def test_argument_conditions(busybox_bundle, run_capture):
    """kill(pid, 0) is refused; kill(pid, SIGCONT) and SIGWINCH are not. Two conditions
    on one argument match either (as in runc)."""
    one = {
        "names": ["kill"],
        "action": "SCMP_ACT_ERRNO",
        "errnoRet": errno.EMLINK,
        "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}],
    }
    either = {
        "names": ["openat", "open"],
        "action": "SCMP_ACT_ERRNO",
        "errnoRet": errno.EXDEV,
        "args": [
            {"index": 2, "value": 0o100, "valueTwo": 0o100, "op": "SCMP_CMP_MASKED_EQ"},
            {"index": 2, "value": 0o2000, "valueTwo": 0o2000, "op": "SCMP_CMP_MASKED_EQ"},
        ],
    }
    script = (
        "kill -0 $$ || echo kill0-refused; kill -CONT $$ && echo cont-sent; "
        "touch /dev/shm/f || echo create-refused; "
        "echo x >> /dev/shm/g || echo append-refused; wc -c </etc/passwd && echo read"
    )
    code, out = run_capture(busybox_bundle(["sh", "-c", script], edit=profile(one, either)))
    assert code == 0, out
    for word in ("kill0-refused", "cont-sent", "create-refused", "append-refused", "read"):
        assert word in out.split(), out


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP"])
def test_kill_and_trap_end_the_process_with_sigsys(busybox_bundle, run_capture, action):
    edit = profile({"names": ["mkdir", "mkdirat"], "action": action})
    code, out = run_capture(busybox_bundle(["sh", "-c", "echo before; exec mkdir /x"], edit=edit))
    assert code == 128 + signal.SIGSYS, (code, out)
    assert out == "before\n"


def test_unknown_syscall_names_are_skipped(busybox_bundle, run_capture):
    rule = {"names": ["pc_no_such_syscall", "mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}
    code, out = run_capture(busybox_bundle(["sh", "-c", "mkdir /dev/shm/d"], edit=profile(rule)))
    assert code == 1 and "Operation not permitted" in out, out


def test_flags_and_architectures(busybox_bundle, run_capture):
    edit = profile(
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EMLINK},
        {"names": ["getpid"], "action": "SCMP_ACT_LOG"},
        flags=[
            "SECCOMP_FILTER_FLAG_TSYNC",
            "SECCOMP_FILTER_FLAG_LOG",
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
        ],
        architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    )
    code, out = run_capture(busybox_bundle(["sh", "-c", "mkdir /dev/shm/d; echo $$"], edit=edit))
    assert code == 0 and "Too many links" in out and out.split()[-1] == "1", out


def test_a_flag_libseccomp_cannot_set_is_an_error_before_anything_is_made(
    runtime: Runtime, container_id, busybox_bundle
):
    edit = profile(flags=["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"])
    bundle = busybox_bundle(["true"], edit=edit)
    version = _libseccomp().seccomp_version
    version.restype = ctypes.POINTER(ctypes.c_uint * 3)
    if tuple(version().contents) >= (2, 6, 0):
        pytest.skip("this libseccomp sets SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV")
    with pytest.raises(UnsupportedError, match="WAIT_KILLABLE_RECV is not supported by libseccomp"):
        runtime.create(container_id(), bundle)
    root = Path(runtime.root)
    assert runtime.list() == [] and not (root.exists() and list(root.iterdir()))


# --------------------------------------------------------------------------- notify


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, Path]]:
    path = tmp_path / "seccomp.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(4)
    server.settimeout(WAIT)
    yield server, path
    server.close()


def _receive_state(server: socket.socket) -> tuple[dict[str, Any], list[int]]:
    conn, _ = server.accept()
    with conn:
        conn.settimeout(WAIT)
        data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 4)
        deadline = time.monotonic() + WAIT
        while (more := conn.recv(1 << 16)) and time.monotonic() < deadline:
            data += more
    return json.loads(data), fds


def _answer_one(listener_fd: int, error: int) -> int:
    """Receive one notification and make its system call fail with ``error``; its nr."""
    ready, _, _ = select.select([listener_fd], [], [], WAIT)
    assert ready, f"no notification within {WAIT}s"
    notif = bytearray(NOTIF_SIZE)
    fcntl.ioctl(listener_fd, NOTIF_RECV, notif)
    notif_id, _pid, _flags, nr = struct.unpack_from("=QIIi", notif)
    fcntl.ioctl(listener_fd, NOTIF_SEND, bytearray(struct.pack("=QqiI", notif_id, 0, -error, 0)))
    return nr


def test_notify_hands_over_a_working_listener(
    runtime: Runtime, container_id, busybox_bundle, output, listener
):
    server, path = listener
    edit = profile(
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"},
        listenerPath=str(path),
        listenerMetadata="pc-metadata",
    )
    script = "mkdir /dev/shm/d; echo rc=$?; test -d /dev/shm/d || echo not-made"
    bundle = busybox_bundle(["sh", "-c", script], edit=edit)
    out = output()
    cid = container_id()
    state = runtime.create(cid, bundle, stdio=out.stdio)
    try:
        document, fds = _receive_state(server)
        assert document["fds"] == ["seccompFd"] and len(fds) == 1, document
        assert document["ociVersion"] and document["metadata"] == "pc-metadata", document
        assert document["pid"] == state.pid and document["state"]["pid"] == state.pid, document
        assert document["state"]["id"] == cid and document["state"]["status"] == "creating"
        with pytest.raises(TimeoutError):  # one state, one connection
            server.settimeout(0.2)
            server.accept()
        runtime.start(cid)
        nr = _answer_one(fds[0], errno.EXDEV)
        assert nr in (syscall_number("mkdir"), syscall_number("mkdirat")), nr
        assert runtime.wait(cid, timeout=WAIT) == 0
        text = out.read()
        assert "Invalid cross-device link" in text and "rc=1" in text, text
        assert "not-made" in text, text
    finally:
        runtime.delete(cid, force=True)


@pytest.mark.parametrize("nnp", [True, False], ids=["noNewPrivileges", "privileged-load"])
def test_exec_processes_get_the_container_filter(
    runtime: Runtime, container_id, busybox_bundle, output, nnp
):
    """As runc does: a process exec'd into the container runs under its seccomp filter."""
    rule = {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EMLINK}
    bundle = busybox_bundle(["sleep", "600"], edit=both(profile(rule), no_new_privileges(nnp)))
    out = output()
    cid = container_id()
    runtime.create(cid, bundle)
    try:
        runtime.start(cid)
        script = "grep '^Seccomp:' /proc/self/status; mkdir /dev/shm/d || echo refused"
        assert runtime.exec(cid, ["sh", "-c", script], stdio=out.stdio) == 0
    finally:
        runtime.delete(cid, force=True)
    text = out.read()
    assert "Seccomp:\t2" in text and "Too many links" in text and "refused" in text, text


def test_exec_hands_its_listener_to_listener_path(
    runtime: Runtime, container_id, busybox_bundle, output, listener
):
    """With SCMP_ACT_NOTIFY the exec'd process's listener goes to listenerPath too, with
    its own host PID."""
    server, path = listener
    edit = profile(
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}, listenerPath=str(path)
    )
    bundle = busybox_bundle(["sleep", "600"], edit=edit)
    out = output()
    cid = container_id()
    state = runtime.create(cid, bundle)
    try:
        _, init_fds = _receive_state(server)
        for fd in init_fds:
            os.close(fd)
        runtime.start(cid)
        codes: list[int] = []
        script = "mkdir /dev/shm/d; echo rc=$?"
        worker = threading.Thread(
            target=lambda: codes.append(runtime.exec(cid, ["sh", "-c", script], stdio=out.stdio))
        )
        worker.start()
        document, fds = _receive_state(server)
        assert document["pid"] != state.pid and document["state"]["id"] == cid, document
        nr = _answer_one(fds[0], errno.EXDEV)
        assert nr in (syscall_number("mkdir"), syscall_number("mkdirat")), nr
        worker.join(WAIT)
        for fd in fds:
            os.close(fd)
    finally:
        runtime.delete(cid, force=True)
    assert codes == [0]
    assert "Invalid cross-device link" in out.read()
