"""Capabilities and privileges of the process (config.md#linux-process): the bounding,
effective, permitted, inheritable and ambient sets are the configured ones, a
capability that cannot be granted does not fail the container, and noNewPrivileges
stops a setuid program from gaining privileges.

The runtimes apply the process settings before they exec the program; the kernel then
transforms capabilities across that exec (capabilities(7)). The capability sets
generated here are the ones that exec leaves as they are, so what the process shows is
what the config said.

Each example runs one container whose program reports about itself (``_process``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_containers.errors import RuntimeCommandError
from pytest_containers.requirements import not_applicable
from pytest_containers.runtime import ContainerFactory

from ._examples import FIRST_FAILURE
from ._process import (
    CAPABILITIES,
    Ran,
    caps_of,
    furnished_rootfs,  # noqa: F401 (the module's rootfs fixture)  # noqa: F401 (the module's rootfs fixture)
    own_status_field,
    process_config,
    run_config,
    status_script,
)
from ._support import docker_lacks

# --------------------------------------------------------------------- capabilities


@dataclass(frozen=True)
class CapabilitySets:
    """``process.user.uid`` and ``process.capabilities``, as exec leaves them: for uid 0
    effective = permitted = bounding; otherwise effective = permitted = ambient; ambient
    within inheritable within bounding."""

    uid: int
    bounding: tuple[str, ...] = ()
    effective: tuple[str, ...] = ()
    permitted: tuple[str, ...] = ()
    inheritable: tuple[str, ...] = ()
    ambient: tuple[str, ...] = ()

    def as_config(self) -> dict[str, list[str]]:
        return {
            "bounding": list(self.bounding),
            "effective": list(self.effective),
            "permitted": list(self.permitted),
            "inheritable": list(self.inheritable),
            "ambient": list(self.ambient),
        }


# Capabilities newer than Linux 3.16's CAP_AUDIT_READ (5.8, 5.9) are unknown to runtimes
# of 2020-2022 (Docker 20.10, gVisor 2022): a runtime that cannot map a name is
# RT-PROC-CAPS-6/7's business, tested on its own, not the set semantics' here.
NEWER_CAPABILITIES = ("CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE")


def _grantable_capabilities() -> tuple[str, ...]:
    """The capabilities this kernel knows and our bounding set holds (a runtime started
    by this process can grant no others: this VM's root lacks CAP_SYS_RESOURCE), up to
    CAP_AUDIT_READ."""
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    bounding = caps_of(own_status_field("CapBnd")) or ()
    known = [name for name in CAPABILITIES[: last + 1] if name not in NEWER_CAPABILITIES]
    return tuple(name for name in known if name in bounding)


@st.composite
def _capability_sets(draw: st.DrawFn, engine: bool) -> CapabilitySets:
    names = _grantable_capabilities()

    def subset(of: Sequence[str]) -> tuple[str, ...]:
        chosen = draw(st.sets(st.sampled_from(of))) if of else set()
        return tuple(sorted(chosen, key=CAPABILITIES.index))

    if not draw(st.booleans()):  # the simplest example, which Hypothesis tries first
        everything = names  # root with every capability it can be given, in every set
        if engine:
            return CapabilitySets(0, everything, everything, everything)
        return CapabilitySets(0, everything, everything, everything, everything, everything)
    if engine:  # what the docker adapter can say: one set, for root
        bounding = subset(names)
        return CapabilitySets(0, bounding, bounding, bounding)
    uid = draw(st.sampled_from([0, 1000]) | st.integers(1, 65534))
    bounding = subset(names)
    inheritable = subset(bounding)
    ambient = subset(inheritable)
    kept = bounding if uid == 0 else ambient
    return CapabilitySets(uid, bounding, kept, kept, inheritable, ambient)


_CHOWN_PROBE = "touch /dev/shm/pc; chown 4242 /dev/shm/pc && echo chown=done || echo chown=denied"


def _run_capabilities(
    factory: ContainerFactory, directory: Path, rootfs: Path, sets: CapabilitySets
) -> Ran:
    config = process_config(status_script(_CHOWN_PROBE), user=(sets.uid, sets.uid))
    config["process"]["capabilities"] = sets.as_config()
    try:
        ran = run_config(factory, directory, rootfs, config)
    except RuntimeCommandError as exc:
        pytest.fail(f"{factory.adapter.name} refused capabilities it could grant: {exc}")
    assert ran.status == 0, ran.stderr
    return ran


@pytest.mark.requirement("RT-PROC-CAPS-1", "RT-PROC-CAPS-2", "RT-PROC-CAPS-3", "RT-PROC-CAPS-4")
@FIRST_FAILURE
@given(data=st.data())
def test_the_capability_sets_are_the_configured_ones(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, data: st.DataObject
) -> None:
    engine = container_factory.adapter.name == "docker"
    sets = data.draw(_capability_sets(engine), label="sets")
    ran = _run_capabilities(container_factory, tmp_path, rootfs, sets)
    wanted = {
        "CapBnd": sets.bounding,
        "CapEff": sets.effective,
        "CapPrm": sets.permitted,
        "CapInh": sets.inheritable,
    }
    wrong = []
    for line, expected in wanted.items():
        seen = caps_of(ran.field(line)) or ()
        missing = [c for c in expected if c not in seen]
        extra = [c for c in seen if c not in expected]
        if missing or extra:
            wrong.append(f"{line}: missing {missing}, unexpected {extra}")
    assert not wrong, "capability sets in /proc/PID/status: " + "; ".join(wrong)
    chown = "chown=done" if "CAP_CHOWN" in sets.effective else "chown=denied"
    assert ran.lines_starting("chown=") == [chown], "chown(2) by a child, as CAP_CHOWN says"


@pytest.mark.requirement("RT-PROC-CAPS-5")
@FIRST_FAILURE
@given(data=st.data())
def test_the_ambient_capability_set_is_the_configured_one(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, data: st.DataObject
) -> None:
    docker_lacks(container_factory.adapter, "process.capabilities.ambient")
    sets = data.draw(_capability_sets(engine=False), label="sets")
    ran = _run_capabilities(container_factory, tmp_path, rootfs, sets)
    if ran.field("CapAmb") is None:
        not_applicable(
            f"{container_factory.adapter.name}: /proc/PID/status has no CapAmb line here, "
            "so the ambient set cannot be seen"
        )
    assert caps_of(ran.field("CapAmb")) == sets.ambient, "CapAmb in /proc/PID/status"


@pytest.mark.requirement("RT-PROC-CAPS-7")
def test_a_capability_that_cannot_be_granted_does_not_fail_the_container(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path
) -> None:
    """A name no kernel knows, and the newest ones this kernel knows, beside CAP_KILL:
    the runtime may warn about what it cannot map or grant, but runs the container with
    CAP_KILL and nothing that was not asked for."""
    wanted = ["CAP_KILL", *NEWER_CAPABILITIES, "CAP_PYTEST_CONTAINERS_NO_SUCH_CAPABILITY"]
    config = process_config(status_script())
    config["process"]["capabilities"] = {
        key: wanted for key in ("bounding", "effective", "permitted")
    }
    try:
        ran = run_config(container_factory, tmp_path, rootfs, config)
    except RuntimeCommandError as exc:
        pytest.fail(f"the runtime failed on capabilities it cannot grant: {exc.runtime_message}")
    assert ran.status == 0, ran.stderr
    effective = caps_of(ran.field("CapEff")) or ()
    assert "CAP_KILL" in effective, "the grantable capability CAP_KILL was dropped"
    assert set(effective) <= set(wanted), f"capabilities that were not asked for: {effective}"


# --------------------------------------------------------------------- privileges


@pytest.mark.requirement("RT-PROC-NNP-1")
def test_no_new_privileges_stops_a_setuid_program_from_gaining_privileges(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path
) -> None:
    """As uid 1000, run a setuid-root busybox: without noNewPrivileges the kernel makes
    its saved uid 0 and gives it capabilities; with it, neither."""
    probe = "/suid/busybox sh -c 'grep -E \"^(Uid|CapPrm|NoNewPrivs):\" /proc/self/status'"
    seen = {}
    for flag in (False, True):
        config = process_config(["sh", "-c", f"{probe}; exit 0"], user=(1000, 1000))
        config["process"]["noNewPrivileges"] = flag
        ran = run_config(container_factory, tmp_path, rootfs, config)
        assert ran.status == 0, ran.stderr
        seen[flag] = ran
    control = seen[False]
    if control.field("Uid") != "1000\t1000\t0\t1000":
        not_applicable(
            "a setuid-root program gains nothing in this container even without "
            f"noNewPrivileges (its Uid line: {control.field('Uid')!r}), so the flag "
            "makes no visible difference"
        )
    ran = seen[True]
    assert ran.field("Uid") == "1000\t1000\t1000\t1000", "the setuid bit took effect"
    assert caps_of(ran.field("CapPrm")) == (), "the setuid program gained capabilities"
    if ran.field("NoNewPrivs") is not None:
        assert ran.field("NoNewPrivs") == "1", "NoNewPrivs in /proc/PID/status"
