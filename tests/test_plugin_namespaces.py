"""``isolated_namespaces``: real isolation on the kernel, and the fixture in a user's tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_containers.namespaces import NamespaceFactory, current_namespaces
from pytest_containers.plugin import ledger

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.needs_root


def _gone(pid: int, timeout: float = 5.0) -> bool:
    """Whether ``pid`` has left the process table (bounded wait: init reaps orphans)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not os.path.exists(f"/proc/{pid}"):
            return True
        time.sleep(0.01)
    return False


def test_command_gets_its_own_uts_and_pid_namespaces(isolated_namespaces: NamespaceFactory):
    result = isolated_namespaces(["hostname"], kinds=("uts", "pid"), hostname="pc-box")
    host = current_namespaces()
    assert (result.returncode, result.stdout, result.stderr) == (0, "pc-box\n", "")
    assert result.ns["uts"] != host["uts"]
    assert result.ns["pid"] != host["pid"]
    assert result.ns["net"] == host["net"]  # not asked for: shared
    assert socket.gethostname() != "pc-box"


def test_function_runs_as_pid_1_with_a_fresh_proc(isolated_namespaces: NamespaceFactory):
    def inside() -> tuple[int, list[int]]:
        return os.getpid(), sorted(int(p) for p in os.listdir("/proc") if p.isdigit())

    result = isolated_namespaces(inside, kinds=("pid", "mount"))
    assert result.value == (1, [1])
    assert result.ns["mount"] != current_namespaces()["mount"]
    assert result.pid != os.getpid() and result.returncode == 0


def test_new_network_namespace_has_only_loopback(isolated_namespaces: NamespaceFactory):
    result = isolated_namespaces(socket.if_nameindex, kinds=("net",))
    assert result.value == [(1, "lo")]
    assert result.ns["net"] != current_namespaces()["net"]


def test_user_namespace_maps_root_to_root(isolated_namespaces: NamespaceFactory):
    result = isolated_namespaces(["id", "-u"], kinds=("user", "pid", "mount"))
    assert (result.returncode, result.stdout) == (0, "0\n")
    assert result.ns["user"] != current_namespaces()["user"]


def test_function_output_and_exception_come_back(isolated_namespaces: NamespaceFactory):
    def noisy() -> None:
        print("to stdout")
        raise KeyError("inside")

    with pytest.raises(KeyError, match="inside") as info:
        isolated_namespaces(noisy, kinds=("uts",))
    assert any("raised in isolated_namespaces" in note for note in info.value.__notes__)


def test_missing_command_raises_file_not_found(isolated_namespaces: NamespaceFactory):
    with pytest.raises(FileNotFoundError):
        isolated_namespaces(["/nonexistent/command"], kinds=("uts",))


def test_timeout_kills_the_whole_namespace(isolated_namespaces: NamespaceFactory):
    proc = isolated_namespaces.spawn(["sleep", "30"], kinds=("pid", "mount"), timeout=0.3)
    pid = proc.pid
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"did not finish within 0\.3s"):
        proc.wait()
    assert time.monotonic() - started < 5
    assert _gone(pid)


def test_spawned_process_is_visible_from_outside_and_killed_on_exit(
    isolated_namespaces: NamespaceFactory,
):
    with isolated_namespaces.spawn(["sleep", "30"], kinds=("net", "pid")) as proc:
        assert os.readlink(f"/proc/{proc.pid}/ns/net") == proc.ns["net"]
        pid = proc.pid
    assert _gone(pid)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda f: f("hostname"), TypeError, r"isolated_namespaces\(\['hostname'\]\)"),
        (lambda f: f([]), ValueError, "has no command"),
        (lambda f: f(42), TypeError, "takes an argv list"),
        (lambda f: f(["true"], kinds="pid"), TypeError, r"kinds=\('pid',\)"),
        (lambda f: f(["true"], kinds=("pid", "time")), ValueError, "unknown namespace kind 'time'"),
        (lambda f: f(["true"], kinds=()), ValueError, "makes no new namespace"),
        (lambda f: f(["true"], kinds=("pid",), hostname="x"), ValueError, "kinds=.*'uts'"),
        (lambda f: f(["true"], timeout=0), ValueError, "timeout=10"),
    ],
)
def test_misuse_says_how_to_call_it(isolated_namespaces: NamespaceFactory, call, error, message):
    with pytest.raises(error, match=message):
        call(isolated_namespaces)


def test_fixture_and_ini_timeout_in_a_users_test_file(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    pytester.makeini("[pytest]\ncontainers_ns_timeout = 0.5\n")
    pytester.makepyfile(
        """
        import os
        import pytest

        def test_hostname(isolated_namespaces):
            result = isolated_namespaces(["hostname"], kinds=("uts",), hostname="users-box")
            assert result.stdout == "users-box\\n"

        def test_pid_one(isolated_namespaces):
            assert isolated_namespaces(os.getpid, kinds=("pid",)).value == 1

        def test_ini_timeout(isolated_namespaces):
            assert isolated_namespaces.timeout == 0.5
            with pytest.raises(TimeoutError):
                isolated_namespaces(["sleep", "10"], kinds=("pid",))

        @pytest.fixture(scope="session")
        def shared(isolated_namespaces_factory):
            return isolated_namespaces_factory(["uname", "-n"], kinds=("uts",), hostname="s")

        def test_session_factory(shared):
            assert shared.stdout == "s\\n"
        """
    )
    result = pytester.runpytest_subprocess(f"--containers-ledger={tmp_path / 'ledger'}")
    result.assert_outcomes(passed=4)
    assert "leaked" not in result.stdout.str()

    bad = pytester.runpytest_subprocess(
        f"--containers-ledger={tmp_path / 'ledger'}", "--containers-ns-timeout=soon"
    )
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*containers_ns_timeout must be positive seconds*'soon'*"])


# ------------------------------------------------------------------ the helper process


def _parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rfind(")") + 2 :].split()[1])


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (not gone, not a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


def test_commands_are_started_by_one_helper_and_callables_by_a_fork(
    isolated_namespaces: NamespaceFactory, request: pytest.FixtureRequest
):
    with isolated_namespaces.spawn(["sleep", "30"], kinds=("pid", "mount")) as first:
        helper = isolated_namespaces.helper_pid
        assert helper is not None and _parent_of(first.pid) == helper
        assert b"_nsexec.py" in Path(f"/proc/{helper}/cmdline").read_bytes()
    with isolated_namespaces.spawn(["sleep", "30"], kinds=("uts",)) as second:
        assert _parent_of(second.pid) == helper  # the same helper: started once
    assert f"nsexec-{helper}" in {r.name for r in ledger(request.config).outstanding()}
    assert isolated_namespaces(os.getppid, kinds=("uts",)).value == os.getpid()


def test_command_runs_in_the_callers_directory_environment_and_umask(
    isolated_namespaces: NamespaceFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    isolated_namespaces(["true"], kinds=("uts",))  # the helper is already running
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PC_NS_PROBE", "probe-1")
    old = os.umask(0o027)
    try:
        result = isolated_namespaces(["sh", "-c", 'pwd; echo "$PC_NS_PROBE"; umask'])
    finally:
        os.umask(old)
    assert result.stdout == f"{tmp_path}\nprobe-1\n0027\n"


def test_timeout_kills_a_command_and_its_process_group(isolated_namespaces: NamespaceFactory):
    script = "sleep 30 & echo $!; wait"
    proc = isolated_namespaces.spawn(["sh", "-c", script], kinds=("uts",), timeout=0.5)
    shell = proc.pid
    with pytest.raises(TimeoutError, match=r"did not finish within 0\.5s") as info:
        proc.wait()
    grandchild = int(info.value.__notes__[0].split("\n")[1])
    proc.close()
    assert _gone(shell) and _gone(grandchild)
    helper = isolated_namespaces.helper_pid
    assert helper is not None and _running(helper)  # it is still there, and still works
    assert isolated_namespaces(["true"], kinds=("uts",)).returncode == 0


@pytest.mark.parametrize(
    ("argv", "error", "message"),
    [
        (["/nonexistent/command"], FileNotFoundError, "No such file or directory"),
        (["pc-no-such-command-anywhere"], FileNotFoundError, "pc-no-such-command-anywhere"),
        (["/"], PermissionError, "Permission denied"),
        (["echo", "a\0b"], ValueError, "NUL character"),
    ],
)
def test_bad_argv_raises_a_clear_error(
    isolated_namespaces: NamespaceFactory, argv: list[str], error: type, message: str
):
    with pytest.raises(error, match=message) as info:
        isolated_namespaces(argv, kinds=("uts",))
    if error is not ValueError:
        assert f"isolated_namespaces({argv!r}" in str(info.value)
    assert isolated_namespaces(["true"], kinds=("uts",)).returncode == 0  # still usable


def test_a_dead_helper_is_replaced_and_its_record_released(
    isolated_namespaces: NamespaceFactory, request: pytest.FixtureRequest
):
    isolated_namespaces(["true"], kinds=("uts",))
    old = isolated_namespaces.helper_pid
    assert old is not None
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while _running(old) and time.monotonic() < deadline:
        time.sleep(0.01)
    result = isolated_namespaces(["hostname"], kinds=("uts",), hostname="again")
    assert result.stdout == "again\n"
    new = isolated_namespaces.helper_pid
    assert new is not None and new != old
    names = {r.name for r in ledger(request.config).outstanding()}
    assert f"nsexec-{new}" in names and f"nsexec-{old}" not in names


def test_helper_of_a_killed_session_is_reaped_by_the_next_one(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    made = tmp_path / "made.json"
    pytester.makepyfile(
        f"""
        import json, os, signal

        def test_dies_with_a_stopped_helper(isolated_namespaces):
            proc = isolated_namespaces.spawn(["sleep", "30"], kinds=("pid",))
            helper = isolated_namespaces.helper_pid
            with open({str(made)!r}, "w") as f:
                json.dump({{"helper": helper, "sleeper": proc.pid}}, f)
            os.kill(helper, signal.SIGSTOP)  # so that it cannot end by itself
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    args = (f"--containers-ledger={tmp_path / 'ledger'}", "-p", "no:cacheprovider")
    first = pytester.runpytest_subprocess(*args, timeout=60)
    assert first.ret == -9
    state = json.loads(made.read_text())
    assert _running(state["helper"])  # stopped, not gone

    pytester.makepyfile("def test_nothing():\n    pass\n")
    second = pytester.runpytest_subprocess(*args, timeout=60)
    assert second.ret == pytest.ExitCode.OK
    second.stdout.fnmatch_lines(
        [f"pytest-containers: reaped process nsexec-{state['helper']} * left by a dead session"]
    )
    assert _gone(state["helper"]) or not _running(state["helper"])
    deadline = time.monotonic() + 5
    while _running(state["sleeper"]) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not _running(state["sleeper"])  # it died with the helper


def test_ctrl_c_kills_the_running_command_and_stops_the_helper(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    made = tmp_path / "made"
    pytester.makepyfile(
        f"""
        def test_runs_long(isolated_namespaces):
            script = "echo $$ > {made}.tmp && mv {made}.tmp {made} && exec sleep 30"
            isolated_namespaces(["sh", "-c", script], kinds=("uts",))
        """
    )
    argv = [sys.executable, "-m", "pytest", f"--containers-ledger={tmp_path / 'ledger'}"]
    inner = subprocess.Popen(
        [*argv, "-p", "no:cacheprovider"],
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not made.exists() and time.monotonic() < deadline and inner.poll() is None:
            time.sleep(0.01)
        sleeper = int(made.read_text())
        helper = _parent_of(sleeper)
        inner.send_signal(signal.SIGINT)
        output, _ = inner.communicate(timeout=30)
    finally:
        if inner.poll() is None:
            inner.kill()
            inner.wait()
    assert inner.returncode == pytest.ExitCode.INTERRUPTED, output
    assert "KeyboardInterrupt" in output and "leaked" not in output
    assert _gone(sleeper) and _gone(helper)
