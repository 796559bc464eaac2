"""The node agent process: join the node's namespace, register, run the node's pods."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..client import ApiClient
from ..errors import ApiError, ApiUnreachableError, GoneError
from .bridge import Adoptable, ContainerBridge
from .config import AgentConfig
from .node import NodeStatus
from .podstatus import StatusManager
from .worker import PodWorker

__all__ = ["Agent", "main"]

log = logging.getLogger("reference-agent")

CLONE_NEWNET = 0x40000000
RETRY_MAX = 1.0


def join_netns(name: str) -> None:
    """Move this process into the network namespace ``/run/netns/NAME``."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns into {name}: {os.strerror(errno)}")
    finally:
        os.close(fd)


class Agent:
    """Watches the pods bound to its node and runs one ``PodWorker`` thread per pod."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        ca = Path(config.ca_cert).read_bytes() if config.ca_cert else None
        self.api = ApiClient(config.url, config.token, ca_cert=ca, timeout=5.0)
        self.watch_api = ApiClient(config.url, config.token, ca_cert=ca, timeout=5.0)
        self.bridge = ContainerBridge(config)
        self.node = NodeStatus(self.api, config)
        self.statuses = StatusManager(self.api, config.node, config.timings.status_sync_interval)
        self.stop = threading.Event()
        self.workers: dict[str, PodWorker] = {}
        self.threads: list[threading.Thread] = []
        self.leftovers: list[Adoptable] | None = None  # until the first list of pods

    def settle_leftovers(self) -> None:
        """After the first list of the node's pods: remove the containers of pods that are
        gone or finished (a worker replaces those of its own pod that it did not adopt)."""
        if self.leftovers is None:
            return
        for found in self.leftovers:
            if found.pod_uid not in self.workers:
                log.info("removing container %s left by an earlier agent", found.id)
                self.bridge.remove(found.id)
        self.leftovers = None

    def register(self) -> None:
        delay = 0.01
        while not self.stop.is_set():
            try:
                self.node.register()
                log.info("node %s registered", self.config.node)
                return
            except (ApiError, ApiUnreachableError) as exc:
                log.debug("cannot register yet: %s", exc)
            self.stop.wait(delay)
            delay = min(delay * 2, RETRY_MAX)

    def _pod(self, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        self.statuses.observe(pod)
        worker = self.workers.get(uid)
        if worker is not None:
            worker.update(pod)
            return
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed") and not pod[
            "metadata"
        ].get("deletionTimestamp"):
            self.statuses.forget(uid)
            return  # finished before this agent started: nothing to run
        mine = [f for f in self.leftovers or [] if f.pod_uid == uid]
        worker = PodWorker(pod, self.api, self.bridge, self.config, self.statuses, mine)
        self.workers[uid] = worker
        thread = threading.Thread(target=worker.run, args=(self.stop,), daemon=True)
        thread.start()

    def _gone(self, uid: str) -> None:
        self.statuses.forget(uid)
        worker = self.workers.pop(uid, None)
        if worker is not None:
            worker.stop_all()
            worker.wake.set()

    def watch_pods(self) -> None:
        path = "/api/v1/pods"
        query = {"fieldSelector": f"spec.nodeName={self.config.node}"}
        delay = 0.05
        while not self.stop.is_set():
            try:
                listed = self.watch_api.get(path, query)
                seen = set()
                for pod in listed["items"]:
                    seen.add(pod["metadata"]["uid"])
                    self._pod(pod)
                for uid in set(self.workers) - seen:
                    self._gone(uid)
                self.settle_leftovers()
                version = listed["metadata"]["resourceVersion"]
                for event in self.watch_api.watch(path, query, version, timeout_seconds=30):
                    delay = 0.05
                    if self.stop.is_set():
                        return
                    pod = event["object"]
                    if event["type"] == "BOOKMARK":
                        continue
                    if event["type"] == "DELETED":
                        self._gone(pod["metadata"]["uid"])
                    else:
                        self._pod(pod)
                    for uid in [u for u, w in self.workers.items() if w.finished]:
                        self.workers.pop(uid, None)
                        self.statuses.forget(uid)
            except GoneError:
                continue
            except (ApiError, ApiUnreachableError) as exc:
                log.warning("pod watch: %s", exc)
                self.stop.wait(delay)
                delay = min(delay * 2, RETRY_MAX)

    def run(self) -> None:
        self.leftovers = self.bridge.leftovers()
        self.register()
        heartbeat = threading.Thread(target=self.node.run, args=(self.stop,), daemon=True)
        heartbeat.start()
        statuses = threading.Thread(target=self.statuses.run, args=(self.stop,), daemon=True)
        statuses.start()
        self.watch_pods()


def main(argv: Sequence[str] | None = None) -> int:
    config = AgentConfig.from_command_line("reference-cluster-agent", argv)
    join_netns(config.netns)
    agent = Agent(config)
    signal.signal(signal.SIGTERM, lambda *_: agent.stop.set())
    started = time.monotonic()
    log.info("agent of node %s starting (pid %d)", config.node, os.getpid())
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    while thread.is_alive() and not agent.stop.is_set():
        thread.join(0.5)
    log.info("agent stopping after %.1fs", time.monotonic() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
