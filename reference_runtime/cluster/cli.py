"""``reference-cluster``: start and stop a detached reference cluster.

``up`` starts the control plane as a daemon (``serve``, a new session, logs to the state
directory), waits until the API server answers and the nodes are Ready, echoing the
daemon's progress, and prints the kubeconfig path. ``down`` stops it by its PID and
removes its state (the SQLite file stays only if the user named it with ``--store``).
Every error is one line on stderr and exit status 1.

State lives in ``<state-dir>/<name>/`` (``--state-dir``, ``$REFERENCE_CLUSTER_STATE_DIR``,
default ``/run/reference-cluster``): ``cluster.json``, ``pid``, ``token``, ``server.log``,
the default kubeconfig and, by default, ``store.db``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from .errors import ClusterError

PROG = "reference-cluster"
DEFAULT_STATE_DIR = "/run/reference-cluster"
UP_TIMEOUT = 30.0
DOWN_TIMEOUT = 10.0


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
        "--insecure-http",
        action="store_true",
        help="plain HTTP instead of HTTPS (kubectl then sends no token: see the README)",
    )

    down = sub.add_parser("down", help="stop a cluster and remove its state")
    down.add_argument("--name", default="default")

    status = sub.add_parser("status", help="say whether a cluster is up")
    status.add_argument("--name", default="default")

    serve = sub.add_parser("serve", help=argparse.SUPPRESS)  # the daemon that `up` starts
    serve.add_argument("--config", required=True)
    serve.add_argument("--progress-fd", type=int, default=-1)
    return parser


# -- state ---------------------------------------------------------------------------------


def _cluster_dir(state_dir: str, name: str) -> Path:
    if not name or "/" in name or name.startswith("."):
        raise ClusterError(f"a cluster name is a plain name like 'default', not {name!r}")
    return Path(state_dir) / name


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a running reference-cluster daemon (not a reused PID)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"reference_runtime.cluster.cli" in cmdline and b"serve" in cmdline


def _read_config(cluster: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((cluster / "cluster.json").read_text()))
    except (OSError, ValueError):
        return {}


def _remove_state(cluster: Path, config: dict[str, Any]) -> None:
    kubeconfig = config.get("kubeconfig")
    if (
        kubeconfig
        and config.get("kubeconfig_owned")
        and not str(kubeconfig).startswith(str(cluster))
    ):
        try:
            text = Path(kubeconfig).read_text()
            if config.get("token") and config["token"] in text:
                Path(kubeconfig).unlink()
        except FileNotFoundError:
            pass  # already removed by the user
    shutil.rmtree(cluster, ignore_errors=True)


# -- up ------------------------------------------------------------------------------------


def _up(args: argparse.Namespace) -> int:
    cluster = _cluster_dir(args.state_dir, args.name)
    for flag, value in (("--nodes", args.nodes), ("--hollow-nodes", args.hollow_nodes)):
        if value < 0:
            raise ClusterError(f"{flag} must be 0 or more, not {value}")
    if not 0 <= args.port <= 65535:
        raise ClusterError(f"--port must be 0-65535, not {args.port}")
    old = _read_config(cluster)
    if old.get("pid") and _alive(int(old["pid"])):
        raise ClusterError(
            f"cluster {args.name} is already up (pid {old['pid']});"
            f" run '{PROG} down --name {args.name}' first"
        )
    if cluster.exists():
        _remove_state(cluster, old)  # left by a daemon that died: start afresh
    started = time.monotonic()
    cluster.mkdir(parents=True, mode=0o700)
    try:
        return _start_daemon(args, cluster, started)
    except BaseException:
        _remove_state(cluster, _read_config(cluster))
        raise


def _start_daemon(args: argparse.Namespace, cluster: Path, started: float) -> int:
    store = args.store or f"sqlite:{cluster / 'store.db'}"
    if args.store and args.store.startswith("sqlite:") and args.store != "sqlite::memory:":
        store = "sqlite:" + str(Path(args.store.removeprefix("sqlite:")).resolve())
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
    else:
        token = secrets.token_urlsafe(32)
    (cluster / "token").write_text(token + "\n")
    (cluster / "token").chmod(0o600)
    kubeconfig = Path(args.kubeconfig).resolve() if args.kubeconfig else cluster / "kubeconfig"
    config = {
        "name": args.name,
        "store": store,
        "keep_store": bool(args.store),
        "host": args.host,
        "port": args.port,
        "nodes": args.nodes,
        "hollow_nodes": args.hollow_nodes,
        "tls": not args.insecure_http,
        "kubeconfig": str(kubeconfig),
        "kubeconfig_owned": True,
        "token": token,
    }
    (cluster / "cluster.json").write_text(json.dumps(config, indent=2))
    (cluster / "cluster.json").chmod(0o600)
    read_fd, write_fd = os.pipe()
    with open(cluster / "server.log", "ab") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "reference_runtime.cluster.cli",
                "serve",
                "--config",
                str(cluster / "cluster.json"),
                "--progress-fd",
                str(write_fd),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            pass_fds=(write_fd,),
            start_new_session=True,
            cwd="/",
        )
    os.close(write_fd)
    print(f"starting cluster {args.name} (store {store})", flush=True)
    try:
        ready = _follow_progress(read_fd, proc, cluster)
    except BaseException:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        raise
    finally:
        os.close(read_fd)
    elapsed = time.monotonic() - started
    print(f"cluster {args.name} is up at {ready} in {elapsed:.2f}s (pid {proc.pid})", flush=True)
    print(f"kubeconfig: {kubeconfig}", flush=True)
    return 0


def _follow_progress(fd: int, proc: subprocess.Popen[bytes], cluster: Path) -> str:
    """Echo the daemon's progress lines until it says ``ready URL``; raise on failure."""
    deadline = time.monotonic() + UP_TIMEOUT
    buffer = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ClusterError(
                f"the cluster did not come up within {UP_TIMEOUT:.0f}s; see {cluster}/server.log"
            )
        readable, _, _ = select.select([fd], [], [], min(remaining, 0.5))
        chunk = os.read(fd, 4096) if readable else b""
        if readable and not chunk:
            proc.wait(5)
            tail = (cluster / "server.log").read_text(errors="replace").strip().splitlines()
            why = tail[-1] if tail else f"exit status {proc.returncode}"
            raise ClusterError(f"the cluster failed to start: {why}")
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            text = line.decode(errors="replace")
            if text.startswith("ready "):
                return text.removeprefix("ready ")
            if text.startswith("error "):
                raise ClusterError(text.removeprefix("error "))
            print(text, flush=True)


# -- serve (the daemon) --------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    from .api.server import ApiServer
    from .controlplane import ControlPlane
    from .nodes import register_nodes

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config_path = Path(args.config)
    config = json.loads(config_path.read_text())
    cluster = config_path.parent
    progress = (
        os.fdopen(args.progress_fd, "w", buffering=1) if args.progress_fd >= 0 else sys.stdout
    )

    def say(line: str) -> None:
        try:
            progress.write(line + "\n")
            progress.flush()
        except OSError:
            pass  # `up` has gone away: keep serving, the log has everything

    try:
        server = ApiServer(
            config["store"],
            host=config["host"],
            port=config["port"],
            token=config["token"],
            kubeconfig=config["kubeconfig"],
            name=config["name"],
            tls=config["tls"],
        )
    except (ClusterError, OSError, ValueError) as exc:
        say(f"error cannot start the API server: {exc}")
        return 1
    signal.signal(signal.SIGTERM, lambda *_: server.request_stop())
    signal.signal(signal.SIGINT, lambda *_: server.request_stop())
    (cluster / "pid").write_text(f"{os.getpid()}\n")
    config.update(pid=os.getpid(), url=server.url, port=server.port)
    config_path.write_text(json.dumps(config, indent=2))
    say(f"API server listening on {server.url}")
    try:
        for name in register_nodes(server.registry, config["nodes"], config["hollow_nodes"]):
            say(f"node {name} Ready")
    except ClusterError as exc:
        say(f"error cannot register nodes: {exc}")
        server.stop()
        return 1
    control_plane = ControlPlane(server.registry).start()  # scheduler and controllers
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


# -- down / status -------------------------------------------------------------------------


def _down(args: argparse.Namespace) -> int:
    cluster = _cluster_dir(args.state_dir, args.name)
    if not cluster.exists():
        raise ClusterError(f"no cluster named {args.name} is up (nothing in {cluster})")
    config = _read_config(cluster)
    pid = int(config.get("pid") or 0)
    if pid and _alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + DOWN_TIMEOUT
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    _remove_state(cluster, config)
    kept = f"; store kept at {config['store']}" if config.get("keep_store") else ""
    print(f"cluster {args.name} is down{kept}")
    return 0


def _status(args: argparse.Namespace) -> int:
    cluster = _cluster_dir(args.state_dir, args.name)
    config = _read_config(cluster)
    pid = int(config.get("pid") or 0)
    if not pid or not _alive(pid):
        raise ClusterError(f"cluster {args.name} is not up")
    print(
        f"cluster {args.name} is up at {config.get('url')} (pid {pid});"
        f" kubeconfig: {config.get('kubeconfig')}"
    )
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
        return _serve(args)
    except (ClusterError, OSError, ValueError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
