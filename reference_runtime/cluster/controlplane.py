"""The control plane: the scheduler and the controllers over one in-process registry.

    with ApiServer.start() as server, ControlPlane(server.registry):
        ...                                     # pods get scheduled, Deployments roll out

``ControlPlane(registry, config).start()`` starts, each on its own threads:

- the ``Scheduler`` (``scheduler/``);
- the ReplicaSet, Deployment, node lifecycle and taint eviction controllers
  (``controllers/``), each in a ``reconcile.ControllerLoop``;
- ``HollowNodes``: Lease heartbeats for nodes without a real agent, and hollow kubelets
  that mark pods on hollow nodes Running and Ready (``config.hollow``);
- the garbage collector, namespace controller and pod reaper (``gc.Collectors``), only if
  ``config.gc``: an ``ApiServer`` runs its own, a bare ``Registry`` needs them.

``stop()`` stops everything it started and waits for the threads (idempotent).
``reference-cluster up`` runs one with the defaults; tests shorten the periods.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from .api.registry import Registry
from .controllers import (
    DeploymentController,
    HollowNodes,
    NodeLifecycleController,
    ReplicaSetController,
    TaintEvictionController,
)
from .gc import Collectors
from .reconcile import ControllerLoop
from .scheduler import Scheduler, SchedulerConfig

__all__ = ["ControlPlane", "ControlPlaneConfig"]


@dataclass(frozen=True)
class ControlPlaneConfig:
    """Periods and switches; the defaults are Kubernetes' where it has one."""

    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    node_grace_period: float = 40.0  # --node-monitor-grace-period
    default_toleration_seconds: float = 300.0  # DefaultTolerationSeconds admission
    heartbeat_interval: float = 10.0  # kubelet's lease renew interval
    lease_duration: int = 40
    hollow: bool = True  # heartbeats for agent-less nodes, hollow kubelets
    gc: bool = False  # run gc.Collectors too (for a Registry without an ApiServer)
    workers: int = 2  # per workload controller


class ControlPlane:
    def __init__(self, registry: Registry, config: ControlPlaneConfig | None = None) -> None:
        self.registry = registry
        self.config = config = config or ControlPlaneConfig()
        self.scheduler = Scheduler(registry, config.scheduler)
        self.replicasets = ReplicaSetController(registry)
        self.deployments = DeploymentController(registry)
        self.node_lifecycle = NodeLifecycleController(
            registry, grace_period=config.node_grace_period
        )
        self.taint_eviction = TaintEvictionController(
            registry, default_toleration_seconds=config.default_toleration_seconds
        )
        self.loops = [
            ControllerLoop(c, self._watch, c.sources(), workers=w)
            for c, w in (
                (self.replicasets, config.workers),
                (self.deployments, config.workers),
                (self.node_lifecycle, 1),
                (self.taint_eviction, 1),
            )
        ]
        self.hollow = (
            HollowNodes(
                registry, interval=config.heartbeat_interval, lease_duration=config.lease_duration
            )
            if config.hollow
            else None
        )
        self.collectors = Collectors(registry) if config.gc else None
        self._lock = threading.Lock()
        self._state = "new"

    def _watch(self, resource: str) -> Any:
        return self.registry.watch(resource, allow_bookmarks=False)

    def start(self) -> ControlPlane:
        with self._lock:
            if self._state != "new":
                raise RuntimeError(f"a ControlPlane starts once; this one is {self._state}")
            self._state = "running"
        if self.collectors is not None:
            self.collectors.start()
        self.scheduler.start()
        for loop in self.loops:
            loop.start()
        if self.hollow is not None:
            self.hollow.start()
        return self

    def stop(self) -> None:
        with self._lock:
            if self._state != "running":
                self._state = "stopped"
                return
            self._state = "stopped"
        if self.hollow is not None:
            self.hollow.stop()
        for loop in self.loops:
            loop.stop()
        self.scheduler.stop()
        if self.collectors is not None:
            self.collectors.stop()

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
