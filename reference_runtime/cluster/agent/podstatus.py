"""The node's pod statuses: what the workers want, written where the API's copy differs.

Like kubelet's status manager. Workers ``want()`` the status they compute; the agent's pod
watch ``observe()``s every copy of a pod the API holds. One thread compares the two and
writes a pod's status only when they differ: at once when either changes, and for every
pod every ``status_sync_interval``, after listing the node's pods again. So a status
someone else changed -- the node lifecycle controller marking the pods of a node it lost
not Ready -- is put back once the node is reachable again, and an equal one is never
written twice. A write names the ``resourceVersion`` it was compared with; on a conflict
the pod is read again and compared again.

Conditions are compared by type and status; the agent owns ``CONDITIONS`` (a changed
one gets a new ``lastTransitionTime``) and keeps the others as the API has them.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from ..client import ApiClient
from ..errors import ApiError, ApiUnreachableError, ConflictError, NotFoundError

__all__ = ["CONDITIONS", "StatusManager", "merge_status", "stamp"]

log = logging.getLogger(__name__)

CONDITIONS = (
    "PodReadyToStartContainers",
    "Initialized",
    "ContainersReady",
    "Ready",
    "PodScheduled",
)
CONFLICT_RETRIES = 3


def stamp(seconds: float) -> str:
    """A Kubernetes timestamp (whole seconds, UTC)."""
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _clean(value: Any) -> Any:
    """``value`` without ``None`` members (a merge patch drops them)."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _rv(pod: dict[str, Any]) -> int:
    text = str(pod["metadata"].get("resourceVersion") or "0")
    return int(text) if text.isdigit() else 0


def merge_status(
    wanted: dict[str, Any], current: dict[str, Any], now: float
) -> dict[str, Any] | None:
    """The status to write so that ``current`` (the API's) becomes ``wanted``; ``None``
    when it already is. ``wanted["conditions"]`` maps condition types to statuses."""
    conditions = []
    old = {c.get("type"): c for c in current.get("conditions") or []}
    changed = False
    for kind, status in wanted["conditions"].items():
        previous = old.get(kind)
        if previous is not None and previous.get("status") == status:
            conditions.append(previous)
            continue
        changed = True
        since = stamp(now)
        conditions.append(
            {"type": kind, "status": status, "lastProbeTime": None, "lastTransitionTime": since}
        )
    conditions += [c for c in current.get("conditions") or [] if c.get("type") not in CONDITIONS]
    fields = {k: v for k, v in wanted.items() if k != "conditions"}
    changed = changed or any(_clean(v) != _clean(current.get(k)) for k, v in fields.items())
    return {**fields, "conditions": conditions} if changed else None


@dataclass
class _Pod:
    """One pod: the status its worker wants and the newest copy the API gave."""

    api: dict[str, Any]
    wanted: dict[str, Any] | None = None


class StatusManager:
    """Writes the node's pod statuses (see the module docstring)."""

    def __init__(self, api: ApiClient, node: str, period: float) -> None:
        self.api = api
        self.node = node
        self.period = period
        self._pods: dict[str, _Pod] = {}
        self._dirty: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()

    def observe(self, pod: dict[str, Any]) -> None:
        """A copy of a pod the API holds (watch, list, or a write's answer)."""
        uid = pod["metadata"]["uid"]
        with self._lock:
            entry = self._pods.get(uid)
            if entry is None:
                self._pods[uid] = _Pod(pod)
                return
            if _rv(pod) < _rv(entry.api):
                return  # older than what is known: a late event
            entry.api = pod
            if entry.wanted is not None:
                self._dirty.add(uid)
                self._wake.set()

    def want(self, pod: dict[str, Any], status: dict[str, Any]) -> None:
        """The status the pod's worker computed; written if the API's copy differs (nothing
        for a pod never observed, or forgotten)."""
        uid = pod["metadata"]["uid"]
        with self._lock:
            entry = self._pods.get(uid)
            if entry is None or entry.wanted == status:
                return
            entry.wanted = status
            self._dirty.add(uid)
            self._wake.set()

    def forget(self, uid: str) -> None:
        """The pod is gone from the node: write nothing more for it."""
        with self._lock:
            self._pods.pop(uid, None)
            self._dirty.discard(uid)

    def run(self, stop: threading.Event) -> None:
        next_batch = time.monotonic() + self.period
        while not stop.is_set():
            self._wake.wait(max(0.0, min(next_batch - time.monotonic(), self.period)))
            self._wake.clear()
            with self._lock:
                uids, self._dirty = list(self._dirty), set()
            try:
                if time.monotonic() >= next_batch:
                    next_batch = time.monotonic() + self.period
                    uids = self._relist()
                while uids:
                    self._sync(uids[-1])
                    uids.pop()
            except ApiUnreachableError as exc:
                log.debug("pod status sync: %s", exc)
            except ApiError as exc:
                log.warning("pod status sync: %s", exc)
            with self._lock:
                self._dirty.update(uids)  # not synced: at the next wake or batch

    def _relist(self) -> list[str]:
        """Read every pod of the node again (the periodic sync); the pods to compare."""
        query = {"fieldSelector": f"spec.nodeName={self.node}"}
        listed = self.api.get("/api/v1/pods", query)
        for pod in listed["items"]:
            self.observe(pod)
        seen = {p["metadata"]["uid"] for p in listed["items"]}
        with self._lock:
            for uid in [u for u, e in self._pods.items() if u not in seen]:
                if _rv(self._pods[uid].api) <= _rv(listed):
                    del self._pods[uid]  # gone before the list
            self._dirty.clear()
            return [u for u, e in self._pods.items() if e.wanted is not None]

    def _sync(self, uid: str) -> None:
        for _ in range(CONFLICT_RETRIES):
            with self._lock:
                entry = self._pods.get(uid)
                if entry is None or entry.wanted is None:
                    return
                wanted, current = entry.wanted, entry.api
            m = current["metadata"]
            path = f"/api/v1/namespaces/{m['namespace']}/pods/{m['name']}"
            try:
                status = merge_status(wanted, current.get("status") or {}, time.time())
                if status is None:
                    return
                body = {"metadata": {"resourceVersion": m["resourceVersion"]}, "status": status}
                log.debug("pod %s/%s: writing its status", m["namespace"], m["name"])
                self.observe(self.api.patch(f"{path}/status", body))
                return
            except NotFoundError:
                return  # deleted meanwhile: the watch will tell
            except ConflictError:
                fresh = self.api.get(path)  # changed meanwhile: compare again
                if fresh["metadata"].get("uid") != uid:
                    return  # deleted, and another pod of the same name made
                self.observe(fresh)
        with self._lock:
            self._dirty.add(uid)
