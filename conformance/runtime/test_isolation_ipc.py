"""The ipc namespace (config-linux.md#namespaces, and this project's own guarantees):
the host's SysV IPC objects are invisible in the container, and the container's on the
host.
"""

from __future__ import annotations

import pytest

from pytest_containers.requirements import not_applicable

from ._namespaces import SYSV_KINDS, container_sysv_keys, host_sysv_keys, host_sysv_objects, plain
from ._shared import SharedContainers
from ._support import shell


@pytest.mark.requirement("RT-OWN-IPC-HOSTHIDDEN-1", "RT-NS-IPC-1")
def test_host_sysv_objects_are_invisible(shared: SharedContainers) -> None:
    c = plain(shared)
    with host_sysv_objects() as keys:
        assert all(keys[k] in host_sysv_keys()[k] for k in SYSV_KINDS)  # they exist
        seen = container_sysv_keys(c)
    leaked = {k: v for k, v in keys.items() if v in seen[k]}
    assert not leaked, f"host SysV objects visible in the container: {leaked}"


@pytest.mark.requirement("RT-OWN-IPC-CONTHIDDEN-1", "RT-NS-IPC-1")
def test_container_sysv_objects_are_invisible(shared: SharedContainers) -> None:
    c = plain(shared)
    before = container_sysv_keys(c)
    shell(c, "ipcmk -M 4096 && ipcmk -S 1 && ipcmk -Q")
    made = {k: v - before[k] for k, v in container_sysv_keys(c).items()}
    if not any(made.values()):  # ipcs lists nothing the container made: cannot tell
        not_applicable("ipcs in the container lists none of the SysV objects ipcmk made there")
    host = host_sysv_keys()
    leaked = {k: made[k] & host[k] for k in SYSV_KINDS if made[k] & host[k]}
    assert not leaked, f"SysV objects made in the container are visible on the host: {leaked}"
