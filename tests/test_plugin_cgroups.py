"""``cgroup_budget``: real limits on the kernel, and the fixture in a user's tests."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pytest_containers.cgroups import CgroupBudgetFactory, parse_memory
from pytest_containers.plugin import ledger

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.needs_root

# Forks until it cannot (bounded: 20 tries); prints "forked failed".
FORKER = textwrap.dedent(
    """
    import os, time
    children, failed = [], 0
    for _ in range(20):
        try:
            pid = os.fork()
        except BlockingIOError:
            failed += 1
            continue
        if pid == 0:
            time.sleep(5)
            os._exit(0)
        children.append(pid)
    for pid in children:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    print(len(children), failed)
    """
)


def test_memory_limit_oom_kills(cgroup_budget: CgroupBudgetFactory):
    budget = cgroup_budget(memory="32M")
    proc = budget.run([sys.executable, "-c", "b = b'x' * (256 << 20)"])
    stats = budget.stats()
    assert proc.returncode == -9
    assert stats.oom_kills is not None and stats.oom_kills >= 1
    assert stats.memory_limit == 32 << 20
    assert stats.memory_peak is not None and stats.memory_peak <= 32 << 20


def test_pids_limit_stops_forks(cgroup_budget: CgroupBudgetFactory):
    budget = cgroup_budget(pids=5)
    proc = budget.run([sys.executable, "-c", FORKER])
    forked, failed = map(int, proc.stdout.split())
    assert proc.returncode == 0, proc.stderr
    assert forked == 4 and failed == 16  # python itself is the fifth task
    assert budget.stats().pids_limit == 5


def test_cpu_quota_throttles(cgroup_budget: CgroupBudgetFactory):
    with cgroup_budget(cpu=0.2) as budget:
        spin = "import time\nend = time.monotonic() + 0.4\nwhile time.monotonic() < end: pass"
        assert budget.run([sys.executable, "-c", spin]).returncode == 0
        stats = budget.stats()
    assert stats.cpu_nr_throttled is not None and stats.cpu_nr_throttled > 0
    assert stats.cpu_throttled_usec is not None and stats.cpu_throttled_usec > 0
    assert budget.closed


def test_removal_kills_what_is_inside_and_forgets_the_record(
    cgroup_budget: CgroupBudgetFactory, request: pytest.FixtureRequest
):
    budget = cgroup_budget(memory=64 << 20, pids=16)
    sleeper = subprocess.Popen(["sleep", "30"])
    budget.add(sleeper.pid)
    paths = set(budget.paths().values())
    assert budget.pids() == [sleeper.pid]
    assert all(os.path.isdir(p) for p in paths)
    assert budget.name in {rec.name for rec in ledger(request.config).outstanding()}
    budget.close()
    budget.close()  # idempotent
    assert sleeper.wait(timeout=5) == -9
    assert not any(os.path.exists(p) for p in paths)
    assert budget.name not in {rec.name for rec in ledger(request.config).outstanding()}


def test_name_and_paths_carry_the_worker_and_pid(cgroup_budget: CgroupBudgetFactory):
    budget = cgroup_budget(pids=8)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    assert budget.name.startswith(f"pc-{worker}-{os.getpid()}-")
    assert budget.path("pids").endswith("/" + budget.name)
    assert os.path.basename(budget.path("memory")) == budget.name


@pytest.mark.parametrize(
    ("text", "expected"),
    [("64M", 64 << 20), ("512k", 512 << 10), ("1G", 1 << 30), ("64MiB", 64 << 20), ("100", 100)],
)
def test_memory_sizes(text: str, expected: int):
    assert parse_memory(text) == expected


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"memory": "64X"}, ValueError, "memory='64M'"),
        ({"memory": -1}, ValueError, "must be positive"),
        ({"memory": 1.5}, TypeError, "memory='64M'"),
        ({"pids": "8"}, TypeError, "pids=32"),
        ({"pids": 0}, ValueError, "at least 1"),
        ({"cpu": "half"}, TypeError, "cpu=0.5"),
        ({"cpu": 0.001}, ValueError, "at least 0.01"),
    ],
)
def test_misuse_says_how_to_call_it(cgroup_budget: CgroupBudgetFactory, kwargs, error, message):
    with pytest.raises(error, match=message):
        cgroup_budget(**kwargs)


def test_handle_misuse(cgroup_budget: CgroupBudgetFactory):
    budget = cgroup_budget(pids=4)
    with pytest.raises(ValueError, match=r"budget.run\(argv\)"):
        budget.add(os.getpid())
    with pytest.raises(TypeError, match=r"budget.run\(\['true'\]\)"):
        budget.run("true")
    budget.close()
    with pytest.raises(ValueError, match="closed"):
        budget.run(["true"])


def test_fixture_and_ini_timeout_in_a_users_test_file(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    pytester.makeini("[pytest]\ncontainers_cgroup_timeout = 0.3\n")
    pytester.makepyfile(
        """
        import os
        import subprocess
        import pytest

        @pytest.fixture(scope="session")
        def shared(cgroup_budget_factory):
            return cgroup_budget_factory(memory="128M")

        def test_run_inside(cgroup_budget, shared):
            budget = cgroup_budget(pids=8)
            proc = budget.run(["cat", "/proc/self/cgroup"])
            assert proc.returncode == 0
            assert ":pids:/" + budget.name in proc.stdout or "::/" + budget.name in proc.stdout
            assert shared.stats().memory_limit == 128 << 20

        def test_ini_timeout(cgroup_budget):
            with pytest.raises(subprocess.TimeoutExpired):
                cgroup_budget(pids=8).run(["sleep", "10"])
        """
    )
    result = pytester.runpytest_subprocess(f"--containers-ledger={tmp_path / 'ledger'}")
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.OK
    assert "leaked" not in result.stdout.str()


def test_removal_takes_sub_cgroups_and_processes_inside_too(cgroup_budget: CgroupBudgetFactory):
    budget = cgroup_budget(memory="64M", pids=16)
    sub = os.path.join(budget.path("pids"), "sub")
    os.mkdir(sub)
    sleeper = subprocess.Popen(["sleep", "30"])
    with open(os.path.join(sub, "cgroup.procs"), "w") as f:
        f.write(str(sleeper.pid))
    paths = set(budget.paths().values())
    budget.close()
    assert sleeper.wait(timeout=5) == -9
    assert not any(os.path.exists(p) for p in [*paths, sub])


def test_a_directory_of_that_name_already_there_is_joined_not_removed(
    cgroup_budget: CgroupBudgetFactory, request: pytest.FixtureRequest
):
    with cgroup_budget(pids=4) as probe:
        root = os.path.dirname(probe.path("memory"))
    prefix, number = ledger(request.config).unique_name("pc").rsplit("-", 1)
    name = f"{prefix}-{int(number) + 1}"  # what the next budget is called
    there = os.path.join(root, name)
    os.mkdir(there)
    try:
        budget = cgroup_budget(memory="48M", pids=4)
        assert budget.name == name
        stats = budget.stats()
        assert (stats.memory_limit, stats.pids_limit) == (48 << 20, 4)
        made = set(budget.paths().values()) - {there}
        budget.close()
        assert os.path.isdir(there)  # not made by the budget: left as it was
        assert not any(os.path.exists(p) for p in made)
    finally:
        os.rmdir(there)
