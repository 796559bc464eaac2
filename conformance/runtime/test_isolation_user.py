"""The user namespace (config-linux.md#namespaces, "User namespace mappings"): the
configured UID and GID mappings, and the rootfs's ownership left as it was.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_containers.adapters import HOST_PID, USER_NAMESPACE, RuntimeAdapter
from pytest_containers.adapters.handle import Container

from ._shared import SharedContainers
from ._support import Config, needs, shell

UID_MAPS = [
    {"containerID": 0, "hostID": 100000, "size": 1000},
    {"containerID": 1000, "hostID": 201000, "size": 1000},
]
GID_MAPS = [
    {"containerID": 0, "hostID": 100000, "size": 1000},
    {"containerID": 1000, "hostID": 301000, "size": 1000},
]
INSIDE_USER = (1000, 1001)  # host 201000:301001, through the second entries


def userns_config(config: Config) -> None:
    config["linux"]["namespaces"].append({"type": "user"})
    config["linux"]["uidMappings"] = UID_MAPS
    config["linux"]["gidMappings"] = GID_MAPS


def with_user_namespace(shared: SharedContainers, runtime_adapter: RuntimeAdapter) -> Container:
    needs(runtime_adapter, USER_NAMESPACE)
    outbox = shared.directory / "userns-outbox"
    outbox.mkdir(exist_ok=True)
    outbox.chmod(0o777)
    return shared.get(
        "userns",
        ["sh", "-c", "touch /outbox/made-by-init; exec sleep 3600"],
        userns_config,
        # the mount point exists: the container's root may not write to the rootfs
        prepare=lambda b: (b / "rootfs" / "outbox").mkdir(),
        user=INSIDE_USER,
        mounts=[(str(outbox), "/outbox")],
    )


def _mapped(maps: list[dict[str, int]], inside: int) -> int:
    for m in maps:
        if m["containerID"] <= inside < m["containerID"] + m["size"]:
            return m["hostID"] + inside - m["containerID"]
    raise ValueError(inside)


def _maps(text: str) -> list[tuple[int, ...]]:
    return sorted(tuple(map(int, line.split())) for line in text.splitlines() if line.strip())


@pytest.mark.requirement("RT-NS-USER-1", "RT-NS-USERMAP-1", "RT-NS-USERMAP-2")
def test_user_namespace_maps_ids(shared: SharedContainers, runtime_adapter: RuntimeAdapter) -> None:
    """The container process runs as process.user inside its user namespace, whose maps
    are the configured ones, and as the mapped IDs on the host (a file it made shows)."""
    c = with_user_namespace(shared, runtime_adapter)
    out = shell(c, "grep -E '^(Uid|Gid):' /proc/1/status; echo; cat /proc/1/uid_map; echo; "
                "cat /proc/1/gid_map")  # fmt: skip
    ids, uid_map, gid_map = (out + "\n\n").split("\n\n")[:3]
    inside = {line.split(":")[0]: int(line.split()[1]) for line in ids.splitlines()}
    assert (inside.get("Uid"), inside.get("Gid")) == INSIDE_USER, (
        f"the container process runs as {inside} inside, not {INSIDE_USER}"
    )
    for name, text, want in (("uid_map", uid_map, UID_MAPS), ("gid_map", gid_map, GID_MAPS)):
        expected = sorted((m["containerID"], m["hostID"], m["size"]) for m in want)
        assert _maps(text) == expected, f"the container's {name} is {_maps(text)}"
    made = (shared.directory / "userns-outbox" / "made-by-init").stat()
    host_ids = (_mapped(UID_MAPS, INSIDE_USER[0]), _mapped(GID_MAPS, INSIDE_USER[1]))
    assert (made.st_uid, made.st_gid) == host_ids, (
        f"a file made by the container process ({INSIDE_USER[0]}:{INSIDE_USER[1]} inside) is "
        f"owned by {made.st_uid}:{made.st_gid} on the host, not {host_ids[0]}:{host_ids[1]}"
    )
    if HOST_PID not in runtime_adapter.unsupported:
        status = Path(f"/proc/{c.pid}/status").read_text()
        host_uid = re.search(r"^Uid:\s*(\d+)", status, re.MULTILINE)
        assert host_uid is not None and int(host_uid.group(1)) == host_ids[0], (
            f"the container process runs as host uid {host_uid and host_uid.group(1)}"
        )


@pytest.mark.requirement("RT-NS-USERMAP-3")
def test_user_namespace_leaves_rootfs_ownership(
    shared: SharedContainers, runtime_adapter: RuntimeAdapter
) -> None:
    """Host root is not mapped, so an unchanged rootfs shows as the overflow uid inside."""
    c = with_user_namespace(shared, runtime_adapter)
    inside = shell(c, "stat -c '%u:%g' / /bin /etc/passwd").split()
    rootfs = Path(c.bundle) / "rootfs"
    on_host = {(p.stat().st_uid, p.stat().st_gid) for p in (rootfs, rootfs / "bin")}
    assert on_host == {(0, 0)}, f"the rootfs was chowned on the host: owners {on_host}"
    assert set(inside) == {"65534:65534"}, (
        f"the rootfs shows as owned by {inside} inside; unchanged, host root's files show as "
        "the overflow uid 65534"
    )
