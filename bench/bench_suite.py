"""Suite wall time: the runtime conformance suite per runtime, serially and with ``-n 2``.

Each contender is one ``pytest conformance/runtime --runtime=NAME`` session in a
subprocess, in the ``ci`` Hypothesis profile, with its own conformance JSON; the wall
time is the subprocess's, interpreter start and collection included, because that is
what a user's CI pays. The table shows, per runtime and mode, the wall time, the ratio
to runc in the same mode, and the requirement counts the run reported (pass / fail /
not applicable), so a fast run that skipped everything cannot pass for a fast runtime.

Usage: ``python bench/bench_suite.py [--only reference,runc] [--modes serial,n2]
[--timeout 600]``. A runtime that is not installed is skipped with the reason; Docker
needs ``DOCKER_HOST`` or a running dockerd (the suite's adapter starts none). Writes
``bench/results/suite-*.json`` (gitignored). Exits 1 if a session could not run
(exit status other than 0 or 1: an internal error, a usage error, a timeout).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RUNTIMES = ("reference", "runc", "crun", "runsc", "docker")
MODES = {"serial": (), "n2": ("-p", "xdist", "-n", "2")}


@dataclass
class Run:
    """One suite session: its wall time and what its report counted."""

    runtime: str
    mode: str
    seconds: float
    exit_status: int
    counts: dict[str, int]
    version: str


def missing(runtime: str) -> str | None:
    """Why ``runtime`` cannot run here, or None."""
    if runtime == "reference":
        return None
    if runtime == "docker":
        if os.environ.get("DOCKER_HOST") or Path("/var/run/docker.sock").exists():
            return None
        return "no DOCKER_HOST and no /var/run/docker.sock"
    return None if shutil.which(runtime) else f"{runtime} is not on PATH"


def run_suite(runtime: str, mode: str, timeout: float, out: Path) -> Run:
    report = out / f"{runtime}-{mode}.json"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "conformance/runtime",
        f"--runtime={runtime}",
        "-q",
        "-p",
        "no:cacheprovider",
        f"--conformance-json={report}",
        "--conformance-report=",
        *MODES[mode],
    ]
    began = time.perf_counter()
    try:
        proc = subprocess.run(
            command, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False
        )
        status = proc.returncode
    except subprocess.TimeoutExpired:
        status = -1
    seconds = time.perf_counter() - began
    counts: Counter[str] = Counter()
    version = ""
    if report.exists():
        data = json.loads(report.read_text())
        counts.update(r["status"] for r in data["requirements"])
        version = data["system"].get("version", "")
    elif status not in (-1,):
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
        print(f"  {runtime} {mode}: no report; exit {status}: {' | '.join(tail)}")
    return Run(runtime, mode, round(seconds, 1), status, dict(counts), version)


def table(runs: list[Run]) -> str:
    runc = {r.mode: r.seconds for r in runs if r.runtime == "runc"}
    lines = [
        "| runtime | mode | wall s | vs runc | pass | fail | n/a | exit |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in runs:
        ratio = f"{r.seconds / runc[r.mode]:.2f}x" if runc.get(r.mode) else ""
        c = r.counts
        lines.append(
            f"| {r.runtime} | {r.mode} | {r.seconds:.1f} | {ratio} | {c.get('pass', 0)} | "
            f"{c.get('fail', 0)} | {c.get('not-applicable', 0)} | {r.exit_status} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(RUNTIMES), help="comma-separated runtimes")
    parser.add_argument("--modes", default="serial,n2", help="serial,n2")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per session")
    args = parser.parse_args(argv)
    runtimes = [r for r in args.only.split(",") if r]
    modes = [m for m in args.modes.split(",") if m]
    for bad in [r for r in runtimes if r not in RUNTIMES] + [m for m in modes if m not in MODES]:
        parser.error(f"unknown runtime or mode {bad!r}")
    if os.geteuid() != 0:
        parser.error("run as root: the suite makes real containers")
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="bench-suite-") as tmp:
        for runtime in runtimes:
            why = missing(runtime)
            if why:
                print(f"skip {runtime}: {why}")
                continue
            for mode in modes:
                run = run_suite(runtime, mode, args.timeout, Path(tmp))
                print(f"{runtime:10} {mode:6} {run.seconds:7.1f} s  exit {run.exit_status}")
                runs.append(run)
    print()
    print(table(runs))
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    path = results / f"suite-{time.strftime('%Y%m%dT%H%M%S')}.json"
    host = {"kernel": platform.release(), "cpus": os.cpu_count(), "load": os.getloadavg()}
    path.write_text(json.dumps({"host": host, "runs": [asdict(r) for r in runs]}, indent=2))
    print(f"\nwritten to {path}")
    return 1 if any(r.exit_status not in (0, 1) for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
