"""The mount namespace (config-linux.md#namespaces, and this project's own
guarantees): mounts made in the container do not show on the host, and the host's
mounts do not show in the container.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_containers.adapters import HOST_KERNEL, RuntimeAdapter
from pytest_containers.adapters.handle import Container

from ._namespaces import SLEEPER, WAIT
from ._support import add_capabilities, edit_config, expressible, shell


@pytest.mark.requirement("RT-OWN-MNT-HOSTHIDDEN-1", "RT-NS-MNT-1")
def test_container_mounts_are_invisible_on_host(
    bundle: Callable[..., Path], container: Callable[..., Container]
) -> None:
    token = f"pc-inner-{secrets.token_hex(4)}"
    path = edit_config(bundle(SLEEPER), add_capabilities("CAP_SYS_ADMIN"))
    with expressible():
        c = container(bundle=path)
    shell(c, f"mkdir -p /dev/{token} && mount -t tmpfs {token} /dev/{token}")
    assert token in shell(c, "cat /proc/self/mountinfo"), "the mount failed in the container"
    for view in ("/proc/self/mountinfo", "/proc/1/mountinfo"):
        assert token not in Path(view).read_text(), f"the container's mount shows in {view}"


@pytest.mark.requirement("RT-OWN-MNT-CONTHIDDEN-1", "RT-NS-MNT-1")
def test_host_mounts_are_invisible_in_container(
    bundle: Callable[..., Path],
    container: Callable[..., Container],
    tmp_path: Path,
    runtime_adapter: RuntimeAdapter,
) -> None:
    """A mount the host made before create is not in the container's mount table, and
    no host filesystem shows anywhere the configuration did not put one."""
    token = f"pc-host-{secrets.token_hex(4)}"
    where = tmp_path / token
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", token, str(where)], check=True, timeout=WAIT)
    try:
        path = bundle(SLEEPER)
        with expressible():
            c = container(bundle=path)
        mountinfo = shell(c, "cat /proc/self/mountinfo")
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False, timeout=WAIT)
    assert token not in mountinfo, f"the host's mount {where} shows in the container"
    if HOST_KERNEL in runtime_adapter.unsupported:
        return  # device numbers inside are the sandbox kernel's own: nothing to compare
    config = json.loads((path / "config.json").read_text())
    allowed = [m["destination"] for m in config["mounts"]]
    allowed += config["linux"].get("maskedPaths", []) + config["linux"].get("readonlyPaths", [])
    host_devices = {
        line.split()[2] for line in Path("/proc/self/mountinfo").read_text().splitlines()
    }
    strays = [
        f"{fields[4]} ({fields[2]})"
        for fields in (line.split() for line in mountinfo.splitlines())
        if fields[4] != "/"
        and not any(fields[4] == a or fields[4].startswith(a + "/") for a in allowed)
        and fields[2] in host_devices
    ]
    assert not strays, f"host filesystems mounted where the configuration asks for none: {strays}"
