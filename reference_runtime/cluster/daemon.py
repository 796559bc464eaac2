"""The control-plane daemon a cluster runs: ``python -m reference_runtime.cluster.daemon``.

It reads ``cluster.json`` (written by ``ClusterHandle.up``), starts the ``ApiServer`` on
the recorded port (and on the node links' host addresses), registers the hollow and
placeholder nodes, starts the ``ControlPlane``, and serves until SIGTERM. Progress goes
to ``--progress-fd`` one line at a time: free text, then ``ready URL`` or ``error WHY``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import ClusterError
from .timings import Timings

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="reference-cluster-daemon")
    parser.add_argument("--config", required=True)
    parser.add_argument("--progress-fd", type=int, default=-1)
    args = parser.parse_args(argv)
    from .api.server import ApiServer
    from .controlplane import ControlPlane, ControlPlaneConfig
    from .logsource import FileLogSource
    from .nodes import register_nodes

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config_path = Path(args.config)
    config = json.loads(config_path.read_text())
    cluster = config_path.parent
    timings = Timings.from_dict(config.get("timings") or {})
    progress = (
        os.fdopen(args.progress_fd, "w", buffering=1) if args.progress_fd >= 0 else sys.stdout
    )

    def say(line: str) -> None:
        try:
            progress.write(line + "\n")
            progress.flush()
        except OSError:
            pass  # the starter has gone away: keep serving, the log has everything

    tls_files = None
    if config.get("tls_cert"):
        tls_files = (Path(config["tls_cert"]), Path(config["tls_key"]))
    try:
        server = ApiServer(
            config["store"],
            host=config["host"],
            port=config["port"],
            token=config["token"],
            kubeconfig=config["kubeconfig"],
            name=config["name"],
            tls=config["tls"],
            tls_files=tls_files,
            extra_hosts=config.get("listen") or (),
            log_source=FileLogSource(cluster / "logs"),
        )
    except (ClusterError, OSError, ValueError) as exc:
        say(f"error cannot start the API server: {exc}")
        return 1
    signal.signal(signal.SIGTERM, lambda *_: server.request_stop())
    signal.signal(signal.SIGINT, lambda *_: server.request_stop())
    (cluster / "pid").write_text(f"{os.getpid()}\n")
    say(f"API server listening on {server.url}")
    try:
        placeholders = int(config.get("placeholder_nodes", 0))
        for name in register_nodes(server.registry, placeholders, config["hollow_nodes"]):
            say(f"node {name} Ready")
    except ClusterError as exc:
        say(f"error cannot register nodes: {exc}")
        server.stop()
        return 1
    plane_config = ControlPlaneConfig(
        node_grace_period=timings.node_grace_period,
        default_toleration_seconds=timings.eviction_timeout,
        heartbeat_interval=timings.heartbeat_interval,
        lease_duration=timings.lease_duration,
    )
    control_plane = ControlPlane(server.registry, plane_config).start()
    say(f"ready {server.url}")
    if progress is not sys.stdout:
        progress.close()
    print(f"serving {server.url} (pid {os.getpid()})", flush=True)
    try:
        server.serve_forever()
    finally:
        control_plane.stop()
        server.stop()
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
