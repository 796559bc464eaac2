"""The session-end leak check, reaping after a killed worker, and names under xdist.

Every run here is a pytest subprocess over a private ledger root, so each test sees
only what its own runs made.
"""

from __future__ import annotations

import glob
import json
import os
import re
from pathlib import Path

import pytest

from pytest_containers.ledger import Ledger, Record, reap_dead, register_undoer

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.needs_root

LEAKY = """
    import subprocess
    from pytest_containers.plugin import ledger

    def test_cleanup_of_a_cgroup_is_lost(cgroup_budget):
        budget = cgroup_budget(pids=4)
        budget.close = lambda: None  # its undo never runs

    def test_netns_made_outside_the_ledger(request):
        name = ledger(request.config).unique_name("pc")
        subprocess.run(["ip", "netns", "add", name], check=True)
"""


def leftovers(prefix: str = "pc-") -> list[str]:
    """Network namespaces and cgroup directories named ``prefix*`` on this host."""
    netns = glob.glob(f"/run/netns/{prefix}*")
    cgroups = glob.glob(f"/sys/fs/cgroup/*/{prefix}*") + glob.glob(f"/sys/fs/cgroup/{prefix}*")
    return sorted(netns + cgroups)


@pytest.fixture
def run(pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Run pytest in a subprocess over this test's private ledger root."""
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    root = tmp_path / "ledger"

    def run_pytest(*args: str) -> pytest.RunResult:
        return pytester.runpytest_subprocess(f"--containers-ledger={root}", *args, timeout=60)

    return run_pytest


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (not gone, not a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


def pid_of(result: pytest.RunResult) -> str:
    match = re.search(r"pc-main-(\d+)-", result.stdout.str())
    assert match, result.stdout.str()
    return match.group(1)


def test_leak_fails_the_session_and_names_what_leaked(pytester: pytest.Pytester, run):
    pytester.makepyfile(LEAKY)
    result = run()
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    pid = pid_of(result)
    result.stdout.fnmatch_lines(
        [
            f"pytest-containers: leaked cgroup pc-main-{pid}-* (dirs=[[]*]) (removed now)",
            f"pytest-containers: leaked netns pc-main-{pid}-* (in /run/netns, not in the ledger)"
            " (removed now)",
            "pytest-containers: 2 leaked; the session fails*",
        ]
    )
    assert leftovers(f"pc-main-{pid}-") == []


def test_warn_keeps_the_status_and_off_skips_the_check(pytester: pytest.Pytester, run):
    pytester.makepyfile(LEAKY)
    pytester.makeini("[pytest]\ncontainers_leak_check = warn\n")
    warned = run()
    assert warned.ret == pytest.ExitCode.OK
    warned.stdout.fnmatch_lines(["pytest-containers: leaked cgroup*", "*warning: 2 leaked"])
    assert leftovers(f"pc-main-{pid_of(warned)}-") == []

    pytester.makepyfile("def test_clean(netns_hosts, cgroup_budget):\n    netns_hosts(2)\n")
    clean = run("--containers-leak-check=off")
    assert clean.ret == pytest.ExitCode.OK
    assert "leaked" not in clean.stdout.str()

    bad = run("--containers-leak-check=maybe")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR


def test_unchecked_leak_is_reaped_by_the_next_session(pytester: pytest.Pytester, run):
    pytester.makepyfile(
        """
        def test_cleanup_of_a_cgroup_is_lost(cgroup_budget):
            budget = cgroup_budget(pids=4)
            budget.close = lambda: None
            print("MADE", budget.name)
        """
    )
    first = run("--containers-leak-check=off", "-s")
    assert first.ret == pytest.ExitCode.OK
    name = re.search(r"MADE (\S+)", first.stdout.str()).group(1)  # type: ignore[union-attr]
    assert leftovers(name)
    pytester.makepyfile("def test_nothing():\n    pass\n")
    second = run()
    second.stdout.fnmatch_lines(
        [f"pytest-containers: reaped cgroup {name} * left by a dead session"]
    )
    assert second.ret == pytest.ExitCode.OK
    assert leftovers(name) == []


def test_killed_session_is_reaped_at_the_next_start(pytester: pytest.Pytester, run, tmp_path: Path):
    made = tmp_path / "made.json"
    pytester.makepyfile(
        f"""
        import json, os, signal

        def test_dies_mid_test(netns_hosts, cgroup_budget, isolated_namespaces):
            net = netns_hosts(2)
            budget = cgroup_budget(memory="64M", pids=8)
            proc = isolated_namespaces.spawn(["sleep", "30"], kinds=("pid",))
            names = [h.name for h in net.hosts] + [budget.name]
            with open({str(made)!r}, "w") as f:
                json.dump({{"names": names, "sleeper": proc.pid}}, f)
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    first = run()
    assert first.ret == -9
    state = json.loads(made.read_text())
    assert all(leftovers(name) for name in state["names"])

    pytester.makepyfile("def test_nothing():\n    pass\n")
    second = run()
    assert second.ret == pytest.ExitCode.OK
    lines = [
        f"pytest-containers: reaped netns {n} left by a dead session" for n in state["names"][:2]
    ]
    second.stdout.fnmatch_lines(
        [*lines, f"pytest-containers: reaped cgroup {state['names'][2]} * left by a dead session"],
        consecutive=False,
    )
    assert [n for n in state["names"] if leftovers(n)] == []
    assert not running(state["sleeper"])  # it died with its parent


def test_xdist_names_carry_the_worker_and_a_killed_worker_is_reaped(
    pytester: pytest.Pytester, run, tmp_path: Path
):
    seen = tmp_path / "seen"
    seen.mkdir()
    pytester.makepyfile(
        f"""
        import os, signal, subprocess, time
        import pytest

        @pytest.mark.parametrize("i", range(4))
        def test_names(netns_hosts, cgroup_budget, i):
            worker = os.environ["PYTEST_XDIST_WORKER"]
            prefix = f"pc-{{worker}}-{{os.getpid()}}-"
            net = netns_hosts(2)
            budget = cgroup_budget(pids=8)
            assert all(h.name.startswith(prefix) for h in net.hosts)
            assert budget.name.startswith(prefix)
            open(os.path.join({str(seen)!r}, f"{{worker}}-{{os.getpid()}}"), "w").close()
            time.sleep(0.2)  # let the other worker take tests too

        def test_worker_leaks(request):
            from pytest_containers.plugin import ledger

            name = ledger(request.config).unique_name("pc")
            subprocess.run(["ip", "netns", "add", name], check=True)

        def test_worker_dies(netns_hosts, cgroup_budget):
            netns_hosts(2)
            cgroup_budget(pids=8)
            worker = os.environ["PYTEST_XDIST_WORKER"]
            open(os.path.join({str(seen)!r}, f"{{worker}}-{{os.getpid()}}"), "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    result = run("-p", "xdist", "-n", "2")
    result.assert_outcomes(passed=5, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*reaped netns pc-gw*-*left by a dead worker*"])
    # the leak in a worker is reported by the controller, once
    result.stdout.fnmatch_lines(
        [
            "pytest-containers: leaked netns pc-gw*-*-* (in /run/netns, not in the ledger)"
            " (removed now)",
            "pytest-containers: 1 leaked; the session fails*",
        ]
    )
    workers = sorted(os.listdir(seen))
    assert {w.split("-")[0] for w in workers} >= {"gw0", "gw1"}
    assert [p for w in workers for p in leftovers(f"pc-{w}-")] == []


# ------------------------------------------------------------------ the ledger's journal


def test_journal_holds_records_until_released(tmp_path: Path):
    led = Ledger(tmp_path, "main-1-2")
    first = led.record("cgroup", "pc-main-1-0", dirs=["/a"])
    second = led.record("netns", "pc-main-1-1")
    assert [r.name for r in led.outstanding()] == ["pc-main-1-0", "pc-main-1-1"]
    assert led.outstanding()[0].details == {"dirs": ["/a"]}
    led.release(first)
    led.release(first)  # safe twice
    lines = [json.loads(line) for line in led.journal.read_text().splitlines()]
    assert lines == [
        {"id": first.id, "kind": "cgroup", "name": "pc-main-1-0", "details": {"dirs": ["/a"]}},
        {"id": second.id, "kind": "netns", "name": "pc-main-1-1", "details": {}},
        {"release": first.id},
    ]
    led.close()  # one record is outstanding: the journal stays for the next session
    assert [r.name for r in led.outstanding()] == ["pc-main-1-1"]
    led.release(second)  # released after the end: tidied up again
    assert not led.dir.exists()


def test_dead_processes_journal_is_reaped_despite_a_torn_line(tmp_path: Path):
    undone: list[str] = []

    def undo(rec: Record) -> None:
        if rec.details.get("fail"):
            raise OSError("busy")
        undone.append(rec.name)

    register_undoer("pc-test-kind", undo)
    dead = Ledger(tmp_path, "gw3-999999999-1")  # no such process
    dead.record("pc-test-kind", "made")
    dead.release(dead.record("pc-test-kind", "released"))
    dead.record("pc-test-kind", "failing", fail=True)
    with open(dead.journal, "a") as f:  # then it died writing its last record
        f.write('{"id": 99, "kind": "pc-test-ki')
    reaped, failed = reap_dead(tmp_path)
    assert (reaped, undone) == (["pc-test-kind made"], ["made"])
    assert failed == ["pc-test-kind failing (fail=True): busy"]
    # the failed one is kept for the next session; the reaper's line was not torn
    assert [r.name for r in dead.outstanding()] == ["failing"]
    assert dead.dir.exists()


def test_records_of_the_older_one_file_format_are_reaped(tmp_path: Path):
    undone: list[str] = []
    register_undoer("pc-test-kind", lambda rec: undone.append(rec.name))
    directory = tmp_path / "main-999999999-1"
    directory.mkdir()
    (directory / "pc-test-kind--old.json").write_text(
        json.dumps({"kind": "pc-test-kind", "name": "old", "details": {}})
    )
    assert reap_dead(tmp_path) == (["pc-test-kind old"], [])
    assert undone == ["old"] and not directory.exists()
