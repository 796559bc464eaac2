"""The conformance report as data: built from ``Results``, saved as versioned JSON,
loaded back with validation, merged into a matrix and diffed between two runs.

A report file (``--conformance-json``) is one JSON object::

    {
      "schema": "pytest-containers/report",      # always this string
      "version": 1,                               # bumped on any incompatible change
      "system": {"name": "runc", "version": "1.1.5"},     # the system under test
      "environment": {"kernel": "6.1.0-18-amd64", "cgroup layout": "v2", ...},
                                                  # label -> text, in display order
      "run": {"started": "2024-05-01T12:00:00+00:00",    # ISO 8601, UTC
              "duration": 12.5,                   # seconds
              "command": "pytest --runtime=runc -n auto",
              "exit_status": 1},                  # pytest's exit status
      "verdict": {"conformant": false,            # every MUST passes or is not applicable
                  "summary": "not conformant",    # or "conformant", or "incomplete": no MUST
                                                  # fails, but one is skipped or untested
                  "counts": {"MUST": {"pass": 30, "fail": 1, "not-applicable": 2,
                                      "skipped": 0, "untested": 1}, "SHOULD": {...},
                             "MAY": {...}}},
      "requirements": [                           # the whole catalogue, in its order
        {"id": "RT-NS-PID-1", "level": "MUST", "area": "isolation",
         "source": "runtime-spec config-linux.md#namespaces",
         "text": "The container process runs as PID 1 of a new pid namespace.",
         "status": "fail",       # pass, fail, not-applicable, skipped or untested
         "reason": "",           # why not applicable, skipped or untested ("" otherwise)
         "tests": [
           {"nodeid": "conformance/runtime/test_ns.py::test_pid_1",
            "outcome": "failed", # passed, failed, error, skipped or not-applicable
            "message": "...",    # the assertion message, or the skip reason
            "duration": 0.12,    # seconds
            "example": "...",    # Hypothesis' shrunk falsifying example, or ""
            "reproduce": "pytest 'conformance/...' --runtime=runc --hypothesis-seed=7",
                                 # "" unless failed or error; run it from the rootdir
            "worker": "gw0"}]}]  # the xdist worker, "" when not distributed
    }

``verdict`` is derived from ``requirements``: written for readers, recomputed on load.
``report merge --json`` writes ``{"schema": "pytest-containers/matrix", "version": 1,
"systems": [{"label", "system", "run", "verdict"}], "requirements": [{"id", "level",
"area", "source", "text", "results": [{"status", "reason"} or null per system]}]}``;
``report diff --json`` writes ``{"schema": "pytest-containers/diff", "version": 1, "old",
"new": {"label", "system", "run", "verdict"}, "unchanged": N, "changes": [{"id", "level",
"area", "text", "change", "old", "new": {"status", "reason"} or null, "failures":
[{"nodeid", "message", "example", "reproduce"}]}]}``, new failures first.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .requirements import LEVELS, Requirement, Results

SCHEMA = "pytest-containers/report"
MATRIX_SCHEMA = "pytest-containers/matrix"
DIFF_SCHEMA = "pytest-containers/diff"
VERSION = 1
STATUSES = ("pass", "fail", "not-applicable", "skipped", "untested")
OUTCOMES = ("passed", "failed", "error", "skipped", "not-applicable")
CATALOGUE_FIELDS = ("id", "level", "area", "source", "text")
# How Hypothesis starts a shrunk example (older and newer versions).
_EXAMPLE_MARKERS = ("Falsifying example:", "Failing test case:")
# Diff kinds, in the order a reader needs them.
CHANGE_KINDS = ("new failure", "regression", "removed", "fixed", "changed", "added")


_Row = TypeVar("_Row", "RequirementResult", "MatrixRow")


class ReportError(ValueError):
    """A report file that cannot be read, is not JSON, or breaks the schema."""


@dataclass(frozen=True)
class TestResult:
    """One test behind a requirement."""

    __test__ = False  # not a pytest test class

    nodeid: str
    outcome: str
    message: str = ""
    duration: float = 0.0
    example: str = ""
    reproduce: str = ""
    worker: str = ""


@dataclass(frozen=True)
class RequirementResult:
    """One catalogue requirement, its status in this run and the tests behind it."""

    id: str
    level: str
    area: str
    source: str
    text: str
    status: str
    reason: str = ""
    tests: tuple[TestResult, ...] = ()


@dataclass(frozen=True)
class Verdict:
    conformant: bool
    summary: str
    counts: dict[str, dict[str, int]]

    @classmethod
    def of(cls, requirements: Iterable[RequirementResult]) -> Verdict:
        counts = {level: dict.fromkeys(STATUSES, 0) for level in LEVELS}
        for req in requirements:
            counts[req.level][req.status] += 1
        must = counts["MUST"]
        if must["fail"]:
            summary = "not conformant"
        elif must["skipped"] or must["untested"]:
            summary = "incomplete"
        else:
            summary = "conformant"
        return cls(summary == "conformant", summary, counts)


@dataclass(frozen=True)
class Report:
    """One run of the suites against one system."""

    system: dict[str, str]  # name, version
    environment: dict[str, str]
    run: dict[str, Any]  # started, duration, command, exit_status
    requirements: tuple[RequirementResult, ...]
    verdict: Verdict = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "verdict", Verdict.of(self.requirements))

    @property
    def label(self) -> str:
        """The system and its version, as a column heading: ``"runc 1.1.5"``."""
        return " ".join(p for p in (self.system["name"], self.system["version"]) if p)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "version": VERSION,
            "system": dict(self.system),
            "environment": dict(self.environment),
            "run": dict(self.run),
            "verdict": asdict(self.verdict),
            "requirements": [asdict(req) for req in self.requirements],
        }

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=1) + "\n")


def build(
    results: Results,
    *,
    system: dict[str, str],
    environment: dict[str, str],
    run: dict[str, Any],
    reproduce: Callable[[str], str],
) -> Report:
    """The report of a session; ``reproduce(nodeid)`` is the command to rerun a failure."""
    rows = []
    for req in results.catalogue:
        status = results.status(req.id)
        tests = []
        for t in sorted(results.by_requirement.get(req.id, []), key=lambda t: t.nodeid):
            message, example = split_example(t.message, t.example)
            failed = t.outcome in ("failed", "error")
            tests.append(
                TestResult(
                    nodeid=t.nodeid,
                    outcome=t.outcome,
                    worker=t.worker,
                    message=message,
                    example=example,
                    duration=round(t.duration, 3),
                    reproduce=reproduce(t.nodeid) if failed else "",
                )
            )
        if status == "untested":
            reason = req.untested or "no test of this requirement ran"
        elif status in ("not-applicable", "skipped"):
            reason = "; ".join(dict.fromkeys(t.message for t in tests if t.outcome == status))
        else:
            reason = ""
        fields = _catalogue_fields(req)
        rows.append(RequirementResult(**fields, status=status, reason=reason, tests=tuple(tests)))
    return Report(system=system, environment=environment, run=run, requirements=tuple(rows))


def split_example(message: str, example: str) -> tuple[str, str]:
    """Move Hypothesis' falsifying example out of a failure message (it is in its notes)."""
    for marker in _EXAMPLE_MARKERS:
        at = message.find(marker)
        if at >= 0:
            return message[:at].rstrip(), example or message[at:].strip()
    return message, example


def _catalogue_fields(req: Requirement | RequirementResult | MatrixRow) -> dict[str, str]:
    return {k: getattr(req, k) for k in CATALOGUE_FIELDS}


def group_by_area(rows: Iterable[_Row]) -> dict[str, list[_Row]]:
    """Rows by their ``area``, areas in order of first appearance."""
    areas: dict[str, list[_Row]] = {}
    for row in rows:
        areas.setdefault(row.area, []).append(row)
    return areas


# -- loading and validation ---------------------------------------------------------------


def load(path: Path) -> Report:
    """Read and validate a report file; ``ReportError`` with a one-line message."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ReportError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ReportError(f"{path}: not JSON: not UTF-8 text") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportError(f"{path}: not JSON: {exc.msg} at line {exc.lineno}") from None
    return from_json(data, str(path))


def from_json(data: Any, where: str = "report") -> Report:
    """Validate ``data`` (a parsed report file) and return the Report."""
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        found = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise ReportError(
            f"{where}: not a pytest-containers report (schema {found!r}, expected {SCHEMA!r})"
        )
    version = data.get("version")
    if version != VERSION:
        raise ReportError(
            f"{where}: report version {version!r} is not supported "
            f"(this pytest-containers reads version {VERSION}; upgrade it to read newer ones)"
        )
    system = _strings(_get(data, "system", dict, where), f"{where}: system")
    for key in ("name", "version"):
        _get(system, key, str, f"{where}: system")
    run = _get(data, "run", dict, where)
    _get(run, "started", str, f"{where}: run")
    _get(run, "duration", float, f"{where}: run")
    requirements = []
    for i, item in enumerate(_get(data, "requirements", list, where)):
        requirements.append(_requirement(item, f"{where}: requirements[{i}]"))
    return Report(
        system=system,
        environment=_strings(_get(data, "environment", dict, where), f"{where}: environment"),
        run=run,
        requirements=tuple(requirements),
    )


def _requirement(item: Any, where: str) -> RequirementResult:
    if not isinstance(item, dict):
        raise ReportError(f"{where}: expected an object, got {type(item).__name__}")
    fields = {k: _get(item, k, str, where) for k in CATALOGUE_FIELDS}
    _choice(fields["level"], LEVELS, f"{where}.level")
    status = _choice(_get(item, "status", str, where), STATUSES, f"{where}.status")
    tests = []
    for j, t in enumerate(_get(item, "tests", list, where)):
        tw = f"{where}.tests[{j}]"
        if not isinstance(t, dict):
            raise ReportError(f"{tw}: expected an object, got {type(t).__name__}")
        tests.append(
            TestResult(
                nodeid=_get(t, "nodeid", str, tw),
                outcome=_choice(_get(t, "outcome", str, tw), OUTCOMES, f"{tw}.outcome"),
                message=_get(t, "message", str, tw, ""),
                duration=float(_get(t, "duration", float, tw, 0.0)),
                example=_get(t, "example", str, tw, ""),
                reproduce=_get(t, "reproduce", str, tw, ""),
                worker=_get(t, "worker", str, tw, ""),
            )
        )
    reason = _get(item, "reason", str, where, "")
    return RequirementResult(**fields, status=status, reason=reason, tests=tuple(tests))


_MISSING = object()
_KIND_NAMES = {str: "a string", float: "a number", list: "a list", dict: "an object"}


def _get(obj: dict[str, Any], key: str, kind: type, where: str, default: Any = _MISSING) -> Any:
    if key not in obj:
        if default is _MISSING:
            raise ReportError(f"{where}: {key!r} is missing")
        return default
    value = obj[key]
    ok = isinstance(value, (int, float)) if kind is float else isinstance(value, kind)
    if not ok or isinstance(value, bool):
        raise ReportError(
            f"{where}.{key}: expected {_KIND_NAMES[kind]}, got {type(value).__name__}"
        )
    return value


def _choice(value: str, choices: tuple[str, ...], where: str) -> str:
    if value not in choices:
        raise ReportError(f"{where}: {value!r} is not one of {', '.join(choices)}")
    return value


def _strings(obj: dict[str, Any], where: str) -> dict[str, str]:
    for key, value in obj.items():
        if not isinstance(value, str):
            raise ReportError(f"{where}.{key}: expected a string, got {type(value).__name__}")
    return dict(obj)


# -- merge: requirements down, systems across ----------------------------------------------


@dataclass(frozen=True)
class MatrixRow:
    id: str
    level: str
    area: str
    source: str
    text: str
    cells: tuple[RequirementResult | None, ...]  # one per report; None: not in its catalogue


@dataclass(frozen=True)
class Matrix:
    reports: tuple[Report, ...]
    labels: tuple[str, ...]  # one unique column heading per report
    rows: tuple[MatrixRow, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": MATRIX_SCHEMA,
            "version": VERSION,
            "systems": [
                _summary(r, label) for r, label in zip(self.reports, self.labels, strict=True)
            ],
            "requirements": [
                {**_catalogue_fields(row), "results": [_status(cell) for cell in row.cells]}
                for row in self.rows
            ],
        }


def merge(reports: Iterable[Report]) -> Matrix:
    """One row per requirement found in any report (first report's order first)."""
    reports = tuple(reports)
    if not reports:
        raise ValueError("merge needs at least one report: merge([load(path), ...])")
    labels: list[str] = []
    for report in reports:
        label = report.label or "unknown system"
        n = 2
        while label in labels:
            label = f"{report.label or 'unknown system'} #{n}"
            n += 1
        labels.append(label)
    first: dict[str, RequirementResult] = {}
    for report in reports:
        for req in report.requirements:
            first.setdefault(req.id, req)
    lookups = [{req.id: req for req in report.requirements} for report in reports]
    rows = tuple(
        MatrixRow(**_catalogue_fields(req), cells=tuple(lookup.get(rid) for lookup in lookups))
        for rid, req in first.items()
    )
    return Matrix(reports, tuple(labels), rows)


# -- diff: what changed between two runs -----------------------------------------------------


@dataclass(frozen=True)
class Change:
    old: RequirementResult | None  # None: the requirement is new in the catalogue
    new: RequirementResult | None  # None: the requirement left the catalogue

    @property
    def requirement(self) -> RequirementResult:
        req = self.new or self.old
        assert req is not None
        return req

    @property
    def kind(self) -> str:
        """One of CHANGE_KINDS."""
        old, new = self.old, self.new
        if new is not None and new.status == "fail":
            return "new failure"
        if new is None:
            return "removed"
        if old is None:
            return "added"
        if old.status == "fail":
            return "fixed"
        if old.status == "pass":
            return "regression"
        return "changed"


@dataclass(frozen=True)
class Diff:
    old: Report
    new: Report
    changes: tuple[Change, ...]  # new failures first, then by level and catalogue order
    unchanged: int

    @property
    def same_system(self) -> bool:
        return self.old.system["name"] == self.new.system["name"]

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": DIFF_SCHEMA,
            "version": VERSION,
            "old": _summary(self.old, self.old.label),
            "new": _summary(self.new, self.new.label),
            "unchanged": self.unchanged,
            "changes": [
                {
                    **{k: getattr(c.requirement, k) for k in ("id", "level", "area", "text")},
                    "change": c.kind,
                    "old": _status(c.old),
                    "new": _status(c.new),
                    "failures": [
                        {k: getattr(t, k) for k in ("nodeid", "message", "example", "reproduce")}
                        for t in failures(c.new)
                    ],
                }
                for c in self.changes
            ],
        }


def diff(old: Report, new: Report) -> Diff:
    """Requirements whose status differs between ``old`` and ``new``."""
    olds = {req.id: req for req in old.requirements}
    news = {req.id: req for req in new.requirements}
    order = list(dict.fromkeys([*news, *olds]))
    changes = []
    for rid in order:
        before, after = olds.get(rid), news.get(rid)
        if before is None or after is None or before.status != after.status:
            changes.append(Change(before, after))
    changes.sort(
        key=lambda c: (CHANGE_KINDS.index(c.kind), LEVELS.index(c.requirement.level))
    )  # stable: catalogue order within a kind and level
    return Diff(old, new, tuple(changes), unchanged=len(order) - len(changes))


def failures(req: RequirementResult | None) -> list[TestResult]:
    """The failed and errored tests behind a requirement."""
    return [t for t in (req.tests if req else ()) if t.outcome in ("failed", "error")]


def _status(req: RequirementResult | None) -> dict[str, str] | None:
    return None if req is None else {"status": req.status, "reason": req.reason}


def _summary(report: Report, label: str) -> dict[str, Any]:
    return {
        "label": label,
        "system": dict(report.system),
        "run": dict(report.run),
        "verdict": asdict(report.verdict),
    }
