"""``--runtime`` and the ``runtime_adapter``, ``bundle`` and ``container`` fixtures, as a
user's test suite sees them (through ``pytester``)."""

from __future__ import annotations

import json
import os
import re
import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_containers.adapters.handle import Container
from pytest_containers.errors import ContainerNotFoundError
from pytest_containers.runtime import ContainerFactory

pytest_plugins = ["pytester"]

USER_TESTS = textwrap.dedent(
    """
    def test_container_runs(container):
        c = container(["sleep", "30"], hostname="web", env={"A": "1"}, memory="64m")
        assert c.status == "running"
        assert c.exec(["hostname"]).stdout == "web\\n"
        assert c.exec(["sh", "-c", "echo $A"]).stdout == "1\\n"
        assert c.id.startswith("pc-main-")

    def test_output_and_exit_status(container):
        c = container(["sh", "-c", "echo hello; echo oops >&2; exit 3"])
        assert c.wait(timeout=20) == 3
        assert (c.stdout(), c.stderr()) == ("hello\\n", "oops\\n")

    def test_created_only(container):
        c = container(["true"], start=False)
        assert c.status == "created"

    def test_bundle_and_adapter(bundle, runtime_adapter):
        assert runtime_adapter.run("plain-run", bundle(["sh", "-c", "exit 4"])) == 4
    """
)

INSTALLED = [name for name in ("runc", "crun", "runsc") if shutil.which(name)]


@pytest.fixture(autouse=True)
def plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inner sessions run as a user's plain ``pytest``, even when this suite runs under
    xdist (the ledger takes the worker id from the environment)."""
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(name, raising=False)


def isolated(pytester: pytest.Pytester, *args: str) -> list[str]:
    """Options giving an inner session its own ledger and state root."""
    return [
        f"--containers-ledger={pytester.path / 'ledger'}",
        f"--runtime-root={pytester.path / 'state'}",
        "-p",
        "no:cacheprovider",
        *args,
    ]


def containers_left(pytester: pytest.Pytester) -> list[str]:
    root = pytester.path / "state"
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_options_and_ini_in_help(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(
        ["*containers*", "*--runtime=NAME*", "*--runtime-root=DIR*", "*runtime (string)*"]
    )


def test_missing_runtime_is_a_usage_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(pytester.mkdir("empty-path")))
    result = pytester.runpytest("--runtime=runc")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--runtime=runc: runc not found on PATH: apt-get install runc, or --runtime=oci:PATH*"]
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("oci:/nonexistent/rt", "*/nonexistent/rt does not exist or is not executable*"),
        ("bogus", "*unknown runtime 'bogus'; use --runtime=reference|runc|*|docker*"),
    ],
)
def test_bad_runtime_values(pytester: pytest.Pytester, value: str, message: str) -> None:
    pytester.makeini(f"[pytest]\nruntime = {value}\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


@pytest.mark.needs_root
@pytest.mark.parametrize("runtime", ["reference", *INSTALLED])
def test_fixtures_in_a_users_test_file(pytester: pytest.Pytester, runtime: str) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess(*isolated(pytester, f"--runtime={runtime}"))
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines([f"containers: runtime {runtime}, state root *"])
    assert containers_left(pytester) == []
    assert not list((pytester.path / "ledger").glob("*/*.json"))


@pytest.mark.needs_root
def test_default_state_root_is_removed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess(f"--containers-ledger={pytester.path / 'ledger'}")
    result.assert_outcomes(passed=4)
    [root] = re.findall(r"state root (\S+)", result.stdout.str())
    assert root.startswith("/run/pytest-containers/runtime/pc-main-")
    assert not os.path.exists(Path(root).parent)


@pytest.mark.needs_root
def test_containers_deleted_on_failure_and_interrupt(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_user="""
        def test_fails(container):
            container(["sleep", "30"])
            assert False, "the test fails with its container running"

        def test_interrupted(container):
            container(["sleep", "30"])
            raise KeyboardInterrupt
        """
    )
    result = pytester.runpytest_subprocess(*isolated(pytester))
    result.stdout.fnmatch_lines(
        ["*the test fails with its container running*", "*KeyboardInterrupt*"]
    )
    result.stdout.no_fnmatch_line("*leaked*")
    assert containers_left(pytester) == []


@pytest.mark.needs_root
def test_names_carry_the_xdist_worker(pytester: pytest.Pytester) -> None:
    out = pytester.mkdir("ids")
    pytester.makepyfile(
        test_user=f"""
        import pytest

        @pytest.mark.parametrize("n", range(4))
        def test_one(container, n):
            c = container(["sleep", "30"])
            (__import__("pathlib").Path({str(out)!r}) / c.id).touch()
        """
    )
    result = pytester.runpytest_subprocess(*isolated(pytester, "-p", "xdist", "-n", "2"))
    result.assert_outcomes(passed=4)
    ids = sorted(p.name for p in out.iterdir())
    assert len(ids) == 4 and {i.split("-")[1] for i in ids} <= {"gw0", "gw1"}
    assert containers_left(pytester) == []


@pytest.mark.needs_root
def test_the_report_names_the_runtime_version_under_xdist(pytester: pytest.Pytester) -> None:
    # Only the workers open the adapter; the controller writes the report.
    pytester.makepyfile(test_user="def test_one(container): container(['true'])")
    result = pytester.runpytest_subprocess(
        *isolated(pytester, "-p", "xdist", "-n", "2", "--conformance-json=out.json")
    )
    result.assert_outcomes(passed=1)
    system = json.loads((pytester.path / "out.json").read_text())["system"]
    assert system["name"] == "reference"
    assert system["version"].startswith("reference-runtime ")


@pytest.mark.needs_root
@pytest.mark.parametrize("runtime", ["reference", *INSTALLED[:1]])
def test_a_killed_session_is_reaped_by_the_next(pytester: pytest.Pytester, runtime: str) -> None:
    pytester.makepyfile(
        test_user="""
        import os, signal

        def test_killed(container):
            container(["sleep", "300"])
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    args = isolated(pytester, f"--runtime={runtime}")
    pytester.runpytest_subprocess(*args)
    assert len(containers_left(pytester)) == 1
    pytester.makepyfile(test_user="def test_nothing(): pass")
    result = pytester.runpytest_subprocess(*args)
    result.stdout.fnmatch_lines(["*reaped container pc-main-*left by a dead session*"])
    result.assert_outcomes(passed=1)
    assert containers_left(pytester) == []
    [dead] = re.findall(r"reaped container pc-main-(\d+)-", result.stdout.str())
    assert not list(Path("/run/pytest-containers/runtime").glob(f"pc-*-{dead}-*"))


@pytest.mark.needs_root
def test_the_container_fixture_in_this_suite(
    container: Callable[..., Container], container_factory: ContainerFactory, tmp_path: Path
) -> None:
    c = container(["sh", "-c", "echo $HOSTNAME; sleep 30"], hostname="here")
    assert c.exec(["hostname"]).stdout == "here\n"
    with pytest.raises(TypeError, match=r"container\(bundle=path\)"):
        container(bundle=tmp_path, hostname="x")
    container_factory.remove(c)
    container_factory.remove(c)  # idempotent
    with pytest.raises(ContainerNotFoundError):
        c.state()
