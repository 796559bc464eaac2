"""The runtime conformance suite catches broken runtimes.

``tests/defective/oci_wrapper.py`` is runc with one defect, chosen by the name it is
run under (a symlink). For each defect, the slice of the real conformance suite that
checks the broken requirement runs in a pytest of its own with
``--runtime=oci:<symlink>`` and ``--conformance-json``; the report must say the
requirement failed. As a control, the same slices against plain runc (one session for
all of them) must say it passed, so each failure is the defect's doing. Every
sub-session runs the plugin's leak check, which must find nothing left behind.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.needs_root

ROOT = Path(__file__).resolve().parents[1]
WRAPPER = ROOT / "tests" / "defective" / "oci_wrapper.py"
SUITE = "conformance/runtime"
SESSION_TIMEOUT = 240  # seconds for one sub-session; each takes a few


@dataclass(frozen=True)
class Defect:
    """A defect of the wrapper, the requirements it breaks, and the tests that see it."""

    name: str
    requirements: tuple[str, ...]
    tests: tuple[str, ...]  # node ids below conformance/runtime/

    def __repr__(self) -> str:
        return self.name


DEFECTS = (
    Defect(
        "no-pid-namespace",
        ("RT-NS-NEW-1", "RT-OWN-PID-INIT-1", "RT-OWN-PID-HIDDEN-1"),
        (
            "test_isolation_namespaces.py::test_namespaces_without_path_are_new",
            "test_isolation_pid.py::test_container_process_is_pid_1",
            "test_isolation_pid.py::test_host_processes_are_invisible",
        ),
    ),
    Defect(
        "no-network-namespace",
        ("RT-OWN-NET-IFACES-1", "RT-OWN-NET-LOOPBACK-1"),
        (
            "test_isolation_network.py::test_only_loopback_is_visible",
            "test_isolation_network.py::test_host_loopback_service_is_unreachable",
        ),
    ),
    Defect(
        "no-masked-paths",
        ("RT-FS-MASKED-1",),
        ("test_filesystem_root.py::test_masked_paths_cannot_be_read",),
    ),
    Defect(
        "no-memory-limit",
        ("RT-CG-MEM-1", "RT-OWN-MEM-OOM-1"),
        (
            "test_limits_memory.py::test_the_memory_limit_is_the_cgroup_limit",
            "test_limits_memory.py::"
            "test_a_process_past_the_memory_limit_is_oom_killed_and_one_below_survives",
        ),
    ),
    Defect(
        "no-pids-limit",
        ("RT-CG-PIDS-1", "RT-OWN-PIDS-FORK-1"),
        (
            "test_limits_pids.py::test_the_pids_limit_is_the_cgroup_pids_max",
            "test_limits_pids.py::"
            "test_forks_beyond_the_pids_limit_fail_and_the_running_processes_stay",
        ),
    ),
    Defect("writable-root", ("RT-FS-ROOT-4",), ("test_filesystem_root.py::test_readonly_root",)),
    Defect(
        "all-capabilities",
        ("RT-PROC-CAPS-1", "RT-PROC-CAPS-2", "RT-PROC-CAPS-3"),
        ("test_process_capabilities.py::test_the_capability_sets_are_the_configured_ones",),
    ),
    Defect("no-hostname", ("RT-UTS-HOSTNAME-1",), ("test_isolation_uts.py::test_host_name",)),
    Defect(
        "no-creation-hooks",
        ("RT-HOOK-PRESTART-1", "RT-HOOK-CREATERUNTIME-1"),
        (
            "test_hooks.py::test_each_stage_is_invoked_once[prestart]",
            "test_hooks.py::test_each_stage_is_invoked_once[createRuntime]",
        ),
    ),
    Defect(
        "no-rlimits",
        ("RT-PROC-RLIMIT-2",),
        ("test_process_rlimits.py::test_getrlimit_returns_the_configured_soft_and_hard_values",),
    ),
    Defect(
        "ignores-uid",
        ("RT-PROC-USER-1",),
        ("test_process.py::test_the_process_runs_as_the_configured_user",),
    ),
    Defect(
        "kill-always-sigkill",
        ("RT-OP-KILL-4",),
        ("test_operations_start_kill.py::test_kill_sends_the_signal_asked_for",),
    ),
    Defect(
        "delete-always-forced",
        ("RT-OP-DELETE-3",),
        (
            "test_operations_delete.py::"
            "test_delete_unless_stopped_is_an_error_and_changes_nothing[running]",
        ),
    ),
    Defect(
        "state-created-says-running",
        ("RT-OP-STATE-3", "RT-STATE-STATUS-2"),
        (
            "test_operations_state.py::test_state_is_the_spec_state_document[created]",
            "test_lifecycle.py::test_lifecycle_follows_the_spec",
        ),
    ),
    Defect(
        "state-wrong-pid",
        ("RT-OP-STATE-3", "RT-STATE-PID-1"),
        (
            "test_operations_state.py::test_state_is_the_spec_state_document[running]",
            "test_lifecycle.py::test_lifecycle_follows_the_spec",
        ),
    ),
)


@dataclass(frozen=True)
class Session:
    """What one conformance sub-session reported."""

    exit_status: int
    output: str
    report: dict[str, Any]

    def status(self, requirement: str) -> str:
        for row in self.report["requirements"]:
            if row["id"] == requirement:
                return str(row["status"])
        raise KeyError(f"{requirement} is not in the report")

    def failures(self, requirement: str) -> list[str]:
        for row in self.report["requirements"]:
            if row["id"] == requirement:
                return [f"{t['nodeid']}: {t['message']}" for t in row["tests"] if t["message"]]
        return []


def run_suite(runtime: str, tests: list[str], directory: Path) -> Session:
    """Run the given tests of the runtime suite against ``runtime``, in a new pytest."""
    directory.mkdir(parents=True, exist_ok=True)
    report = directory / "conformance.json"
    argv = [
        sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
        f"--runtime={runtime}", f"--conformance-json={report}",
        "--hypothesis-profile=triage", "--containers-leak-check=fail",
        *(str(ROOT / SUITE / t) for t in tests),
    ]  # fmt: skip
    # cwd: the Hypothesis example database and any stray file stay in the test's directory
    proc = subprocess.run(
        argv, cwd=directory, capture_output=True, text=True, timeout=SESSION_TIMEOUT, check=False
    )
    output = proc.stdout + proc.stderr
    assert report.is_file(), f"no conformance report; the session said:\n{output[-3000:]}"
    assert "pytest-containers: leaked" not in output, f"the session leaked:\n{output[-3000:]}"
    return Session(proc.returncode, output, json.loads(report.read_text()))


@pytest.fixture(scope="module")
def runc_control(tmp_path_factory: pytest.TempPathFactory) -> Session:
    """Every slice against plain runc, in one session."""
    if shutil.which("runc") is None:
        pytest.skip("runc is not installed (apt-get install runc)")
    tests = list(dict.fromkeys(t for d in DEFECTS for t in d.tests))
    return run_suite("runc", tests, tmp_path_factory.mktemp("runc-control"))


@pytest.fixture
def defective(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """The wrapper under the defect's name, in the test's own directory."""
    link = tmp_path / "bin" / request.param
    link.parent.mkdir()
    link.symlink_to(WRAPPER)
    return link


@pytest.mark.parametrize(
    ("defect", "defective"), [pytest.param(d, d.name, id=d.name) for d in DEFECTS],
    indirect=["defective"],
)  # fmt: skip
def test_the_suite_catches_the_defect(
    defect: Defect, defective: Path, runc_control: Session, tmp_path: Path
) -> None:
    for requirement in defect.requirements:
        assert runc_control.status(requirement) == "pass", (
            f"control: plain runc does not pass {requirement}, so {defect.name} proves nothing: "
            f"{runc_control.failures(requirement)}"
        )
    broken = run_suite(f"oci:{defective}", list(defect.tests), tmp_path / "session")
    assert broken.exit_status == 1, f"exit status {broken.exit_status}:\n{broken.output[-3000:]}"
    missed = {r: broken.status(r) for r in defect.requirements if broken.status(r) != "fail"}
    assert not missed, (
        f"runc with the defect {defect.name} is not reported failing {sorted(missed)}: {missed}"
    )


def test_the_wrapper_names_its_defects_on_a_wrong_name(tmp_path: Path) -> None:
    link = tmp_path / "no-such-defect"
    link.symlink_to(WRAPPER)
    proc = subprocess.run([link, "--version"], capture_output=True, text=True, check=False)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "no-such-defect: unknown defect" in proc.stderr
    listed = {d.strip() for d in proc.stderr.partition("one of:")[2].split(",")}
    assert listed == {d.name for d in DEFECTS}, "every defect of the wrapper has a test here"


def test_the_wrapper_leaves_the_bundle_as_it_was(tmp_path: Path) -> None:
    """A config defect edits config.json for create only: afterwards it is byte for byte
    what it was, and the state names the bundle it was given."""
    if shutil.which("runc") is None:
        pytest.skip("runc is not installed (apt-get install runc)")
    from pytest_containers.adapters import bundle_config
    from reference_runtime.rootfs_builder import make_bundle

    link = tmp_path / "no-hostname"
    link.symlink_to(WRAPPER)
    bundle = make_bundle(tmp_path / "bundle", config=bundle_config(["true"], hostname="web"))
    before = (bundle / "config.json").read_bytes()
    root = tmp_path / "state"
    cid = f"pc-defective-{os.getpid()}"
    base = [str(link), "--root", str(root)]
    subprocess.run([*base, "run", "--bundle", str(bundle), cid], check=True, timeout=60)
    assert (bundle / "config.json").read_bytes() == before
    assert not os.listdir(root), "run left its container behind"
