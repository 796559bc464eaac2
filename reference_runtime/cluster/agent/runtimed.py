"""The node's runtime service: creates the node's containers and collects their exits.

``python -m reference_runtime.cluster.agent.runtimed --config agent.json``, started by
``ClusterHandle`` next to the node agent; it outlives the agent, as containerd (with its
shims) outlives a kubelet. Only a container's parent can collect its exit status, so
every container is created here: the service is a child subreaper, ``runc create``'s
init is reparented to it, and the reference runtime's in-process ``create`` makes it the
init's parent. When an init exits the service reaps it and writes
``<node>/exits/<id>.json`` (``{"pid": P, "status": S}``, 128+N for signal N), which
the agent reads, whichever agent started the container.

Requests come over ``<node>/runtimed.sock``, one JSON line each way:
``{"op": "create", "id": ID, "bundle": DIR, "log": FILE}`` -> ``{"pid": P}`` or
``{"error": WHY}``. Everything else (start, kill, exec, delete) the agent does through
the runtime itself. SIGTERM (node shutdown, ``down``): every container of the node is
deleted (``runc delete --force``), its exit collected, then the service exits.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .config import AgentConfig
from .drivers import DriverError, NodeRuntime, open_driver

__all__ = ["SOCKET", "exit_record", "main", "request_create"]

log = logging.getLogger("reference-runtimed")

SOCKET = "runtimed.sock"
CONNECT_TIMEOUT = 10.0
REQUEST_TIMEOUT = 130.0  # the reference runtime's create allows 120 s for its hooks


@contextlib.contextmanager
def _in_dir(directory: Path) -> Iterator[str]:
    """A short path to ``directory`` (a socket path must fit in 108 bytes)."""
    fd = os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def exit_record(node_state: Path, container_id: str) -> Path:
    return node_state / "exits" / f"{container_id}.json"


def request_create(node_state: Path, container_id: str, bundle: Path, log_file: Path) -> int:
    """Ask the node's runtime service to create the container; its init's host PID.

    Raises ``DriverError`` with the runtime's message (or why the service is unreachable).
    """
    request = {"op": "create", "id": container_id, "bundle": str(bundle), "log": str(log_file)}
    deadline = time.monotonic() + CONNECT_TIMEOUT
    with _in_dir(node_state) as directory:
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            try:
                sock.settimeout(REQUEST_TIMEOUT)
                sock.connect(f"{directory}/{SOCKET}")
                break
            except (FileNotFoundError, ConnectionRefusedError):
                sock.close()  # the service is starting: try again shortly
                if time.monotonic() > deadline:
                    raise DriverError(
                        f"the node's runtime service does not answer at {node_state / SOCKET}"
                    ) from None
                time.sleep(0.05)
    with sock, sock.makefile("rwb") as stream:
        stream.write(json.dumps(request).encode() + b"\n")
        stream.flush()
        line = stream.readline()
    try:
        reply: dict[str, Any] = json.loads(line)
    except ValueError:
        raise DriverError("the node's runtime service closed the connection") from None
    if "error" in reply:
        raise DriverError(str(reply["error"]))
    return int(reply["pid"])


class RuntimeService:
    """The service's state: the driver, the inits it is the parent of, the socket."""

    def __init__(self, config: AgentConfig) -> None:
        self.state = Path(config.state)
        self.driver: NodeRuntime = open_driver(config.node_runtime, self.state)
        self.exits = self.state / "exits"
        self.exits.mkdir(parents=True, exist_ok=True)
        self.inits: dict[int, str] = {}  # init PID -> container ID
        self.stopping = False

    def create(self, request: dict[str, Any]) -> dict[str, Any]:
        container_id = str(request["id"])
        null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        out = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        try:
            exit_record(self.state, container_id).unlink(missing_ok=True)
            pid = self.driver.create(container_id, Path(request["bundle"]), (null, out, out))
        except (DriverError, OSError) as exc:
            return {"error": str(exc)}
        finally:
            os.close(out)
            os.close(null)
        for stale in [p for p, c in self.inits.items() if c == container_id]:
            del self.inits[stale]  # an earlier run of this ID, deleted already
        self.inits[pid] = container_id
        return {"pid": pid}

    def reap(self) -> None:
        """Collect every exited child; record the exits of container inits."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return  # no children at all
            if pid == 0:
                return
            container_id = self.inits.pop(pid, None)
            if container_id is None:
                continue  # an orphan of some runtime helper: reaped, nothing to record
            code = 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
            path = exit_record(self.state, container_id)
            tmp = path.with_suffix(".tmp")
            try:
                tmp.write_text(json.dumps({"pid": pid, "status": code}))
                os.replace(tmp, path)
            except OSError as exc:
                log.warning("cannot record the exit of %s: %s", container_id, exc)

    def shutdown(self) -> None:
        """Delete every container of the node, collecting their exits."""
        for listed in self.driver.containers():
            self.driver.delete(listed.id)
            self.reap()
        deadline = time.monotonic() + 5.0
        while self.inits and time.monotonic() < deadline:
            self.reap()
            for pid in list(self.inits):
                try:
                    done, _ = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    done = pid  # reaped by the runtime's own delete
                if done:
                    del self.inits[pid]
            time.sleep(0.01)

    def serve(self, listener: socket.socket, wakeup: int) -> None:
        while not self.stopping:
            readable, _, _ = select.select([listener.fileno(), wakeup], [], [], 1.0)
            if wakeup in readable:
                with contextlib.suppress(BlockingIOError):  # drained already
                    os.read(wakeup, 4096)
            self.reap()
            if listener.fileno() in readable and not self.stopping:
                self._answer(listener)

    def _answer(self, listener: socket.socket) -> None:
        try:
            conn, _ = listener.accept()
        except BlockingIOError:
            return  # the client went away
        with conn:
            conn.settimeout(5.0)
            try:
                with conn.makefile("rwb") as stream:
                    request = json.loads(stream.readline())
                    if request.get("op") == "create":
                        reply = self.create(request)
                    else:
                        reply = {"error": f"unknown request {request.get('op')!r}"}
                    stream.write(json.dumps(reply).encode() + b"\n")
                    stream.flush()
            except (OSError, ValueError) as exc:
                log.warning("bad request: %s", exc)


def main(argv: Sequence[str] | None = None) -> int:
    from ...kernel import set_child_subreaper

    config = AgentConfig.from_command_line("reference-runtimed", argv)
    set_child_subreaper(True)
    try:
        service = RuntimeService(config)
    except DriverError as exc:
        log.error("%s", exc)
        return 1
    read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(write_end)
    signal.signal(signal.SIGCHLD, lambda *_: None)

    def stop(*_: object) -> None:
        service.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    (service.state / SOCKET).unlink(missing_ok=True)
    with _in_dir(service.state) as directory:
        listener.bind(f"{directory}/{SOCKET}")
    listener.listen(16)
    listener.setblocking(False)
    log.info("runtime service of %s (%s), pid %d", config.node, service.driver.name, os.getpid())
    try:
        service.serve(listener, read_end)
    finally:
        listener.close()
        (service.state / SOCKET).unlink(missing_ok=True)
        service.shutdown()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
