"""The cgroup v2 lane's verdict, on the host, from what the guest wrote.

    python scripts/cgroup2/summary.py RESULTS

RESULTS holds ``status`` (one "RUN EXIT SECONDS" line per pytest run, then "done") and
each run's JUnit file ``RUN.xml``. Prints one line per group (the ``tests`` run split
by test file) with its counts and test time, then one verdict line, and exits 1 when
a test failed or errored, a run timed out or wrote no JUnit file, cgroups were left at
the root, or the guest never finished ("done" missing: it hung or crashed).

Failures listed in ``scripts/cgroup2/departures.txt`` (a runtime's documented
departures from the runtime-spec, with the runtime version) are printed as such and do
not fail the lane; one that passes is printed as stale, so the list is kept honest.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEPARTURES = HERE / "departures.txt"

# The groups of the ``tests`` run, by test file.
TEST_GROUPS = {
    "test_cgroups.py": "manager",
    "test_cgroups_v2.py": "v2",
    "test_runtime_lifecycle.py": "lifecycle",
    "test_runtime_isolation.py": "isolation",
    "test_plugin_cgroups.py": "fixture",
}


@dataclass
class Group:
    """The counts of one group of tests."""

    name: str
    passed: int = 0
    failed: list[str] = field(default_factory=list)
    skipped: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        return (
            f"{self.name:<18} {self.passed:>4} passed {len(self.failed):>3} failed "
            f"{self.skipped:>3} skipped {self.seconds:>7.1f}s"
        )


def read_departures(path: Path = DEPARTURES) -> dict[tuple[str, str], str]:
    """(run, test id) -> the reason, from lines "RUN TEST-ID REASON..." (# comments)."""
    found: dict[tuple[str, str], str] = {}
    if not path.exists():
        return found
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            run, test, reason = [*line.split(None, 2), "", ""][:3]
            found[(run, test)] = reason
    return found


def _test_id(case: ET.Element) -> str:
    """``file.py::name`` from a JUnit testcase (classname is the dotted module path)."""
    module = case.get("classname", "").split(".")[-1]
    return f"{module}.py::{case.get('name', '')}"


def read_groups(run: str, junit: Path) -> list[Group]:
    """The groups of one run's JUnit file (the ``tests`` run: one per test file)."""
    groups: dict[str, Group] = {}
    for case in ET.parse(junit).iter("testcase"):
        test = _test_id(case)
        name = TEST_GROUPS.get(test.split("::")[0], run) if run == "tests" else run
        group = groups.setdefault(name, Group(name))
        group.seconds += float(case.get("time") or 0)
        outcome = {child.tag for child in case}
        if outcome & {"failure", "error"}:
            group.failed.append(test)
        elif "skipped" in outcome:
            group.skipped += 1
        else:
            group.passed += 1
    return list(groups.values())


def verdict(results: Path) -> int:
    """Print the summary of ``results``; return the lane's exit status."""
    problems: list[str] = []
    status_file = results / "status"
    lines = status_file.read_text().split("\n") if status_file.exists() else []
    if "done" not in lines:
        problems.append("the guest did not finish (it hung, crashed or ran out of time)")
    departures = read_departures()
    seen_departures: set[tuple[str, str]] = set()
    for line in lines:
        fields = line.split()
        if len(fields) != 3:
            continue
        run, code, seconds = fields[0], int(fields[1]), fields[2]
        if run == "leftover-cgroups":
            if code:
                problems.append("cgroups were left at the guest's cgroup2 root")
            continue
        if code in (124, 137):
            problems.append(f"{run} timed out after {seconds}s")
        junit = results / f"{run}.xml"
        if not junit.exists():
            problems.append(f"{run} wrote no JUnit file (exit {code}); see {run}.log")
            continue
        print(f"run {run}: exit {code}, {seconds}s in the guest")
        run_failed = False
        for group in read_groups(run, junit):
            print(f"  {group.line()}")
            for test in group.failed:
                reason = departures.get((run, test))
                if reason is not None:
                    seen_departures.add((run, test))
                    print(f"    known departure: {test}: {reason}")
                else:
                    run_failed = True
                    print(f"    FAILED {test}")
        if run_failed:
            problems.append(f"{run} has failures")
        elif code not in (0, 1):  # 1: failures, all known; anything else is pytest's error
            problems.append(f"{run} exited {code}; see {run}.log")
    ran = {line.split()[0] for line in lines if len(line.split()) == 3}
    for run, test in sorted(set(departures) - seen_departures):
        if run in ran:
            print(f"  stale departure (it passed or did not run): {run} {test}")
    if problems:
        print(f"cgroup v2 lane: FAILED: {'; '.join(problems)}")
        return 1
    print("cgroup v2 lane: passed")
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: summary.py RESULTS-DIRECTORY", file=sys.stderr)
        return 2
    return verdict(Path(argv[0]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
