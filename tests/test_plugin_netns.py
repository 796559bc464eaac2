"""``netns_hosts``: real namespaces and links on the kernel, and the fixture in a user's tests.

Traffic goes only to addresses inside the namespaces these tests make.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pytest_containers.netns import NetnsFactory, Network
from pytest_containers.plugin import ledger

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.needs_root

PING = [shutil.which("ping") or "busybox", *([] if shutil.which("ping") else ["ping"])]


def ping(net: Network, src: int, dst: int) -> int:
    return net.run(src, [*PING, "-c1", "-W1", net.hosts[dst].address], timeout=10).returncode


def host_links_into(namespaces: set[str]) -> list[str]:
    """The host's links whose peer lives in one of ``namespaces``: none, for a mesh
    that keeps to its own namespaces. (Only these: other tests add host links too.)"""
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True)
    return [
        line
        for line in links.stdout.splitlines()
        if any(f"link-netns {name} " in f"{line} " for name in namespaces)
    ]


def test_hosts_ping_each_other_and_cut_restore_the_link(netns_hosts: NetnsFactory):
    net = netns_hosts(2)
    assert host_links_into({h.name for h in net.hosts}) == []  # no link on the host
    addrs = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True, check=True)
    assert "10.213." not in addrs.stdout  # nor an address, so no route either
    assert [h.address for h in net.hosts] == ["10.213.0.1", "10.213.0.2"]
    assert ping(net, 0, 1) == 0 and ping(net, 1, 0) == 0
    net.cut(0, 1)
    assert ping(net, 0, 1) != 0
    net.restore(0, 1)
    assert ping(net, 0, 1) == 0 and ping(net, 1, 0) == 0


def test_cut_separates_only_that_pair(netns_hosts: NetnsFactory):
    net = netns_hosts(3)
    net.cut(0, 1)
    assert ping(net, 0, 2) == 0 and ping(net, 1, 2) == 0
    assert ping(net, 1, 0) != 0


def test_inside_a_host(netns_hosts: NetnsFactory):
    net = netns_hosts(3)
    links = net.run(1, ["ip", "-o", "link"]).stdout
    addrs = net.run(1, ["ip", "-o", "-4", "addr"]).stdout
    assert "lo:" in links and "h0@" in links and "h2@" in links and "eth0" not in links
    assert addrs.count("10.213.0.2/32") == 2
    assert "127.0.0.1/8" in addrs  # loopback up
    assert net.hosts[1].interface_to(2) == "h2"


def test_names_records_and_removal(netns_hosts: NetnsFactory, request: pytest.FixtureRequest):
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    led = ledger(request.config)
    with netns_hosts(2) as net:
        names = [h.name for h in net.hosts]
        assert all(n.startswith(f"pc-{worker}-{os.getpid()}-") for n in names)
        assert all(os.path.exists(f"/run/netns/{n}") for n in names)
        assert set(names) <= {rec.name for rec in led.outstanding()}
    net.close()  # idempotent
    assert not any(os.path.exists(f"/run/netns/{n}") for n in names)
    assert not set(names) & {rec.name for rec in led.outstanding()}
    with pytest.raises(ValueError, match="closed network"):
        net.cut(0, 1)


def test_misuse_says_how_to_call_it(netns_hosts: NetnsFactory):
    with pytest.raises(TypeError, match=r"netns_hosts\(2\)"):
        netns_hosts("2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="1 to 16 hosts"):
        netns_hosts(0)
    net = netns_hosts(1)
    with pytest.raises(IndexError, match="no host 1"):
        net.cut(0, 1)
    with pytest.raises(ValueError, match="two different hosts"):
        net.restore(0, 0)
    with pytest.raises(TypeError, match=r"net.run\(0, \['ip', 'addr'\]\)"):
        net.run(0, "ip addr")


def test_fixture_and_ini_subnet_in_a_users_test_file(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    pytester.makeini("[pytest]\ncontainers_netns_subnet = 10.99.7.0/29\n")
    pytester.makepyfile(
        f"""
        def test_subnet(netns_hosts):
            net = netns_hosts(2)
            assert [h.address for h in net.hosts] == ["10.99.7.1", "10.99.7.2"]
            assert net.run(0, {PING!r} + ["-c1", "-W1", "10.99.7.2"]).returncode == 0

        def test_small_subnet_bounds_n(netns_hosts):
            import pytest
            with pytest.raises(ValueError, match="1 to 6 hosts"):
                netns_hosts(7)
        """
    )
    ledger_arg = f"--containers-ledger={tmp_path / 'ledger'}"
    result = pytester.runpytest_subprocess(ledger_arg)
    result.assert_outcomes(passed=2)
    assert "leaked" not in result.stdout.str()

    bad = pytester.runpytest_subprocess(ledger_arg, "-o", "containers_netns_subnet=8.8.8.0/24")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*must be a private IPv4 subnet*"])
