"""The cgroup namespace (config-linux.md#namespaces): in a new one the container's
cgroups are the roots of its view; from outside, and without one, they are not.
"""

from __future__ import annotations

import pytest

from pytest_containers.adapters import HOST_KERNEL, RuntimeAdapter

from ._namespaces import inheriting, plain
from ._shared import SharedContainers
from ._support import needs, shell


@pytest.mark.requirement("RT-NS-CGROUP-1")
def test_cgroup_namespace_hides_the_hierarchy(
    shared: SharedContainers, runtime_adapter: RuntimeAdapter
) -> None:
    """In a new cgroup namespace the container's cgroups are its roots ("/"), while
    from outside (and from a container without one) they are not."""
    needs(runtime_adapter, HOST_KERNEL)
    inside = shell(plain(shared), "cat /proc/self/cgroup").splitlines()
    paths = {line.split(":", 2)[1]: line.split(":", 2)[2] for line in inside}
    assert paths and all(p == "/" for p in paths.values()), (
        f"the container's cgroups are not the roots of its view: {inside}"
    )
    without = shell(inheriting(shared), "cat /proc/self/cgroup").splitlines()
    assert any(line.split(":", 2)[2] != "/" for line in without), (
        f"without a cgroup namespace the container's cgroups look like roots too: {without}"
    )
