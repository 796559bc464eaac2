"""Which namespaces a container gets (config-linux.md#namespaces): new ones for the
entries without a path, the runtime's own for the types not listed, joined ones for the
entries with a path; a relative path, a path of another type or of no namespace, a
duplicate type and an unknown type are errors.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_containers.adapters import HOST_KERNEL, HOST_PID, JOIN_NAMESPACE_PATH, RuntimeAdapter
from pytest_containers.adapters.handle import Container
from pytest_containers.namespaces import NamespaceFactory
from pytest_containers.netns import NetnsFactory
from pytest_containers.runtime import ContainerFactory

from ._namespaces import (
    DEFAULT_NAMESPACES,
    SLEEPER,
    WAIT,
    container_sysv_keys,
    host_ns,
    host_sysv_objects,
    inheriting,
    namespaces,
    ns_identities,
    plain,
)
from ._shared import SharedContainers
from ._support import Config, create_error, edit_config, expressible, needs, shell

# --------------------------------------------------------------------------- new namespaces


@pytest.mark.requirement("RT-NS-NEW-1")
def test_namespaces_without_path_are_new(
    shared: SharedContainers, runtime_adapter: RuntimeAdapter
) -> None:
    c = plain(shared)
    inside = ns_identities(c, DEFAULT_NAMESPACES)
    unreadable = [k for k, v in inside.items() if not v]
    if unreadable:
        needs(runtime_adapter, HOST_KERNEL)
        pytest.fail(f"/proc/self/ns is unreadable in the container for {unreadable}")
    shared_with_host = {k: v for k, v in inside.items() if v == host_ns(k)}
    assert not shared_with_host, f"namespaces shared with the runtime: {shared_with_host}"
    if HOST_PID not in runtime_adapter.unsupported:  # outside, the same namespaces
        outside = {k: host_ns(k, c.pid) for k in DEFAULT_NAMESPACES}
        assert outside == inside, "the container process and an exec'd one differ"


@pytest.mark.requirement("RT-NS-INHERIT-1")
def test_unlisted_namespaces_are_inherited(
    shared: SharedContainers, runtime_adapter: RuntimeAdapter
) -> None:
    """Without network, ipc, uts and cgroup entries the container shares the runtime's:
    its host name, its SysV objects, its network interfaces and its cgroup view."""
    c = inheriting(shared)
    with host_sysv_objects() as keys:
        seen = container_sysv_keys(c)
        before = set(os.listdir("/sys/class/net"))
        out = shell(c, "hostname; cat /proc/net/dev")
        after = set(os.listdir("/sys/class/net"))
    problems = []
    if not {HOST_PID, HOST_KERNEL} & set(runtime_adapter.unsupported):
        inside = shell(c, "cat /proc/1/cgroup")
        outside = Path(f"/proc/{c.pid}/cgroup").read_text()
        if inside != outside:
            problems.append(f"the cgroups of PID 1 read {inside!r} inside, {outside!r} outside")
    hostname, _, netdev = out.partition("\n")
    if hostname != socket.gethostname():
        problems.append(f"host name {hostname!r}, the host's is {socket.gethostname()!r}")
    missing = {k: v for k, v in keys.items() if v not in seen[k]}
    if missing:
        problems.append(f"the host's SysV objects {missing} are not visible")
    interfaces = {line.split(":")[0].strip() for line in netdev.splitlines() if ":" in line}
    # other tests add and remove host links meanwhile: the container read its list
    # between the two host readings, so it holds what both hold and nothing neither does
    if not before & after <= interfaces <= before | after:
        problems.append(f"interfaces {sorted(interfaces)}, the host's {sorted(before | after)}")
    assert not problems, "; ".join(problems)


# --------------------------------------------------------------------------- join by path


@pytest.mark.requirement("RT-NS-PATH-1")
def test_namespaces_with_path_are_joined(
    runtime_adapter: RuntimeAdapter,
    container: Callable[..., Container],
    bundle: Callable[..., Path],
    netns_hosts: NetnsFactory,
    isolated_namespaces: NamespaceFactory,
) -> None:
    """A network namespace made with ``ip netns add`` (with a link to a peer) and the uts
    namespace of a holder process with a host name of its own are joined, not copied."""
    needs(runtime_adapter, JOIN_NAMESPACE_PATH)
    net = netns_hosts(2)
    netns_path = f"/run/netns/{net.hosts[0].name}"
    holder_name = f"pc-joined-{secrets.token_hex(3)}"
    with isolated_namespaces.spawn(
        ["sleep", str(WAIT * 3)], kinds=("uts",), hostname=holder_name
    ) as holder:
        uts_identity = holder.ns["uts"]
        path = edit_config(
            bundle(SLEEPER),
            namespaces(
                "pid", "ipc", "mount", "cgroup",
                network=netns_path,
                uts=f"/proc/{holder.pid}/ns/uts",
            ),
        )  # fmt: skip
        with expressible():
            c = container(bundle=path)
        out = shell(c, "hostname; cat /proc/net/dev").split("\n", 1)
    assert out[0] == holder_name, f"the container's host name is {out[0]!r}, not the holder's"
    interfaces = {line.split(":")[0].strip() for line in out[1].splitlines() if ":" in line}
    assert interfaces == {"lo", net.hosts[0].interface_to(1)}, (
        f"the container sees interfaces {sorted(interfaces)}, not those of {netns_path}"
    )
    if HOST_PID not in runtime_adapter.unsupported:
        assert host_ns("uts", c.pid) == uts_identity
        assert os.stat(f"/proc/{c.pid}/ns/net").st_ino == os.stat(netns_path).st_ino


@pytest.mark.requirement("RT-NS-PATH-2")
def test_relative_namespace_path_is_an_error(
    runtime_adapter: RuntimeAdapter,
    bundle: Callable[..., Path],
    container_factory: ContainerFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A relative path is refused even where it would resolve: against the bundle and
    against the runtime's working directory, both the bundle here."""
    needs(runtime_adapter, JOIN_NAMESPACE_PATH)
    path = bundle(SLEEPER)
    (path / "uts-ns").symlink_to(f"/proc/{os.getpid()}/ns/uts")
    monkeypatch.chdir(path)
    edit_config(path, namespaces(*(k for k in DEFAULT_NAMESPACES if k != "uts"), uts="uts-ns"))
    create_error(container_factory, path, "the relative namespace path 'uts-ns'")


@pytest.mark.requirement("RT-NS-PATH-3")
def test_namespace_path_of_another_type_is_an_error(
    runtime_adapter: RuntimeAdapter,
    bundle: Callable[..., Path],
    container_factory: ContainerFactory,
) -> None:
    needs(runtime_adapter, JOIN_NAMESPACE_PATH)
    wrong = f"/proc/{os.getpid()}/ns/uts"
    path = edit_config(
        bundle(SLEEPER),
        namespaces(*(k for k in DEFAULT_NAMESPACES if k != "network"), network=wrong),
    )
    create_error(container_factory, path, f"a uts namespace ({wrong}) as the network namespace")


@pytest.mark.requirement("RT-NS-PATH-4")
@pytest.mark.parametrize("kind", ["missing", "not-a-namespace"])
def test_namespace_path_without_namespace_is_an_error(
    kind: str,
    runtime_adapter: RuntimeAdapter,
    bundle: Callable[..., Path],
    container_factory: ContainerFactory,
) -> None:
    needs(runtime_adapter, JOIN_NAMESPACE_PATH)
    path = bundle(SLEEPER)
    target = (
        f"/run/pc-no-such-namespace-{secrets.token_hex(4)}"
        if kind == "missing"
        else str(path / "config.json")
    )
    edit_config(path, namespaces(*(k for k in DEFAULT_NAMESPACES if k != "ipc"), ipc=target))
    create_error(container_factory, path, f"the ipc namespace path {target}")


@pytest.mark.requirement("RT-NS-DUP-1")
def test_duplicate_namespace_type_is_an_error(
    bundle: Callable[..., Path], container_factory: ContainerFactory
) -> None:
    def twice(config: Config) -> None:
        config["linux"]["namespaces"].append({"type": "ipc"})

    path = edit_config(bundle(SLEEPER), twice)
    create_error(container_factory, path, "two ipc entries in linux.namespaces")


@pytest.mark.requirement("RT-NS-TYPE-1")
def test_unknown_namespace_type_is_an_error(
    bundle: Callable[..., Path], container_factory: ContainerFactory
) -> None:
    def unknown(config: Config) -> None:
        config["linux"]["namespaces"].append({"type": "pc-no-such-namespace"})

    path = edit_config(bundle(SLEEPER), unknown)
    create_error(container_factory, path, "the namespace type 'pc-no-such-namespace'")
