"""POSIX-platform hooks (runtime-spec config.md "Hooks", runtime.md "Lifecycle"): each
stage is invoked once, at its point of the lifecycle, in the listed order, in its
namespace, with the state on stdin and its args and env. The hooks log to the bench of
``_hooks``.
"""

from __future__ import annotations

import os

import pytest

from pytest_containers.adapters import CREATED_PROCESS, HOST_PID

from ._hooks import (
    CONTAINER_NS_STAGES,
    HOOKS_DIR,
    NAMESPACES,
    PATH_ENV,
    PROGRAM,
    RUNTIME_NS_STAGES,
    STAGES,
    HookBench,
    own_namespaces,
)
from ._support import needs

# ------------------------------------------------------------------ invocation


@pytest.mark.parametrize(
    "stage",
    [
        pytest.param("prestart", marks=pytest.mark.requirement("RT-HOOK-PRESTART-1")),
        pytest.param("createRuntime", marks=pytest.mark.requirement("RT-HOOK-CREATERUNTIME-1")),
        pytest.param("createContainer", marks=pytest.mark.requirement("RT-HOOK-CREATECONTAINER-1")),
        pytest.param("startContainer", marks=pytest.mark.requirement("RT-HOOK-STARTCONTAINER-1")),
        pytest.param("poststart", marks=pytest.mark.requirement("RT-HOOK-POSTSTART-1")),
        pytest.param("poststop", marks=pytest.mark.requirement("RT-HOOK-POSTSTOP-1")),
    ],
)
def test_each_stage_is_invoked_once(bench: HookBench, stage: str) -> None:
    timeline = bench.lifecycle({stage: [bench.hook(stage)]})
    calls = timeline.deleted.count(stage)
    assert calls == 1, f"the {stage} hook ran {calls} times in one lifecycle: {timeline.deleted}"


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.requirement("RT-HOOK-ORDER-1")
def test_hooks_of_a_stage_run_in_the_listed_order(bench: HookBench, stage: str) -> None:
    labels = [f"{stage}-{name}" for name in ("first", "second", "third")]
    timeline = bench.lifecycle({stage: [bench.hook(stage, label) for label in labels]})
    got = [label for label in timeline.deleted if label.startswith(f"{stage}-")]
    assert got == labels, f"RT-HOOK-ORDER-1: {stage} hooks listed as {labels} ran as {got}"


@pytest.mark.requirement("RT-HOOK-PRESTART-4", "RT-HOOK-CREATECONTAINER-4")
def test_prestart_then_createruntime_then_createcontainer(bench: HookBench) -> None:
    stages = ("prestart", "createRuntime", "createContainer")
    timeline = bench.lifecycle({stage: [bench.hook(stage)] for stage in reversed(stages)})
    got = [label for label in timeline.created if label in stages]
    assert got == list(stages), f"the creation hooks ran as {got}, the spec orders {stages}"


@pytest.mark.parametrize(
    "stage",
    [
        pytest.param("prestart", marks=pytest.mark.requirement("RT-HOOK-PRESTART-3")),
        pytest.param("createRuntime", marks=pytest.mark.requirement("RT-HOOK-CREATERUNTIME-3")),
        pytest.param("createContainer", marks=pytest.mark.requirement("RT-HOOK-CREATECONTAINER-3")),
    ],
)
def test_creation_hooks_run_in_create_before_pivot_root(bench: HookBench, stage: str) -> None:
    timeline = bench.lifecycle({stage: [bench.hook(stage)]})
    assert stage in timeline.created, (
        f"the {stage} hook had not run when create returned: {timeline.created}"
    )
    entry = bench.entry(stage)
    if stage == "createContainer":
        # it runs in the container's mount namespace: the host's tree is still its root
        assert entry.own_root == "host", (
            "the createContainer hook ran after pivot_root: the bundle's rootfs was no "
            "longer reachable at its host path"
        )
    elif HOST_PID not in bench.adapter.unsupported:
        assert entry.init_root == "host", (
            f"the {stage} hook ran after pivot_root: the container process's root was "
            "already its rootfs"
        )


@pytest.mark.requirement("RT-HOOK-STARTCONTAINER-3")
def test_startcontainer_runs_in_start_before_the_program(bench: HookBench) -> None:
    # the hook runs in the container, so it may finish after start has returned: the
    # spec orders it only against create and the program
    timeline = bench.lifecycle({"startContainer": [bench.hook("startContainer")]})
    assert "startContainer" not in timeline.created, "startContainer ran during create"
    log = timeline.deleted
    assert "startContainer" in log, f"startContainer never ran: {log}"
    assert log.index("startContainer") < log.index("program"), (
        f"the program ran before the startContainer hook: {log}"
    )


@pytest.mark.requirement("RT-HOOK-POSTSTART-3")
def test_poststart_runs_after_the_program_is_executed_before_start_returns(
    bench: HookBench,
) -> None:
    timeline = bench.lifecycle({"poststart": [bench.hook("poststart")]})
    assert "poststart" not in timeline.created, "poststart ran during create"
    assert "poststart" in timeline.started, "poststart had not run when start returned"
    if HOST_PID not in bench.adapter.unsupported:
        cmd = bench.entry("poststart").cmd.split(" ")[:2]
        assert cmd == PROGRAM[:2], (
            f"when poststart ran, the container process was {cmd}, not yet the program "
            f"{PROGRAM[:2]}"
        )


@pytest.mark.requirement("RT-HOOK-POSTSTOP-3")
def test_poststop_runs_in_delete_before_it_returns(bench: HookBench) -> None:
    timeline = bench.lifecycle({"poststop": [bench.hook("poststop")]})
    assert "poststop" not in timeline.stopped, "poststop ran before delete was called"
    assert "poststop" in timeline.deleted, "poststop had not run when delete returned"
    if timeline.host_pid is not None:
        assert bench.entry("poststop").cmd == "", (
            "the container process still existed when the poststop hook ran"
        )


# ------------------------------------------------------------- state and namespaces


@pytest.mark.requirement("RT-HOOK-STATE-1")
def test_every_hook_gets_the_state_on_stdin(bench: HookBench) -> None:
    bench.lifecycle({stage: [bench.hook(stage)] for stage in STAGES})
    cid = bench.ids[-1]
    for stage in STAGES:
        state = bench.entry(stage).state
        assert isinstance(state, dict), f"the {stage} hook got no state JSON on stdin: {state!r}"
        assert state.get("id") == cid, f"the state given to {stage} has id {state.get('id')!r}"
        assert isinstance(state.get("ociVersion"), str), f"{stage}: no ociVersion in {state}"
        assert isinstance(state.get("status"), str), f"{stage}: no status in {state}"
        assert os.path.realpath(str(state.get("bundle"))) == os.path.realpath(bench.bundle_dir), (
            f"{stage}: the state has bundle {state.get('bundle')!r}"
        )


@pytest.mark.parametrize("stage", [s for s in STAGES if s != "poststop"])
@pytest.mark.requirement("RT-HOOK-STATE-2")
def test_the_pid_in_the_hook_state_is_seen_from_the_hook_namespace(
    bench: HookBench, stage: str
) -> None:
    needs(bench.adapter, HOST_PID, CREATED_PROCESS)
    timeline = bench.lifecycle({stage: [bench.hook(stage)]})
    pid = bench.entry(stage).state.get("pid")
    if stage in CONTAINER_NS_STAGES:
        assert pid == 1, (
            f"the {stage} hook runs in the container's pid namespace, where the container "
            f"process is 1, but its state says pid {pid!r}"
        )
    else:
        assert pid == timeline.host_pid, (
            f"the {stage} hook runs in the runtime namespace, where the container process "
            f"is {timeline.host_pid}, but its state says pid {pid!r}"
        )


@pytest.mark.parametrize(
    "stage",
    [
        pytest.param("prestart", marks=pytest.mark.requirement("RT-HOOK-PRESTART-5")),
        pytest.param("createRuntime", marks=pytest.mark.requirement("RT-HOOK-CREATERUNTIME-4")),
        pytest.param("createContainer", marks=pytest.mark.requirement("RT-HOOK-CREATECONTAINER-5")),
        pytest.param("startContainer", marks=pytest.mark.requirement("RT-HOOK-STARTCONTAINER-4")),
        pytest.param("poststart", marks=pytest.mark.requirement("RT-HOOK-POSTSTART-4")),
        pytest.param("poststop", marks=pytest.mark.requirement("RT-HOOK-POSTSTOP-4")),
    ],
)
def test_each_stage_runs_in_its_namespace(bench: HookBench, stage: str) -> None:
    # the path: startContainer's exists only inside the container, the others' only on
    # the host (the test's directory is not in the rootfs); a hook that ran was found
    assert not os.path.exists(f"{HOOKS_DIR}/hook.sh"), f"{HOOKS_DIR} exists on this host"
    timeline = bench.lifecycle({stage: [bench.hook(stage)]})
    seen = bench.entry(stage).namespaces
    host = own_namespaces()
    container = timeline.container_namespaces
    if stage in CONTAINER_NS_STAGES:
        if container:
            differ = [k for k in NAMESPACES if seen.get(k) != container[k]]
            assert not differ, f"the {stage} hook ran outside the container's {differ} namespaces"
        else:
            same = [k for k in ("mnt", "uts", "ipc", "net") if seen.get(k) == host[k]]
            assert not same, f"the {stage} hook ran in the host's {same} namespaces"
    else:
        # the adapter may run the runtime in a mount namespace of its own (crun on a
        # hybrid host): the mount namespace is only checked not to be the container's
        other = [k for k in ("uts", "ipc", "net", "pid") if seen.get(k) != host[k]]
        assert not other, f"the {stage} hook ran outside the runtime's {other} namespaces"
        if container:
            assert seen.get("mnt") != container["mnt"], (
                f"the {stage} hook ran in the container's mount namespace"
            )


@pytest.mark.parametrize("stage", RUNTIME_NS_STAGES)
@pytest.mark.requirement("RT-HOOK-ARGS-1")
def test_a_hook_gets_its_args_and_env_as_execv_would(bench: HookBench, stage: str) -> None:
    out = bench.dir / f"{stage}.args"
    script = (
        f'tr "\\0" "\\n" < /proc/$$/cmdline > {out}; tr "\\0" "\\n" < /proc/$$/environ > {out}.env'
    )
    args = ["argv0-of-the-hook", "-c", script, "dollar-zero", "one two", ""]
    env = [PATH_ENV, "HOOK_GREETING=hello, world", "EMPTY="]
    bench.lifecycle({stage: [{"path": "/bin/sh", "args": args, "env": env}]})
    assert out.read_text().split("\n")[:-1] == args, (
        f"the {stage} hook's argv is {out.read_text().split(chr(10))[:-1]}, not its args {args}"
    )
    got_env = (bench.dir / f"{stage}.args.env").read_text().split("\n")[:-1]
    assert sorted(got_env) == sorted(env), f"the {stage} hook's environment is {got_env}, not {env}"
