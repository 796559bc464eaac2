"""Defective clusters: the reference cluster with one component broken on purpose,
checked by a slice of the cluster conformance suite run in a subprocess. The named
requirement fails against the defect and passes against the intact cluster (the
control).

Two ways to break it: API server and scheduler defects apply to a cluster in this
process (hollow nodes only), reached through ``--cluster=kubeconfig:PATH``; controller
defects that need real nodes and their faults apply inside the daemon of the suite's own
``--cluster=reference`` cluster: the subprocess runs with a ``sitecustomize`` on its
``PYTHONPATH`` that, in the daemon process only, calls the defect function named by
``PC_CLUSTER_DEFECT`` (it patches a controller class before the daemon starts it, and
again after every API server restart, since the daemon inherits the environment)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reference_runtime.cluster import ApiServer
from reference_runtime.cluster.controlplane import ControlPlane
from reference_runtime.cluster.nodes import register_nodes
from reference_runtime.cluster.scheduler import Scheduler
from reference_runtime.cluster.scheduler.plugins import default_plugins

pytestmark = [pytest.mark.needs_root, pytest.mark.slow]
REPO = Path(__file__).parent.parent
SUITE = REPO / "conformance" / "cluster"


def ignore_resource_version(server: ApiServer, plane: ControlPlane) -> None:
    """An API server that does not check resourceVersion on update (last write wins)."""
    update = server.registry.update

    def careless(resource: Any, obj: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        (obj.get("metadata") or {}).pop("resourceVersion", None)
        return update(resource, obj, *args, **kwargs)

    server.registry.update = careless  # type: ignore[method-assign]


def ignore_requests(server: ApiServer, plane: ControlPlane) -> None:
    """A scheduler without the NodeResourcesFit filter: it binds beyond allocatable."""
    plugins = [p for p in default_plugins(server.registry) if p.NAME != "NodeResourcesFit"]
    plane.scheduler = Scheduler(server.registry, plane.config.scheduler, plugins=plugins)


def no_gc_orphaning(server: ApiServer, plane: ControlPlane) -> None:
    """An API server that treats orphan propagation as background: dependents deleted."""
    delete = server.registry.delete

    def eager(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("propagation_policy") == "Orphan":
            kwargs["propagation_policy"] = "Background"
        return delete(*args, **kwargs)

    server.registry.delete = eager  # type: ignore[method-assign]


@contextlib.contextmanager
def cluster(
    tmp_path: Path, defect: Callable[[ApiServer, ControlPlane], None] | None
) -> Iterator[Path]:
    """A reference cluster in this process (3 hollow nodes), with ``defect`` applied."""
    kubeconfig = tmp_path / "kubeconfig"
    with ApiServer.start(kubeconfig=kubeconfig) as server:
        list(register_nodes(server.registry, 0, 3))
        plane = ControlPlane(server.registry)
        if defect is not None:
            defect(server, plane)
        plane.start()
        try:
            yield kubeconfig
        finally:
            plane.stop()


def run_slice(
    tmp_path: Path,
    cluster_arg: str,
    module: str,
    select: str,
    *extra: str,
    env: dict[str, str] | None = None,
) -> dict[str, str]:
    """Run ``-k select`` of a suite module against the cluster; status by requirement."""
    report = tmp_path / "report.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(SUITE / module),
            "-k",
            select,
            "-q",
            "-p",
            "no:cacheprovider",
            f"--cluster={cluster_arg}",
            f"--conformance-json={report}",
            "-o",
            "cluster_synthetic_nodes=true",
            *extra,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, **(env or {})},
    )
    data = json.loads(report.read_text())
    return {r["id"]: r["status"] for r in data["requirements"]}


# -- defects inside the daemon of a reference cluster with node agents -------------------

SITECUSTOMIZE = """\
import os
import sys

if "reference_runtime.cluster.daemon" in sys.orig_argv and os.environ.get("PC_CLUSTER_DEFECT"):
    import importlib.util

    path, _, name = os.environ["PC_CLUSTER_DEFECT"].rpartition(":")
    spec = importlib.util.spec_from_file_location("cluster_defects", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    getattr(module, name)()
"""


def lost_pods_not_replaced() -> None:
    """A ReplicaSet controller that counts the pods it made (less those it deleted), not
    the pods there are: a pod deleted or evicted by someone else is never replaced."""
    from reference_runtime.cluster.controllers import replicaset
    from reference_runtime.cluster.controllers.pods import is_active

    manage = replicaset.ReplicaSetController._manage
    made: dict[str, int] = {}

    def counting(self: Any, rs: Any, ref: Any, owned: list[Any], replicas: int) -> str:
        active = sum(1 for p in owned if is_active(p))
        count = made.setdefault(rs["metadata"]["uid"], active)
        target = min(replicas, active + max(0, replicas - count))
        made[rs["metadata"]["uid"]] = count + target - active
        return str(manage(self, rs, ref, owned, target))

    replicaset.ReplicaSetController._manage = counting  # type: ignore[method-assign]


def silent_nodes_stay_ready() -> None:
    """A node lifecycle controller that never marks a silent node NotReady (so it never
    taints it, and nothing is evicted from it)."""
    from reference_runtime.cluster.controllers import nodelifecycle
    from reference_runtime.cluster.reconcile import Result

    def trusting(self: Any, key: Any) -> Result:
        return Result()

    nodelifecycle.NodeLifecycleController.reconcile = trusting  # type: ignore[method-assign]


def surge_ignored() -> None:
    """A Deployment controller that ignores maxSurge: a rollout makes every new pod at
    once."""
    from reference_runtime.cluster.controllers import deployment

    fenceposts = deployment.fenceposts

    def unbounded(max_surge: Any, max_unavailable: Any, desired: int) -> tuple[int, int]:
        return desired, fenceposts(max_surge, max_unavailable, desired)[1]

    deployment.fenceposts = unbounded


def daemon_defect(tmp_path: Path, defect: Callable[[], None]) -> dict[str, str]:
    """The environment that makes the daemons of the subprocess's clusters run ``defect``."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])),
        "PC_CLUSTER_DEFECT": f"{Path(__file__).resolve()}:{defect.__name__}",
    }


IN_PROCESS = [
    (ignore_resource_version, "test_api.py", "stale_resource_version", "CL-API-RV-1", ()),
    (
        ignore_requests,
        "test_scheduling.py",
        "placement",
        "CL-SCHED-FIT-1",
        ("--hypothesis-profile=thorough",),
    ),
    (no_gc_orphaning, "test_api.py", "orphan", "CL-GC-ORPHAN-1", ()),
]
IN_DAEMON = [
    (lost_pods_not_replaced, "test_reconciliation.py", "deleted_pod", "CL-REC-REPLACE-1"),
    (silent_nodes_stay_ready, "test_pods.py", "partitioned", "CL-POD-PARTITION-1"),
    (surge_ignored, "test_reconciliation.py", "rollout_keeps", "CL-REC-SURGE-1"),
]


@pytest.mark.parametrize(
    ("defect", "module", "select", "requirement", "extra"),
    IN_PROCESS,
    ids=[c[0].__name__ for c in IN_PROCESS],
)
def test_defect_fails_its_requirement(
    tmp_path: Path, defect: Any, module: str, select: str, requirement: str, extra: tuple[str, ...]
) -> None:
    with cluster(tmp_path / "broken", defect) as kubeconfig:
        broken = run_slice(tmp_path / "broken", f"kubeconfig:{kubeconfig}", module, select, *extra)
    assert broken.get(requirement) == "fail", broken.get(requirement)
    with cluster(tmp_path / "intact", None) as kubeconfig:
        intact = run_slice(tmp_path / "intact", f"kubeconfig:{kubeconfig}", module, select, *extra)
    assert intact.get(requirement) == "pass", intact.get(requirement)


@pytest.mark.parametrize(
    ("defect", "module", "select", "requirement"),
    IN_DAEMON,
    ids=[c[0].__name__ for c in IN_DAEMON],
)
def test_daemon_defect_fails_its_requirement(
    tmp_path: Path, defect: Callable[[], None], module: str, select: str, requirement: str
) -> None:
    (tmp_path / "broken").mkdir()
    env = daemon_defect(tmp_path, defect)
    broken = run_slice(tmp_path / "broken", "reference", module, select, env=env)
    assert broken.get(requirement) == "fail", broken.get(requirement)
    (tmp_path / "intact").mkdir()
    intact = run_slice(tmp_path / "intact", "reference", module, select)
    assert intact.get(requirement) == "pass", intact.get(requirement)
