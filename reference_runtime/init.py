"""The processes that ``create`` forks: the monitor, stage 1 and the container init.

::

    runtime (create) ── fork ──> monitor: setsid, child subreaper; records the exit
                                   └─ fork ──> stage 1: user namespace (mapped by the
                                       runtime), joins/unshares the rest, forks and exits
                                         └─ fork ──> init (PID 1 in a new pid namespace):
                                             waits for "go", cgroup namespace, hostname,
                                             sysctl, rootfs, credentials, reports "ready",
                                             then blocks on the start socket until
                                             ``start`` connects, and execs the program.

Every process here is a fork of the runtime and ends with ``os._exit``: none of the
parent's atexit handlers, buffers or threads run in it. Messages to the runtime travel
over a SOCK_SEQPACKET socket pair as small JSON documents.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import hooks, kernel, namespaces, process, rootfs
from .config import Config
from .errors import RuntimeSpecError
from .state import EXIT_FILE

INIT_FAILED = 127


@dataclass
class Channel:
    """One end of the runtime <-> container socket pair."""

    sock: socket.socket

    def send(self, message_type: str, /, **fields: Any) -> None:
        self.sock.send(json.dumps({"t": message_type, **fields}).encode())

    def recv(self) -> dict[str, Any]:
        data = self.sock.recv(1 << 20)
        if not data:
            return {"t": "eof"}
        message: dict[str, Any] = json.loads(data)
        return message

    def send_error(self, exc: BaseException) -> None:
        if os.environ.get("REFERENCE_RUNTIME_DEBUG"):
            os.write(2, "".join(traceback.format_exception(exc)).encode())
        kind = type(exc).__name__ if isinstance(exc, RuntimeSpecError) else "ProcessError"
        msg = str(exc) if isinstance(exc, RuntimeSpecError) else f"{type(exc).__name__}: {exc}"
        try:
            self.send("error", kind=kind, msg=msg)
        except OSError:  # the runtime is gone: nobody is left to tell
            pass


@dataclass
class Plan:
    """Everything the forked processes need, prepared by the runtime before forking."""

    config: Config
    state_dir: Path
    namespace_fds: dict[str, int]
    listener: socket.socket
    channel: Channel
    cgroup_paths: dict[str, str]
    stdio: tuple[int, int, int] | None
    no_pivot: bool


def close_fds_except(keep: set[int]) -> None:
    """Close every descriptor not in ``keep`` (forks must not hold the caller's pipes)."""
    low = 0
    for fd in [*sorted(keep), os.sysconf("SC_OPEN_MAX")]:
        if fd > low:
            os.closerange(low, fd)
        low = fd + 1


def monitor_main(plan: Plan) -> None:
    """The monitor: fork stage 1, then reap until the container process is gone."""
    status = 1
    try:
        os.setsid()
        kernel.set_child_subreaper()
        keep = {plan.listener.fileno(), plan.channel.sock.fileno(), *plan.namespace_fds.values()}
        if plan.stdio is not None:
            for target, fd in enumerate(plan.stdio):
                if fd != target:
                    os.dup2(fd, target)
        keep |= {0, 1, 2}
        report_r, report_w = os.pipe()
        close_fds_except(keep | {report_r, report_w})
        stage1 = os.fork()
        if stage1 == 0:
            os.close(report_r)
            stage1_main(plan, report_w)
        os.close(report_w)
        null = os.open(os.devnull, os.O_RDWR)
        for target in (0, 1, 2):
            os.dup2(null, target)
        close_fds_except({0, 1, 2, report_r})
        kernel.set_process_name("rr-monitor")
        init_pid = _read_pid(report_r)
        status = _reap(init_pid, plan.state_dir)
    finally:
        os._exit(status)


def _read_pid(fd: int) -> int | None:
    data = b""
    while chunk := os.read(fd, 64):
        data += chunk
    os.close(fd)
    return int(data) if data.strip() else None


def _reap(init_pid: int | None, state_dir: Path) -> int:
    while True:
        try:
            pid, wait_status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 0
        except InterruptedError:  # a signal woke us: keep reaping
            continue
        if pid == init_pid:
            record = {"pid": pid, "exit_code": None, "signal": None}
            if os.WIFEXITED(wait_status):
                record["exit_code"] = os.WEXITSTATUS(wait_status)
            elif os.WIFSIGNALED(wait_status):
                record["signal"] = os.WTERMSIG(wait_status)
            try:
                tmp = state_dir / (EXIT_FILE + ".tmp")
                tmp.write_text(json.dumps(record))
                os.replace(tmp, state_dir / EXIT_FILE)
            except OSError:  # the state directory was already removed by delete
                pass


def stage1_main(plan: Plan, report_fd: int) -> None:
    """Enter the namespaces, fork the init, report its host PID and exit."""
    try:
        config = plan.config

        def on_new_user_namespace() -> None:
            plan.channel.send("userns", pid=os.getpid())
            reply = plan.channel.recv()
            if reply.get("t") != "ok":
                os._exit(1)
            _become_namespace_root(config)

        namespaces.enter_all(config, plan.namespace_fds, on_new_user_namespace)
        namespaces.close_all(plan.namespace_fds)
        init = os.fork()
        if init == 0:
            os.close(report_fd)
            init_main(plan)
        os.write(report_fd, str(init).encode())
        os.close(report_fd)
        plan.channel.send("init", pid=init)
        os._exit(0)
    except BaseException as exc:
        plan.channel.send_error(exc)
        os._exit(1)


def _become_namespace_root(config: Config) -> None:
    """After the maps are written, act as root of the new user namespace if it is mapped."""
    if any(m.container_id == 0 for m in config.gid_mappings):
        kernel.setresgid(0)
    if any(m.container_id == 0 for m in config.uid_mappings):
        kernel.setresuid(0)


def init_main(plan: Plan) -> None:
    """The container process until its program is exec'd."""
    config = plan.config
    channel = plan.channel
    try:
        kernel.set_process_name("rr-init")
        go = channel.recv()
        if go.get("t") != "go":
            os._exit(1)
        state: dict[str, Any] = go["state"]
        if config.new_namespace("cgroup"):
            kernel.unshare(kernel.CLONE_NEWCGROUP)
        if config.hostname is not None:
            kernel.sethostname(config.hostname)
        if config.domainname is not None:
            kernel.setdomainname(config.domainname)
        if config.new_namespace("network"):
            kernel.loopback_up()
        for key, value in config.sysctl.items():
            kernel.write_file("/proc/sys/" + key.replace(".", "/"), value)
        rootfs.prepare(
            config,
            plan.cgroup_paths,
            in_user_namespace=config.namespace("user") is not None,
            create_container_hooks=lambda: hooks.run_all(
                config.hooks.create_container, state, "createContainer"
            ),
            no_pivot=plan.no_pivot,
        )
        try:
            os.chdir(config.process.cwd)
        except OSError:  # may only be reachable as the container user: retried at exec
            pass
        env = process.environment(config.process)
        process.finalize(config.process)
        channel.send("ready")
        channel.sock.close()
    except BaseException as exc:
        channel.send_error(exc)
        os._exit(INIT_FAILED)
    _wait_for_start_and_exec(plan, env, state)


def _wait_for_start_and_exec(plan: Plan, env: dict[str, str], state: dict[str, Any]) -> None:
    # Block until `start` connects; a stray connection without the word is ignored.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    while True:
        conn, _ = plan.listener.accept()
        if conn.recv(16) == b"start":
            break
        conn.close()
    plan.listener.close()
    try:
        state = {**state, "status": "created"}
        hooks.run_all(plan.config.hooks.start_container, state, "startContainer")
        process.execute(plan.config.process, env)
    except BaseException as exc:
        kind = type(exc).__name__ if isinstance(exc, RuntimeSpecError) else "ProcessError"
        try:
            conn.sendall(json.dumps({"kind": kind, "msg": str(exc)}).encode())
        except OSError:  # start gave up waiting: the exit status still tells
            pass
    os._exit(INIT_FAILED)
