"""Sysctls (config-linux.md#sysctl): the configured ones are set in the container, a
network sysctl leaves the host's unchanged, and one that cannot be set is an error.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_containers.adapters.handle import Container
from pytest_containers.runtime import ContainerFactory

from ._namespaces import SLEEPER
from ._shared import SharedContainers
from ._support import Config, create_error, edit_config, shell

NET_SYSCTL = "net.ipv4.ip_unprivileged_port_start"
IPC_SYSCTL = "kernel.msgmax"


def read_sysctl(name: str) -> str:
    return Path("/proc/sys", *name.split(".")).read_text().strip()


@dataclass
class Sysctls:
    container: Container
    wanted: dict[str, str]
    host_before: dict[str, str]


def with_sysctls(shared: SharedContainers) -> Sysctls:
    def make() -> Sysctls:
        before = {name: read_sysctl(name) for name in (NET_SYSCTL, IPC_SYSCTL)}
        wanted = {  # values the host does not have
            NET_SYSCTL: str(int(before[NET_SYSCTL]) % 1000 + 2000 + secrets.randbelow(999)),
            IPC_SYSCTL: str(int(before[IPC_SYSCTL]) + 1 + secrets.randbelow(4096)),
        }

        def edit(config: Config) -> None:
            config["linux"]["sysctl"] = wanted

        path = edit_config(shared.factory.make_bundle(shared.directory, SLEEPER), edit)
        return Sysctls(shared.factory.make_container(shared.directory, bundle=path), wanted, before)

    made: Sysctls = shared.value("sysctl", make)
    return made


@pytest.mark.requirement("RT-SYSCTL-1")
def test_sysctls_are_set(shared: SharedContainers) -> None:
    made = with_sysctls(shared)
    wanted = made.wanted
    names = " ".join("/proc/sys/" + n.replace(".", "/") for n in wanted)
    got = dict(zip(wanted, shell(made.container, f"cat {names}").split(), strict=True))
    assert got == wanted, f"the container's sysctls are {got}; linux.sysctl asks for {wanted}"


@pytest.mark.requirement("RT-OWN-NET-SYSCTL-1")
def test_network_sysctl_leaves_host_unchanged(shared: SharedContainers) -> None:
    made = with_sysctls(shared)
    before, wanted = made.host_before, made.wanted
    assert read_sysctl(NET_SYSCTL) == before[NET_SYSCTL] != wanted[NET_SYSCTL], (
        f"the host's {NET_SYSCTL} is {read_sysctl(NET_SYSCTL)} (was {before[NET_SYSCTL]}); "
        f"the container asked for {wanted[NET_SYSCTL]}"
    )


@pytest.mark.requirement("RT-SYSCTL-2")
def test_sysctl_that_cannot_be_set_is_an_error(
    bundle: Callable[..., Path], container_factory: ContainerFactory
) -> None:
    def edit(config: Config) -> None:
        config["linux"]["sysctl"] = {"net.ipv4.pc_no_such_sysctl": "1"}

    path = edit_config(bundle(SLEEPER), edit)
    create_error(container_factory, path, "a sysctl that does not exist", nothing_left=True)
