"""Comparing runs: ``merge`` puts several reports in one matrix (requirements down,
systems across), ``diff`` lists what changed between two runs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from .reportmodel import VERSION, Report, RequirementResult, TestResult, catalogue_fields
from .requirements import LEVELS

MATRIX_SCHEMA = "pytest-containers/matrix"
DIFF_SCHEMA = "pytest-containers/diff"
# Diff kinds, in the order a reader needs them.
CHANGE_KINDS = ("new failure", "regression", "removed", "fixed", "changed", "added")


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
                {**catalogue_fields(row), "results": [_status(cell) for cell in row.cells]}
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
        MatrixRow(**catalogue_fields(req), cells=tuple(lookup.get(rid) for lookup in lookups))
        for rid, req in first.items()
    )
    return Matrix(reports, tuple(labels), rows)


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
