"""One pod's lifecycle on a node: start, watch, restart with back-off, probe, delete.

``PodWorker.sync()`` is called every ``sync_interval`` (and at once on a pod event) by
its thread. Per container it keeps a ``_Run``: waiting (with a reason), running, or
terminated; restarts follow ``restartPolicy`` with Kubernetes' back-off (``base * 2**n``
up to ``max``, shortened by ``Timings`` in tests); exec probes (``probes``) restart the
container or drive ``ready``. A pod with a ``deletionTimestamp`` gets SIGTERM, SIGKILL
after its grace period, and is then deleted with grace 0. The status it computes goes to
the agent's ``StatusManager`` (``podstatus``), which writes it where the API's differs.

A worker made by a restarted agent adopts the containers the earlier agent left running
for this pod (same pod UID, same container spec hash): their run, restart count, log
file and exit record carry on, and only what no longer matches is removed.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..client import ApiClient
from ..errors import ApiError, ApiUnreachableError, NotFoundError
from ..logsource import container_log_dir
from .bridge import UNKNOWN_EXIT, Adoptable, ContainerBridge, StartError, spec_hash
from .config import AgentConfig
from .envvars import EnvError, resolve_env
from .images import ImagePullError
from .podstatus import CONDITIONS, StatusManager, stamp
from .probes import ProbeSet

__all__ = ["PodWorker"]

log = logging.getLogger(__name__)


@dataclass
class _Run:
    """One container slot of the pod: its current run and its history."""

    name: str
    restarts: int = 0
    container_id: str = ""
    started: float = 0.0
    ready: bool = False
    waiting: tuple[str, str] | None = ("ContainerCreating", "")
    terminated: dict[str, Any] | None = None
    last: dict[str, Any] | None = None
    retry_at: float = 0.0
    image_failures: int = 0
    probes: ProbeSet | None = None
    done: bool = False  # terminated for good (restartPolicy says no more runs)
    extra: dict[str, Any] = field(default_factory=dict)


class PodWorker:
    """Runs one pod's containers (see the module docstring)."""

    def __init__(
        self,
        pod: dict[str, Any],
        api: ApiClient,
        bridge: ContainerBridge,
        config: AgentConfig,
        statuses: StatusManager,
        leftovers: list[Adoptable] | None = None,
    ) -> None:
        self.pod = pod
        self.api = api
        self.bridge = bridge
        self.statuses = statuses
        self.config = config
        self.timings = config.timings
        m = pod["metadata"]
        self.key = f"{m.get('namespace')}/{m['name']}"
        self.uid = m["uid"]
        self.scheme = f"{config.node_runtime}://"
        old = {s.get("name"): s for s in (pod.get("status") or {}).get("containerStatuses") or []}
        policy = pod["spec"].get("restartPolicy") or "Always"
        self.runs = [
            self._resume(c["name"], old.get(c["name"]) or {}, policy)
            for c in pod["spec"].get("containers") or []
        ]
        self.adopted = self._adopt(leftovers or [])
        self.start_time = (pod.get("status") or {}).get("startTime") or stamp(time.time())
        self.wake = threading.Event()
        self.finished = False
        self._kill_deadline: float | None = None

    @staticmethod
    def _resume(name: str, old: dict[str, Any], policy: str) -> _Run:
        """A container slot as the pod's status left it (restart count, last state)."""
        run = _Run(name, restarts=int(old.get("restartCount") or 0))
        last = (old.get("lastState") or {}).get("terminated")
        if last:
            run.last = {"terminated": last}
        state = old.get("state") or {}
        if state.get("terminated"):
            code = state["terminated"].get("exitCode")
            run.terminated = state["terminated"]
            run.done = policy == "Never" or (policy == "OnFailure" and code == 0)
        elif (state.get("waiting") or {}).get("reason") == "CrashLoopBackOff" and last:
            run.terminated, run.last = last, None  # the next run is a restart
        return run

    def _adopt(self, leftovers: list[Adoptable]) -> set[str]:
        """Take over the containers an earlier agent ran for this pod; their IDs."""
        specs = {c["name"]: c for c in self.pod["spec"].get("containers") or []}
        adopted = set()
        for run in self.runs:
            for found in leftovers:
                spec = specs[run.name]
                if (
                    found.pod_uid != self.uid
                    or found.container != run.name
                    or found.spec_hash != spec_hash(spec)
                    or found.status not in ("running", "stopped")
                    or found.restarts < 0
                    or run.done
                ):
                    continue
                self.bridge.adopt(found)
                run.container_id, run.started = found.id, found.started
                run.restarts, run.waiting, run.terminated = found.restarts, None, None
                run.probes = ProbeSet(spec)
                run.ready = not run.probes.has_readiness
                adopted.add(found.id)
                log.info("pod %s: adopted container %s (%s)", self.key, found.id, found.status)
        return adopted

    # -- the loop ------------------------------------------------------------------------

    def update(self, pod: dict[str, Any]) -> None:
        if pod["metadata"].get("uid") == self.uid:
            self.pod = pod
            self.wake.set()

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set() and not self.finished:
            try:
                self.sync()
            except (ApiError, ApiUnreachableError) as exc:
                log.warning("pod %s: %s", self.key, exc)
            except Exception:  # a bug: log it, keep the node going
                log.exception("pod %s: sync failed", self.key)
            self.wake.wait(self.timings.sync_interval)
            self.wake.clear()

    def sync(self) -> None:
        now = time.monotonic()
        if self.pod["metadata"].get("deletionTimestamp"):
            self._terminate(now)
            return
        policy = self.pod["spec"].get("restartPolicy") or "Always"
        specs = {c["name"]: c for c in self.pod["spec"].get("containers") or []}
        for run in self.runs:
            self._sync_container(run, specs[run.name], policy, now)
        self.statuses.want(self.pod, self.status())

    # -- one container -------------------------------------------------------------------

    def _container_id(self, run: _Run) -> str:
        return f"{self.uid}-{run.name}"

    def _log_path(self, run: _Run) -> Path:
        directory = container_log_dir(Path(self.config.logs), self.pod, run.name)
        return directory / f"{run.restarts}.log"

    def _sync_container(self, run: _Run, spec: dict[str, Any], policy: str, now: float) -> None:
        if run.container_id:
            code = self.bridge.exit_status(run.container_id)
            if code is None:
                self._probe(run, now)
                return
            self._ended(run, code, policy, now)
        if run.done or now < run.retry_at:
            return
        self._start(run, spec, now)

    def _start(self, run: _Run, spec: dict[str, Any], now: float) -> None:
        container_id = self._container_id(run)
        self.bridge.remove(container_id)  # a leftover of an earlier run or agent
        previous = run.restarts
        try:
            env = resolve_env(self.pod, spec, self.config.node_ip)
            run.restarts += 1 if run.terminated is not None else 0
            started = self.bridge.start(
                container_id, self.pod, spec, self._log_path(run), restarts=run.restarts, env=env
            )
        except ImagePullError as exc:
            run.restarts = previous
            run.image_failures += 1
            reason = "ErrImagePull" if run.image_failures == 1 else "ImagePullBackOff"
            run.waiting = (reason, str(exc))
            delay = self.timings.image_backoff_base * 2 ** (run.image_failures - 1)
            run.retry_at = now + min(delay, self.timings.backoff_max)
            return
        except (StartError, EnvError) as exc:
            run.restarts = previous
            reason = (
                "CreateContainerError"
                if isinstance(exc, StartError)
                else "CreateContainerConfigError"
            )
            run.waiting = (reason, str(exc))
            run.retry_at = now + self.timings.backoff_base
            return
        run.container_id, run.started = container_id, started
        run.waiting, run.image_failures = None, 0
        if run.terminated is not None:
            run.last, run.terminated = {"terminated": run.terminated}, None
        run.probes = ProbeSet(spec)
        run.ready = not run.probes.has_readiness

    def _ended(self, run: _Run, code: int, policy: str, now: float) -> None:
        oom = self.bridge.oom_killed(run.container_id)
        if code == UNKNOWN_EXIT:
            reason, code = "ContainerStatusUnknown", 137
            run.extra["message"] = "the container stopped and its exit status was not recorded"
        else:
            reason = "OOMKilled" if oom else ("Completed" if code == 0 else "Error")
        run.terminated = {
            "exitCode": code,
            "reason": run.extra.pop("reason", reason) if not oom else reason,
            "startedAt": stamp(run.started),
            "finishedAt": stamp(time.time()),
            "containerID": f"{self.scheme}{run.container_id}",
        }
        if "message" in run.extra:
            run.terminated["message"] = run.extra.pop("message")
        self.bridge.remove(run.container_id)
        self._log_path(run).with_suffix(".exited").touch()
        run.container_id, run.ready = "", False
        again = policy == "Always" or (policy == "OnFailure" and code != 0)
        if not again:
            run.done = True
            return
        delay = min(self.timings.backoff_base * 2**run.restarts, self.timings.backoff_max)
        run.retry_at = now + delay
        run.waiting = (
            "CrashLoopBackOff",
            f"back-off {delay:g}s restarting failed container={run.name} pod={self.key}",
        )

    def _probe(self, run: _Run, now: float) -> None:
        if run.probes is None:
            return
        container_id = run.container_id

        def execute(command: list[str], timeout: float) -> int | None:
            return self.bridge.exec(container_id, command, timeout)

        started = now - (time.time() - run.started)
        verdict = run.probes.run_due(execute, now, started, run.ready)
        if verdict.ready is not None:
            run.ready = verdict.ready
        if verdict.restart:
            log.info(
                "pod %s: %s probe of %s failed: restarting", self.key, verdict.restart, run.name
            )
            self.bridge.signal(container_id, signal.SIGKILL)

    # -- deletion ------------------------------------------------------------------------

    def _terminate(self, now: float) -> None:
        running = [r for r in self.runs if r.container_id]
        if self._kill_deadline is None:
            grace = self.pod["metadata"].get("deletionGracePeriodSeconds")
            grace = 30 if grace is None else int(grace)
            self._kill_deadline = now + grace
            for run in running:
                self.bridge.signal(run.container_id, signal.SIGTERM)
        for run in running:
            if self.bridge.exit_status(run.container_id) is not None:
                self.bridge.remove(run.container_id)
                self._log_path(run).with_suffix(".exited").touch()
                run.container_id = ""
            elif now >= self._kill_deadline:
                self.bridge.signal(run.container_id, signal.SIGKILL)
        if any(r.container_id for r in self.runs):
            return
        m = self.pod["metadata"]
        body = {
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": self.uid},
        }
        try:
            self.api.delete(f"/api/v1/namespaces/{m['namespace']}/pods/{m['name']}", body)
        except NotFoundError:
            pass  # deleted already
        except ApiError as exc:
            if exc.code != 409:
                raise
        self.finished = True

    def stop_all(self) -> None:
        """Kill and remove this pod's containers at once (the pod is gone from the API)."""
        for run in self.runs:
            if run.container_id:
                self.bridge.remove(run.container_id)
                run.container_id = ""
        self.finished = True

    # -- status --------------------------------------------------------------------------

    def _container_status(self, run: _Run, image: str) -> dict[str, Any]:
        state: dict[str, Any]
        if run.container_id:
            state = {"running": {"startedAt": stamp(run.started)}}
        elif run.done and run.terminated is not None:
            state = {"terminated": run.terminated}
        else:
            reason, message = run.waiting or ("ContainerCreating", "")
            state = {"waiting": {"reason": reason, **({"message": message} if message else {})}}
        started = bool(run.container_id) and (run.probes is None or run.probes.started)
        last = run.last or {}
        if run.terminated is not None and not run.done:
            last = {"terminated": run.terminated}
        status = {
            "name": run.name,
            "state": state,
            "lastState": last,
            "ready": started and run.ready,
            "started": started,
            "restartCount": run.restarts,
            "image": image,
            "imageID": "",
        }
        if run.container_id:
            status["containerID"] = f"{self.scheme}{run.container_id}"
        return status

    def status(self) -> dict[str, Any]:
        images = {c["name"]: c.get("image", "") for c in self.pod["spec"].get("containers") or []}
        containers = [self._container_status(r, images[r.name]) for r in self.runs]
        if all(r.done for r in self.runs):
            failed = any((r.terminated or {}).get("exitCode") for r in self.runs)
            phase = "Failed" if failed else "Succeeded"
        elif any(r.container_id or r.terminated or r.last for r in self.runs):
            phase = "Running"
        else:
            phase = "Pending"
        ready = all(c["ready"] for c in containers) and phase == "Running"
        conditions = dict.fromkeys(CONDITIONS, "True")
        conditions["ContainersReady"] = conditions["Ready"] = "True" if ready else "False"
        ip = self.config.node_ip
        return {
            "phase": phase,
            "conditions": conditions,
            "hostIP": ip,
            "hostIPs": [{"ip": ip}],
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "startTime": self.start_time,
            "containerStatuses": containers,
        }
