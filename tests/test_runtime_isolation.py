"""The reference runtime on the real kernel: each namespace isolates, limits bite."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.needs_root


def test_pid_namespace_makes_the_program_pid_1_and_hides_host_processes(
    busybox_bundle, run_capture
):
    code, out = run_capture(
        busybox_bundle(["sh", "-c", "echo pid=$$; ls /proc | grep -c '^[0-9]'"])
    )
    assert code == 0, out
    lines = out.split()
    assert lines[0] == "pid=1"
    # only the shell and ls/grep are visible, never the host's processes
    assert int(lines[1]) <= 3, out


def test_hostname_and_domainname_are_private(busybox_bundle, run_capture):
    host_before = socket.gethostname()
    code, out = run_capture(
        busybox_bundle(
            ["sh", "-c", "hostname; cat /proc/sys/kernel/domainname"],
            hostname="box-1",
            domainname="example.test",
        )
    )
    assert code == 0, out
    assert out.split() == ["box-1", "example.test"]
    assert socket.gethostname() == host_before


def test_network_namespace_has_only_loopback_and_it_is_up(busybox_bundle, run_capture):
    code, out = run_capture(
        busybox_bundle(
            [
                "sh",
                "-c",
                "ls /sys/class/net; cat /sys/class/net/lo/operstate",
            ]
        )
    )
    assert code == 0, out
    words = out.split()
    assert words[0] == "lo" and words[1] in ("unknown", "up"), out


def test_host_loopback_service_is_unreachable_from_the_container(busybox_bundle, run_capture):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        _code, out = run_capture(
            busybox_bundle(
                ["sh", "-c", f"echo hi | nc -w 1 127.0.0.1 {port} && echo reached || echo refused"]
            )
        )
    assert "refused" in out and "reached" not in out, out


def _mounts_under(path: Path) -> list[str]:
    """Host mounts at or below ``path`` (other tests, in other workers, mount elsewhere)."""
    return [m for m in Path("/proc/self/mounts").read_text().splitlines() if str(path) in m]


def test_mounts_are_private_both_ways(busybox_bundle, run_capture, tmp_path):
    host_mounts_before = _mounts_under(tmp_path)

    def admin(config: dict[str, Any]) -> None:
        for name in ("bounding", "effective", "permitted"):
            config["process"]["capabilities"][name].append("CAP_SYS_ADMIN")

    code, out = run_capture(
        busybox_bundle(
            ["sh", "-c", "mount -t tmpfs none /tmp && touch /tmp/inside && cat /proc/mounts"],
            edit=admin,
        )
    )
    assert code == 0, out
    assert " /tmp tmpfs " in out
    # the container's mounts never reach the host, and the host's are not seen inside
    assert _mounts_under(tmp_path) == host_mounts_before == []
    assert "/sys/fs/cgroup/memory" not in out.replace("/sys/fs/cgroup/memory ", "")
    assert "/work" not in out and "/root" not in out


def test_ipc_namespace_hides_host_sysv_objects(busybox_bundle, run_capture):
    key = 0x5EC0DE
    subprocess.run(["ipcmk", "-Q", "-p", "0600", "-K", str(key)], check=False, capture_output=True)
    made = subprocess.run(["ipcs", "-q"], capture_output=True, text=True).stdout
    try:
        code, out = run_capture(busybox_bundle(["sh", "-c", "cat /proc/sysvipc/msg | wc -l"]))
        assert code == 0, out
        assert out.split() == ["1"], out  # header line only
    finally:
        for line in made.splitlines():
            parts = line.split()
            if parts and parts[0].lower() == hex(key):
                subprocess.run(["ipcrm", "-q", parts[1]], check=False)


def test_user_namespace_maps_ids(busybox_bundle, run_capture, tmp_path):
    def edit(config: dict[str, Any]) -> None:
        linux = config["linux"]
        linux["namespaces"].append({"type": "user"})
        linux["uidMappings"] = [
            {"containerID": 0, "hostID": 0, "size": 1},
            {"containerID": 1, "hostID": 100001, "size": 999},
        ]
        linux["gidMappings"] = [
            {"containerID": 0, "hostID": 0, "size": 1},
            {"containerID": 1, "hostID": 100001, "size": 999},
        ]
        del linux["resources"]
        config["mounts"] = [
            m for m in config["mounts"] if m["destination"] not in ("/sys", "/sys/fs/cgroup")
        ]

    code, out = run_capture(
        busybox_bundle(["sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; id -u"], edit=edit)
    )
    assert code == 0, out
    rows = [line.split() for line in out.strip().splitlines()]
    assert rows[0] == ["0", "0", "1"]
    assert rows[1] == ["1", "100001", "999"]
    assert rows[-1] == ["0"]


def test_cgroup_namespace_shows_the_container_cgroup_as_root(busybox_bundle, run_capture):
    code, out = run_capture(busybox_bundle(["sh", "-c", "cat /proc/self/cgroup"]))
    assert code == 0, out
    for line in out.strip().splitlines():
        assert line.endswith(":/"), out


def test_joining_a_network_namespace_by_path(busybox_bundle, run_capture):
    name = f"rr-join-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(
            ["ip", "-n", name, "link", "add", "dummy7", "type", "veth", "peer", "name", "dummy8"],
            check=True,
        )

        def edit(config: dict[str, Any]) -> None:
            for ns in config["linux"]["namespaces"]:
                if ns["type"] == "network":
                    ns["path"] = f"/run/netns/{name}"

        code, out = run_capture(busybox_bundle(["ls", "/sys/class/net"], edit=edit))
        assert code == 0, out
        assert "dummy7" in out.split()
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=True)


def test_memory_limit_oom_kills_a_process_allocating_past_it(busybox_bundle, run_capture):
    def limit(config: dict[str, Any]) -> None:
        config["linux"]["resources"]["memory"] = {"limit": 32 << 20}

    script = "dd if=/dev/zero of=/dev/null bs={}M count=1 && echo survived"
    code, out = run_capture(busybox_bundle(["sh", "-c", script.format(8)], edit=limit))
    assert code == 0 and "survived" in out, out
    code, out = run_capture(busybox_bundle(["sh", "-c", script.format(64)], edit=limit))
    assert "survived" not in out, out
    assert "Killed" in out or code != 0, out


def test_pids_limit_stops_forks(busybox_bundle, run_capture):
    def limit(config: dict[str, Any]) -> None:
        config["linux"]["resources"]["pids"] = {"limit": 8}

    # The inner shell forks sleeps until fork fails (busybox sh then exits); the outer
    # shell counts the live processes with a glob, which needs no fork.
    script = (
        'sh -c "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do sleep 5 & done" 2>/dev/null;'
        " set -- /proc/[0-9]*; echo procs=$#; kill -9 -1"
    )
    _, out = run_capture(busybox_bundle(["sh", "-c", script], edit=limit))
    limited = int(out.split("procs=")[1].split()[0])
    assert 4 <= limited <= 8, out
    _code, out = run_capture(busybox_bundle(["sh", "-c", script]))
    assert int(out.split("procs=")[1].split()[0]) == 13, out


def test_readonly_root_masked_and_readonly_paths(busybox_bundle, run_capture):
    script = (
        "touch /x 2>/dev/null && echo root-rw || echo root-ro;"
        "cat /proc/kcore 2>/dev/null | head -c 1 | wc -c;"
        "(echo 1 > /proc/sys/kernel/domainname) 2>/dev/null && echo sys-rw || echo sys-ro;"
        "(echo x > /tmp/ok) 2>/dev/null || echo tmp-ro"
    )
    _code, out = run_capture(busybox_bundle(["sh", "-c", script]))
    words = out.split()
    assert words == ["root-ro", "0", "sys-ro", "tmp-ro"], out


def test_minimal_dev(busybox_bundle, run_capture):
    code, out = run_capture(
        busybox_bundle(
            ["sh", "-c", "ls /dev | sort | tr '\\n' ' '; echo; echo x > /dev/null && echo null-ok"]
        )
    )
    assert code == 0, out
    names = set(out.splitlines()[0].split())
    assert {
        "null",
        "zero",
        "full",
        "random",
        "urandom",
        "tty",
        "pts",
        "shm",
        "mqueue",
        "fd",
        "ptmx",
    } <= names
    assert "sda" not in names and "vda" not in names and "kmsg" not in names
    assert "null-ok" in out


def test_process_settings(busybox_bundle, run_capture):
    def edit(config: dict[str, Any]) -> None:
        proc = config["process"]
        proc["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [10, 20], "umask": 0o027}
        proc["env"] = ["PATH=/bin", "GREETING=hello world"]
        proc["cwd"] = "/tmp"
        proc["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456}]
        proc["oomScoreAdj"] = 321
        config["root"]["readonly"] = False
        caps = proc["capabilities"]
        caps["inheritable"] = caps["ambient"]

    script = (
        "id; echo $GREETING; pwd; umask; ulimit -n; ulimit -Hn; cat /proc/self/oom_score_adj;"
        " grep -E '^(CapEff|NoNewPrivs)' /proc/self/status"
    )
    code, out = run_capture(busybox_bundle(["sh", "-c", script], edit=edit))
    assert code == 0, out
    lines = out.strip().splitlines()
    assert lines[0].startswith("uid=1000 gid=1000 groups=10,20") or "groups=10,20" in lines[0], out
    assert lines[1:7] == ["hello world", "/tmp", "0027", "123", "456", "321"], out
    caps = {line.split(":")[0]: line.split(":")[1].strip() for line in lines[7:]}
    # uid 1000 keeps only the ambient set: AUDIT_WRITE(29), KILL(5), NET_BIND_SERVICE(10)
    assert int(caps["CapEff"], 16) == (1 << 29) | (1 << 5) | (1 << 10), out
    assert caps["NoNewPrivs"] == "1"


def test_sysctl_is_applied_inside_only(busybox_bundle, run_capture):
    host = Path("/proc/sys/net/ipv4/ip_forward").read_text()

    def edit(config: dict[str, Any]) -> None:
        config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1" if host.strip() == "0" else "0"}

    _code, out = run_capture(busybox_bundle(["cat", "/proc/sys/net/ipv4/ip_forward"], edit=edit))
    assert out.strip() != host.strip()
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == host
