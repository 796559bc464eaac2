"""``reference-cluster``: start and stop a detached reference cluster.

A thin layer over ``handle.ClusterHandle``: ``up`` starts the control-plane daemon
(``daemon.py``) and one node agent per node, echoes their progress until every node is
Ready, and prints the kubeconfig path; ``down`` stops what was recorded and removes the
state (a store the user named with ``--store`` stays); ``node stop|start|partition|heal
NAME`` injects node faults. Every error is one line on stderr and exit status 1.

State lives in ``<state-dir>/<name>/`` (``--state-dir``, ``$REFERENCE_CLUSTER_STATE_DIR``,
default ``/run/reference-cluster``): ``cluster.json``, ``pid``, ``token``, ``server.log``,
the default kubeconfig, node agents' logs and, by default, ``store.db``.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from .errors import ClusterError
from .images.cli import add_image_parser, run_image

PROG = "reference-cluster"
DEFAULT_STATE_DIR = "/run/reference-cluster"
UP_TIMEOUT = 30.0


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(1, f"{PROG}: {message} (see '{self.prog} --help')\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="A small Kubernetes-API-compatible reference cluster.")
    parser.add_argument(
        "--state-dir",
        default=os.environ.get("REFERENCE_CLUSTER_STATE_DIR", DEFAULT_STATE_DIR),
        help=f"where clusters keep their state (default {DEFAULT_STATE_DIR})",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    up = sub.add_parser("up", help="start a cluster in the background")
    up.add_argument("--name", default="default", help="the cluster's name (default: default)")
    up.add_argument(
        "--store",
        help="sqlite:PATH or etcd://HOST:PORT[/PREFIX] (default: SQLite in the state dir)",
    )
    up.add_argument(
        "--kubeconfig", help="where to write the kubeconfig (default: in the state dir)"
    )
    up.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    up.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    up.add_argument("--nodes", type=int, default=1, help="nodes to register (default 1)")
    up.add_argument(
        "--hollow-nodes", type=int, default=0, help="hollow nodes to register (default 0)"
    )
    up.add_argument("--token-file", help="file holding the bearer token (made if missing)")
    up.add_argument(
        "--node-runtime",
        choices=("reference", "runc"),
        default="reference",
        help="the OCI runtime node agents run containers with (default: reference)",
    )
    up.add_argument(
        "--insecure-http",
        action="store_true",
        help="plain HTTP instead of HTTPS (kubectl then sends no token: see the README)",
    )

    down = sub.add_parser("down", help="stop a cluster and remove its state")
    down.add_argument("--name", default="default")

    status = sub.add_parser("status", help="say whether a cluster is up")
    status.add_argument("--name", default="default")

    node = sub.add_parser("node", help="inject a fault into a node: stop|start|partition|heal")
    node.add_argument("action", choices=("stop", "start", "partition", "heal"))
    node.add_argument("node", help="the node's name, e.g. reference-node-1")
    node.add_argument("--name", default="default", help="the cluster's name")
    add_image_parser(sub)
    return parser


# -- commands ------------------------------------------------------------------------------


def _up(args: argparse.Namespace) -> int:
    from .handle import ClusterHandle

    store = args.store or "sqlite"
    started = time.monotonic()
    print(f"starting cluster {args.name}", flush=True)
    token = None
    if args.token_file:
        token_path = Path(args.token_file)
        if token_path.exists():
            token = token_path.read_text().strip()
            if not token:
                raise ClusterError(f"the token file {token_path} is empty")
        else:
            token = secrets.token_urlsafe(32)
            token_path.write_text(token + "\n")
            token_path.chmod(0o600)
    handle = ClusterHandle.up(
        args.name,
        state_dir=Path(args.state_dir),
        nodes=args.nodes,
        hollow_nodes=args.hollow_nodes,
        store=store,
        kubeconfig=Path(args.kubeconfig) if args.kubeconfig else None,
        node_runtime=args.node_runtime,
        progress=lambda line: print(line, flush=True),
        timeout=UP_TIMEOUT,
        host=args.host,
        port=args.port,
        tls=not args.insecure_http,
        token=token,
    )
    elapsed = time.monotonic() - started
    print(f"ready in {elapsed:.2f}s", flush=True)
    print(f"kubeconfig: {handle.kubeconfig}", flush=True)
    return 0


def _down(args: argparse.Namespace) -> int:
    from .handle import ClusterHandle, read_cluster_config

    state = Path(args.state_dir).resolve() / args.name
    config = read_cluster_config(Path(args.state_dir), args.name)
    if not state.exists():
        raise ClusterError(f"no cluster named {args.name} is up (nothing in {state})")
    ClusterHandle.from_state(Path(args.state_dir), args.name).down()
    kept = f"; store kept at {config['store']}" if config.get("keep_store") else ""
    print(f"cluster {args.name} is down{kept}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from .handle import ClusterHandle

    try:
        handle = ClusterHandle.attach(args.name, state_dir=Path(args.state_dir))
    except ClusterError:
        raise ClusterError(f"cluster {args.name} is not up") from None
    print(f"cluster {args.name} is up at {handle.url}; kubeconfig: {handle.kubeconfig}")
    return 0


def _node(args: argparse.Namespace) -> int:
    from .handle import ClusterHandle

    handle = ClusterHandle.attach(args.name, state_dir=Path(args.state_dir))
    action = {
        "stop": handle.stop_node,
        "start": handle.start_node,
        "partition": handle.partition_node,
        "heal": handle.heal_node,
    }[args.action]
    action(args.node)
    print(f"node {args.node}: {args.action} done")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "up":
            return _up(args)
        if args.command == "down":
            return _down(args)
        if args.command == "status":
            return _status(args)
        if args.command == "image":
            return run_image(args)
        return _node(args)
    except (ClusterError, OSError, ValueError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
