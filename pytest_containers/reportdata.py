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

The code: ``reportmodel`` (the data model, ``build``), ``reportload`` (``load``,
``from_json``: reading a file back with validation) and ``reportcompare`` (``merge``,
``diff``); this module is their public surface.
"""

from __future__ import annotations

from .reportcompare import (
    CHANGE_KINDS,
    DIFF_SCHEMA,
    MATRIX_SCHEMA,
    Change,
    Diff,
    Matrix,
    MatrixRow,
    diff,
    failures,
    merge,
)
from .reportload import from_json, load
from .reportmodel import (
    CATALOGUE_FIELDS,
    OUTCOMES,
    SCHEMA,
    STATUSES,
    VERSION,
    Report,
    ReportError,
    RequirementResult,
    TestResult,
    Verdict,
    build,
    group_by_area,
    split_example,
)

__all__ = [
    "CATALOGUE_FIELDS",
    "CHANGE_KINDS",
    "DIFF_SCHEMA",
    "MATRIX_SCHEMA",
    "OUTCOMES",
    "SCHEMA",
    "STATUSES",
    "VERSION",
    "Change",
    "Diff",
    "Matrix",
    "MatrixRow",
    "Report",
    "ReportError",
    "RequirementResult",
    "TestResult",
    "Verdict",
    "build",
    "diff",
    "failures",
    "from_json",
    "group_by_area",
    "load",
    "merge",
    "split_example",
]
