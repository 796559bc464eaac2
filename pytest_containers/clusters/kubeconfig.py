"""``--cluster=kubeconfig[:PATH]``: an existing cluster, reached through a kubeconfig.

The cluster is not ours: the adapter injects no faults, registers no synthetic Nodes,
and ``close()`` only closes the client. Tests create what they need in namespaces they
delete.
"""

from __future__ import annotations

import os
from pathlib import Path

from .base import ClusterUnavailableError
from .client import KubeClient

__all__ = ["KubeconfigCluster", "default_kubeconfig"]


def default_kubeconfig() -> Path:
    """``$KUBECONFIG`` (its first entry) or ``~/.kube/config``, as kubectl looks."""
    env = os.environ.get("KUBECONFIG", "")
    first = next((p for p in env.split(os.pathsep) if p), "")
    return Path(first).expanduser() if first else Path("~/.kube/config").expanduser()


class KubeconfigCluster(KubeClient):
    """An existing cluster; no faults."""

    kind = "kubeconfig"

    def __init__(self, kubeconfig: Path, context: str | None = None) -> None:
        if not kubeconfig.is_file():
            raise ClusterUnavailableError(
                f"kubeconfig {kubeconfig} does not exist: give --cluster=kubeconfig:PATH"
            )
        super().__init__(kubeconfig, context)
        self.name = _current_context(kubeconfig) or kubeconfig.name


def _current_context(path: Path) -> str:
    try:
        for line in path.read_text().splitlines():
            if line.startswith("current-context:"):
                return line.split(":", 1)[1].strip().strip("'\"")
    except OSError:  # unreadable: the client will say so when it is built
        pass
    return ""
