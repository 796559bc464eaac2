"""The periods a cluster runs with: Kubernetes' defaults, or short ones for tests."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["Timings"]


@dataclass(frozen=True)
class Timings:
    """Periods in seconds; each default is the Kubernetes component's own."""

    lease_duration: int = 40  # kubelet's nodeLeaseDurationSeconds
    heartbeat_interval: float = 10.0  # lease renew interval (a quarter of the duration)
    node_grace_period: float = 40.0  # kube-controller-manager --node-monitor-grace-period
    eviction_timeout: float = 300.0  # DefaultTolerationSeconds for not-ready/unreachable
    backoff_base: float = 10.0  # kubelet's crash-loop back-off: base ...
    backoff_max: float = 300.0  # ... doubled up to this
    image_backoff_base: float = 10.0  # image pull back-off, likewise
    sync_interval: float = 1.0  # how often a pod worker looks at its containers
    status_sync_interval: float = 10.0  # kubelet's status manager: every pod's status re-sent

    @classmethod
    def fast(cls) -> Timings:
        """Short periods for tests: faults are noticed within a few seconds."""
        return cls(
            lease_duration=2,
            heartbeat_interval=0.5,
            node_grace_period=2.0,
            eviction_timeout=1.0,
            backoff_base=0.5,
            backoff_max=2.0,
            image_backoff_base=0.5,
            sync_interval=0.2,
            status_sync_interval=1.0,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Timings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"unknown timings {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return cls(**data)
