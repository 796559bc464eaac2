"""What a node with an agent is made of on the host: a network namespace, a veth pair
and a cgroup parent.

- network namespace ``rc-<cluster>-<node>`` (``/run/netns``, made with ``ip netns``);
- a veth pair: the host end ``rc<hash>h`` holds ``A.1/30``, the node end ``rc<hash>n``
  (inside the namespace) holds ``A.2/30`` with a default route through ``A.1``. The
  /30 comes from ``10.192.0.0/10``, picked from a hash of the namespace name and moved
  on while it collides with an address the host already has. The API server listens on
  ``A.1`` too; ``set_link(False)`` (a partition) takes the host end down;
- a cgroup directory ``/rc-<cluster>-<node>`` in every cgroup hierarchy the host has
  mounted (v1 controllers and v2): the parent of every container the node runs.

A ``NodeHost`` is a plain dict in ``cluster.json``, recorded before anything is made;
``remove`` undoes whatever of it exists and ignores what is already gone.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import subprocess
from pathlib import Path
from typing import Any

from .errors import ClusterError

__all__ = ["cgroup_mounts", "create", "exists", "plan", "remove", "set_link"]

_POOL = ipaddress.ip_network("10.192.0.0/10")
NodeHost = dict[str, Any]


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=False)
    if check and result.returncode != 0:
        why = (result.stderr.strip().splitlines() or ["failed"])[-1]
        raise ClusterError(f"ip {' '.join(args)}: {why}")
    return result


def cgroup_mounts() -> list[Path]:
    """Every cgroup hierarchy mounted on the host (v1 and v2), once each."""
    seen: dict[str, Path] = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fstype, _, super_options = right.split(" ")[:3]
        fields = left.split(" ")
        if fstype not in ("cgroup", "cgroup2") or fields[3] != "/":
            continue
        key = fstype + ":" + ",".join(o for o in super_options.split(",") if o not in ("rw", "ro"))
        seen.setdefault(key, Path(fields[4]))
    return list(seen.values())


def _host_addresses() -> set[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    out = _ip("-4", "-o", "addr", "show").stdout
    nets = set()
    for line in out.splitlines():
        parts = line.split()
        if "inet" in parts:
            nets.add(ipaddress.ip_interface(parts[parts.index("inet") + 1]).network)
    return nets


def plan(cluster: str, node: str) -> NodeHost:
    """Names and addresses for ``node`` of ``cluster``; nothing is made yet."""
    netns = f"rc-{cluster}-{node}"
    digest = hashlib.sha1(netns.encode()).hexdigest()
    used = _host_addresses()
    blocks = _POOL.num_addresses // 4
    start = int(digest[:8], 16) % blocks
    for step in range(256):
        subnet = ipaddress.ip_network(
            (int(_POOL.network_address) + ((start + step) % blocks) * 4, 30)
        )
        if not any(subnet.overlaps(n) for n in used):
            break
    else:
        raise ClusterError(f"no free /30 in {_POOL} for node {node}")
    host_ip, node_ip = (str(a) for a in list(subnet.hosts())[:2])
    return {
        "node": node,
        "netns": netns,
        "host_if": f"rc{digest[:8]}h",
        "node_if": f"rc{digest[:8]}n",
        "host_ip": host_ip,
        "node_ip": node_ip,
        "cgroup": f"rc-{cluster}-{node}",
    }


def create(host: NodeHost) -> None:
    """Make the namespace, the link and the cgroup parents (``remove`` undoes a failure)."""
    if Path(f"/run/netns/{host['netns']}").exists():
        raise ClusterError(
            f"network namespace {host['netns']} exists already: is another cluster of "
            "that name up? Pick another name"
        )
    ns, hif, nif = host["netns"], host["host_if"], host["node_if"]
    _ip("netns", "add", ns)
    _ip("link", "add", hif, "type", "veth", "peer", "name", nif, "netns", ns)
    _ip("addr", "add", f"{host['host_ip']}/30", "dev", hif)
    _ip("link", "set", hif, "up")
    _ip("-n", ns, "addr", "add", f"{host['node_ip']}/30", "dev", nif)
    _ip("-n", ns, "link", "set", nif, "up")
    _ip("-n", ns, "link", "set", "lo", "up")
    _ip("-n", ns, "route", "add", "default", "via", host["host_ip"])
    for mount in cgroup_mounts():
        directory = mount / host["cgroup"]
        directory.mkdir(exist_ok=True)
        for name in ("cpuset.cpus", "cpuset.mems"):  # v1 cpuset: a child needs both set
            if (mount / name).exists() and (directory / name).exists():
                (directory / name).write_text((mount / name).read_text())


def set_link(host: NodeHost, up: bool) -> None:
    """Bring the host end of the node's link up or down (heal or partition)."""
    _ip("link", "set", host["host_if"], "up" if up else "down")


def exists(host: NodeHost) -> list[str]:
    """Descriptions of what of ``host`` is still on the host."""
    found = []
    if Path(f"/run/netns/{host['netns']}").exists():
        found.append(f"network namespace {host['netns']}")
    if Path(f"/sys/class/net/{host['host_if']}").exists():
        found.append(f"link {host['host_if']}")
    for mount in cgroup_mounts():
        if (mount / host["cgroup"]).exists():
            found.append(f"cgroup {mount / host['cgroup']}")
    return found


def _remove_cgroup(directory: Path) -> None:
    if not directory.exists():
        return
    for child in sorted(directory.rglob("*"), key=lambda p: -len(p.parts)):
        if child.is_dir():
            _kill_and_rmdir(child)
    _kill_and_rmdir(directory)


def _kill_and_rmdir(directory: Path) -> None:
    procs = directory / "cgroup.procs"
    for _ in range(50):
        try:
            os.rmdir(directory)
            return
        except FileNotFoundError:
            return  # already gone
        except OSError:
            pass  # still has processes: kill them and retry
        try:
            for pid in procs.read_text().split():
                try:
                    os.kill(int(pid), 9)
                except ProcessLookupError:
                    pass  # exited meanwhile
        except OSError:
            pass  # gone meanwhile
        import time

        time.sleep(0.02)


def remove(host: NodeHost) -> None:
    """Remove the cgroup parents (killing what is left in them), the link and the namespace."""
    for mount in cgroup_mounts():
        _remove_cgroup(mount / host["cgroup"])
    if Path(f"/sys/class/net/{host['host_if']}").exists():
        _ip("link", "del", host["host_if"], check=False)
    if Path(f"/run/netns/{host['netns']}").exists():
        _ip("netns", "del", host["netns"], check=False)
