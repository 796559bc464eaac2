"""The requirement marker, the catalogue and results by requirement (through pytester)."""

from __future__ import annotations

import textwrap

import pytest

pytest_plugins = ["pytester"]

CATALOGUE = """
[[requirement]]
id = "T-ONE"
level = "MUST"
area = "demo"
source = "project guarantee"
text = "One holds."

[[requirement]]
id = "T-TWO"
level = "SHOULD"
area = "demo"
source = "project guarantee"
text = "Two holds."
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    req = pytester.mkdir("reqs")
    (req / "cat.toml").write_text(CATALOGUE)
    pytester.makeini(f"[pytest]\ncontainers_requirements = {req}\n")
    return pytester


def test_marked_tests_run_and_unknown_ids_are_collection_errors(project):
    project.makepyfile(
        test_x=textwrap.dedent(
            """
            import pytest
            from pytest_containers.requirements import not_applicable

            @pytest.mark.requirement("T-ONE")
            def test_one():
                pass

            @pytest.mark.requirement("T-TWO")
            def test_two():
                not_applicable("this engine has no created state")

            @pytest.mark.requirement("T-NOPE")
            def test_unknown():
                pass
            """
        )
    )
    result = project.runpytest_subprocess("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*unknown requirement T-NOPE: not in the catalogue*"])
    assert result.ret != 0
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "-k", "not unknown")
    # deselection happens after our check: the unknown ID is still an error
    assert result.ret != 0


def test_results_are_gathered_by_requirement(project):
    project.makeconftest(
        textwrap.dedent(
            """
            from pytest_containers.requirements import RESULTS_KEY

            def pytest_sessionfinish(session):
                results = session.config.stash[RESULTS_KEY]
                for rid in ("T-ONE", "T-TWO"):
                    print("STATUS", rid, results.status(rid),
                          [t.message for t in results.by_requirement.get(rid, [])])
            """
        )
    )
    project.makepyfile(
        test_x=textwrap.dedent(
            """
            import pytest
            from pytest_containers.requirements import not_applicable

            @pytest.mark.requirement("T-ONE")
            def test_one():
                assert 1 + 1 == 3, "arithmetic broke"

            @pytest.mark.requirement("T-TWO")
            def test_two():
                not_applicable("no created state")

            @pytest.mark.requirement("T-TWO")
            def test_two_by_adapter():
                from pytest_containers.errors import NotApplicableError

                raise NotApplicableError("hooks", "no created state")
            """
        )
    )
    for args in ((), ("-p", "xdist", "-n", "2")):
        result = project.runpytest_subprocess("-p", "no:cacheprovider", "-s", *args)
        result.stdout.fnmatch_lines(
            [
                "*STATUS T-ONE fail*arithmetic broke*",
                "*STATUS T-TWO not-applicable*no created state*",
            ]
        )


def test_bad_catalogue_is_a_usage_error(pytester):
    req = pytester.mkdir("reqs")
    (req / "cat.toml").write_text('[[requirement]]\nid = "X"\nlevel = "OUGHT"\n')
    pytester.makeini(f"[pytest]\ncontainers_requirements = {req}\n")
    pytester.makepyfile("def test_a(): pass")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.stderr.fnmatch_lines(["*lacks area, source, text*"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR
