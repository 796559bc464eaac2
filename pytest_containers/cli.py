"""The ``pytest-containers`` command: tables made from conformance reports (JSON).

::

    pytest-containers report merge A.json B.json ... -o matrix.html [--json matrix.json]
    pytest-containers report diff OLD.json NEW.json -o diff.html [--json diff.json]

``merge`` makes one matrix, requirements down and systems across; ``diff`` shows the
requirements whose status changed between two runs of a system, new failures first.
The inputs are files written by ``pytest --conformance-json``. Bad input (a missing
file, not JSON, another schema or version) is one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .reportdata import ReportError, diff, load, merge
from .reporthtml import render_diff, render_matrix


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pytest-containers",
        description="Work with pytest-containers conformance reports.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    report = commands.add_parser(
        "report", help="merge or diff conformance reports (from pytest --conformance-json)"
    )
    actions = report.add_subparsers(dest="action", required=True, metavar="ACTION")
    merging = actions.add_parser(
        "merge", help="one matrix of several reports: requirements down, systems across"
    )
    merging.add_argument("reports", nargs="+", type=Path, metavar="REPORT.json")
    diffing = actions.add_parser(
        "diff", help="the requirements whose status changed between two runs"
    )
    diffing.add_argument("old", type=Path, metavar="OLD.json")
    diffing.add_argument("new", type=Path, metavar="NEW.json")
    for sub in (merging, diffing):
        sub.add_argument("-o", "--output", type=Path, metavar="HTML", help="write HTML here")
        sub.add_argument("--json", type=Path, metavar="JSON", help="write the data as JSON here")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.output is None and args.json is None:
        parser.error(f"report {args.action}: give -o HTML, --json JSON, or both")
    try:
        if args.action == "merge":
            matrix = merge([load(path) for path in args.reports])
            page, data = render_matrix(matrix), matrix.to_json()
            what = f"{len(matrix.labels)} systems, {len(matrix.rows)} requirements"
        else:
            changes = diff(load(args.old), load(args.new))
            page, data = render_diff(changes), changes.to_json()
            what = f"{len(changes.changes)} changed, {changes.unchanged} unchanged"
        _write(args.output, page)
        _write(args.json, data)
    except ReportError as exc:
        print(f"pytest-containers: {exc}", file=sys.stderr)
        return 1
    written = ", ".join(str(p) for p in (args.output, args.json) if p is not None)
    print(f"pytest-containers: wrote {written} ({what})")
    return 0


def _write(path: Path | None, content: str | dict[str, Any]) -> None:
    if path is None:
        return
    text = content if isinstance(content, str) else json.dumps(content, indent=1) + "\n"
    try:
        path.write_text(text)
    except OSError as exc:
        raise ReportError(f"cannot write {path}: {exc.strerror}") from None


if __name__ == "__main__":
    sys.exit(main())
