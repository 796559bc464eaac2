"""The report's data model: one run of the suites against one system, requirement by
requirement, with the tests behind each and the verdict; built from ``Results``."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .requirements import LEVELS, Requirement, Results

if TYPE_CHECKING:
    from .reportcompare import MatrixRow

SCHEMA = "pytest-containers/report"
VERSION = 1
STATUSES = ("pass", "fail", "not-applicable", "skipped", "untested")
OUTCOMES = ("passed", "failed", "error", "skipped", "not-applicable")
CATALOGUE_FIELDS = ("id", "level", "area", "source", "text")
# How Hypothesis starts a shrunk example (older and newer versions).
_EXAMPLE_MARKERS = ("Falsifying example:", "Failing test case:")


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
    # Only the catalogues whose suites ran: a runtime-only session says nothing of the
    # cluster's requirements (a session in which no test ran shows every catalogue).
    ran = {r.catalogue for r in results.catalogue if r.id in results.by_requirement}
    for req in results.catalogue:
        if ran and req.catalogue not in ran:
            continue
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
        fields = catalogue_fields(req)
        rows.append(RequirementResult(**fields, status=status, reason=reason, tests=tuple(tests)))
    return Report(system=system, environment=environment, run=run, requirements=tuple(rows))


def split_example(message: str, example: str) -> tuple[str, str]:
    """Move Hypothesis' falsifying example out of a failure message (it is in its notes)."""
    for marker in _EXAMPLE_MARKERS:
        at = message.find(marker)
        if at >= 0:
            return message[:at].rstrip(), example or message[at:].strip()
    return message, example


def catalogue_fields(req: Requirement | RequirementResult | MatrixRow) -> dict[str, str]:
    return {k: getattr(req, k) for k in CATALOGUE_FIELDS}


def group_by_area(rows: Iterable[_Row]) -> dict[str, list[_Row]]:
    """Rows by their ``area``, areas in order of first appearance."""
    areas: dict[str, list[_Row]] = {}
    for row in rows:
        areas.setdefault(row.area, []).append(row)
    return areas
