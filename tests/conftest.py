"""Shared fixtures for the project's own tests (see tests/README.md)."""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reference_runtime import Runtime
from reference_runtime.rootfs_builder import make_bundle
from reference_runtime.spec import default_spec

_ids = itertools.count()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="needs root: these tests use real namespaces and cgroups")
        for item in items:
            if "needs_root" in item.keywords:
                item.add_marker(skip)


@pytest.fixture
def container_id(request: pytest.FixtureRequest) -> Callable[[], str]:
    """A factory of unique container IDs, named after the test."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    base = request.node.name.replace("[", "-").replace("]", "").replace("/", "-")[:60]

    def make() -> str:
        return f"t-{worker}-{os.getpid()}-{base}-{next(_ids)}"

    return make


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    """A reference runtime over a private state root; every container is gone afterwards."""
    rt = Runtime(tmp_path / "state")
    yield rt
    leftovers = [s.id for s in rt.list()]
    for cid in leftovers:
        rt.delete(cid, force=True)
    assert not leftovers, f"test left containers behind: {leftovers}"


@pytest.fixture
def busybox_bundle(tmp_path: Path) -> Callable[..., Path]:
    """A factory of busybox bundles: ``bundle(["sh", "-c", "..."], **top_level_overrides)``.

    ``edit`` is an optional callable that changes the config dict in place.
    """
    counter = itertools.count()

    def make(
        args: list[str] | None = None,
        edit: Callable[[dict[str, Any]], None] | None = None,
        **overrides: Any,
    ) -> Path:
        config = default_spec(args or ["true"])
        config.update(overrides)
        if edit is not None:
            edit(config)
        return make_bundle(tmp_path / f"bundle{next(counter)}", config=config)

    return make


class Output:
    """A file the container writes its stdout and stderr to."""

    def __init__(self) -> None:
        self.file = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the fixture
        self.null = os.open(os.devnull, os.O_RDONLY)

    @property
    def stdio(self) -> tuple[int, int, int]:
        return (self.null, self.file.fileno(), self.file.fileno())

    def read(self) -> str:
        self.file.seek(0)
        return self.file.read().decode()

    def close(self) -> None:
        self.file.close()
        os.close(self.null)


@pytest.fixture
def output() -> Iterator[Callable[[], Output]]:
    made: list[Output] = []

    def make() -> Output:
        out = Output()
        made.append(out)
        return out

    yield make
    for out in made:
        out.close()


@pytest.fixture
def run_capture(
    runtime: Runtime, container_id: Callable[[], str], output: Callable[[], Output]
) -> Callable[[Path], tuple[int, str]]:
    """Run a bundle to completion; returns (exit status, stdout+stderr)."""

    def run(bundle_dir: Path) -> tuple[int, str]:
        out = output()
        code = runtime.run(container_id(), bundle_dir, stdio=out.stdio)
        return code, out.read()

    return run
