"""Fixtures of the cluster suite: the API clients of ``cluster`` (from the plugin)."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_containers.clusters import ClusterAdapter

from ._support import apps, core


@pytest.fixture(scope="session")
def v1(cluster: ClusterAdapter) -> Any:
    """``CoreV1Api`` of the cluster under test."""
    return core(cluster)


@pytest.fixture(scope="session")
def apps_v1(cluster: ClusterAdapter) -> Any:
    """``AppsV1Api`` of the cluster under test."""
    return apps(cluster)
