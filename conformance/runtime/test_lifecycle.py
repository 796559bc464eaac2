"""The container lifecycle as a state machine (runtime-spec runtime.md "Lifecycle",
"State" and "Operations").

``LifecycleMachine`` drives a few containers at once through create, start, kill and
delete, and after every step compares each container's ``state`` with a small model of
the spec's state machine: its status, pid, bundle and annotations, whether its program
has run (it appends to ``started`` in a bind-mounted host directory, so a program run
before ``start`` shows), which signals arrived (a trap per signal appends its name to
``signals``) and the exit status of a stopped one. The wrong-status variants of each
verb (start of a running container, delete of a created one, ...) are tried on every
container after every step, in machines of their own, one per verb, so that a runtime
which refuses, say, no early ``delete`` fails only the requirements of ``delete``; so is
``kill`` of a created container, which some runtimes refuse.

A failing example reads as a program: ``containers_0 = state.create(...)``,
``state.start(c=containers_0)``, ...; each assertion message starts with the ID of the
requirement it checks.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from pytest_containers.adapters import (
    CREATED_PROCESS,
    EXIT_STATUS,
    HOST_PID,
    RuntimeAdapter,
    bundle_config,
)
from pytest_containers.adapters.handle import Container
from pytest_containers.errors import ContainerNotFoundError, ContainersError
from pytest_containers.ledger import process_start_time
from pytest_containers.requirements import not_applicable
from pytest_containers.runtime import ContainerFactory
from reference_runtime.rootfs_builder import make_bundle

from ._support import TIMEOUT, eventually, lines, refused, root_entries, sees

CREATED, RUNNING, STOPPED = "created", "running", "stopped"

# A wrong-status machine repeats the whole lifecycle to reach every status, and tries its
# verb in each of them after every step, so it needs fewer and shorter runs than the
# main machine to meet every status: 3 runs of 9 steps in ci (36 of 30 in thorough).
_PROFILE = settings()
VARIANT = settings(
    max_examples=max(1, round(_PROFILE.max_examples * 0.6)),
    stateful_step_count=max(6, round(_PROFILE.stateful_step_count * 0.75)),
)
DELETED = "deleted"  # the model's own word for "no longer known to the runtime"

MAX_LIVE = 3
"""Containers alive at once in one example."""

PROBE = "/probe"
"""Where each container sees its bind-mounted host directory."""

TRAPPED = ("HUP", "USR1", "USR2")
"""Signals the program records and survives."""

SIGKILL_STATUS = 128 + 9


def probe_program(exit_code: int) -> list[str]:
    """A program that traps ``TRAPPED`` and TERM (recording each in ``signals``; TERM
    then exits with ``exit_code``), then appends to ``started`` and idles."""
    traps = "".join(f"trap 'echo {sig} >> {PROBE}/signals' {sig}; " for sig in TRAPPED)
    return [
        "sh",
        "-c",
        f"{traps}trap 'echo TERM >> {PROBE}/signals; exit {exit_code}' TERM; "
        # written after the traps are set: once it is there, a signal is not lost
        f"echo started >> {PROBE}/started; "
        "while :; do sleep 0.1; done",
    ]


@dataclass(eq=False)
class ModelContainer:
    """What the spec says one container is, as the machine drove it."""

    id: str
    bundle: Path
    probe: Path
    exit_code: int
    annotations: dict[str, str]
    status: str = CREATED
    started: bool = False
    signals: list[str] = field(default_factory=list)
    pid: int | None = None
    pid_start: int | None = None
    era: int = 0
    """How many times the ID was created again after a delete."""

    def __repr__(self) -> str:
        return f"<container {self.id} {self.status}>"

    @property
    def started_file(self) -> Path:
        return self.probe / "started"

    @property
    def signals_file(self) -> Path:
        return self.probe / "signals"

    def recreated(self) -> None:
        self.status, self.started, self.signals = CREATED, False, []
        self.pid = self.pid_start = None
        self.era += 1


def is_(*statuses: str) -> Callable[[ModelContainer], bool]:
    """A filter of the containers bundle, by model status."""
    return lambda c: c.status in statuses


class LifecycleMachine(RuleBasedStateMachine):
    """The spec's lifecycle against the runtime under test; bound to a
    ``ContainerFactory`` and a directory by ``run_machine``."""

    factory: ClassVar[ContainerFactory]
    directory: ClassVar[Path]
    rootfs: ClassVar[Path]
    """One root filesystem for every bundle of the machine: read-only, so it can be shared."""
    variants: ClassVar[frozenset[str]] = frozenset()
    """Rules beyond the core lifecycle: ``kill-created`` (SIGKILL to a created
    container) and ``refuse-VERB`` (VERB tried in a wrong status; VERB is one of
    create, start, kill, delete)."""

    containers = Bundle("containers")

    def __init__(self) -> None:
        super().__init__()
        self.adapter: RuntimeAdapter = self.factory.adapter
        self.work = Path(tempfile.mkdtemp(prefix="lifecycle-", dir=self.directory))
        self.model: list[ModelContainer] = []
        self.handles: list[Container] = []
        self._intruder: Path | None = None
        self._tried: set[tuple[str, str, int, str]] = set()

    # ------------------------------------------------------------------ helpers

    def make_bundle(self, config: dict[str, Any]) -> Path:
        """A bundle directory whose config.json names the shared root filesystem."""
        bundle = Path(tempfile.mkdtemp(prefix="bundle-", dir=self.work))
        config["root"] = {"path": str(self.rootfs), "readonly": True}
        (bundle / "config.json").write_text(json.dumps(config, indent=2))
        return bundle

    def supports(self, feature: str) -> bool:
        return feature not in self.adapter.unsupported

    def count(self, *statuses: str) -> int:
        return sum(c.status in statuses for c in self.model)

    def untried(self, verb: str, *statuses: str) -> list[ModelContainer]:
        """The containers in one of ``statuses`` that have not yet been tried with
        ``verb`` in the status they are in now. A refused verb changes nothing, so trying
        it again before the container's status changes would ask the same question twice."""
        found = []
        for c in self.model:
            key = (verb, c.id, c.era, c.status)
            if c.status in statuses and key not in self._tried:
                self._tried.add(key)
                found.append(c)
        return found

    def await_exit(self, c: ModelContainer, expected: int | None) -> None:
        """Wait until ``c`` has stopped; check its exit status where it is known."""
        __tracebackhide__ = True
        if self.supports(EXIT_STATUS):
            code = self.adapter.wait(c.id, timeout=TIMEOUT)
            if expected is not None:
                assert code == expected, (
                    f"{c.id} exited with {expected}, but the runtime reported {code}"
                )
        eventually(
            lambda: self.adapter.state(c.id).get("status") == STOPPED,
            f"RT-STATE-STATUS-4: {c.id} exited, but its status never became stopped",
        )
        c.status = STOPPED

    def gone(self, c: ModelContainer, verb: str) -> None:
        """``c`` was deleted: check that nothing of it is left, then model it."""
        __tracebackhide__ = True
        with refused("RT-OWN-CLEAN-STATE-1", f"state of {c.id} after {verb}"):
            self.adapter.state(c.id)
        if c.pid is not None and self.supports(HOST_PID):
            assert process_start_time(c.pid) != c.pid_start, (
                f"RT-OWN-CLEAN-PROC-1: process {c.pid} of {c.id} still runs after {verb}"
            )
        assert c.probe.is_dir(), (
            f"RT-OP-DELETE-5: {verb} of {c.id} removed its bind-mount source {c.probe}"
        )
        assert lines(c.started_file) == (["started"] if c.started else []), (
            f"RT-OP-DELETE-5: {verb} of {c.id} changed the files of its bind-mount source"
        )
        c.status = DELETED

    # ------------------------------------------------------------------ valid verbs

    @precondition(lambda self: self.count(CREATED, RUNNING, STOPPED) < MAX_LIVE)
    @rule(
        target=containers,
        exit_code=st.integers(0, 120),
        annotations=st.dictionaries(
            st.sampled_from(["org.example.a", "org.example.b", "com.test"]),
            st.text("abcxyz0123-. ", max_size=6),
            max_size=2,
        ),
    )
    def create(self, exit_code: int, annotations: dict[str, str]) -> ModelContainer:
        probe = Path(tempfile.mkdtemp(prefix="probe-", dir=self.work))
        config = bundle_config(
            probe_program(exit_code),
            mounts=[(str(probe), PROBE)],
            annotations=annotations,
        )
        bundle = self.make_bundle(config)
        handle = self.factory.make_container(self.work, bundle=bundle, start=False)
        self.handles.append(handle)
        c = ModelContainer(handle.id, bundle, probe, exit_code, dict(annotations))
        self.model.append(c)
        return c

    @precondition(
        lambda self: self.count(DELETED) and self.count(CREATED, RUNNING, STOPPED) < MAX_LIVE
    )
    @rule(c=containers.filter(is_(DELETED)))
    def create_again_with_a_deleted_id(self, c: ModelContainer) -> None:
        for name in ("started", "signals"):
            (c.probe / name).unlink(missing_ok=True)
        try:
            self.adapter.create(c.id, c.bundle)
        except ContainersError as exc:
            raise AssertionError(
                f"RT-OWN-CLEAN-STATE-1: the ID of deleted {c.id} cannot be used again: {exc}"
            ) from exc
        c.recreated()

    @precondition(lambda self: self.count(CREATED))
    @rule(c=containers.filter(is_(CREATED)))
    def start(self, c: ModelContainer) -> None:
        assert not c.started_file.exists(), (
            f"RT-LIFE-CREATE-3: the program of {c.id} ran before start"
        )
        self.adapter.start(c.id)
        c.status, c.started = RUNNING, True
        eventually(
            lambda: bool(lines(c.started_file)),  # not exists(): the shell opens, then writes
            f"RT-LIFE-START-1: start of {c.id} returned, but its program never ran",
        )

    @precondition(lambda self: self.count(RUNNING))
    @rule(c=containers.filter(is_(RUNNING)), signal=st.sampled_from(TRAPPED))
    def send_trapped_signal(self, c: ModelContainer, signal: str) -> None:
        self.adapter.kill(c.id, signal)
        c.signals.append(signal)
        eventually(
            lambda: lines(c.signals_file) == c.signals,
            f"RT-OP-KILL-4: {c.id} should have received {c.signals}, "
            f"it recorded {lines(c.signals_file)}",
        )

    @precondition(lambda self: self.count(RUNNING))
    @rule(c=containers.filter(is_(RUNNING)), signal=st.sampled_from(["TERM", "KILL"]))
    def stop_running(self, c: ModelContainer, signal: str) -> None:
        self.adapter.kill(c.id, signal)
        if signal == "TERM":
            c.signals.append("TERM")
            self.await_exit(c, c.exit_code)
        else:
            self.await_exit(c, SIGKILL_STATUS)

    @precondition(
        lambda self: (
            "kill-created" in self.variants
            and self.count(CREATED)
            and self.supports(CREATED_PROCESS)
        )
    )
    @rule(c=containers.filter(is_(CREATED)))
    def kill_created(self, c: ModelContainer) -> None:
        # only KILL: the program's traps are not set yet, and what the runtime's own
        # waiting process makes of another signal is not the spec's business
        self.adapter.kill(c.id, "KILL")
        self.await_exit(c, None)

    @precondition(lambda self: self.count(STOPPED))
    @rule(c=containers.filter(is_(STOPPED)))
    def delete_stopped(self, c: ModelContainer) -> None:
        self.adapter.delete(c.id)
        self.gone(c, "delete")

    @precondition(lambda self: self.count(CREATED, RUNNING, STOPPED))
    @rule(c=containers.filter(is_(CREATED, RUNNING, STOPPED)))
    def delete_force(self, c: ModelContainer) -> None:
        self.adapter.delete(c.id, force=True)
        self.gone(c, "delete --force")

    # ------------------------------------------------------- wrong-status variants
    # Invariants rather than rules: a refused verb changes nothing, so trying it on every
    # container in every status it reaches is a rule of the spec, and no example can miss
    # it; each (container, status) is tried once.

    @precondition(lambda self: "refuse-create" in self.variants)
    @invariant()
    def create_refuses_a_taken_id(self) -> None:
        for c in self.untried("create", CREATED, RUNNING, STOPPED):
            with refused("RT-OP-CREATE-2", f"create with the ID of {c.status} {c.id}"):
                self.adapter.create(c.id, self.intruder())

    def intruder(self) -> Path:
        """A bundle whose program would record itself in a directory of its own."""
        if self._intruder is None:
            probe = Path(tempfile.mkdtemp(prefix="intruder-", dir=self.work))
            config = bundle_config(probe_program(0), mounts=[(str(probe), PROBE)])
            self._intruder = self.make_bundle(config)
        return self._intruder

    @precondition(lambda self: "refuse-start" in self.variants)
    @invariant()
    def start_refuses_unless_created(self) -> None:
        for c in self.untried("start", RUNNING, STOPPED, DELETED):
            with refused("RT-OP-START-3", f"start of {c.status} {c.id}"):
                self.adapter.start(c.id)

    @precondition(lambda self: "refuse-kill" in self.variants)
    @invariant()
    def kill_refuses_unless_created_or_running(self) -> None:
        for c in self.untried("kill", STOPPED, DELETED):
            with refused("RT-OP-KILL-3", f"kill of {c.status} {c.id}"):
                self.adapter.kill(c.id, "KILL")

    @precondition(lambda self: "refuse-delete" in self.variants)
    @invariant()
    def delete_refuses_unless_stopped(self) -> None:
        for c in self.untried("delete", CREATED, RUNNING, DELETED):
            with refused("RT-OP-DELETE-3", f"delete (without --force) of {c.status} {c.id}"):
                self.adapter.delete(c.id)

    # ------------------------------------------------------------------ invariants

    @invariant()
    def state_is_as_the_model_says(self) -> None:
        for c in self.model:
            if c.status == DELETED:
                with refused("RT-OP-STATE-2", f"state of deleted {c.id}"):
                    self.adapter.state(c.id)
                continue
            self.check_state(c, self.adapter.state(c.id))

    def check_state(self, c: ModelContainer, doc: dict[str, Any]) -> None:
        __tracebackhide__ = True
        json.dumps(doc)  # RT-STATE-JSON-1: it is a JSON document
        version = doc.get("ociVersion")
        assert isinstance(version, str) and version, (
            f"RT-STATE-OCIVERSION-1: state of {c.id} has ociVersion {version!r}"
        )
        assert doc.get("id") == c.id, f"RT-STATE-ID-1: state of {c.id} has id {doc.get('id')!r}"
        status = doc.get("status")
        requirement = {
            CREATED: "RT-STATE-STATUS-2",
            RUNNING: "RT-STATE-STATUS-3",
            STOPPED: "RT-STATE-STATUS-4",
        }[c.status]
        assert status == c.status, f"{requirement}: {c.id} is {c.status}, its state says {status!r}"
        bundle = doc.get("bundle")
        assert isinstance(bundle, str) and os.path.isabs(bundle), (
            f"RT-STATE-BUNDLE-1: state of {c.id} has bundle {bundle!r}, not an absolute path"
        )
        assert os.path.realpath(bundle) == os.path.realpath(c.bundle), (
            f"RT-STATE-BUNDLE-1: state of {c.id} has bundle {bundle!r}, not {str(c.bundle)!r}"
        )
        annotations = doc.get("annotations")
        assert (annotations or {}) == c.annotations, (
            f"RT-STATE-ANNOT-1: state of {c.id} has annotations {annotations!r}, "
            f"its config.json {c.annotations!r}"
        )
        if c.status == RUNNING or (c.status == CREATED and self.supports(CREATED_PROCESS)):
            pid = doc.get("pid")
            assert isinstance(pid, int) and pid > 0, (
                f"RT-STATE-PID-1: {c.id} is {c.status}, but its state has pid {pid!r}"
            )
            if c.pid is None:
                c.pid = pid
                c.pid_start = process_start_time(pid) if self.supports(HOST_PID) else None
            assert pid == c.pid, (
                f"RT-STATE-PID-1: the pid of {c.id} changed from {c.pid} to {pid} "
                "while its container process lived"
            )
            if self.supports(HOST_PID):
                assert process_start_time(pid) == c.pid_start, (
                    f"RT-STATE-PID-1: {c.id} is {c.status}, but its process {pid} is gone"
                )
                assert sees(pid, PROBE, c.probe), (
                    f"RT-STATE-PID-1: pid {pid} of {c.id} is not its container process: "
                    f"it has no {PROBE} bind mount of {c.probe}"
                )

    @invariant()
    def program_ran_once_and_only_after_start(self) -> None:
        for c in self.model:
            if c.status == DELETED:
                continue
            ran = lines(c.started_file)
            if not c.started:
                assert ran == [], f"RT-LIFE-CREATE-3: {c.id} was never started, yet it ran: {ran}"
            else:
                assert ran == ["started"], f"{c.id} was started once, its program ran: {ran}"

    @invariant()
    def signals_arrived_as_sent(self) -> None:
        for c in self.model:
            if c.status != DELETED:
                got = lines(c.signals_file)
                assert got == c.signals, f"RT-OP-KILL-4: {c.id} got {got}, sent {c.signals}"

    def teardown(self) -> None:
        # every live container is killed first, so that their exits overlap and each
        # delete finds a stopped container (runc's delete --force of a live one polls)
        live = [c for c in self.model if c.status in (CREATED, RUNNING)]
        for c in live:
            with contextlib.suppress(ContainersError):  # stopped or gone meanwhile
                self.adapter.kill(c.id, "KILL")
        if self.supports(EXIT_STATUS):
            for c in live:
                with contextlib.suppress(ContainersError, TimeoutError):  # delete says
                    self.adapter.wait(c.id, timeout=TIMEOUT)
        errors: list[BaseException] = []
        for handle in self.handles:
            try:
                self.factory.remove(handle)
            except Exception as exc:
                errors.append(exc)
        shutil.rmtree(self.work, ignore_errors=True)
        if errors:
            raise errors[0]


def run_machine(
    factory: ContainerFactory, directory: Path, variants: frozenset[str] = frozenset()
) -> None:
    """Run ``LifecycleMachine`` against the session's runtime, under the current profile."""
    rootfs = make_bundle(directory / "base", config=bundle_config()) / "rootfs"
    bound = type(
        "LifecycleMachine",
        (LifecycleMachine,),
        {
            "factory": factory,
            "directory": directory,
            "rootfs": rootfs,
            "variants": variants,
        },
    )
    run_state_machine_as_test(bound, settings=VARIANT if variants else None)


@pytest.mark.requirement(
    "RT-LIFE-SCOPE-1",
    "RT-LIFE-CREATE-1",
    "RT-LIFE-CREATE-3",
    "RT-LIFE-START-1",
    "RT-LIFE-DESTROY-1",
    "RT-STATE-OCIVERSION-1",
    "RT-STATE-ID-1",
    "RT-STATE-STATUS-1",
    "RT-STATE-STATUS-2",
    "RT-STATE-STATUS-3",
    "RT-STATE-STATUS-4",
    "RT-STATE-STATUS-5",
    "RT-STATE-PID-1",
    "RT-STATE-BUNDLE-1",
    "RT-STATE-ANNOT-1",
    "RT-STATE-JSON-1",
    "RT-OP-STATE-2",
    "RT-OP-KILL-4",
    "RT-OP-DELETE-5",
    "RT-OP-DELETE-6",
    "RT-OWN-CLEAN-PROC-1",
    "RT-OWN-CLEAN-STATE-1",
)
def test_lifecycle_follows_the_spec(container_factory: ContainerFactory, tmp_path: Path) -> None:
    run_machine(container_factory, tmp_path)


@pytest.mark.parametrize(
    "variant",
    [
        pytest.param("kill-created", marks=pytest.mark.requirement("RT-OP-KILL-4")),
        pytest.param(
            "refuse-create", marks=pytest.mark.requirement("RT-OP-CREATE-2", "RT-STATE-ID-2")
        ),
        pytest.param(
            "refuse-start", marks=pytest.mark.requirement("RT-OP-START-2", "RT-OP-START-3")
        ),
        pytest.param("refuse-kill", marks=pytest.mark.requirement("RT-OP-KILL-2", "RT-OP-KILL-3")),
        pytest.param(
            "refuse-delete", marks=pytest.mark.requirement("RT-OP-DELETE-2", "RT-OP-DELETE-3")
        ),
    ],
)
def test_lifecycle_with(container_factory: ContainerFactory, tmp_path: Path, variant: str) -> None:
    # each in a machine of its own, so that one refusal fails its own requirements only
    reason = container_factory.adapter.unsupported.get(CREATED_PROCESS)
    if variant == "kill-created" and reason is not None:
        not_applicable(f"{container_factory.adapter.name}: {reason}")
    run_machine(container_factory, tmp_path, frozenset({variant}))


@pytest.mark.requirement("RT-LIFE-CREATE-4")
def test_config_changes_after_create_do_not_reach_the_container(
    container_factory: ContainerFactory, tmp_path: Path
) -> None:
    adapter = container_factory.adapter
    probe = tmp_path / "probe"
    probe.mkdir()
    config = bundle_config(
        ["sh", "-c", f"echo original $GREETING >> {PROBE}/started; exec sleep 3600"],
        env={"GREETING": "hello"},
        mounts=[(str(probe), PROBE)],
        annotations={"org.example.version": "1"},
    )
    bundle = make_bundle(tmp_path / "bundle", config=config)
    handle = container_factory.make_container(tmp_path, bundle=bundle, start=False)
    try:
        config["process"]["args"] = ["sh", "-c", f"echo rewritten >> {PROBE}/started"]
        config["process"]["env"].append("GREETING=rewritten")
        config["annotations"] = {"org.example.version": "2"}
        (bundle / "config.json").write_text(json.dumps(config))
        assert (adapter.state(handle.id).get("annotations") or {}) == {
            "org.example.version": "1"
        }, "RT-LIFE-CREATE-4: the state took the annotations of the rewritten config.json"
        adapter.start(handle.id)
        eventually(lambda: bool(lines(probe / "started")), "the program never ran")
        assert lines(probe / "started") == ["original hello"], (
            "RT-LIFE-CREATE-4: start ran the process of config.json as rewritten after create"
        )
    finally:
        container_factory.remove(handle)


@pytest.mark.requirement("RT-LIFE-CREATE-2", "RT-LIFE-ERR-1")
def test_an_environment_that_cannot_be_made_is_an_error_and_leaves_nothing(
    container_factory: ContainerFactory, tmp_path: Path
) -> None:
    adapter = container_factory.adapter
    probe = tmp_path / "probe"
    probe.mkdir()
    config = bundle_config(
        ["sh", "-c", f"echo started >> {PROBE}/started"],
        mounts=[(str(probe), PROBE), (str(tmp_path / "no-such-source"), "/missing")],
    )
    bundle = make_bundle(tmp_path / "bundle", config=config)
    cid = container_factory.ledger.unique_name("pc")
    before = root_entries(adapter)
    try:
        with refused("RT-LIFE-CREATE-2", "create with a bind mount of a missing source"):
            adapter.create(cid, bundle)
        with refused("RT-LIFE-ERR-1", f"state of {cid} after its create failed"):
            adapter.state(cid)
        assert root_entries(adapter) == before, (
            "RT-LIFE-ERR-1: the failed create left state behind in the runtime's root"
        )
        time.sleep(0.2)
        assert not (probe / "started").exists(), "RT-LIFE-ERR-1: the program ran anyway"
    finally:
        with contextlib.suppress(ContainerNotFoundError):  # the usual case: never made
            adapter.delete(cid, force=True)
