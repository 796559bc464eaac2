"""``ClusterHandle``: start, inspect, break and stop a reference cluster from Python.

    cluster = ClusterHandle.up("demo", nodes=3, state_dir=tmp)   # API answers, nodes Ready
    cluster.kubeconfig, cluster.url, cluster.token, cluster.node_names
    cluster.stop_node("reference-node-2")                        # faults
    cluster.down()                                               # everything is gone

``reference-cluster up/down/node`` is a thin layer over this class. Everything a cluster
makes is recorded in ``<state_dir>/<name>/cluster.json`` as it is made (processes by PID
and start time, network namespaces, links, cgroups), so ``down`` (or a later ``up`` of
the same name after a crash) removes exactly that and nothing else.
"""

from __future__ import annotations

import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import ApiError, ApiUnreachableError, ClusterError
from .procs import ProcessRecord, spawn_detached
from .timings import Timings

__all__ = ["DEFAULT_STATE_DIR", "ClusterHandle", "default_state_dir", "read_cluster_config"]

DEFAULT_STATE_DIR = "/run/reference-cluster"
STOP_TIMEOUT = 10.0

Progress = Callable[[str], None]


def default_state_dir() -> Path:
    """``$REFERENCE_CLUSTER_STATE_DIR``, or ``/run/reference-cluster``."""
    return Path(os.environ.get("REFERENCE_CLUSTER_STATE_DIR") or DEFAULT_STATE_DIR)


def _cluster_dir(state_dir: Path | None, name: str) -> Path:
    if not name or "/" in name or name.startswith(".") or len(name) > 40:
        raise ClusterError(f"a cluster name is a plain name like 'default', not {name!r}")
    return Path(state_dir or default_state_dir()).resolve() / name


def _read_config(cluster: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((cluster / "cluster.json").read_text()))
    except (OSError, ValueError):
        return {}


def read_cluster_config(state_dir: Path | None, name: str) -> dict[str, Any]:
    """What ``cluster.json`` records for cluster ``name`` ({} if nothing)."""
    return _read_config(_cluster_dir(state_dir, name))


def _write_config(cluster: Path, config: dict[str, Any]) -> None:
    tmp = cluster / ".cluster.json.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(config, f, indent=2)
    os.replace(tmp, cluster / "cluster.json")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ClusterHandle:
    """One cluster started by ``up`` (or found by ``attach``); see the module docstring."""

    def __init__(self, cluster_dir: Path, config: dict[str, Any]) -> None:
        self.name: str = config["name"]
        self.state_dir: Path = cluster_dir.parent
        self.dir = cluster_dir
        self.kubeconfig: Path = Path(config["kubeconfig"])
        self.url: str = config.get("url", "")
        self.token: str = config["token"]
        self.ca_cert: Path | None = Path(config["tls_cert"]) if config.get("tls_cert") else None
        self.node_names: list[str] = list(config.get("node_names") or [])
        self.timings = Timings.from_dict(config.get("timings") or {})
        self._config = config

    def __repr__(self) -> str:
        return f"<ClusterHandle {self.name} at {self.url or '(not up)'}>"

    # -- starting ----------------------------------------------------------------------

    @classmethod
    def up(
        cls,
        name: str,
        *,
        state_dir: Path | None = None,
        nodes: int = 1,
        hollow_nodes: int = 0,
        store: str = "sqlite",
        kubeconfig: Path | None = None,
        node_runtime: str = "reference",
        progress: Progress | None = None,
        timeout: float = 30.0,
        timings: Timings | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: bool = True,
        token: str | None = None,
    ) -> ClusterHandle:
        """Start a cluster; returns once the API answers and every node is Ready.

        ``store``: ``sqlite`` (a file in the state dir), ``sqlite:PATH`` (kept by
        ``down``), ``etcd`` (an etcd of its own on loopback) or
        ``etcd://HOST:PORT[/PREFIX]`` (kept). On failure nothing is left behind and a
        one-line ``ClusterError`` says why.
        """
        say = progress or (lambda line: None)
        cluster = _cluster_dir(state_dir, name)
        for label, value in (("nodes", nodes), ("hollow_nodes", hollow_nodes)):
            if not isinstance(value, int) or value < 0:
                raise ClusterError(f"{label} must be 0 or more, not {value!r}")
        if not 0 <= port <= 65535:
            raise ClusterError(f"port must be 0-65535, not {port}")
        if node_runtime not in ("reference", "runc"):
            raise ClusterError(f"node_runtime is 'reference' or 'runc', not {node_runtime!r}")
        if node_runtime == "runc" and nodes and shutil.which("runc") is None:
            raise ClusterError("node_runtime 'runc' needs runc on PATH (apt-get install runc)")
        if not (store in ("sqlite", "etcd") or store.startswith(("sqlite:", "etcd://"))):
            raise ClusterError(
                f"a store is sqlite, sqlite:PATH, etcd or etcd://HOST:PORT, not {store!r}"
            )
        old = _read_config(cluster)
        if old and cls(cluster, old)._daemon_alive():
            raise ClusterError(
                f"cluster {name} is already up (pid {old['daemon']['pid']});"
                f" run 'reference-cluster down --name {name}' first"
            )
        if cluster.exists():
            cls._teardown(cluster, old)  # left by a cluster that died: start afresh
        started = time.monotonic()
        cluster.mkdir(parents=True, mode=0o700)
        config: dict[str, Any] = {
            "name": name,
            "nodes": nodes,
            "hollow_nodes": hollow_nodes,
            "node_runtime": node_runtime,
            "host": host,
            "tls": tls,
            "timings": (timings or Timings()).to_dict(),
        }
        _write_config(cluster, config)
        try:
            handle = cls._start(cluster, config, store, kubeconfig, port, token, say, timeout)
        except BaseException as exc:
            cls._teardown(cluster, _read_config(cluster))
            if isinstance(exc, (OSError, ValueError)):
                raise ClusterError(f"cannot start cluster {name}: {exc}") from None
            raise
        say(f"cluster {name} is up at {handle.url} in {time.monotonic() - started:.2f}s")
        return handle

    @classmethod
    def _start(
        cls,
        cluster: Path,
        config: dict[str, Any],
        store: str,
        kubeconfig: Path | None,
        port: int,
        token: str | None,
        say: Progress,
        timeout: float,
    ) -> ClusterHandle:
        deadline = time.monotonic() + timeout
        keep_store = store not in ("sqlite", "etcd")
        if store == "sqlite":
            store = f"sqlite:{cluster / 'store.db'}"
        elif store.startswith("sqlite:") and store != "sqlite::memory:":
            store = "sqlite:" + str(Path(store.removeprefix("sqlite:")).resolve())
        token = token or secrets.token_urlsafe(32)
        (cluster / "token").write_text(token + "\n")
        (cluster / "token").chmod(0o600)
        kubeconfig = Path(kubeconfig).resolve() if kubeconfig else cluster / "kubeconfig"
        config.update(
            store=store,
            keep_store=keep_store,
            token=token,
            kubeconfig=str(kubeconfig),
            port=port or _free_port(),
            placeholder_nodes=0,
            node_names=[f"reference-node-{i}" for i in range(1, config["nodes"] + 1)]
            + [f"hollow-node-{i}" for i in range(1, config["hollow_nodes"] + 1)],
        )
        _write_config(cluster, config)
        cls._make_node_hosts(cluster, config)
        if store == "etcd":
            from .owned_etcd import start_etcd

            record, url = start_etcd(cluster / "etcd", deadline)
            config.update(etcd=record.to_dict(), store=url, etcd_url=url)
            _write_config(cluster, config)
            say(f"etcd started at {url} (pid {record.pid})")
        if config["tls"]:
            from .tls import make_self_signed

            cert, key = make_self_signed(cluster / "tls", config.get("listen") or ())
            config.update(tls_cert=str(cert), tls_key=str(key))
        _write_config(cluster, config)
        handle = cls(cluster, config)
        for node in config["agents"]:
            handle._start_agent(node)
        handle._start_daemon(say, deadline)
        handle._wait_nodes_ready(say, deadline)
        return handle

    @staticmethod
    def _make_node_hosts(cluster: Path, config: dict[str, Any]) -> None:
        """Network namespace, link and cgroup parent of every node with an agent."""
        from . import nodehost

        agents: dict[str, Any] = {}
        config["agents"] = agents
        for i in range(1, config["nodes"] + 1):
            node = f"reference-node-{i}"
            host = nodehost.plan(config["name"], node)
            if Path(f"/run/netns/{host['netns']}").exists():  # someone else's: not recorded
                raise ClusterError(
                    f"network namespace {host['netns']} exists already: is another cluster"
                    " of that name up? Pick another name"
                )
            agents[node] = {"index": i, "host": host, "process": None}
            _write_config(cluster, config)  # recorded before it is made
            nodehost.create(host)
        config["listen"] = [a["host"]["host_ip"] for a in agents.values()]
        _write_config(cluster, config)

    def _start_agent(self, node: str) -> None:
        """Start the node's runtime service (unless it runs) and its agent."""
        from .agent.config import AgentConfig

        agent = self._config["agents"][node]
        host = agent["host"]
        directory = self.dir / "nodes" / node
        directory.mkdir(parents=True, exist_ok=True)
        scheme = "https" if self._config["tls"] else "http"
        config = AgentConfig(
            node=node,
            index=int(agent["index"]),
            url=f"{scheme}://{host['host_ip']}:{self._config['port']}",
            token=self.token,
            ca_cert=self._config.get("tls_cert"),
            netns=host["netns"],
            node_ip=host["node_ip"],
            cgroup_parent=host["cgroup"],
            state=str(directory),
            logs=str(self.dir / "logs"),
            images=str(self.dir / "images"),
            node_runtime=self._config["node_runtime"],
            timings=self.timings,
        )
        config.write(directory / "agent.json")
        service = agent.get("runtime_process")
        if not (service and ProcessRecord.from_dict(service).alive()):
            record = self._spawn_node_process(
                "reference_runtime.cluster.agent.runtimed", directory, f"runtime service of {node}"
            )
            agent["runtime_process"] = record.to_dict()
            _write_config(self.dir, self._config)
        record = self._spawn_node_process(
            "reference_runtime.cluster.agent", directory, f"node agent of {node}"
        )
        agent["process"] = record.to_dict()
        _write_config(self.dir, self._config)

    @staticmethod
    def _spawn_node_process(module: str, directory: Path, what: str) -> ProcessRecord:
        """``python -m MODULE --config <node>/agent.json``, logging to ``<node>/<name>.log``."""
        name = "agent" if module.endswith(".agent") else module.rsplit(".", 1)[1]
        config = str(directory / "agent.json")
        _, record = spawn_detached(
            [sys.executable, "-m", module, "--config", config],
            what=what,
            log=directory / f"{name}.log",
        )
        return record

    @classmethod
    def from_state(cls, state_dir: Path | None, name: str) -> ClusterHandle:
        """A handle over whatever is recorded for ``name``, running or not (for ``down``)."""
        cluster = _cluster_dir(state_dir, name)
        config = _read_config(cluster)
        config.setdefault("name", name)
        config.setdefault("token", "")
        config.setdefault("kubeconfig", str(cluster / "kubeconfig"))
        return cls(cluster, config)

    @classmethod
    def attach(cls, name: str, *, state_dir: Path | None = None) -> ClusterHandle:
        """The handle of a cluster that is up (started by ``up`` here or elsewhere)."""
        cluster = _cluster_dir(state_dir, name)
        config = _read_config(cluster)
        if not config.get("daemon"):
            raise ClusterError(f"no cluster named {name} is up (nothing in {cluster})")
        handle = cls(cluster, config)
        if not handle._daemon_alive():
            raise ClusterError(
                f"cluster {name} is not running (its daemon is gone);"
                f" run 'reference-cluster down --name {name}' to clean up"
            )
        return handle

    # -- the daemon --------------------------------------------------------------------

    def _daemon_alive(self) -> bool:
        daemon = self._config.get("daemon")
        return daemon is not None and ProcessRecord.from_dict(daemon).alive()

    def _start_daemon(self, say: Progress, deadline: float) -> None:
        read_fd, write_fd = os.pipe()
        try:
            proc, record = spawn_detached(
                [
                    sys.executable,
                    "-m",
                    "reference_runtime.cluster.daemon",
                    "--config",
                    str(self.dir / "cluster.json"),
                    "--progress-fd",
                    str(write_fd),
                ],
                what=f"API server and controllers of cluster {self.name}",
                log=self.dir / "server.log",
                pass_fds=(write_fd,),
            )
        finally:
            os.close(write_fd)
        self._config["daemon"] = record.to_dict()
        _write_config(self.dir, self._config)
        try:
            self.url = self._follow_progress(read_fd, proc, say, deadline)
        finally:
            os.close(read_fd)
        self._config["url"] = self.url
        _write_config(self.dir, self._config)

    def _follow_progress(
        self, fd: int, proc: subprocess.Popen[bytes], say: Progress, deadline: float
    ) -> str:
        """Pass on the daemon's progress lines until it says ``ready URL``."""
        buffer = b""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ClusterError(
                    f"the cluster did not come up in time; see {self.dir}/server.log"
                )
            readable, _, _ = select.select([fd], [], [], min(remaining, 0.5))
            chunk = os.read(fd, 4096) if readable else b""
            if readable and not chunk:
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    pass  # still running but closed its progress pipe: report what we know
                log = (self.dir / "server.log").read_text(errors="replace").strip()
                tail = log.splitlines()
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
                say(text)

    def client(self, timeout: float = 10.0) -> Any:
        """A small ``ApiClient`` (stdlib only) for this cluster."""
        from .client import ApiClient

        ca = self.ca_cert.read_bytes() if self.ca_cert else None
        return ApiClient(self.url, self.token, ca_cert=ca, timeout=timeout)

    def ready_nodes(self) -> set[str]:
        """The names of the Nodes whose Ready condition is True now."""
        api = self.client()
        try:
            nodes = api.get("/api/v1/nodes")["items"]
        finally:
            api.close()
        ready = set()
        for node in nodes:
            for condition in (node.get("status") or {}).get("conditions") or []:
                if condition.get("type") == "Ready" and condition.get("status") == "True":
                    ready.add(node["metadata"]["name"])
        return ready

    def _wait_nodes_ready(self, say: Progress, deadline: float) -> None:
        seen: set[str] = set()
        wanted = set(self.node_names)
        while True:
            try:
                ready = self.ready_nodes()
            except (ApiError, ApiUnreachableError):
                ready = set()
            for name in sorted(ready & wanted - seen, key=self.node_names.index):
                say(f"node {name} Ready")
            seen |= ready & wanted
            if wanted <= seen:
                return
            if time.monotonic() > deadline:
                missing = ", ".join(sorted(wanted - seen))
                raise ClusterError(f"nodes not Ready in time: {missing}; see {self.dir}/server.log")
            time.sleep(0.01)

    # -- faults ------------------------------------------------------------------------

    def _agent_node(self, node: str) -> dict[str, Any]:
        if node not in self.node_names:
            known = ", ".join(self.node_names) or "none"
            raise ClusterError(f"cluster {self.name} has no node {node!r} (nodes: {known})")
        agents = self._config.get("agents") or {}
        if node not in agents:
            raise ClusterError(
                f"node {node} has no node agent (hollow or placeholder node): "
                "faults need a node with an agent"
            )
        return dict(agents[node])

    def stop_node(self, node: str) -> None:
        """Kill the node's agent with SIGKILL, as a crash; its containers keep running
        (the node's runtime service still records their exits)."""
        agent = self._agent_node(node)
        if agent.get("process"):
            ProcessRecord.from_dict(agent["process"]).stop(0.0, sig=signal.SIGKILL)
        self._config["agents"][node]["process"] = None
        _write_config(self.dir, self._config)

    def start_node(self, node: str) -> None:
        """Start the node's agent again; it adopts the containers the last one left running
        for pods still bound to the node and unchanged, and removes the others."""
        agent = self._agent_node(node)
        if agent.get("process") and ProcessRecord.from_dict(agent["process"]).alive():
            return
        self._start_agent(node)

    def partition_node(self, node: str) -> None:
        """Cut the node's network link to the API server (its host end goes down)."""
        from . import nodehost

        nodehost.set_link(self._agent_node(node)["host"], False)

    def heal_node(self, node: str) -> None:
        """Restore the node's network link."""
        from . import nodehost

        nodehost.set_link(self._agent_node(node)["host"], True)

    def restart_api_server(self) -> None:
        """Stop the API server and controllers and start them again on the same URL."""
        self._restart_daemon()

    def _restart_daemon(self) -> None:
        daemon = self._config.get("daemon")
        if daemon:
            ProcessRecord.from_dict(daemon).stop(STOP_TIMEOUT)
        deadline = time.monotonic() + 30.0
        self._start_daemon(lambda line: None, deadline)

    def _owned_etcd(self) -> ProcessRecord | None:
        if "etcd_url" not in self._config:
            raise ClusterError(
                f"cluster {self.name} does not own its store ({self._config.get('store')});"
                " only a cluster started with store='etcd' can stop and start it"
            )
        etcd = self._config.get("etcd")
        return ProcessRecord.from_dict(etcd) if etcd else None

    def stop_store(self) -> None:
        """Stop the cluster's own etcd (SIGTERM); the API server answers 503 meanwhile."""
        record = self._owned_etcd()
        if record is not None:
            record.stop(STOP_TIMEOUT)
        self._config["etcd"] = None
        _write_config(self.dir, self._config)

    def start_store(self) -> None:
        """Start the cluster's own etcd again, on the same port and data."""
        record = self._owned_etcd()
        if record is not None and record.alive():
            return
        from .owned_etcd import start_etcd

        record, _ = start_etcd(
            self.dir / "etcd", time.monotonic() + 30.0, url=self._config["etcd_url"]
        )
        self._config["etcd"] = record.to_dict()
        _write_config(self.dir, self._config)

    # -- stopping ----------------------------------------------------------------------

    def host_resources(self) -> list[str]:
        """Every process, network namespace, link, cgroup and directory this cluster made
        that still exists, one description each (for leak reports)."""
        return self._resources(self.dir, _read_config(self.dir) or self._config)

    @staticmethod
    def _resources(cluster: Path, config: dict[str, Any]) -> list[str]:
        from . import nodehost

        found = []
        for record in _process_records(config):
            if record.alive():
                found.append(f"process {record.pid} ({record.what})")
        for agent in (config.get("agents") or {}).values():
            found.extend(nodehost.exists(agent["host"]))
        if cluster.exists():
            found.append(f"state directory {cluster}")
        return found

    def down(self) -> None:
        """Stop everything the cluster runs and remove what it made (idempotent)."""
        self._teardown(self.dir, _read_config(self.dir) or self._config)

    @staticmethod
    def _teardown(cluster: Path, config: dict[str, Any]) -> None:
        from . import nodehost

        records = _process_records(config)
        for record in records:
            record.stop(STOP_TIMEOUT)
        for node, agent in (config.get("agents") or {}).items():
            _delete_containers(config.get("node_runtime") or "reference", cluster / "nodes" / node)
            nodehost.remove(agent["host"])  # kills the containers left in its cgroups
        kubeconfig = config.get("kubeconfig")
        if kubeconfig and not str(kubeconfig).startswith(str(cluster) + "/"):
            try:
                if config.get("token") and config["token"] in Path(kubeconfig).read_text():
                    Path(kubeconfig).unlink()
            except FileNotFoundError:
                pass  # already removed by the user
        shutil.rmtree(cluster, ignore_errors=True)


def _process_records(config: dict[str, Any]) -> list[ProcessRecord]:
    """The recorded processes: agents first, then the nodes' runtime services (which
    delete their containers as they stop), then the daemon, then etcd."""
    agents = (config.get("agents") or {}).values()
    records = [
        ProcessRecord.from_dict(agent[key])
        for key in ("process", "runtime_process")
        for agent in agents
        if agent.get(key)
    ]
    for key in ("daemon", "etcd"):
        if config.get(key):
            records.append(ProcessRecord.from_dict(config[key]))
    return records


def _delete_containers(runtime: str, node_state: Path) -> None:
    """Delete (forced) what the node's runtime state still holds: left when its runtime
    service could not stop in time, or was killed."""
    if not node_state.is_dir():
        return
    from .agent.drivers import DriverError, open_driver

    try:
        driver = open_driver(runtime, node_state)
    except DriverError:
        return  # the runtime is gone from the host: the cgroups' removal kills the rest
    for listed in driver.containers():
        driver.delete(listed.id)
