"""Containers with resource limits, for the limits modules (not a test module).

Values are chosen by Hypothesis; each test draws a share of the profile's examples.
Settings a runtime may lack (burst, idle, realtime, block I/O, huge pages, net_cls,
unified) make the test not applicable when the runtime refuses them with an error
(config.md#valid-values) and fail it when the runtime accepts them and they are not in
the cgroup.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pytest_containers.adapters import bundle_config
from pytest_containers.adapters.handle import Container
from pytest_containers.errors import ContainersError, RuntimeCommandError
from pytest_containers.requirements import not_applicable
from pytest_containers.runtime import ContainerFactory

from ._examples import share
from ._support import expressible

# How a setting maps to its cgroup file rarely depends on the value: 2 examples in ci.
MAPPING = share(0.4)
# Workloads under a limit (OOM, forks): 3 in ci.
BEHAVIOUR = share(0.6)
# Workloads that run for a while (a CPU quota window, a stalled OOM): 1 in ci.
COSTLY = share(0.2)

MiB = 1 << 20


def config_of(
    resources: dict[str, Any], command: Sequence[str] = ("sleep", "600")
) -> dict[str, Any]:
    config = bundle_config(command)
    config["linux"]["resources"].update(resources)
    return config


@contextlib.contextmanager
def limited_container(
    factory: ContainerFactory,
    directory: Path,
    rootfs: Path,
    config: dict[str, Any],
    optional: str = "",
) -> Iterator[Container]:
    """A started container of ``config``, deleted afterwards. With ``optional``, the
    setting it names may be one a runtime lacks: a refusal makes the test not applicable
    (config.md#valid-values asks such a runtime for an error), with the runtime's words."""
    __tracebackhide__ = True
    config["root"]["path"] = str(rootfs)
    bundle = Path(tempfile.mkdtemp(prefix="bundle-", dir=directory))
    (bundle / "config.json").write_text(json.dumps(config))
    try:
        with expressible():
            try:
                handle = factory.make_container(directory, bundle=bundle)
            except RuntimeCommandError as exc:
                if not optional:
                    raise
                not_applicable(f"{factory.adapter.name} refuses {optional}: {exc.runtime_message}")
        try:
            yield handle
        finally:
            stop(handle)
            factory.remove(handle)
    finally:
        shutil.rmtree(bundle)


def stop(handle: Container) -> None:
    """SIGKILL and reap the container's process: a runtime deletes a stopped container
    much faster than it force-deletes a running one (runc: 20 ms against 120 ms)."""
    with contextlib.suppress(ContainersError, TimeoutError):  # stopped or gone already
        handle.kill(9)
        handle.wait(5)
