"""The conformance report of real pytest runs (through pytester), serial and under xdist."""

from __future__ import annotations

import re
import shlex

import pytest

from pytest_containers import reportdata

pytest_plugins = ["pytester"]

CATALOGUE = """
[[requirement]]
id = "T-PASS"
level = "MUST"
area = "lifecycle"
source = "runtime-spec runtime.md#lifecycle"
text = "A <created> container starts & runs."

[[requirement]]
id = "T-FAIL"
level = "MUST"
area = "lifecycle"
source = "project guarantee"
text = "Arithmetic holds."

[[requirement]]
id = "T-HYP"
level = "SHOULD"
area = "resources"
source = "project guarantee"
text = "Small numbers stay small."

[[requirement]]
id = "T-NA"
level = "MUST"
area = "resources"
source = "runtime-spec runtime.md#state"
text = "The created state is observable."

[[requirement]]
id = "T-SKIP"
level = "MAY"
area = "isolation"
source = "project guarantee"
text = "Docker is there."

[[requirement]]
id = "T-UNTESTED"
level = "SHOULD"
area = "isolation"
source = "project guarantee"
text = "Nothing tests this."
untested = "needs a second host"
"""

TESTS = """
import pytest
from hypothesis import given, strategies as st
from pytest_containers.requirements import not_applicable

@pytest.mark.requirement("T-PASS")
def test_pass():
    pass

@pytest.mark.requirement("T-FAIL")
def test_fail():
    assert 1 + 1 == 3, "arithmetic broke <b>"

@pytest.mark.requirement("T-HYP")
@given(st.integers())
def test_small(n):
    assert n < 10

@pytest.mark.requirement("T-NA")
def test_na():
    not_applicable("this engine has no created state")

@pytest.mark.requirement("T-SKIP")
def test_skip():
    pytest.skip("no docker here")

def test_plain():
    pass
"""

CONFTEST = """
from pytest_containers.requirements import ENVIRONMENT_KEY

def pytest_configure(config):
    env = config.stash.setdefault(ENVIRONMENT_KEY, {})
    env.update({"runtime": "sample", "runtime version": "1.0"})
"""

# The conftest of a project whose tests count as the conformance suites.
SUITE_CONFTEST = """
from pathlib import Path
import pytest_containers.requirements as requirements

requirements._CONFORMANCE_DIR = Path(__file__).resolve().parent
"""

ARGS = ("-p", "no:cacheprovider", "--runtime=reference")
XDIST = ("-p", "xdist", "-n", "2")


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    req = pytester.mkdir("reqs")
    (req / "cat.toml").write_text(CATALOGUE)
    pytester.makeini(f"[pytest]\ncontainers_requirements = {req}\n")
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_x=TESTS)
    return pytester


@pytest.mark.parametrize("mode", ["serial", "xdist"])
def test_report_of_a_real_run(
    project: pytest.Pytester, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Under CI=true Hypothesis derandomizes (its built-in "ci" profile): no seed to report.
    monkeypatch.delenv("CI", raising=False)
    extra = XDIST if mode == "xdist" else ()
    result = project.runpytest_subprocess(
        *ARGS,
        *extra,
        "--conformance-report=out/report.html",
        "--conformance-json=out/report.json",
        "--junitxml=junit.xml",
    )
    result.assert_outcomes(passed=2, failed=2, skipped=2)
    result.stdout.fnmatch_lines(
        [
            "*- conformance report -*",
            "not conformant: sample 1.0 fails 1 of 3 MUST requirements: T-FAIL.",
            f"written to {project.path}/out/report.html",
            f"written to {project.path}/out/report.json",
        ]
    )
    assert (project.path / "junit.xml").is_file()

    report = reportdata.load(project.path / "out" / "report.json")
    rows = {r.id: r for r in report.requirements}
    assert {rid: r.status for rid, r in rows.items()} == {
        "T-PASS": "pass",
        "T-FAIL": "fail",
        "T-HYP": "fail",
        "T-NA": "not-applicable",
        "T-SKIP": "skipped",
        "T-UNTESTED": "untested",
    }
    assert report.system == {"name": "sample", "version": "1.0"}
    assert report.verdict.summary == "not conformant"
    assert {"kernel", "cgroup layout", "hostname", "hypothesis profile"} <= set(report.environment)
    assert (rows["T-NA"].reason, rows["T-SKIP"].reason) == (
        "this engine has no created state",
        "no docker here",
    )
    assert rows["T-UNTESTED"].reason == "needs a second host"
    (fail,) = rows["T-FAIL"].tests
    assert "arithmetic broke <b>" in fail.message
    assert fail.reproduce == "pytest 'test_x.py::test_fail' --runtime=reference"
    (hyp,) = rows["T-HYP"].tests
    assert "n=10" in hyp.example
    assert re.fullmatch(
        r"pytest 'test_x\.py::test_small' --runtime=reference --hypothesis-seed=\d+", hyp.reproduce
    )
    assert bool(hyp.worker) is (mode == "xdist")

    page = (project.path / "out" / "report.html").read_text()
    assert 'id="verdict"' in page and "Not conformant." in page
    for rid in rows:
        assert f'id="req-{rid}"' in page
    assert "A &lt;created&gt; container starts &amp; runs." in page
    assert "arithmetic broke &lt;b&gt;" in page
    assert "n=10" in page and "--hypothesis-seed=" in page
    assert "this engine has no created state" in page and "needs a second host" in page
    assert "<svg" in page and 'role="img"' in page

    if mode == "serial":  # the reproduce command reruns the failure
        again = project.runpytest_subprocess(*shlex.split(hyp.reproduce)[1:])
        again.assert_outcomes(failed=1)
        again.stdout.fnmatch_lines(["*n=10*"])


def test_no_report_unless_asked(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess(*ARGS)
    result.assert_outcomes(passed=2, failed=2, skipped=2)
    assert "conformance report" not in result.stdout.str()
    assert not (project.path / "reports").exists()


@pytest.mark.parametrize("mode", ["serial", "xdist"])
def test_conformance_sessions_write_the_default_report(project: pytest.Pytester, mode: str) -> None:
    project.makeconftest(CONFTEST + SUITE_CONFTEST)
    extra = XDIST if mode == "xdist" else ()
    result = project.runpytest_subprocess(*ARGS, *extra)
    result.stdout.fnmatch_lines(["*- conformance report -*"])
    assert (project.path / "reports" / "conformance.html").is_file()
    assert reportdata.load(project.path / "reports" / "conformance.json").label == "sample 1.0"


def test_ini_turns_a_default_file_off(project: pytest.Pytester) -> None:
    project.makeconftest(CONFTEST + SUITE_CONFTEST)
    project.runpytest_subprocess(*ARGS, "-o", "conformance_json=")
    assert (project.path / "reports" / "conformance.html").is_file()
    assert not (project.path / "reports" / "conformance.json").exists()


def test_an_unwritable_path_is_one_line(project: pytest.Pytester) -> None:
    (project.path / "file").write_text("")
    result = project.runpytest_subprocess(*ARGS, "--conformance-json=file/report.json")
    result.stdout.fnmatch_lines(
        [
            "pytest-containers: cannot write the conformance report */file/report.json: "
            "*/file: File exists"
        ]
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_report_options_are_documented(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--help")
    result.stdout.fnmatch_lines(
        ["*--conformance-report=PATH*", "*--conformance-json=PATH*", "*conformance_report*"]
    )


def test_a_runtime_and_a_cluster_are_both_named() -> None:
    from pytest_containers.report import _system

    env = {"runtime": "runc", "runtime version": "1.1.5", "cluster": "reference"}
    assert _system(None, env) == {  # type: ignore[arg-type]  # config unused when named
        "name": "runc runtime + reference cluster",
        "version": "runtime 1.1.5",
    }
    assert _system(None, {"runtime": "runc", "runtime version": "1.1.5"}) == {  # type: ignore[arg-type]
        "name": "runc",
        "version": "1.1.5",
    }
