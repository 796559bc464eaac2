"""The operations of runtime-spec runtime.md, one by one: ``state``, ``create``,
``start``, ``kill`` and ``delete``, what each must do, the errors each must give (no
ID, an unknown ID, a taken ID, the wrong status) and what ``delete`` must remove or
keep.

Most containers run ``probe_program``: it traps the signals it is sent and records
each in ``signals`` of a host directory bind-mounted at ``/probe``, then appends to
``started`` there, so a test sees from the host whether and how often the program ran
and which signals arrived. Each assertion message starts with the requirement it checks.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal as _signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_containers.adapters import (
    CREATED_PROCESS,
    EXIT_STATUS,
    HOST_KERNEL,
    HOST_PID,
    JOIN_NAMESPACE_PATH,
    RuntimeAdapter,
    bundle_config,
)
from pytest_containers.adapters.handle import Container
from pytest_containers.errors import ContainerNotFoundError, ContainersError
from pytest_containers.ledger import process_start_time
from pytest_containers.runtime import ContainerFactory
from reference_runtime.rootfs_builder import make_bundle

from ._support import needs, refused, sees

PROBE = "/probe"
TRAPPED = ("HUP", "INT", "QUIT", "USR1", "USR2", "ALRM", "WINCH")
"""Signals the probe program records and survives."""
TIMEOUT = 15.0
SIGKILL_STATUS = 128 + _signal.SIGKILL
NAMESPACE_FILES = ("mnt", "uts", "ipc", "net", "pid")


def probe_program(exit_code: int = 0) -> list[str]:
    """Trap ``TRAPPED`` (record, go on) and TERM (record, exit ``exit_code``), then
    append to ``started`` and idle."""
    traps = "".join(f"trap 'echo {sig} >> {PROBE}/signals' {sig}; " for sig in TRAPPED)
    return [
        "sh",
        "-c",
        f"{traps}trap 'echo TERM >> {PROBE}/signals; exit {exit_code}' TERM; "
        f"echo started >> {PROBE}/started; "
        "while :; do sleep 0.1; done",
    ]


def lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []


def eventually(check: Callable[[], bool], message: str, timeout: float = TIMEOUT) -> None:
    """Poll ``check`` until it holds; ``AssertionError(message)`` after ``timeout``."""
    __tracebackhide__ = True
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} (waited {timeout:.0f}s)")
        time.sleep(0.02)


def status_of(adapter: RuntimeAdapter, cid: str) -> Any:
    return adapter.state(cid).get("status")


def wait_stopped(adapter: RuntimeAdapter, cid: str) -> int | None:
    """Wait until ``cid`` has stopped; its exit status where the adapter reports it."""
    __tracebackhide__ = True
    code = adapter.wait(cid, timeout=TIMEOUT) if EXIT_STATUS not in adapter.unsupported else None
    eventually(
        lambda: status_of(adapter, cid) == "stopped",
        f"RT-STATE-STATUS-4: {cid} exited, but its status never became stopped",
    )
    return code


def root_entries(adapter: RuntimeAdapter) -> set[str] | None:
    """What the runtime keeps in its state root, where that is a directory."""
    try:
        return set(os.listdir(adapter.root))
    except (FileNotFoundError, NotADirectoryError):
        return None


def namespaces_of(pid: int | str) -> dict[str, str]:
    return {kind: os.readlink(f"/proc/{pid}/ns/{kind}") for kind in NAMESPACE_FILES}


def processes_in(kind: str, namespace: str) -> list[int]:
    """Host PIDs of the processes whose ``kind`` namespace is ``namespace``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/ns/{kind}") == namespace:
                    found.append(int(entry))
            except OSError:  # gone meanwhile, or a kernel thread
                pass
    return [pid for pid in found if process_start_time(pid) is not None]  # zombies aside


def cgroup_dirs(pid: int) -> list[Path]:
    """The cgroup directories of process ``pid`` that are not also the test's own,
    in every mounted hierarchy (cgroup v1, v2 or both)."""
    v1: list[tuple[set[str], str]] = []
    v2 = None
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        pre, _, post = line.partition(" - ")
        fstype, _, options = post.split(" ")[:3]
        if fstype == "cgroup":
            v1.append((set(options.split(",")), pre.split(" ")[4]))
        elif fstype == "cgroup2":
            v2 = pre.split(" ")[4]
    own = set(Path("/proc/self/cgroup").read_text().splitlines())
    dirs = []
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        if line in own:
            continue
        _, controllers, path = line.split(":", 2)
        if controllers:
            wanted = set(controllers.split(","))
            mount = next((m for opts, m in v1 if wanted <= opts), None)
        else:
            mount = v2
        if mount is not None and path != "/":
            dirs.append(Path(mount + path))
    return [d for d in dirs if d.is_dir()]


def state_problems(doc: Any) -> list[str]:
    """Where ``doc`` departs from the state schema (runtime-spec schema/state-schema.json)."""
    if not isinstance(doc, dict):
        return [f"the state is a {type(doc).__name__}, not an object"]
    problems = [
        f"{key} is missing" for key in ("ociVersion", "id", "status", "bundle") if key not in doc
    ]
    for key in ("ociVersion", "id", "status", "bundle"):
        if key in doc and not isinstance(doc[key], str):
            problems.append(f"{key} is {doc[key]!r}, not a string")
    if isinstance(doc.get("ociVersion"), str) and not re.match(r"\d+\.\d+\.\d+", doc["ociVersion"]):
        problems.append(f"ociVersion {doc['ociVersion']!r} is not a SemVer version")
    pid = doc.get("pid")
    if "pid" in doc and (not isinstance(pid, int) or isinstance(pid, bool) or pid < 0):
        problems.append(f"pid is {pid!r}, not an integer >= 0")
    annotations = doc.get("annotations")
    if annotations is not None and not (
        isinstance(annotations, dict)
        and all(isinstance(k, str) and k and isinstance(v, str) for k, v in annotations.items())
    ):
        problems.append(f"annotations is {annotations!r}, not a map of strings")
    try:
        json.dumps(doc)
    except (TypeError, ValueError) as exc:
        problems.append(f"not serialisable as JSON: {exc}")
    return problems


# ---------------------------------------------------------------------- fixtures


@dataclass
class Probed:
    """A container running ``probe_program``, with the host side of ``/probe``."""

    handle: Container
    probe: Path
    exit_code: int

    @property
    def id(self) -> str:
        return self.handle.id

    def started(self) -> list[str]:
        return lines(self.probe / "started")

    def signals(self) -> list[str]:
        return lines(self.probe / "signals")

    def wait_started(self) -> None:
        __tracebackhide__ = True
        eventually(lambda: bool(self.started()), f"RT-OP-START-4: {self.id} never ran")


@pytest.fixture
def probed(
    container: Callable[..., Container], runtime_adapter: RuntimeAdapter, tmp_path: Path
) -> Callable[..., Probed]:
    """``probed("running", exit_code=3, **bundle_args)``: a probe container in that
    status (created, running or stopped), deleted when the test ends."""
    count = iter(range(1_000_000))

    def make(status: str = "running", exit_code: int = 0, **args: Any) -> Probed:
        __tracebackhide__ = True
        probe = tmp_path / f"probe{next(count)}"
        probe.mkdir()
        mounts = [*args.pop("mounts", ()), (str(probe), PROBE)]
        handle = container(probe_program(exit_code), mounts=mounts, start=False, **args)
        made = Probed(handle, probe, exit_code)
        if status in ("running", "stopped"):
            runtime_adapter.start(handle.id)
            made.wait_started()
        if status == "stopped":
            runtime_adapter.kill(handle.id, "KILL")
            wait_stopped(runtime_adapter, handle.id)
        return made

    return make


@pytest.fixture
def fresh_id(
    container_factory: ContainerFactory, runtime_adapter: RuntimeAdapter
) -> Iterator[Callable[[], str]]:
    """New container IDs for tests that call ``create`` themselves; whatever was made
    under them is deleted at the end."""
    made: list[str] = []

    def make() -> str:
        made.append(container_factory.ledger.unique_name("pc"))
        return made[-1]

    yield make
    for cid in made:
        with contextlib.suppress(ContainerNotFoundError):  # never made, or deleted
            runtime_adapter.delete(cid, force=True)


@pytest.fixture
def probe_bundle(tmp_path: Path) -> Callable[..., tuple[Path, Path]]:
    """``probe_bundle(command=None, **bundle_args) -> (bundle, probe dir)``."""
    count = iter(range(1_000_000))

    def make(command: list[str] | None = None, **args: Any) -> tuple[Path, Path]:
        n = next(count)
        probe = tmp_path / f"bprobe{n}"
        probe.mkdir()
        mounts = [*args.pop("mounts", ()), (str(probe), PROBE)]
        config = bundle_config(command or probe_program(), mounts=mounts, **args)
        return make_bundle(tmp_path / f"bundle{n}", config=config), probe

    return make


# -------------------------------------------------------------------- all verbs


@pytest.mark.requirement("RT-OP-SUPPORT-1", "RT-LIFE-SCOPE-1")
def test_every_operation_works_on_a_container(
    runtime_adapter: RuntimeAdapter, fresh_id: Callable[[], str], probe_bundle: Any
) -> None:
    adapter = runtime_adapter
    bundle, probe = probe_bundle(probe_program(5))
    cid = fresh_id()
    adapter.create(cid, bundle)
    assert status_of(adapter, cid) == "created"
    adapter.start(cid)
    eventually(lambda: bool(lines(probe / "started")), f"{cid} never ran")
    assert status_of(adapter, cid) == "running"
    adapter.kill(cid, "TERM")
    assert wait_stopped(adapter, cid) in (5, None)
    adapter.delete(cid)
    with refused("RT-OP-SUPPORT-1", f"state of {cid} after delete"):
        adapter.state(cid)


@pytest.mark.parametrize(
    "verb",
    [
        pytest.param("state", marks=pytest.mark.requirement("RT-OP-STATE-1")),
        pytest.param("start", marks=pytest.mark.requirement("RT-OP-START-1")),
        pytest.param("kill", marks=pytest.mark.requirement("RT-OP-KILL-1")),
        pytest.param("delete", marks=pytest.mark.requirement("RT-OP-DELETE-1")),
    ],
)
def test_a_verb_without_a_container_id_is_an_error(
    runtime_adapter: RuntimeAdapter, probed: Callable[..., Probed], verb: str
) -> None:
    # an empty ID is as close as an adapter gets to leaving the operand out
    bystander = probed("running")
    call: dict[str, Callable[[], object]] = {
        "state": lambda: runtime_adapter.state(""),
        "start": lambda: runtime_adapter.start(""),
        "kill": lambda: runtime_adapter.kill("", "KILL"),
        "delete": lambda: runtime_adapter.delete(""),
    }
    requirement = f"RT-OP-{verb.upper()}-1"
    with refused(requirement, f"{verb} with an empty container ID"):
        call[verb]()
    assert status_of(runtime_adapter, bystander.id) == "running", (
        f"{requirement}: {verb} without an ID touched another container"
    )


@pytest.mark.parametrize(
    "verb",
    [
        pytest.param("state", marks=pytest.mark.requirement("RT-OP-STATE-2")),
        pytest.param("start", marks=pytest.mark.requirement("RT-OP-START-3")),
        pytest.param("kill", marks=pytest.mark.requirement("RT-OP-KILL-3")),
        pytest.param("delete", marks=pytest.mark.requirement("RT-OP-DELETE-3")),
    ],
)
def test_a_verb_on_an_unknown_container_is_an_error(
    runtime_adapter: RuntimeAdapter, fresh_id: Callable[[], str], verb: str
) -> None:
    cid = fresh_id()
    before = root_entries(runtime_adapter)
    call: dict[str, Callable[[], object]] = {
        "state": lambda: runtime_adapter.state(cid),
        "start": lambda: runtime_adapter.start(cid),
        "kill": lambda: runtime_adapter.kill(cid, "KILL"),
        "delete": lambda: runtime_adapter.delete(cid),
    }
    requirement = "RT-OP-STATE-2" if verb == "state" else f"RT-OP-{verb.upper()}-3"
    with refused(requirement, f"{verb} of {cid}, which was never created"):
        call[verb]()
    assert root_entries(runtime_adapter) == before, (
        f"RT-LIFE-ERR-1: the failed {verb} left something in the runtime's state root"
    )
    with refused("RT-LIFE-ERR-1", f"state of {cid} after a failed {verb}"):
        runtime_adapter.state(cid)


# ------------------------------------------------------------------------ state


@pytest.mark.parametrize("status", ["created", "running", "stopped"])
@pytest.mark.requirement("RT-OP-STATE-3", "RT-STATE-JSON-1")
def test_state_is_the_spec_state_document(
    runtime_adapter: RuntimeAdapter, probed: Callable[..., Probed], status: str
) -> None:
    if status == "created":
        needs(runtime_adapter, CREATED_PROCESS)
    made = probed(status, annotations={"org.example.key": "value"})
    doc = runtime_adapter.state(made.id)
    problems = state_problems(doc)
    assert not problems, f"RT-STATE-JSON-1: the state of a {status} container: {problems}"
    assert doc["id"] == made.id, f"RT-OP-STATE-3: state of {made.id} has id {doc['id']!r}"
    assert doc["status"] == status, f"RT-OP-STATE-3: a {status} container says {doc['status']!r}"
    assert os.path.realpath(doc["bundle"]) == os.path.realpath(made.handle.bundle), (
        f"RT-OP-STATE-3: bundle {doc['bundle']!r} is not {str(made.handle.bundle)!r}"
    )
    if status != "stopped":
        assert isinstance(doc.get("pid"), int) and doc["pid"] > 0, (
            f"RT-OP-STATE-3: a {status} container has pid {doc.get('pid')!r}"
        )
        if HOST_PID not in runtime_adapter.unsupported:
            assert sees(doc["pid"], PROBE, made.probe), (
                f"RT-OP-STATE-3: pid {doc['pid']} of the {status} container is not its "
                f"process: it has no {PROBE} bind mount of {made.probe}"
            )
    assert (doc.get("annotations") or {}) == {"org.example.key": "value"}, (
        f"RT-OP-STATE-3: annotations {doc.get('annotations')!r}"
    )


# ----------------------------------------------------------------------- create


@pytest.mark.requirement("RT-OP-CREATE-1")
def test_create_needs_an_id_and_a_bundle(
    runtime_adapter: RuntimeAdapter,
    fresh_id: Callable[[], str],
    probe_bundle: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bundle, probe = probe_bundle()
    before = root_entries(runtime_adapter)
    with refused("RT-OP-CREATE-1", "create with an empty container ID"):
        runtime_adapter.create("", bundle)
    cid = fresh_id()
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)  # where a bundle left out is looked for
    with refused("RT-OP-CREATE-1", "create with an empty bundle path"):
        runtime_adapter.create(cid, "")
    with refused("RT-OP-CREATE-1", "create with a bundle directory that does not exist"):
        runtime_adapter.create(cid, tmp_path / "no-such-bundle")
    with refused("RT-LIFE-ERR-1", f"state of {cid} after its create failed"):
        runtime_adapter.state(cid)
    assert root_entries(runtime_adapter) == before, (
        "RT-LIFE-ERR-1: a refused create left something in the runtime's state root"
    )
    assert not lines(probe / "started"), "RT-OP-CREATE-1: a refused create ran the program"


@pytest.mark.parametrize("status", ["created", "running", "stopped"])
@pytest.mark.requirement("RT-OP-CREATE-2", "RT-STATE-ID-2")
def test_create_with_a_taken_id_is_an_error_and_changes_nothing(
    runtime_adapter: RuntimeAdapter,
    probed: Callable[..., Probed],
    probe_bundle: Any,
    status: str,
) -> None:
    if status == "created":
        needs(runtime_adapter, CREATED_PROCESS)
    existing = probed(status)
    before = runtime_adapter.state(existing.id)
    intruder, intruder_probe = probe_bundle()
    with refused("RT-OP-CREATE-2", f"create with the ID of a {status} container"):
        runtime_adapter.create(existing.id, intruder)
    after = runtime_adapter.state(existing.id)
    for key in ("status", "pid", "bundle"):
        assert after.get(key) == before.get(key), (
            f"RT-OP-CREATE-2: the refused create changed {key} of the {status} container "
            f"from {before.get(key)!r} to {after.get(key)!r}"
        )
    if status == "created":
        runtime_adapter.start(existing.id)
        existing.wait_started()
    time.sleep(0.2)
    assert not lines(intruder_probe / "started"), (
        "RT-OP-CREATE-2: the program of the refused bundle ran"
    )
    if status != "stopped":
        assert existing.started() == ["started"], "RT-OP-CREATE-2: the existing program restarted"


INVALID_IDS = st.one_of(
    st.sampled_from([".", "..", "/", "../escape", "a/../../b"]),
    st.from_regex(r"[a-z0-9]{1,8}/[a-z0-9./]{0,8}", fullmatch=True),
)


@pytest.mark.requirement("RT-OP-CREATE-3")
@given(cid=INVALID_IDS)
def test_create_with_an_invalid_id_is_an_error(
    runtime_adapter: RuntimeAdapter, probe_bundle: Any, cid: str
) -> None:
    # no rule of the spec makes an ID valid; one that names a path ("a/b", "..") is
    # invalid for every runtime, since IDs name state directories and cgroups
    bundle, probe = probe_bundle()
    before = root_entries(runtime_adapter)
    try:
        with refused("RT-OP-CREATE-3", f"create with the ID {cid!r}"):
            runtime_adapter.create(cid, bundle)
    except AssertionError:
        with contextlib.suppress(ContainersError):  # best effort: it was made after all
            runtime_adapter.delete(cid, force=True)
        raise
    assert root_entries(runtime_adapter) == before, (
        f"RT-OP-CREATE-3: create with the ID {cid!r} failed but left state behind"
    )
    assert not lines(probe / "started"), f"RT-OP-CREATE-3: the program ran for ID {cid!r}"


@pytest.mark.requirement("RT-OP-CREATE-4", "RT-LIFE-CREATE-1")
def test_create_makes_the_container_of_config_json(
    runtime_adapter: RuntimeAdapter, probed: Callable[..., Probed]
) -> None:
    needs(runtime_adapter, CREATED_PROCESS, HOST_PID)
    made = probed(
        "created",
        namespaces=["pid", "network", "ipc", "uts", "mount"],
        annotations={"org.example.made-by": "create"},
    )
    doc = runtime_adapter.state(made.id)
    assert doc.get("annotations") == {"org.example.made-by": "create"}, (
        f"RT-OP-CREATE-4: the state of the created container has annotations "
        f"{doc.get('annotations')!r}"
    )
    host, inside = namespaces_of("self"), namespaces_of(doc["pid"])
    same = [kind for kind in NAMESPACE_FILES if host[kind] == inside[kind]]
    assert not same, f"RT-OP-CREATE-4: config.json asks for new {same} namespaces; not made"


@pytest.mark.requirement("RT-OP-CREATE-5")
def test_create_applies_everything_but_the_process(
    runtime_adapter: RuntimeAdapter, probed: Callable[..., Probed], tmp_path: Path
) -> None:
    needs(runtime_adapter, CREATED_PROCESS, HOST_PID, HOST_KERNEL)
    extra = tmp_path / "extra"
    extra.mkdir()
    made = probed("created", hostname="made-at-create", mounts=[(str(extra), "/extra")])
    pid = runtime_adapter.host_pid(made.id)
    mount_points = [
        line.split(" ")[4] for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
    ]
    for destination in (PROBE, "/extra", "/proc"):
        assert destination in mount_points, (
            f"RT-OP-CREATE-5: {destination} of config.json is not mounted in the created container"
        )
    hostname = subprocess.run(
        ["nsenter", f"--target={pid}", "--uts", "hostname"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert hostname == "made-at-create", (
        f"RT-OP-CREATE-5: the created container's hostname is {hostname!r}, not the config's"
    )


@pytest.mark.requirement("RT-OP-CREATE-6", "RT-LIFE-CREATE-3")
def test_create_does_not_run_the_program(
    runtime_adapter: RuntimeAdapter, probed: Callable[..., Probed]
) -> None:
    made = probed("created")
    time.sleep(0.5)  # time enough for a program that was run to write its line
    assert not made.started(), "RT-OP-CREATE-6: the program ran before start"
    if HOST_PID not in runtime_adapter.unsupported and CREATED_PROCESS not in (
        runtime_adapter.unsupported
    ):
        pid = runtime_adapter.host_pid(made.id)
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
        assert argv != [a.encode() for a in probe_program()], (
            "RT-OP-CREATE-6: the created container's process already execs process.args"
        )
    runtime_adapter.start(made.id)
    made.wait_started()


@pytest.mark.requirement("RT-OP-CREATE-7")
def test_create_fails_when_a_property_cannot_be_applied(
    runtime_adapter: RuntimeAdapter, fresh_id: Callable[[], str], tmp_path: Path
) -> None:
    probe = tmp_path / "probe"
    probe.mkdir()
    config = bundle_config(probe_program(), mounts=[(str(probe), PROBE)])
    # a sysctl that no kernel has: no runtime can write it
    config["linux"]["sysctl"] = {"net.ipv4.pc_no_such_sysctl": "1"}
    bundle = make_bundle(tmp_path / "bundle", config=config)
    cid = fresh_id()
    before = root_entries(runtime_adapter)
    with refused("RT-OP-CREATE-7", "create with a sysctl that does not exist"):
        runtime_adapter.create(cid, bundle)
    with refused("RT-OP-CREATE-7", f"state of {cid} after its create failed"):
        runtime_adapter.state(cid)
    assert root_entries(runtime_adapter) == before, (
        "RT-OP-CREATE-7: the failed create left something in the runtime's state root"
    )


# ------------------------------------------------------------------------ start


@pytest.mark.requirement("RT-OP-START-4", "RT-LIFE-START-1")
def test_start_runs_the_process_as_configured(
    runtime_adapter: RuntimeAdapter, container: Callable[..., Container], tmp_path: Path
) -> None:
    probe = tmp_path / "probe"
    probe.mkdir()
    script = (
        f'for a in "$0" "$@"; do echo "[$a]"; done > {PROBE}/args; '
        f'echo "$GREETING" > {PROBE}/env; pwd > {PROBE}/cwd; echo done > {PROBE}/started; '
        "exec sleep 3600"
    )
    made = container(
        ["sh", "-c", script, "zero", "one two", " three "],
        env={"GREETING": "hello, world"},
        cwd="/tmp",
        mounts=[(str(probe), PROBE)],
        start=False,
    )
    assert not lines(probe / "started")
    runtime_adapter.start(made.id)
    eventually(lambda: bool(lines(probe / "started")), "RT-OP-START-4: the program never ran")
    assert lines(probe / "args") == ["[zero]", "[one two]", "[ three ]"], (
        "RT-OP-START-4: the program did not get process.args as given"
    )
    assert lines(probe / "env") == ["hello, world"], "RT-OP-START-4: process.env not applied"
    assert lines(probe / "cwd") == ["/tmp"], "RT-OP-START-4: process.cwd not applied"
    assert status_of(runtime_adapter, made.id) == "running"


@pytest.mark.parametrize("status", ["running", "stopped"])
@pytest.mark.requirement("RT-OP-START-2", "RT-OP-START-3")
def test_start_unless_created_is_an_error_and_changes_nothing(
    runtime_adapter: RuntimeAdapter, probed: Callable[..., Probed], status: str
) -> None:
    made = probed(status, exit_code=0)
    before = runtime_adapter.state(made.id)
    with refused("RT-OP-START-3", f"start of a {status} container"):
        runtime_adapter.start(made.id)
    time.sleep(0.3)  # time enough for a program started again to write its line
    after = runtime_adapter.state(made.id)
    for key in ("status", "pid"):
        assert after.get(key) == before.get(key), (
            f"RT-OP-START-2: the refused start changed {key} from {before.get(key)!r} "
            f"to {after.get(key)!r}"
        )
    assert made.started() == ["started"], (
        f"RT-OP-START-2: the program of the {status} container ran {len(made.started())} times"
    )


@pytest.mark.requirement("RT-OP-START-5")
def test_start_without_a_process_is_an_error(
    runtime_adapter: RuntimeAdapter, fresh_id: Callable[[], str], tmp_path: Path
) -> None:
    config = bundle_config(["true"])
    del config["process"]
    bundle = make_bundle(tmp_path / "bundle", config=config)
    cid = fresh_id()
    try:
        runtime_adapter.create(cid, bundle)
    except ContainersError:
        pass  # refusing the config at create is allowed: start then has nothing to start
    with refused("RT-OP-START-5", "start of a container whose config.json has no process"):
        runtime_adapter.start(cid)


# ------------------------------------------------------------------------- kill


@pytest.mark.requirement("RT-OP-KILL-4")
@given(signals=st.lists(st.sampled_from(TRAPPED), min_size=1, max_size=4))
def test_kill_sends_the_signal_asked_for(
    runtime_adapter: RuntimeAdapter, probed: Callable[..., Probed], signals: list[str]
) -> None:
    made = probed("running", exit_code=42)
    for n, name in enumerate(signals, 1):
        runtime_adapter.kill(made.id, name)
        eventually(
            lambda n=n: len(made.signals()) >= n,  # type: ignore[misc]
            f"RT-OP-KILL-4: SIG{name} never reached the container",
        )
    runtime_adapter.kill(made.id, "TERM")
    code = wait_stopped(runtime_adapter, made.id)
    assert made.signals() == [*signals, "TERM"], (
        f"RT-OP-KILL-4: sent {[*signals, 'TERM']}, the container got {made.signals()}"
    )
    assert code in (42, None), f"the program exited 42 on SIGTERM, the runtime says {code}"


@pytest.mark.parametrize("status", ["created", "running"])
@pytest.mark.requirement("RT-OP-KILL-4")
def test_kill_with_sigkill_stops_the_container(
    runtime_adapter: RuntimeAdapter, probed: Callable[..., Probed], status: str
) -> None:
    if status == "created":
        needs(runtime_adapter, CREATED_PROCESS)
    made = probed(status)
    runtime_adapter.kill(made.id, _signal.SIGKILL)
    code = wait_stopped(runtime_adapter, made.id)
    if status == "running":
        assert code in (SIGKILL_STATUS, None), f"killed by SIGKILL, the runtime says {code}"
    assert made.started() == (["started"] if status == "running" else []), (
        "RT-OP-KILL-4: the program ran after the created container was killed"
    )


@pytest.mark.requirement("RT-OP-KILL-2", "RT-OP-KILL-3")
@pytest.mark.parametrize("signal", ["TERM", "KILL", "USR1"])
def test_kill_of_a_stopped_container_is_an_error_and_changes_nothing(
    runtime_adapter: RuntimeAdapter, probed: Callable[..., Probed], signal: str
) -> None:
    made = probed("stopped")
    before = runtime_adapter.state(made.id)
    with refused("RT-OP-KILL-3", f"kill {signal} of a stopped container"):
        runtime_adapter.kill(made.id, signal)
    after = runtime_adapter.state(made.id)
    assert after.get("status") == "stopped", f"RT-OP-KILL-2: now {after.get('status')!r}"
    assert after.get("bundle") == before.get("bundle"), "RT-OP-KILL-2: the bundle changed"
    assert made.signals() == [], "RT-OP-KILL-2: the stopped container recorded a signal"


# ----------------------------------------------------------------------- delete


@pytest.mark.parametrize("status", ["created", "running"])
@pytest.mark.requirement("RT-OP-DELETE-2", "RT-OP-DELETE-3")
def test_delete_unless_stopped_is_an_error_and_changes_nothing(
    runtime_adapter: RuntimeAdapter, probed: Callable[..., Probed], status: str
) -> None:
    if status == "created":
        needs(runtime_adapter, CREATED_PROCESS)
    made = probed(status)
    before = runtime_adapter.state(made.id)
    with refused("RT-OP-DELETE-3", f"delete (without --force) of a {status} container"):
        runtime_adapter.delete(made.id)
    after = runtime_adapter.state(made.id)
    for key in ("status", "pid", "bundle"):
        assert after.get(key) == before.get(key), (
            f"RT-OP-DELETE-2: the refused delete changed {key} from {before.get(key)!r} "
            f"to {after.get(key)!r}"
        )
    if status == "created":
        runtime_adapter.start(made.id)
        made.wait_started()
    runtime_adapter.kill(made.id, "USR1")
    eventually(
        lambda: made.signals() == ["USR1"],
        "RT-OP-DELETE-2: the container no longer takes signals after the refused delete",
    )


@pytest.mark.requirement("RT-OP-DELETE-4", "RT-LIFE-DESTROY-1")
def test_delete_undoes_what_create_made(
    runtime_adapter: RuntimeAdapter, probed: Callable[..., Probed]
) -> None:
    needs(runtime_adapter, HOST_PID)
    made = probed("running")
    pid = runtime_adapter.host_pid(made.id)
    start_time = process_start_time(pid)
    cgroups = cgroup_dirs(pid) if HOST_KERNEL not in runtime_adapter.unsupported else []
    runtime_adapter.kill(made.id, "KILL")
    wait_stopped(runtime_adapter, made.id)
    runtime_adapter.delete(made.id)
    with refused("RT-OP-DELETE-4", f"state of {made.id} after delete"):
        runtime_adapter.state(made.id)
    assert process_start_time(pid) != start_time, f"RT-OP-DELETE-4: process {pid} is still there"
    left = [str(d) for d in cgroups if d.exists()]
    assert not left, f"RT-OP-DELETE-4: the cgroups of create are still there: {left}"


@pytest.mark.parametrize("pid_namespace", [True, False], ids=["own-pid-ns", "host-pid-ns"])
@pytest.mark.requirement("RT-OWN-CLEAN-PROC-1")
def test_no_process_of_the_container_survives_delete(
    runtime_adapter: RuntimeAdapter,
    container: Callable[..., Container],
    tmp_path: Path,
    pid_namespace: bool,
) -> None:
    needs(runtime_adapter, HOST_PID)
    probe = tmp_path / "probe"
    probe.mkdir()
    kinds = ["network", "ipc", "uts", "mount", *(["pid"] if pid_namespace else [])]
    script = (
        f"sleep 3600 & echo $! >> {PROBE}/children; sleep 3600 & echo $! >> {PROBE}/children; "
        f"echo started >> {PROBE}/started; wait"
    )
    made = container(["sh", "-c", script], mounts=[(str(probe), PROBE)], namespaces=kinds)
    eventually(lambda: bool(lines(probe / "started")), f"{made.id} never ran")
    pid = runtime_adapter.host_pid(made.id)
    if pid_namespace:
        pid_ns = os.readlink(f"/proc/{pid}/ns/pid")
        family = processes_in("pid", pid_ns)
    else:  # the children's PIDs are the host's
        family = [pid, *(int(line) for line in lines(probe / "children"))]
    assert len(family) >= 3, f"expected init and two children, found {family}"
    starts = {p: process_start_time(p) for p in family}
    runtime_adapter.kill(made.id, "KILL")  # init only: without a pid namespace, not its children
    # by status, not wait(): a monitor that reaps the container's orphans (runc's) exits,
    # and so answers wait(), only once they are gone too
    eventually(
        lambda: status_of(runtime_adapter, made.id) == "stopped",
        f"RT-STATE-STATUS-4: {made.id} was killed, but its status never became stopped",
    )
    runtime_adapter.delete(made.id)
    eventually(
        lambda: all(process_start_time(p) != starts[p] for p in family),
        "RT-OWN-CLEAN-PROC-1: processes of the container survive delete: "
        + str([p for p in family if process_start_time(p) == starts[p]]),
        timeout=5,
    )


@pytest.mark.requirement("RT-OWN-CLEAN-CGROUP-1")
def test_the_container_cgroup_is_removed_by_delete(
    runtime_adapter: RuntimeAdapter, probed: Callable[..., Probed]
) -> None:
    needs(runtime_adapter, HOST_PID, HOST_KERNEL)
    made = probed("running", pids=64, memory="64m")
    dirs = cgroup_dirs(runtime_adapter.host_pid(made.id))
    assert dirs, "the running container has no cgroup of its own; with limits it must"
    runtime_adapter.kill(made.id, "KILL")
    wait_stopped(runtime_adapter, made.id)
    runtime_adapter.delete(made.id)
    eventually(
        lambda: not any(d.exists() for d in dirs),
        "RT-OWN-CLEAN-CGROUP-1: cgroups left after delete: "
        + str([str(d) for d in dirs if d.exists()]),
        timeout=5,
    )


@pytest.mark.requirement("RT-OWN-CLEAN-MOUNT-1")
def test_no_mount_of_the_container_is_left_on_the_host(
    runtime_adapter: RuntimeAdapter, probed: Callable[..., Probed]
) -> None:
    needs(runtime_adapter, HOST_KERNEL)
    made = probed("running")
    bundle = str(made.handle.bundle)
    runtime_adapter.kill(made.id, "KILL")
    wait_stopped(runtime_adapter, made.id)
    runtime_adapter.delete(made.id)
    left = [
        line
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if bundle in line or made.id in line
    ]
    assert not left, f"RT-OWN-CLEAN-MOUNT-1: mounts of the container are left: {left}"


@pytest.mark.requirement("RT-OWN-CLEAN-STATE-1", "RT-OP-DELETE-6")
def test_a_deleted_id_is_forgotten_and_can_be_used_again(
    runtime_adapter: RuntimeAdapter, fresh_id: Callable[[], str], probe_bundle: Any
) -> None:
    cid = fresh_id()
    before = root_entries(runtime_adapter)
    bundle, probe = probe_bundle()
    runtime_adapter.create(cid, bundle)
    runtime_adapter.delete(cid, force=True)
    with refused("RT-OWN-CLEAN-STATE-1", f"state of {cid} after delete"):
        runtime_adapter.state(cid)
    assert root_entries(runtime_adapter) == before, (
        "RT-OWN-CLEAN-STATE-1: delete left something in the runtime's state root"
    )
    second, second_probe = probe_bundle()
    try:
        runtime_adapter.create(cid, second)
    except ContainersError as exc:
        raise AssertionError(
            f"RT-OP-DELETE-6: the ID of a deleted container is refused: {exc}"
        ) from exc
    doc = runtime_adapter.state(cid)
    assert os.path.realpath(doc["bundle"]) == os.path.realpath(second), (
        "RT-OP-DELETE-6: the reused ID reports the bundle of the deleted container"
    )
    runtime_adapter.start(cid)
    eventually(lambda: bool(lines(second_probe / "started")), "the new container never ran")
    assert not lines(probe / "started"), "the deleted container's program ran"


@pytest.mark.requirement("RT-OP-DELETE-5")
def test_delete_keeps_the_bind_mount_source(
    runtime_adapter: RuntimeAdapter, probed: Callable[..., Probed], tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "kept").write_text("from the host\n")
    made = probed("running", mounts=[(str(shared), "/shared")])
    runtime_adapter.kill(made.id, "KILL")
    wait_stopped(runtime_adapter, made.id)
    runtime_adapter.delete(made.id)
    assert (shared / "kept").read_text() == "from the host\n", (
        "RT-OP-DELETE-5: delete removed or changed a file of a bind-mount source"
    )
    assert made.probe.is_dir() and made.started() == ["started"], (
        "RT-OP-DELETE-5: delete removed what the container wrote to a bind-mount source"
    )


@pytest.mark.requirement("RT-OP-DELETE-5")
def test_delete_keeps_a_joined_namespace(
    runtime_adapter: RuntimeAdapter,
    probed: Callable[..., Probed],
    container_factory: ContainerFactory,
) -> None:
    needs(runtime_adapter, JOIN_NAMESPACE_PATH, HOST_PID)
    name = container_factory.ledger.unique_name("pc")
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    path = f"/run/netns/{name}"
    try:
        identity = os.stat(path).st_ino
        made = probed(
            "running",
            namespaces={"pid": None, "ipc": None, "uts": None, "mount": None, "network": path},
        )
        joined = os.readlink(f"/proc/{runtime_adapter.host_pid(made.id)}/ns/net")
        assert joined == f"net:[{identity}]", f"the container did not join {path}"
        runtime_adapter.kill(made.id, "KILL")
        wait_stopped(runtime_adapter, made.id)
        runtime_adapter.delete(made.id)
        assert os.path.exists(path) and os.stat(path).st_ino == identity, (
            f"RT-OP-DELETE-5: delete removed the network namespace {path} it only joined"
        )
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False, capture_output=True)


@pytest.mark.requirement("RT-OWN-CLEAN-FORCE-1")
def test_force_delete_kills_a_running_container_and_removes_it(
    runtime_adapter: RuntimeAdapter, container: Callable[..., Container], tmp_path: Path
) -> None:
    probe = tmp_path / "probe"
    probe.mkdir()
    script = f"sleep 3600 & sleep 3600 & echo started >> {PROBE}/started; wait"
    made = container(["sh", "-c", script], mounts=[(str(probe), PROBE)], memory="64m")
    eventually(lambda: bool(lines(probe / "started")), f"{made.id} never ran")
    family: list[int] = []
    dirs: list[Path] = []
    if HOST_PID not in runtime_adapter.unsupported:
        pid = runtime_adapter.host_pid(made.id)
        family = processes_in("pid", os.readlink(f"/proc/{pid}/ns/pid"))
        if HOST_KERNEL not in runtime_adapter.unsupported:
            dirs = cgroup_dirs(pid)
    starts = {p: process_start_time(p) for p in family}
    runtime_adapter.delete(made.id, force=True)
    with refused("RT-OWN-CLEAN-FORCE-1", f"state of {made.id} after delete --force"):
        runtime_adapter.state(made.id)
    eventually(
        lambda: all(process_start_time(p) != starts[p] for p in family),
        "RT-OWN-CLEAN-FORCE-1: processes survive delete --force",
        timeout=5,
    )
    eventually(
        lambda: not any(d.exists() for d in dirs),
        "RT-OWN-CLEAN-FORCE-1: cgroups survive delete --force",
        timeout=5,
    )


@pytest.mark.requirement("RT-OWN-EXEC-MISSING-1")
def test_a_missing_executable_fails_create_or_start(
    runtime_adapter: RuntimeAdapter, fresh_id: Callable[[], str], tmp_path: Path
) -> None:
    bundle = make_bundle(tmp_path / "bundle", config=bundle_config(["/no/such/program"]))
    cid = fresh_id()
    try:
        runtime_adapter.create(cid, bundle)
    except ContainersError:
        with refused("RT-OWN-EXEC-MISSING-1", f"state of {cid} after its create failed"):
            runtime_adapter.state(cid)
        return
    pid = None
    if HOST_PID not in runtime_adapter.unsupported and CREATED_PROCESS not in (
        runtime_adapter.unsupported
    ):
        pid = runtime_adapter.host_pid(cid)
    started = process_start_time(pid) if pid else None
    with refused("RT-OWN-EXEC-MISSING-1", "create and start of a program that does not exist"):
        runtime_adapter.start(cid)
    # the container's process is gone; what is left is a stopped container or nothing
    if pid:
        eventually(
            lambda: process_start_time(pid) != started,
            f"RT-OWN-EXEC-MISSING-1: the container process {pid} lives on after start failed",
            timeout=5,
        )
    with contextlib.suppress(ContainerNotFoundError):
        assert status_of(runtime_adapter, cid) == "stopped", (
            "RT-OWN-EXEC-MISSING-1: after the failed start the container is neither gone "
            f"nor stopped but {status_of(runtime_adapter, cid)!r}"
        )
