"""Defective clusters: the reference cluster with one component broken on purpose, in
this process, checked by a slice of the cluster conformance suite run through
``--cluster=kubeconfig:PATH`` in a subprocess. The named requirement fails against the
defect and passes against the intact cluster (the control)."""

from __future__ import annotations

import contextlib
import json
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
    tmp_path: Path, kubeconfig: Path, module: str, select: str, *extra: str
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
            f"--cluster=kubeconfig:{kubeconfig}",
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
    )
    data = json.loads(report.read_text())
    return {r["id"]: r["status"] for r in data["requirements"]}


CASES = [
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


@pytest.mark.parametrize(
    ("defect", "module", "select", "requirement", "extra"),
    CASES,
    ids=[c[0].__name__ for c in CASES],
)
def test_defect_fails_its_requirement(
    tmp_path: Path, defect: Any, module: str, select: str, requirement: str, extra: tuple[str, ...]
) -> None:
    with cluster(tmp_path / "broken", defect) as kubeconfig:
        broken = run_slice(tmp_path / "broken", kubeconfig, module, select, *extra)
    assert broken.get(requirement) == "fail", broken.get(requirement)
    with cluster(tmp_path / "intact", None) as kubeconfig:
        intact = run_slice(tmp_path / "intact", kubeconfig, module, select, *extra)
    assert intact.get(requirement) == "pass", intact.get(requirement)
