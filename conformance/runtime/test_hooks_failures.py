"""Bad and failing hooks (runtime-spec config.md "Hooks", runtime.md "Lifecycle"): a
relative path and a timeout below one are errors, a hook past its timeout is aborted, a
failing creation or start hook fails its verb and destroys the container, and a failing
poststop hook is only a warning. The hooks log to the bench of ``_hooks``.
"""

from __future__ import annotations

import time

import pytest

from pytest_containers.adapters import CREATED_PROCESS, HOST_PID
from pytest_containers.errors import ContainersError
from pytest_containers.ledger import process_start_time

from ._hooks import PATH_ENV, RUNTIME_NS_STAGES, STAGES, HookBench
from ._support import eventually, refused


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.requirement("RT-HOOK-PATH-1")
def test_a_relative_hook_path_is_an_error(bench: HookBench, stage: str) -> None:
    hook = bench.hook(stage)
    hook["path"] = "hooks/hook.sh"
    with refused(
        "RT-HOOK-PATH-1", f"a lifecycle with the relative {stage} hook path hooks/hook.sh"
    ):
        bench.lifecycle({stage: [hook]})
    assert stage not in bench.labels(), f"the {stage} hook with a relative path ran"


@pytest.mark.parametrize("timeout", [0, -1])
@pytest.mark.requirement("RT-HOOK-TIMEOUT-1")
def test_a_hook_timeout_below_one_is_an_error(bench: HookBench, timeout: int) -> None:
    with refused("RT-HOOK-TIMEOUT-1", f"a lifecycle with a createRuntime timeout of {timeout}"):
        bench.lifecycle({"createRuntime": [bench.hook("createRuntime", timeout=timeout)]})


@pytest.mark.requirement("RT-HOOK-TIMEOUT-2")
def test_a_hook_is_aborted_when_its_timeout_passes(bench: HookBench) -> None:
    pid_file = bench.dir / "slow.pid"
    slow = {
        "path": "/bin/sh",
        "args": ["sh", "-c", f"echo $$ > {pid_file}; exec sleep 60"],
        "env": [PATH_ENV],
        "timeout": 1,
    }
    began = time.monotonic()
    with refused("RT-HOOK-TIMEOUT-2", "create whose createRuntime hook outlives its timeout"):
        bench.adapter.create(bench.new_id(), bench.bundle({"createRuntime": [slow]}))
    took = time.monotonic() - began
    assert took < 30, f"create took {took:.0f}s with a hook timeout of 1s"
    pid = int(pid_file.read_text())
    eventually(
        lambda: process_start_time(pid) is None,
        f"the timed-out hook (process {pid}) still runs",
        timeout=5,
    )


def is_gone(pid: int, start: int | None) -> bool:
    """Process ``pid`` (started at ``start``, if known) no longer runs."""
    now = process_start_time(pid)
    return now is None or (start is not None and now != start)


def assert_destroyed(bench: HookBench, cid: str, pid: int | None, start: int | None) -> None:
    """After a failed hook: the container is stopped and destroyed, and poststop ran."""
    __tracebackhide__ = True
    if pid:
        eventually(
            lambda: is_gone(pid, start),
            f"the container process {pid} still runs after the hook failed",
            timeout=5,
        )
    try:
        status = bench.adapter.state(cid).get("status")
    except ContainersError:
        pass  # destroyed, as it should be
    else:
        raise AssertionError(f"the hook failed, yet {cid} was not destroyed: it is {status}")
    assert "poststop" in bench.labels(), "the poststop hooks did not run after the failure"


@pytest.mark.parametrize(
    "stage",
    [
        pytest.param("prestart", marks=pytest.mark.requirement("RT-HOOK-PRESTART-2")),
        pytest.param("createRuntime", marks=pytest.mark.requirement("RT-HOOK-CREATERUNTIME-2")),
        pytest.param("createContainer", marks=pytest.mark.requirement("RT-HOOK-CREATECONTAINER-2")),
    ],
)
def test_a_failing_creation_hook_fails_create_and_destroys_the_container(
    bench: HookBench, stage: str
) -> None:
    hooks = {stage: [bench.hook(stage, exit_code=3)], "poststop": [bench.hook("poststop")]}
    cid = bench.new_id()
    with refused(f"the failing {stage} hook", "create"):
        bench.adapter.create(cid, bench.bundle(hooks))
    pid = None
    if stage in RUNTIME_NS_STAGES and HOST_PID not in bench.adapter.unsupported:
        state = bench.entry(stage).state
        pid = state.get("pid") if isinstance(state, dict) else None
    assert_destroyed(bench, cid, pid, None)
    assert "program" not in bench.labels(), f"the program ran after {stage} failed"


@pytest.mark.parametrize(
    "stage",
    [
        pytest.param("startContainer", marks=pytest.mark.requirement("RT-HOOK-STARTCONTAINER-2")),
        pytest.param("poststart", marks=pytest.mark.requirement("RT-HOOK-POSTSTART-2")),
    ],
)
def test_a_failing_start_hook_fails_start_and_destroys_the_container(
    bench: HookBench, stage: str
) -> None:
    hooks = {stage: [bench.hook(stage, exit_code=3)], "poststop": [bench.hook("poststop")]}
    cid = bench.new_id()
    try:
        bench.adapter.create(cid, bench.bundle(hooks))
    except ContainersError as exc:
        raise AssertionError(f"create failed, though {stage} hooks belong to start: {exc}") from exc
    pid = start = None
    if HOST_PID not in bench.adapter.unsupported and CREATED_PROCESS not in (
        bench.adapter.unsupported
    ):
        pid = bench.adapter.host_pid(cid)
        start = process_start_time(pid)
    with refused(f"the failing {stage} hook", "start"):
        bench.adapter.start(cid)
    assert_destroyed(bench, cid, pid, start)
    if stage == "startContainer":
        assert "program" not in bench.labels(), "the program ran after startContainer failed"


@pytest.mark.requirement("RT-HOOK-POSTSTOP-2", "RT-LIFE-WARN-1")
def test_a_failing_poststop_hook_is_only_a_warning(bench: HookBench) -> None:
    hooks = [bench.hook("poststop", "poststop-failing", exit_code=3), bench.hook("poststop")]
    try:
        timeline = bench.lifecycle({"poststop": hooks})
    except ContainersError as exc:
        raise AssertionError(f"a failing poststop hook failed the lifecycle: {exc}") from exc
    assert timeline.deleted[-2:] == ["poststop-failing", "poststop"], (
        f"the poststop hook after the failing one did not run: {timeline.deleted}"
    )
    with refused("RT-HOOK-POSTSTOP-2", "state after delete with a failing poststop hook"):
        bench.adapter.state(bench.ids[-1])
