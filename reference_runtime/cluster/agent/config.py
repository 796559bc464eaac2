"""What a node agent is told: ``agent.json``, written by ``ClusterHandle``."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..timings import Timings

__all__ = ["AgentConfig"]


@dataclass(frozen=True)
class AgentConfig:
    """One node's agent: who it is, where the API server is, where it keeps things."""

    node: str
    index: int
    url: str  # the API server as seen from the node's network namespace
    token: str
    ca_cert: str | None
    netns: str
    node_ip: str
    cgroup_parent: str  # relative to every cgroup hierarchy's root
    state: str  # the node's directory: runtime state, bundles
    logs: str  # the cluster's container log directory
    images: str  # the cluster's image store root
    node_runtime: str = "reference"
    timings: Timings = field(default_factory=Timings)

    def write(self, path: Path) -> None:
        data = asdict(self)
        path.write_text(json.dumps(data, indent=2))
        path.chmod(0o600)

    @classmethod
    def from_command_line(cls, prog: str, argv: Sequence[str] | None) -> AgentConfig:
        """``PROG --config agent.json``: the config, with logging set up for the process."""
        parser = argparse.ArgumentParser(prog=prog)
        parser.add_argument("--config", required=True)
        args = parser.parse_args(argv)
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        return cls.read(Path(args.config))

    @classmethod
    def read(cls, path: Path) -> AgentConfig:
        data: dict[str, Any] = json.loads(path.read_text())
        data["timings"] = Timings.from_dict(data.get("timings") or {})
        return cls(**data)
