"""The ``pytest-containers report merge|diff`` command."""

from __future__ import annotations

import json
import subprocess
import sys
from fnmatch import fnmatch
from pathlib import Path

import pytest

from pytest_containers import reportdata
from pytest_containers import requirements as req
from pytest_containers.cli import main


def write_report(path: Path, name: str, outcomes: dict[str, str]) -> Path:
    cat = req.Catalogue()
    for rid in outcomes:
        cat.requirements[rid] = req.Requirement(rid, "MUST", "lifecycle", "spec", f"{rid} holds.")
    results = req.Results(cat)
    for rid, outcome in outcomes.items():
        results.add((rid,), req.TestOutcome(f"t.py::test_{rid}", outcome, "boom"))
    reportdata.build(
        results,
        system={"name": name, "version": "1.0"},
        environment={},
        run={"started": "2024-05-01T12:00:00+00:00", "duration": 1.0},
        reproduce=lambda nodeid: f"pytest '{nodeid}'",
    ).save(path)
    return path


@pytest.fixture
def reports(tmp_path: Path) -> tuple[Path, Path]:
    return (
        write_report(tmp_path / "a.json", "runc", {"R-1": "passed", "R-2": "passed"}),
        write_report(tmp_path / "b.json", "runc", {"R-1": "passed", "R-2": "failed"}),
    )


def test_merge_writes_html_and_json(reports, tmp_path, capsys):
    out, data = tmp_path / "matrix.html", tmp_path / "matrix.json"
    assert main(["report", "merge", *map(str, reports), "-o", str(out), "--json", str(data)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert '<th scope="col">runc 1.0 #2</th>' in out.read_text()
    matrix = json.loads(data.read_text())
    assert matrix["schema"] == "pytest-containers/matrix"
    assert [r["results"][1]["status"] for r in matrix["requirements"]] == ["pass", "fail"]


def test_diff_writes_html_and_json(reports, tmp_path):
    out, data = tmp_path / "diff.html", tmp_path / "diff.json"
    assert main(["report", "diff", *map(str, reports), "-o", str(out), "--json", str(data)]) == 0
    changes = json.loads(data.read_text())["changes"]
    assert [(c["id"], c["change"]) for c in changes] == [("R-2", "new failure")]
    assert "new failure" in out.read_text()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read: No such file or directory"),
        ("{", "not JSON: Expecting property name enclosed in double quotes at line 1"),
        ('{"schema": "x"}', "not a pytest-containers report (schema 'x', expected *"),
        ('{"schema": "pytest-containers/report", "version": 9}', "report version 9 is not *"),
    ],
)
def test_bad_input_is_one_line_and_exit_status_1(reports, tmp_path, content, message):
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content)
    for action, args in (("merge", [reports[0], bad]), ("diff", [bad, reports[1]])):
        proc = subprocess.run(
            [sys.executable, "-m", "pytest_containers.cli", "report", action, *map(str, args),
             "-o", str(tmp_path / "out.html")],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert proc.returncode == 1
        assert proc.stdout == ""
        lines = proc.stderr.splitlines()
        assert len(lines) == 1, proc.stderr
        assert fnmatch(lines[0], f"pytest-containers: {bad}: {message}"), lines[0]
    assert not (tmp_path / "out.html").exists()


def test_usage_errors_come_from_argparse(reports, capsys):
    with pytest.raises(SystemExit) as info:
        main(["report", "merge", str(reports[0])])
    assert info.value.code == 2
    assert "give -o HTML, --json JSON, or both" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["report", "frobnicate"])
