"""POSIX-platform hooks (runtime-spec config.md "Hooks", runtime.md "Lifecycle"): each
stage is invoked, at its point of the lifecycle, in its namespace, with the state on
stdin, in the listed order; failures and timeouts are handled as the spec says.

Every hook is ``hook.sh LABEL [EXIT [ROOTFS]]``, a script written into the test's
directory, which is also bind-mounted into the container at ``/hooks``. Each call
appends one line to ``log`` there: its label, the namespaces it runs in, whether the
host's tree is its root and the container process's root (that is, pivot_root has not
happened yet), and the command line of the container process; and it keeps its stdin
as ``state-N.json`` (N: its line in the log). The container's program appends
``program`` to the same log. Hooks run in the container namespace (startContainer)
reach the script as ``/hooks/hook.sh``, a path that exists only there.

Hooks need an adapter that runs them (not Docker Engine: "not applicable").
"""

from __future__ import annotations

import contextlib
import json
import os
import signal as _signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pytest_containers.adapters import (
    CREATED_PROCESS,
    EXIT_STATUS,
    HOOKS,
    HOST_PID,
    RuntimeAdapter,
    bundle_config,
)
from pytest_containers.errors import ContainerNotFoundError, ContainersError
from pytest_containers.ledger import process_start_time
from pytest_containers.runtime import ContainerFactory
from reference_runtime.rootfs_builder import make_bundle

from ._support import needs, refused

TIMEOUT = 15.0
HOOKS_DIR = "/hooks"
"""Where the container sees the test's hook directory."""
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NAMESPACES = ("mnt", "uts", "ipc", "net", "pid")

RUNTIME_NS_STAGES = ("prestart", "createRuntime", "poststart", "poststop")
CONTAINER_NS_STAGES = ("createContainer", "startContainer")
STAGES = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")

HOOK_SCRIPT = r"""#!/bin/sh
# hook.sh LABEL [EXIT [ROOTFS]]: log LABEL, where it runs and the state on stdin; exit EXIT
d=$(dirname "$0")
n=$(wc -l < "$d/log")
n=$((n + 0))
cat > "$d/state-$n.json"
pid=$(grep -o '"pid": *[0-9]*' "$d/state-$n.json" | grep -o '[0-9]*$')
line="$1"
for t in mnt uts ipc net pid; do line="$line $t=$(readlink /proc/self/ns/$t)"; done
if [ -n "$3" ] && [ -d "$3/bin" ]; then own=host; else own=other; fi
init=other
if [ -n "$pid" ] && [ -n "$3" ] && [ -d "/proc/$pid/root$3/bin" ]; then init=host; fi
cmd=""
if [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ]; then cmd=$(tr '\0' ' ' < "/proc/$pid/cmdline"); fi
echo "$line ownroot=$own initroot=$init cmd=$cmd" >> "$d/log"
exit "${2:-0}"
"""

PROGRAM = ["sh", "-c", f"echo program >> {HOOKS_DIR}/log; while :; do sleep 1; done"]
"""The container's program: it logs itself, then idles (and stays ``sh`` for /proc)."""


def eventually(check: Callable[[], bool], message: str, timeout: float = TIMEOUT) -> None:
    __tracebackhide__ = True
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} (waited {timeout:.0f}s)")
        time.sleep(0.02)


@dataclass
class Entry:
    """One line of the hook log: a hook call (with its state) or the program."""

    label: str
    namespaces: dict[str, str] = field(default_factory=dict)
    own_root: str = ""
    init_root: str = ""
    cmd: str = ""
    state: Any = None


@dataclass
class Timeline:
    """The labels logged by the time each verb returned."""

    created: list[str]
    started: list[str]
    stopped: list[str]
    deleted: list[str]
    host_pid: int | None
    container_namespaces: dict[str, str]


class HookBench:
    """The hook script, its log and bundles that call it, in one directory."""

    def __init__(self, directory: Path, factory: ContainerFactory) -> None:
        self.dir = directory / "hooks"
        self.dir.mkdir()
        self.script = self.dir / "hook.sh"
        self.script.write_text(HOOK_SCRIPT)
        self.script.chmod(0o755)
        self.log = self.dir / "log"
        self.log.touch()
        self.bundle_dir = directory / "bundle"
        self.rootfs = self.bundle_dir / "rootfs"
        self.factory = factory
        self.adapter = factory.adapter
        self.ids: list[str] = []

    def hook(
        self, stage: str, label: str | None = None, *, exit_code: int = 0, **extra: Any
    ) -> dict[str, Any]:
        """A hook entry calling the script; in the container namespace by its inside path."""
        path = f"{HOOKS_DIR}/hook.sh" if stage == "startContainer" else str(self.script)
        args = ["hook.sh", label or stage, str(exit_code), str(self.rootfs)]
        return {"path": path, "args": args, "env": [PATH_ENV], **extra}

    def bundle(self, hooks: dict[str, list[dict[str, Any]]]) -> Path:
        config = bundle_config(PROGRAM, mounts=[(str(self.dir), HOOKS_DIR)])
        config["hooks"] = hooks
        return make_bundle(self.bundle_dir, config=config)

    def new_id(self) -> str:
        self.ids.append(self.factory.ledger.unique_name("pc"))
        return self.ids[-1]

    def entries(self) -> list[Entry]:
        found = []
        for n, line in enumerate(self.log.read_text().splitlines()):
            head, _, cmd = line.partition(" cmd=")
            label, *fields = head.split(" ")
            values = dict(f.split("=", 1) for f in fields if "=" in f)
            entry = Entry(label, {k: values[k] for k in NAMESPACES if k in values}, cmd=cmd)
            entry.own_root, entry.init_root = values.get("ownroot", ""), values.get("initroot", "")
            state_file = self.dir / f"state-{n}.json"
            if state_file.exists():
                try:
                    entry.state = json.loads(state_file.read_text())
                except ValueError as exc:
                    entry.state = exc
            found.append(entry)
        return found

    def labels(self) -> list[str]:
        return [e.label for e in self.entries()]

    def entry(self, label: str) -> Entry:
        __tracebackhide__ = True
        matches = [e for e in self.entries() if e.label == label]
        assert matches, f"the {label} hook never ran; the log says {self.labels()}"
        return matches[0]

    def lifecycle(self, hooks: dict[str, list[dict[str, Any]]]) -> Timeline:
        """create, start, kill, delete a container with ``hooks``; the log after each."""
        __tracebackhide__ = True
        cid = self.new_id()
        self.adapter.create(cid, self.bundle(hooks))
        created = self.labels()
        host_pid, namespaces = None, {}
        if HOST_PID not in self.adapter.unsupported and CREATED_PROCESS not in (
            self.adapter.unsupported
        ):
            host_pid = self.adapter.host_pid(cid)
            namespaces = {k: os.readlink(f"/proc/{host_pid}/ns/{k}") for k in NAMESPACES}
        self.adapter.start(cid)
        started = self.labels()
        eventually(lambda: "program" in self.labels(), "the container's program never ran")
        self.adapter.kill(cid, _signal.SIGKILL)
        wait_stopped(self.adapter, cid)
        stopped = self.labels()
        self.adapter.delete(cid)
        return Timeline(created, started, stopped, self.labels(), host_pid, namespaces)

    def close(self) -> None:
        for cid in self.ids:
            with contextlib.suppress(ContainerNotFoundError):  # deleted, or never made
                self.adapter.delete(cid, force=True)


def wait_stopped(adapter: RuntimeAdapter, cid: str) -> None:
    __tracebackhide__ = True
    if EXIT_STATUS not in adapter.unsupported:
        adapter.wait(cid, timeout=TIMEOUT)
    eventually(
        lambda: adapter.state(cid).get("status") == "stopped",
        f"{cid} was killed, but it never became stopped",
    )


@pytest.fixture
def bench(container_factory: ContainerFactory, tmp_path: Path) -> Iterator[HookBench]:
    needs(container_factory.adapter, HOOKS)
    made = HookBench(tmp_path, container_factory)
    yield made
    made.close()


def own_namespaces() -> dict[str, str]:
    return {k: os.readlink(f"/proc/self/ns/{k}") for k in NAMESPACES}


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


# --------------------------------------------------------------- bad hooks, failures


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
