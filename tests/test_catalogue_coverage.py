"""Every catalogue entry is tested or says why not, and every test names known entries.

Generic over the suites: every ``conformance/requirements/*.toml`` file and every test
the ``conformance`` package collects. The suites are collected, not run, in a pytest
of their own, with a small plugin that writes each test's requirement IDs to a file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
CATALOGUES = sorted((ROOT / "conformance" / "requirements").glob("*.toml"))

_LISTER = """
import json
import os

import pytest

from pytest_containers.requirements import requirement_ids


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    listed = {item.nodeid: list(requirement_ids(item)) for item in items}
    with open(os.environ["PC_REQUIREMENT_IDS"], "w") as f:
        json.dump(listed, f)
"""


def catalogue_entries() -> dict[str, dict[str, dict[str, object]]]:
    """file name -> requirement ID -> its table."""
    return {
        path.name: {str(e["id"]): e for e in tomllib.loads(path.read_text())["requirement"]}
        for path in CATALOGUES
    }


@pytest.fixture(scope="module")
def collected(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """node id -> requirement IDs, for every test of the conformance suites."""
    directory = tmp_path_factory.mktemp("collect")
    (directory / "pc_list_requirements.py").write_text(_LISTER)
    listing = directory / "ids.json"
    proc = subprocess.run(
        [
            sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
            "-p", "pc_list_requirements", "-o", "conformance_report=", "-o", "conformance_json=",
            str(ROOT / "conformance"),
        ],
        cwd=directory,
        env={**_environ(), "PYTHONPATH": str(directory), "PC_REQUIREMENT_IDS": str(listing)},
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, f"collecting the suites failed:\n{proc.stdout[-4000:]}"
    ids: dict[str, list[str]] = json.loads(listing.read_text())
    assert ids, "the conformance suites collected no test"
    return ids


def _environ() -> dict[str, str]:
    # not the outer session's xdist variables: the collecting pytest is a session of its own
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}


def test_there_are_catalogues() -> None:
    assert CATALOGUES, "no conformance/requirements/*.toml"
    assert all(catalogue_entries().values()), "a catalogue file without entries"


@pytest.fixture(scope="module")
def tested(collected: dict[str, list[str]]) -> set[str]:
    """The IDs some collected test carries."""
    return {rid for ids in collected.values() for rid in ids}


@pytest.mark.parametrize("catalogue", [p.name for p in CATALOGUES])
def test_every_entry_has_a_test_or_says_why_not(catalogue: str, tested: set[str]) -> None:
    entries = catalogue_entries()[catalogue]
    bare = sorted(rid for rid, e in entries.items() if rid not in tested and not e.get("untested"))
    assert not bare, (
        f'{catalogue}: {len(bare)} entries have no test and no untested = "reason": {bare}'
    )
    stale = sorted(rid for rid, e in entries.items() if rid in tested and e.get("untested"))
    assert not stale, f"{catalogue}: entries marked untested have tests now: {stale}"


def test_every_test_names_catalogue_entries(collected: dict[str, list[str]]) -> None:
    known = {rid for entries in catalogue_entries().values() for rid in entries}
    unmarked = sorted(nodeid for nodeid, ids in collected.items() if not ids)
    unknown = {n: [r for r in ids if r not in known] for n, ids in collected.items()}
    assert not unmarked, f"conformance tests without a requirement: {unmarked}"
    assert not {n: r for n, r in unknown.items() if r}, "tests naming unknown requirements"


def test_an_unknown_id_in_a_conformance_test_is_a_collection_error(
    pytester: pytest.Pytester,
) -> None:
    """Against the real catalogue: an ID in no file stops the session before any test."""
    pytester.makepyfile(
        test_unknown=textwrap.dedent(
            """
            import pytest

            @pytest.mark.requirement("RT-OP-STATE-1", "RT-NO-SUCH-REQUIREMENT-1")
            def test_names_an_unknown_id():
                pass

            @pytest.mark.requirement("RT-OP-STATE-1")
            def test_names_a_known_id():
                pass
            """
        )
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--collect-only", "-q")
    result.stdout.fnmatch_lines(
        ["*test_names_an_unknown_id: unknown requirement RT-NO-SUCH-REQUIREMENT-1*"]
    )
    assert result.ret == pytest.ExitCode.INTERRUPTED, "collection errors stop the session"
