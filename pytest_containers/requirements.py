"""Requirements: the catalogue, the ``requirement`` marker, and results by requirement.

The catalogue is a set of TOML files (``conformance/requirements/*.toml`` by default),
one ``[[requirement]]`` table per entry::

    [[requirement]]
    id = "RT-NS-PID-1"              # stable; never reused
    level = "MUST"                  # MUST, SHOULD or MAY (RFC 2119)
    area = "isolation"              # groups rows in the report
    source = "runtime-spec config-linux.md#namespaces"   # or "project guarantee"
    text = "The container process runs as PID 1 of a new pid namespace."
    untested = "why no test exists yet"   # optional

Every test in the conformance suites carries ``@pytest.mark.requirement("ID", ...)``;
a conformance test without one, or any test naming an ID that is not in the
catalogue, is a collection error. ``not_applicable(reason)`` ends a test whose
requirement the system under test cannot express; it is reported as "not
applicable" with the reason, never as passed.

Results are gathered from every test report (so from every xdist worker, on the
controller) into a ``Results`` object on ``config.stash[RESULTS_KEY]``, which the
report module turns into HTML and JSON.
"""

from __future__ import annotations

import tomllib
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .errors import NotApplicableError

LEVELS = ("MUST", "SHOULD", "MAY")
NOT_APPLICABLE_PREFIX = "not applicable: "
_CONFORMANCE_DIR = Path(__file__).resolve().parent.parent / "conformance"


@dataclass(frozen=True)
class Requirement:
    id: str
    level: str
    area: str
    source: str
    text: str
    untested: str | None = None
    catalogue: str = ""  # the file it comes from, without .toml ("runtime", "cluster")


@dataclass
class Catalogue:
    """All requirements, by ID, in file order."""

    requirements: dict[str, Requirement] = field(default_factory=dict)

    @classmethod
    def load(cls, directory: Path) -> Catalogue:
        """Read every ``*.toml`` file in ``directory``; ``pytest.UsageError`` on bad input."""
        __tracebackhide__ = True
        catalogue = cls()
        files = sorted(directory.glob("*.toml")) if directory.is_dir() else []
        for path in files:
            try:
                data = tomllib.loads(path.read_text())
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise pytest.UsageError(f"requirement catalogue {path}: {exc}") from None
            for i, entry in enumerate(data.get("requirement", [])):
                req = _parse(entry, f"{path.name}: requirement #{i + 1}", path.stem)
                if req.id in catalogue.requirements:
                    raise pytest.UsageError(f"{path.name}: requirement {req.id} is defined twice")
                catalogue.requirements[req.id] = req
        return catalogue

    def __contains__(self, requirement_id: object) -> bool:
        return requirement_id in self.requirements

    def __getitem__(self, requirement_id: str) -> Requirement:
        return self.requirements[requirement_id]

    def __iter__(self) -> Any:
        return iter(self.requirements.values())

    def __len__(self) -> int:
        return len(self.requirements)


def _parse(entry: Any, where: str, catalogue: str) -> Requirement:
    __tracebackhide__ = True
    if not isinstance(entry, dict):
        raise pytest.UsageError(f"{where} is not a table")
    missing = [k for k in ("id", "level", "area", "source", "text") if not entry.get(k)]
    if missing:
        raise pytest.UsageError(f"{where} lacks {', '.join(missing)}")
    if entry["level"] not in LEVELS:
        raise pytest.UsageError(
            f"{where} ({entry['id']}): level must be one of {', '.join(LEVELS)}"
        )
    return Requirement(
        id=str(entry["id"]),
        level=str(entry["level"]),
        area=str(entry["area"]),
        source=str(entry["source"]),
        text=" ".join(str(entry["text"]).split()),
        untested=entry.get("untested"),
        catalogue=catalogue,
    )


@dataclass
class TestOutcome:
    """One test's result, as the report shows it under each of its requirements."""

    nodeid: str
    outcome: str  # passed, failed, skipped, not-applicable, error
    message: str = ""
    duration: float = 0.0
    example: str = ""  # Hypothesis' falsifying example, when there is one
    worker: str = ""


@dataclass
class Results:
    """Test outcomes keyed by requirement ID, gathered on the controller."""

    catalogue: Catalogue
    by_requirement: dict[str, list[TestOutcome]] = field(default_factory=dict)
    requirements_of: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def add(self, requirement_ids: tuple[str, ...], outcome: TestOutcome) -> None:
        for rid in requirement_ids:
            tests = self.by_requirement.setdefault(rid, [])
            tests[:] = [t for t in tests if t.nodeid != outcome.nodeid] + [outcome]

    def status(self, requirement_id: str) -> str:
        """pass, fail, not-applicable, skipped or untested, worst first."""
        tests = self.by_requirement.get(requirement_id, [])
        outcomes = {t.outcome for t in tests}
        if not tests:
            return "untested"
        if outcomes & {"failed", "error"}:
            return "fail"
        if "passed" in outcomes:
            return "pass"
        if "not-applicable" in outcomes:
            return "not-applicable"
        return "skipped"


CATALOGUE_KEY = pytest.StashKey[Catalogue]()
RESULTS_KEY = pytest.StashKey[Results]()
REQUIREMENTS_OF_KEY = pytest.StashKey[tuple[str, ...]]()
# What the report says about the system under test: feature modules add entries
# such as {"runtime": "runc", "runtime version": "1.1.5"} during configure.
ENVIRONMENT_KEY = pytest.StashKey[dict[str, str]]()


def not_applicable(reason: str) -> None:
    """End the test: its requirement cannot be expressed by the system under test."""
    __tracebackhide__ = True
    pytest.skip(NOT_APPLICABLE_PREFIX + reason)


def requirement_ids(item: pytest.Item) -> tuple[str, ...]:
    ids: list[str] = []
    for mark in item.iter_markers("requirement"):
        ids.extend(str(a) for a in mark.args)
    return tuple(dict.fromkeys(ids))


def is_conformance_test(item: pytest.Item) -> bool:
    """True for tests of the conformance suites shipped in the ``conformance`` package."""
    try:
        Path(item.path).resolve().relative_to(_CONFORMANCE_DIR)
    except ValueError:
        return False
    return True


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "containers_requirements",
        "directory of the requirement catalogue (*.toml)",
        default=str(_CONFORMANCE_DIR / "requirements"),
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "requirement(*ids): the catalogue requirements this test checks (conformance suites)",
    )
    directory = Path(config.getini("containers_requirements"))
    catalogue = Catalogue.load(directory)
    config.stash[CATALOGUE_KEY] = catalogue
    config.stash.setdefault(ENVIRONMENT_KEY, {})
    results = Results(catalogue)
    config.stash[RESULTS_KEY] = results
    config.pluginmanager.register(ResultCollector(results), "containers-results")


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    catalogue = config.stash[CATALOGUE_KEY]
    kept = []
    for item in items:
        ids = requirement_ids(item)
        problem = None
        unknown = [rid for rid in ids if rid not in catalogue]
        if unknown:
            problem = f"unknown requirement {', '.join(unknown)}: not in the catalogue"
        elif not ids and is_conformance_test(item):
            problem = 'a conformance test needs @pytest.mark.requirement("ID")'
        if problem is None:
            item.stash[REQUIREMENTS_OF_KEY] = ids
            kept.append(item)
            continue
        report = pytest.CollectReport(item.nodeid, "failed", f"{item.nodeid}: {problem}", [])
        config.hook.pytest_collectreport(report=report)
    items[:] = kept


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    # travels with the report to the controller under xdist
    ids = item.stash.get(REQUIREMENTS_OF_KEY, ())
    if ids and call.when == "setup":
        item.user_properties.append(("requirements", list(ids)))
    report = yield
    # an adapter's NotApplicableError, raised anywhere in the test: "not applicable"
    error = call.excinfo.value if call.excinfo is not None else None
    if isinstance(error, NotApplicableError):
        report.outcome = "skipped"
        report.longrepr = (
            str(item.path),
            item.location[1] or 0,
            NOT_APPLICABLE_PREFIX + error.reason,
        )
    return report


def _outcome_of(report: pytest.TestReport) -> tuple[str, str]:
    if report.skipped:
        longrepr = report.longrepr
        message = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        message = message.removeprefix("Skipped: ")
        if message.startswith(NOT_APPLICABLE_PREFIX):
            return "not-applicable", message[len(NOT_APPLICABLE_PREFIX) :]
        return "skipped", message
    if report.failed:
        kind = "failed" if report.when == "call" else "error"
        return kind, _failure_message(report)
    return "passed", ""


def _failure_message(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message)
    return str(report.longreprtext).strip().splitlines()[-1] if report.longreprtext else "failed"


def _example_of(report: pytest.TestReport) -> str:
    for title, content in report.sections:
        if "Hypothesis" in title:
            return content
    text = report.longreprtext or ""
    # Hypothesis says "Falsifying example:" (older) or "Failing test case:" (newer)
    for marker in ("Falsifying example:", "Failing test case:"):
        if marker in text:
            return text[text.index(marker) :].split("\n\n")[0]
    return ""


class ResultCollector:
    """Records every test report under its requirements (registered per session)."""

    def __init__(self, results: Results) -> None:
        self.results = results

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        listed: Any = dict(report.user_properties).get("requirements", ())
        ids = tuple(str(rid) for rid in listed)
        if not ids:
            return
        if report.when != "call" and not (report.failed or report.skipped):
            return
        outcome, message = _outcome_of(report)
        node = getattr(report, "node", None)  # the xdist worker, on the controller
        self.results.add(
            ids,
            TestOutcome(
                nodeid=report.nodeid,
                outcome=outcome,
                message=message,
                duration=report.duration,
                example=_example_of(report),
                worker=str(node.gateway.id) if node is not None else "",
            ),
        )
