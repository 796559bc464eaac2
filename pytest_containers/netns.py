"""``netns_hosts``: a few network namespaces joined by veth links, as a tiny network.

The fixtures
------------

``netns_hosts`` (function scope) and ``netns_hosts_factory`` (session scope)::

    netns_hosts(n=2) -> Network

A :class:`Network` has ``hosts`` (``hosts[i].name`` is the netns name, as in
``ip netns list``; ``hosts[i].address`` its IPv4 address), ``run(i, argv, timeout=None,
input=None) -> subprocess.CompletedProcess[str]`` (runs ``argv`` inside host ``i``'s
network namespace; output captured as text, a non-zero exit returned, not raised),
``cut(i, j)`` and ``restore(i, j)`` (take the link between hosts ``i`` and ``j`` down and
up again) and ``close()``. It is removed at the end of the test (or by ``close()`` or a
``with`` block): every namespace, and with them every link.

Example::

    def test_partition(netns_hosts):
        net = netns_hosts(2)
        a, b = net.hosts
        assert net.run(0, ["ping", "-c1", "-W1", b.address]).returncode == 0
        net.cut(0, 1)
        assert net.run(0, ["ping", "-c1", "-W1", b.address]).returncode != 0
        net.restore(0, 1)
        assert net.run(0, ["ping", "-c1", "-W1", b.address]).returncode == 0

The topology is a full mesh, 1 to 16 hosts: one veth link between every pair, so
``cut(i, j)`` separates exactly two hosts, as a partition test wants, with no bridge or
switch namespace in between. Host ``i`` owns the ``(i+1)``-th address of the subnet (by
default ``10.213.0.1``, ``10.213.0.2``, ...) as a /32 on each of its links, with a host
route to every peer over the link to it; its link to host ``j`` is the interface
``h<j>``, and ``lo`` is up. The links are made inside the namespaces (the peer end moved
at creation), so no interface, address or route ever appears on the host, and since
namespaces are separate network stacks, parallel tests reuse the same addresses safely.
Names come from the ledger (``pc-<worker>-<pid>-<n>``). Commands run through ``setns`` in
the forked child: ``/sys`` is still the host's (``ip netns exec`` remounts it).

Options: ini ``containers_netns_subnet`` (default ``10.213.0.0/24``): a private IPv4
subnet the host addresses come from.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import os
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from reference_runtime import kernel

from .ledger import Ledger, Record, register_undoer
from .plugin import ledger

if TYPE_CHECKING:
    from pyroute2 import IPRoute

NETNS_KEY = pytest.StashKey["NetnsFactory"]()

NETNS_DIR = "/run/netns"
DEFAULT_SUBNET = "10.213.0.0/24"
DEFAULT_TIMEOUT = 60.0
MAX_HOSTS = 16
_SCOPE_LINK = 253


@dataclass(frozen=True)
class Host:
    """One host of a :class:`Network`."""

    index: int
    name: str
    """The network namespace's name (``/run/netns/<name>``)."""
    address: str
    """Its IPv4 address, on every one of its links."""

    def interface_to(self, other: int) -> str:
        """The name of this host's link to host ``other``."""
        return f"h{other}"


def _create_netns(name: str) -> None:
    from pyroute2 import netns

    netns.create(name)


def remove_netns(name: str) -> None:
    """Delete the network namespace ``name`` (``ip netns delete``); idempotent."""
    path = os.path.join(NETNS_DIR, name)
    try:
        kernel.umount(path, kernel.MNT_DETACH)
    except OSError:  # EINVAL: not mounted (half made); ENOENT: already gone
        pass
    try:
        os.unlink(path)
    except FileNotFoundError:  # already gone
        pass


def _subnet(text: str) -> ipaddress.IPv4Network:
    __tracebackhide__ = True
    try:
        subnet = ipaddress.IPv4Network(text)
    except ValueError as exc:
        raise pytest.UsageError(
            f"containers_netns_subnet {text!r} is not an IPv4 subnet such as 10.213.0.0/24: {exc}"
        ) from None
    if not subnet.is_private or subnet.is_loopback or subnet.num_addresses < 4:
        raise pytest.UsageError(
            f"containers_netns_subnet {text!r} must be a private IPv4 subnet of at least 4 "
            "addresses, such as 10.213.0.0/24"
        )
    return subnet


class Network:
    """Hosts in network namespaces, fully meshed; see the module doc."""

    def __init__(
        self, names: Sequence[str], subnet: ipaddress.IPv4Network, led: Ledger, timeout: float
    ) -> None:
        """Make the namespaces and links; on failure, everything made is removed."""
        __tracebackhide__ = True
        addresses = itertools.islice(subnet.hosts(), len(names))
        self.hosts = [
            Host(i, name, str(a)) for i, (name, a) in enumerate(zip(names, addresses, strict=True))
        ]
        self._ledger = led
        self._timeout = timeout
        self._records: list[Record] = []
        self._rtnl: list[IPRoute] = []
        self._index: dict[tuple[int, int], int] = {}  # (i, j): ifindex of h<j> in host i
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _build(self) -> None:
        from pyroute2 import IPRoute

        for host in self.hosts:
            self._records.append(self._ledger.record("netns", host.name))
            _create_netns(host.name)
        for host in self.hosts:
            ipr = IPRoute(netns=host.name, flags=0)
            self._rtnl.append(ipr)
            ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
        for i, j in itertools.combinations(range(len(self.hosts)), 2):
            peer = {"ifname": f"h{i}", "net_ns_fd": self.hosts[j].name}
            self._rtnl[i].link("add", ifname=f"h{j}", kind="veth", peer=peer)
        for i, j in itertools.permutations(range(len(self.hosts)), 2):
            ipr = self._rtnl[i]
            index = ipr.link_lookup(ifname=f"h{j}")[0]
            self._index[i, j] = index
            ipr.addr("add", index=index, address=self.hosts[i].address, prefixlen=32)
        for i, j in itertools.combinations(range(len(self.hosts)), 2):
            self._set(i, j, up=True)

    def __repr__(self) -> str:
        return f"<Network {[h.name for h in self.hosts]}>"

    def __enter__(self) -> Network:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _pair(self, call: str, i: object, j: object) -> tuple[int, int]:
        __tracebackhide__ = True
        if not self._rtnl and self.hosts:
            raise ValueError(f"{call} on a closed network; make a new one with netns_hosts(n)")
        for k in (i, j):
            if isinstance(k, bool) or not isinstance(k, int):
                raise TypeError(f"{call} takes host indexes such as net.cut(0, 1), got {k!r}")
            if not 0 <= k < len(self.hosts):
                raise IndexError(f"{call}: no host {k}; hosts are 0..{len(self.hosts) - 1}")
        if i == j:
            raise ValueError(f"{call} needs two different hosts, e.g. net.cut(0, 1)")
        assert isinstance(i, int) and isinstance(j, int)
        return i, j

    def _set(self, i: int, j: int, *, up: bool) -> None:
        state = "up" if up else "down"
        for a, b in ((i, j), (j, i)):
            self._rtnl[a].link("set", index=self._index[a, b], state=state)
        if up:  # taking a link down removes its routes: put them back
            for a, b in ((i, j), (j, i)):
                self._rtnl[a].route(
                    "replace",
                    dst=self.hosts[b].address,
                    dst_len=32,
                    oif=self._index[a, b],
                    scope=_SCOPE_LINK,
                )

    def cut(self, i: int, j: int) -> None:
        """Take the link between hosts ``i`` and ``j`` down, at both ends."""
        __tracebackhide__ = True
        self._set(*self._pair("cut()", i, j), up=False)

    def restore(self, i: int, j: int) -> None:
        """Bring the link between hosts ``i`` and ``j`` back up, with its routes."""
        __tracebackhide__ = True
        self._set(*self._pair("restore()", i, j), up=True)

    def run(
        self,
        i: int,
        argv: Sequence[str],
        *,
        timeout: float | None = None,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` in host ``i``'s network namespace and wait for it."""
        __tracebackhide__ = True
        if isinstance(i, bool) or not isinstance(i, int):
            raise TypeError(
                f"run() takes a host index first: net.run(0, ['ip', 'addr']), got {i!r}"
            )
        if not 0 <= i < len(self.hosts):
            raise IndexError(f"run(): no host {i}; hosts are 0..{len(self.hosts) - 1}")
        if isinstance(argv, str | bytes) or not argv or not all(isinstance(a, str) for a in argv):
            raise TypeError(f"run() takes an argv list: net.run({i}, ['ip', 'addr']), got {argv!r}")
        if not self._rtnl:
            raise ValueError("run() on a closed network; make a new one with netns_hosts(n)")
        fd = os.open(os.path.join(NETNS_DIR, self.hosts[i].name), os.O_RDONLY | os.O_CLOEXEC)

        def enter() -> None:  # in the child, between fork and exec
            kernel.setns(fd, kernel.CLONE_NEWNET)

        try:
            return subprocess.run(
                list(argv),
                input=input,
                capture_output=True,
                encoding="utf-8",
                errors="replace",
                timeout=self._timeout if timeout is None else timeout,
                env=None if env is None else dict(env),
                preexec_fn=enter,
                check=False,
            )
        finally:
            os.close(fd)

    def close(self) -> None:
        """Delete every namespace (and so every link); idempotent."""
        while self._rtnl:
            with contextlib.suppress(OSError):  # the socket is going away either way
                self._rtnl.pop().close()
        while self._records:
            rec = self._records.pop()
            remove_netns(rec.name)
            self._ledger.release(rec)


class NetnsFactory:
    """Makes networks of namespaces; ``close()`` removes every one it made."""

    def __init__(
        self, led: Ledger, subnet: str = DEFAULT_SUBNET, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self._ledger = led
        self.subnet = _subnet(subnet)
        self.timeout = timeout
        self._made: list[Network] = []

    @classmethod
    def from_config(cls, config: pytest.Config) -> NetnsFactory:
        return cls(ledger(config), str(config.getini("containers_netns_subnet")))

    def scoped(self) -> NetnsFactory:
        """A factory with the same settings whose ``close()`` removes only what it made."""
        return NetnsFactory(self._ledger, str(self.subnet), self.timeout)

    def __call__(self, n: int = 2) -> Network:
        """Make ``n`` hosts in a full mesh; see the module doc."""
        __tracebackhide__ = True
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(
                f"netns_hosts(n) takes a number of hosts such as netns_hosts(2), got {n!r}"
            )
        limit = min(MAX_HOSTS, self.subnet.num_addresses - 2)
        if not 1 <= n <= limit:
            raise ValueError(f"netns_hosts(n) makes 1 to {limit} hosts (a full mesh), got {n}")
        names = [self._ledger.unique_name("pc") for _ in range(n)]
        network = Network(names, self.subnet, self._ledger, self.timeout)
        self._made.append(network)
        return network

    def close(self) -> None:
        while self._made:
            self._made.pop().close()


def _undo_netns(rec: Record) -> None:
    remove_netns(rec.name)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("containers", "pytest-containers")
    parser.addini(
        "containers_netns_subnet",
        type="string",
        default=DEFAULT_SUBNET,
        help="private IPv4 subnet netns_hosts takes its addresses from",
    )


@pytest.hookimpl(trylast=True)  # after plugin.py has made the ledger
def pytest_configure(config: pytest.Config) -> None:
    config.stash[NETNS_KEY] = NetnsFactory.from_config(config)
    register_undoer("netns", _undo_netns)


@pytest.fixture(scope="session")
def netns_hosts_factory(request: pytest.FixtureRequest) -> Iterator[NetnsFactory]:
    """The session's :class:`NetnsFactory`, for session-scoped fixtures."""
    factory = request.config.stash[NETNS_KEY]
    yield factory
    factory.close()


@pytest.fixture
def netns_hosts(netns_hosts_factory: NetnsFactory) -> Iterator[NetnsFactory]:
    """Make hosts in network namespaces, removed after the test; see the module doc."""
    factory = netns_hosts_factory.scoped()
    yield factory
    factory.close()
