"""The report's data model: built from Results, JSON round trip, validation, merge, diff."""

from __future__ import annotations

import json
from fnmatch import fnmatch
from pathlib import Path

import pytest

from pytest_containers import reportdata
from pytest_containers import requirements as req
from pytest_containers.report import reproduce_args
from pytest_containers.reporthtml import render_diff, render_matrix, render_report

EXAMPLE = "Failing test case: test_small(\n    n=10,\n)"


def catalogue(*entries: tuple[str, str, str]) -> req.Catalogue:
    """``(id, level, area)`` entries; an ID ending in -U carries an ``untested`` reason."""
    cat = req.Catalogue()
    for rid, level, area in entries:
        untested = "needs a second host" if rid.endswith("-U") else None
        cat.requirements[rid] = req.Requirement(
            rid, level, area, "spec §1", f"{rid} holds.", untested
        )
    return cat


def make_report(
    outcomes: dict[str, str], *, name: str = "runc", extra: tuple[str, ...] = ()
) -> reportdata.Report:
    """A report where requirement ``R-x`` has one test with outcome ``outcomes["R-x"]``."""
    ids = [*outcomes, *extra]
    results = req.Results(catalogue(*((rid, "MUST", "lifecycle") for rid in ids)))
    for rid, outcome in outcomes.items():
        message = {"failed": "assert 1 == 2", "skipped": "later", "not-applicable": "no state"}
        results.add((rid,), req.TestOutcome(f"t.py::test_{rid}", outcome, message.get(outcome, "")))
    return reportdata.build(
        results,
        system={"name": name, "version": "1.1"},
        environment={"kernel": "6.1"},
        run={"started": "2024-05-01T12:00:00+00:00", "duration": 1.5},
        reproduce=lambda nodeid: f"pytest {nodeid!r} --runtime={name}",
    )


@pytest.fixture
def sample() -> reportdata.Report:
    results = req.Results(
        catalogue(
            ("A-PASS", "MUST", "lifecycle"),
            ("A-FAIL", "MUST", "lifecycle"),
            ("B-NA", "MUST", "isolation"),
            ("B-SKIP", "SHOULD", "isolation"),
            ("B-U", "MAY", "isolation"),
            ("B-NONE", "MAY", "isolation"),
        )
    )
    results.add(("A-PASS",), req.TestOutcome("t.py::test_pass", "passed", duration=0.25))
    message = f"assert 10 < 10\n{EXAMPLE}"
    results.add(("A-FAIL", "A-PASS"), req.TestOutcome("t.py::test_small", "failed", message))
    results.add(("B-NA",), req.TestOutcome("t.py::test_na", "not-applicable", "no created state"))
    results.add(("B-SKIP",), req.TestOutcome("t.py::test_skip", "skipped", "needs docker"))
    return reportdata.build(
        results,
        system={"name": "runc", "version": "1.1.5"},
        environment={"kernel": "6.1.0", "cgroup layout": "v2"},
        run={"started": "2024-05-01T12:00:00+00:00", "duration": 3.0, "command": "pytest"},
        reproduce=lambda nodeid: f"pytest '{nodeid}' --runtime=runc --hypothesis-seed=7",
    )


def test_build_gives_each_requirement_its_status_reason_and_tests(sample):
    rows = {r.id: r for r in sample.requirements}
    assert [r.id for r in sample.requirements] == list(rows)  # catalogue order
    assert {rid: r.status for rid, r in rows.items()} == {
        "A-PASS": "fail",  # one of its two tests failed
        "A-FAIL": "fail",
        "B-NA": "not-applicable",
        "B-SKIP": "skipped",
        "B-U": "untested",
        "B-NONE": "untested",
    }
    assert rows["B-NA"].reason == "no created state"
    assert rows["B-SKIP"].reason == "needs docker"
    assert rows["B-U"].reason == "needs a second host"
    assert rows["B-NONE"].reason == "no test of this requirement ran"
    (failed,) = rows["A-FAIL"].tests
    assert failed.message == "assert 10 < 10"
    assert failed.example == EXAMPLE  # moved out of the message
    assert failed.reproduce == "pytest 't.py::test_small' --runtime=runc --hypothesis-seed=7"
    assert [t.reproduce for t in rows["A-PASS"].tests] == ["", failed.reproduce]
    assert sample.label == "runc 1.1.5"
    assert sample.verdict.counts["MUST"] == {
        "pass": 0, "fail": 2, "not-applicable": 1, "skipped": 0, "untested": 0
    }  # fmt: skip
    assert (sample.verdict.conformant, sample.verdict.summary) == (False, "not conformant")


@pytest.mark.parametrize(
    ("must", "should", "summary"),
    [
        (["passed", "not-applicable"], ["failed"], "conformant"),
        (["passed", "skipped"], ["passed"], "incomplete"),
        (["passed", None], [], "incomplete"),  # None: untested
        (["failed", "skipped"], [], "not conformant"),
        (["error"], [], "not conformant"),
    ],
)
def test_verdict_needs_every_must_to_pass_or_be_not_applicable(must, should, summary):
    entries = [(f"M{i}", "MUST", "a") for i in range(len(must))]
    entries += [(f"S{i}", "SHOULD", "a") for i in range(len(should))]
    results = req.Results(catalogue(*entries))
    for (rid, _, _), outcome in zip(entries, must + should, strict=True):
        if outcome is not None:
            results.add((rid,), req.TestOutcome(f"t.py::{rid}", outcome))
    run = {"started": "", "duration": 0}
    system = {"name": "x", "version": ""}
    report = reportdata.build(results, system=system, environment={}, run=run, reproduce=str)
    assert report.verdict.summary == summary
    assert report.verdict.conformant is (summary == "conformant")


def test_json_round_trip(sample, tmp_path):
    path = tmp_path / "r.json"
    sample.save(path)
    data = json.loads(path.read_text())
    assert (data["schema"], data["version"]) == ("pytest-containers/report", 1)
    assert data["verdict"]["summary"] == "not conformant"
    assert reportdata.load(path) == sample


def _broken(data: dict, change: str) -> dict:
    if change == "schema":
        data["schema"] = "someone-else/report"
    elif change == "version":
        data["version"] = 2
    elif change == "status":
        data["requirements"][1]["status"] = "great"
    elif change == "level":
        data["requirements"][0]["level"] = "OUGHT"
    elif change == "type":
        data["run"]["duration"] = "long"
    elif change == "missing":
        del data["requirements"][0]["tests"][0]["nodeid"]
    return data


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("schema", "not a pytest-containers report (schema 'someone-else/report', expected *"),
        ("version", "report version 2 is not supported (this pytest-containers reads version 1*"),
        ("status", "requirements[[]1[]].status: 'great' is not one of pass, fail, *"),
        ("level", "requirements[[]0[]].level: 'OUGHT' is not one of MUST, SHOULD, MAY"),
        ("type", "run.duration: expected a number, got str"),
        ("missing", "requirements[[]0[]].tests[[]0[]]: 'nodeid' is missing"),
    ],
)
def test_load_rejects_what_breaks_the_schema(sample, tmp_path, change, message):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(_broken(sample.to_json(), change)))
    with pytest.raises(reportdata.ReportError) as info:
        reportdata.load(path)
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(f"{path}: ")
    assert fnmatch(text, f"{path}: *{message}"), text


def test_load_rejects_missing_files_and_non_json(tmp_path):
    with pytest.raises(reportdata.ReportError, match=r"missing.json: cannot read: No such file"):
        reportdata.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(reportdata.ReportError, match=r"bad.json: not JSON: .* at line 1"):
        reportdata.load(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(reportdata.ReportError, match=r"not a pytest-containers report"):
        reportdata.load(tmp_path / "list.json")


def test_merge_puts_requirements_down_and_systems_across():
    runc = make_report({"R-1": "passed", "R-2": "failed"}, name="runc")
    crun = make_report({"R-1": "passed", "R-3": "not-applicable"}, name="crun")
    again = make_report({"R-1": "failed"}, name="runc")
    matrix = reportdata.merge([runc, crun, again])
    assert matrix.labels == ("runc 1.1", "crun 1.1", "runc 1.1 #2")
    assert [row.id for row in matrix.rows] == ["R-1", "R-2", "R-3"]
    cells = {row.id: [c.status if c else None for c in row.cells] for row in matrix.rows}
    assert cells == {
        "R-1": ["pass", "pass", "fail"],
        "R-2": ["fail", None, None],
        "R-3": [None, "not-applicable", None],
    }
    data = matrix.to_json()
    assert (data["schema"], data["version"]) == ("pytest-containers/matrix", 1)
    assert [s["label"] for s in data["systems"]] == list(matrix.labels)
    assert data["requirements"][2]["results"] == [
        None, {"status": "not-applicable", "reason": "no state"}, None
    ]  # fmt: skip
    page = render_matrix(matrix)
    assert page.count('<tr id="req-') == 3
    with pytest.raises(ValueError, match=r"merge\(\[load\(path\), ...\]\)"):
        reportdata.merge([])


def test_diff_lists_status_changes_new_failures_first():
    old = make_report(
        {"R-fixed": "failed", "R-broke": "passed", "R-lost": "passed", "R-same": "passed",
         "R-na": "not-applicable", "R-gone": "passed"}
    )  # fmt: skip
    new = make_report(
        {"R-fixed": "passed", "R-broke": "failed", "R-lost": "skipped", "R-same": "passed",
         "R-na": "skipped", "R-new": "failed"}
    )  # fmt: skip
    changes = reportdata.diff(old, new)
    kinds = [(c.requirement.id, c.kind) for c in changes.changes]
    assert kinds == [
        ("R-broke", "new failure"),
        ("R-new", "new failure"),
        ("R-lost", "regression"),
        ("R-gone", "removed"),
        ("R-fixed", "fixed"),
        ("R-na", "changed"),
    ]
    assert changes.unchanged == 1
    assert changes.same_system
    data = changes.to_json()
    assert (data["schema"], data["version"]) == ("pytest-containers/diff", 1)
    first = data["changes"][0]
    assert (first["old"]["status"], first["new"]["status"]) == ("pass", "fail")
    assert first["failures"][0]["reproduce"] == "pytest 't.py::test_R-broke' --runtime=runc"
    assert data["changes"][3]["new"] is None
    page = render_diff(changes)
    assert page.index('id="req-R-broke"') < page.index('id="req-R-fixed"')
    assert "6 requirements changed status" in page
    assert "No requirement changed status (6 compared)" in render_diff(reportdata.diff(old, old))


def test_reproduce_keeps_only_the_arguments_that_choose_the_system():
    args = [
        "-n", "auto", "--runtime=runc", "-k", "pid", "--cluster", "reference",
        "--hypothesis-seed=3", "conformance/runtime", "-oruntime_root=/x", "-o", "a=b",
        "--hypothesis-profile=thorough", "--junitxml=j.xml", "-c", "my.ini",
    ]  # fmt: skip
    assert reproduce_args(args) == [
        "--runtime=runc", "--cluster", "reference", "-oruntime_root=/x", "-o", "a=b",
        "--hypothesis-profile=thorough", "-c", "my.ini",
    ]  # fmt: skip


def test_everything_from_a_report_is_escaped(tmp_path: Path):
    hostile = "<script>alert(1)</script>"
    results = req.Results(catalogue(("X-1", "MUST", hostile)))
    results.add(("X-1",), req.TestOutcome(f"t.py::test[{hostile}]", "failed", hostile))
    report = reportdata.build(
        results,
        system={"name": hostile, "version": '"1"'},
        environment={hostile: hostile},
        run={"started": hostile, "duration": 1},
        reproduce=lambda nodeid: hostile,
    )
    pages = [
        render_report(report),
        render_matrix(reportdata.merge([report])),
        render_diff(reportdata.diff(make_report({"X-1": "passed"}), report)),
    ]
    for page in pages:
        assert "<script>alert" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "Content-Security-Policy" in page and "http://" not in page.replace(
            'xmlns="http://www.w3.org/2000/svg"', ""
        )


def test_only_the_catalogues_whose_tests_ran_are_reported() -> None:
    cat = req.Catalogue()
    for rid, where in (("RT-1", "runtime"), ("RT-2", "runtime"), ("CL-1", "cluster")):
        cat.requirements[rid] = req.Requirement(
            rid, "MUST", "api", "spec §1", f"{rid} holds.", catalogue=where
        )
    results = req.Results(cat)
    results.add(("RT-1",), req.TestOutcome("t.py::test_one", "passed"))
    report = reportdata.build(
        results, system={"name": "runc"}, environment={}, run={}, reproduce=str
    )
    # RT-2 ran no test but its catalogue did: untested; the cluster's is left out
    assert {r.id: r.status for r in report.requirements} == {"RT-1": "pass", "RT-2": "untested"}
    assert report.verdict.summary == "incomplete"
    nothing = reportdata.build(
        req.Results(cat), system={"name": "runc"}, environment={}, run={}, reproduce=str
    )
    assert [r.id for r in nothing.requirements] == ["RT-1", "RT-2", "CL-1"]
