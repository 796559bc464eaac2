"""The node agent (a small kubelet): one process per node, in the node's network namespace.

Layers, bottom up: ``config`` (what the agent is told), ``images`` (image -> rootfs),
``drivers`` (the node runtime: the reference runtime in-process, or runc), ``runtimed``
(the node's runtime service: creates containers, records their exits; its own process,
which outlives the agent), ``bridge`` (bundles with their annotations, cgroup limits,
logs, exit and OOM), ``envvars`` and ``probes`` (a container's environment and its exec
probes), ``worker`` (one pod's lifecycle: adoption, restarts with back-off, probes,
graceful deletion, the status it wants), ``podstatus`` (writes pod statuses where the
API's copy differs, at once and periodically), ``node`` (registration, Lease, node status)
and ``main`` (the process: join the namespace, watch the node's pods, run a worker per pod).

Run as ``python -m reference_runtime.cluster.agent --config agent.json``; it imports only
the standard library, the stdlib API client and the reference runtime, so it starts fast.
"""

from __future__ import annotations

from .config import AgentConfig

__all__ = ["AgentConfig"]
