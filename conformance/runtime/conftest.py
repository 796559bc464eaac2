"""Fixtures of the runtime suite, each made once per test module that uses it: the
shared containers and rootfs defined here, and those of an area defined beside its
helpers (host trees for the filesystem modules in ``_mounts``, probe containers for the
operations modules in ``_probe``, the hook bench in ``_hooks``)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_containers.runtime import ContainerFactory

from ._hooks import bench
from ._mounts import fs_host, host_tree, locked_tree
from ._probe import fresh_id, probe_bundle, probed
from ._shared import SharedContainers

__all__ = [
    "bench",
    "fresh_id",
    "fs_host",
    "host_tree",
    "locked_tree",
    "probe_bundle",
    "probed",
    "rootfs",
    "shared",
]


@pytest.fixture(scope="module")
def shared(container_factory: ContainerFactory) -> Iterator[SharedContainers]:
    """The module's shared containers, in a directory of their own, removed at the end."""
    made = SharedContainers.in_new_directory(container_factory)
    yield made
    made.close()


@pytest.fixture(scope="module")
def rootfs(
    container_factory: ContainerFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """One root filesystem for the module's bundles, which name it by its absolute path
    (config.md#root): a bundle per example costs a config.json, not a rootfs copy. Every
    config keeps ``root.readonly``, so no container writes to it."""
    base = tmp_path_factory.mktemp("rootfs")
    yield container_factory.make_bundle(base) / "rootfs"
    shutil.rmtree(base, ignore_errors=True)
