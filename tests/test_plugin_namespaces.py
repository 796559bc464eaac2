"""``isolated_namespaces``: real isolation on the kernel, and the fixture in a user's tests."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from pytest_containers.namespaces import NamespaceFactory, current_namespaces

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
