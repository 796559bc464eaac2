"""Exec probes of one container: startup, liveness and readiness, as kubelet runs them.

A probe runs its command in the container every ``periodSeconds`` once
``initialDelaySeconds`` have passed since the container started; ``timeoutSeconds``
(default 1) bounds each run: a command still running then is killed and counts as a
failure. ``failureThreshold`` failures in a row fail the probe, ``successThreshold``
successes in a row pass it. Liveness and readiness wait until the startup probe (if any)
has passed; a failed startup or liveness probe restarts the container.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["Probe", "ProbeSet", "Verdict"]


class _Exec(Protocol):
    def __call__(self, command: list[str], timeout: float) -> int | None: ...


@dataclass
class Probe:
    """One probe's spec and its counts."""

    kind: str  # startup, liveness, readiness
    spec: dict[str, Any]
    failures: int = 0
    successes: int = 0
    next_at: float = 0.0
    timeouts: int = 0

    def due(self, now: float, started: float) -> bool:
        delay = float(self.spec.get("initialDelaySeconds") or 0)
        return now >= started + delay and now >= self.next_at

    def run(self, execute: _Exec, now: float) -> bool:
        """Run the command once (bounded by ``timeoutSeconds``); whether it passed."""
        command = list((self.spec.get("exec") or {}).get("command") or [])
        timeout = float(self.spec.get("timeoutSeconds") or 1)
        code = execute(command, timeout) if command else 1
        if code is None:
            self.timeouts += 1
        ok = code == 0
        self.next_at = now + float(self.spec.get("periodSeconds") or 10)
        self.failures, self.successes = (0, self.successes + 1) if ok else (self.failures + 1, 0)
        return ok

    @property
    def failed(self) -> bool:
        return self.failures >= int(self.spec.get("failureThreshold") or 3)

    @property
    def passed(self) -> bool:
        return self.successes >= int(self.spec.get("successThreshold") or 1)


@dataclass
class Verdict:
    """What one round of probes says about the container."""

    restart: str = ""  # why it must be restarted ("" if not)
    ready: bool | None = None  # None: readiness unchanged


class ProbeSet:
    """The probes of one run of a container."""

    def __init__(self, container: dict[str, Any]) -> None:
        self.probes = {
            kind: Probe(kind, container[f"{kind}Probe"])
            for kind in ("startup", "liveness", "readiness")
            if container.get(f"{kind}Probe")
        }
        self.started = "startup" not in self.probes

    @property
    def has_readiness(self) -> bool:
        return "readiness" in self.probes

    def run_due(self, execute: _Exec, now: float, started_at: float, ready: bool) -> Verdict:
        """Run the probes that are due (``now`` and ``started_at`` on one clock)."""
        verdict = Verdict()
        startup = self.probes.get("startup")
        if not self.started and startup is not None:
            if startup.due(now, started_at):
                if startup.run(execute, now) and startup.passed:
                    self.started = True
                elif startup.failed:
                    verdict.restart = "startup"
            return verdict
        liveness = self.probes.get("liveness")
        if liveness is not None and liveness.due(now, started_at):
            liveness.run(execute, now)
            if liveness.failed:
                liveness.failures = 0
                verdict.restart = "liveness"
                return verdict
        readiness = self.probes.get("readiness")
        if readiness is not None and readiness.due(now, started_at):
            readiness.run(execute, now)
            verdict.ready = (ready or readiness.passed) and not readiness.failed
        return verdict
