"""Make the screenshot of a conformance matrix for the docs (``docs/matrix.png``).

    .venv/bin/python docs/make_screenshot.py reports/runc.json reports/reference.json
    .venv/bin/python docs/make_screenshot.py --sample     # two runs of a sample catalogue

The JSON files are ``pytest --conformance-json`` reports; they are merged as
``pytest-containers report merge`` does, rendered, and photographed by Debian's headless
``chromium``, which only opens the file:// page (no network, a throwaway profile).
``--sample`` runs a small sample catalogue twice, as two made-up runtimes, until the
real runc-versus-reference matrix exists. The tests use ``screenshot`` and ``dump_dom``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from pytest_containers.reportdata import ReportError, load, merge
from pytest_containers.reporthtml import render_matrix

HERE = Path(__file__).resolve().parent
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def chromium(page: Path, *args: str) -> str:
    """Run headless chromium on ``page`` (a local file); return its stdout."""
    binary = shutil.which("chromium")
    if binary is None:
        raise RuntimeError("chromium is not installed: apt-get install chromium")
    with tempfile.TemporaryDirectory(prefix="pc-chromium-") as profile:
        proc = subprocess.run(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, page.resolve().as_uri()],
            capture_output=True,
            text=True,
            timeout=90,
        )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"chromium exited with status {proc.returncode}: {last}")
    return proc.stdout


def screenshot(page: Path, png: Path, size: tuple[int, int] = (1280, 1600)) -> None:
    chromium(page, f"--screenshot={png.resolve()}", f"--window-size={size[0]},{size[1]}")
    if not png.is_file():
        raise RuntimeError(f"chromium wrote no screenshot of {page}")


def dump_dom(page: Path) -> str:
    """The page's DOM after its script ran."""
    return chromium(page, "--dump-dom")


SAMPLE_CATALOGUE = [
    ("SAMPLE-LIFE-1", "MUST", "lifecycle", "runtime-spec runtime.md#create",
     "create leaves the container in the created state"),
    ("SAMPLE-LIFE-2", "MUST", "lifecycle", "runtime-spec runtime.md#start",
     "start runs the user-specified program"),
    ("SAMPLE-LIFE-3", "MUST", "lifecycle", "runtime-spec runtime.md#kill",
     "kill sends the signal to the container process"),
    ("SAMPLE-LIFE-4", "SHOULD", "lifecycle", "runtime-spec runtime.md#delete",
     "delete of a running container fails without --force"),
    ("SAMPLE-NS-1", "MUST", "isolation", "runtime-spec config-linux.md#namespaces",
     "The container process is PID 1 of a new pid namespace"),
    ("SAMPLE-NS-2", "MUST", "isolation", "runtime-spec config.md#hostname",
     "The container sees the configured hostname"),
    ("SAMPLE-NS-3", "SHOULD", "isolation", "runtime-spec config-linux.md#user-namespace-mappings",
     "User and group IDs are mapped as configured"),
    ("SAMPLE-CG-1", "MUST", "resources", "runtime-spec config-linux.md#memory",
     "memory.limit is enforced: the container cannot use more"),
    ("SAMPLE-CG-2", "MUST", "resources", "runtime-spec config-linux.md#pids",
     "pids.limit is enforced: fork fails beyond it"),
    ("SAMPLE-CG-3", "MAY", "resources", "runtime-spec config-linux.md#cpu",
     "cpu.shares is applied as a relative weight"),
]  # fmt: skip
# What each sample system does: requirement -> "fail:message", "na:reason" or "skip:reason".
SAMPLE_SYSTEMS = {
    "runtime-a 1.0": {"SAMPLE-NS-3": "na:this runtime has no user namespaces"},
    "runtime-b 2.1": {
        "SAMPLE-LIFE-4": "fail:delete removed a running container",
        "SAMPLE-CG-1": "hypothesis",
        "SAMPLE-CG-3": "skip:cpu controller not delegated",
    },
}
SAMPLE_TESTS = """
import json, os, pytest
from hypothesis import given, settings, strategies as st
from pytest_containers.requirements import not_applicable

DOES = json.loads(os.environ["SAMPLE_DOES"])

def check(rid):
    kind, _, text = DOES.get(rid, "pass").partition(":")
    if kind == "fail":
        raise AssertionError(text)
    if kind == "na":
        not_applicable(text)
    if kind == "skip":
        pytest.skip(text)
"""

PROPERTY_TEST = """
@pytest.mark.requirement("SAMPLE-CG-1")
@settings(database=None)
@given(st.integers(min_value=1, max_value=4096))
def test_memory_limit_holds_for_any_size(mib):
    if DOES.get("SAMPLE-CG-1") == "hypothesis":
        assert mib < 512, f"a {mib} MiB allocation succeeded under a 512 MiB limit"
"""


def sample_reports(directory: Path) -> list[Path]:
    """Run the sample catalogue once per sample system; return the JSON reports."""
    (directory / "reqs").mkdir(parents=True, exist_ok=True)
    (directory / "reqs" / "sample.toml").write_text(
        "".join(
            f'[[requirement]]\nid = "{rid}"\nlevel = "{level}"\narea = "{area}"\n'
            f'source = "{source}"\ntext = "{text}."\n\n'
            for rid, level, area, source, text in SAMPLE_CATALOGUE
        )
    )
    (directory / "pytest.ini").write_text("[pytest]\ncontainers_requirements = reqs\n")
    (directory / "conftest.py").write_text(
        "import os\nfrom pytest_containers.requirements import ENVIRONMENT_KEY\n\n"
        "def pytest_configure(config):\n"
        "    name, version = os.environ['SAMPLE_SYSTEM'].split()\n"
        "    config.stash.setdefault(ENVIRONMENT_KEY, {}).update(\n"
        "        {'runtime': name, 'runtime version': version})\n"
    )
    tests = [SAMPLE_TESTS]
    for rid, *_ in SAMPLE_CATALOGUE:
        name = rid.lower().replace("-", "_")
        tests.append(f'@pytest.mark.requirement("{rid}")\ndef test_{name}():\n    check("{rid}")\n')
    tests.append(PROPERTY_TEST)
    (directory / "test_sample.py").write_text("\n".join(tests))
    reports = []
    for system, does in SAMPLE_SYSTEMS.items():
        out = directory / f"{system.split()[0]}.json"
        env = {**os.environ, "SAMPLE_SYSTEM": system, "SAMPLE_DOES": json.dumps(does)}
        subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             f"--conformance-json={out}", "--runtime=reference"],
            cwd=directory, env=env, capture_output=True, timeout=120, check=False,
        )  # fmt: skip
        if not out.is_file():
            raise RuntimeError(f"the sample run as {system} wrote no report")
        reports.append(out)
    return reports


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="*", type=Path, metavar="REPORT.json")
    parser.add_argument("--sample", action="store_true", help="use two sample runs instead")
    parser.add_argument("-o", "--output", type=Path, default=HERE / "matrix.png")
    parser.add_argument("--html", type=Path, help="also keep the matrix page here")
    args = parser.parse_args(argv)
    if bool(args.reports) == args.sample:
        parser.error("give REPORT.json files or --sample")
    with tempfile.TemporaryDirectory(prefix="pc-screenshot-") as tmp:
        try:
            paths = sample_reports(Path(tmp)) if args.sample else args.reports
            page = args.html or Path(tmp) / "matrix.html"
            page.write_text(render_matrix(merge(load(p) for p in paths)))
            screenshot(page, args.output)
        except (ReportError, RuntimeError, OSError, subprocess.SubprocessError) as exc:
            print(f"make_screenshot: {exc}", file=sys.stderr)
            return 1
    print(f"make_screenshot: wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
