"""Fixtures of the cluster suite: the API clients of ``cluster`` (from the plugin)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from pytest_containers.clusters import ClusterAdapter

from ._support import NodeSpec, apps, core, synthetic_node, wait_for


@pytest.fixture(scope="session")
def v1(cluster: ClusterAdapter) -> Any:
    """``CoreV1Api`` of the cluster under test."""
    return core(cluster)


@pytest.fixture(scope="session")
def apps_v1(cluster: ClusterAdapter) -> Any:
    """``AppsV1Api`` of the cluster under test."""
    return apps(cluster)


@pytest.fixture
def synthetic_nodes(cluster: ClusterAdapter, v1: Any, cluster_namespace: str) -> Iterator[Any]:
    """``register(specs) -> names``: Nodes of this test only, deleted afterwards."""
    made: list[str] = []

    def register(specs: list[NodeSpec]) -> list[str]:
        if not cluster.synthetic_nodes:
            pytest.skip(
                f"the {cluster.kind} cluster cannot register synthetic nodes: "
                "these properties run against the reference cluster"
            )
        names = []
        for spec in specs:
            name = f"{cluster_namespace}-n{len(made)}"
            v1.create_node(synthetic_node(name, spec, cluster_namespace))
            made.append(name)
            names.append(name)
        return names

    def remove_nodes() -> None:
        while made:
            with contextlib.suppress(ApiException):  # 404: already gone
                v1.delete_node(made.pop())

    def clear() -> None:
        """Between examples: the test's pods and nodes gone (its controllers first)."""
        v1.delete_collection_namespaced_pod(cluster_namespace, grace_period_seconds=0)
        remove_nodes()
        wait_for(lambda: not v1.list_namespaced_pod(cluster_namespace).items, "pods removed")

    register.clear = clear  # type: ignore[attr-defined]
    yield register
    remove_nodes()  # the pods go with the namespace
