"""``create`` (runtime.md#create): it needs an ID and a bundle, refuses a taken or an
invalid ID and changes nothing then, makes the container of config.json with everything
but the process, does not run the program, and fails when a property cannot be applied.

Most containers run ``probe_program`` (``_probe``); each assertion message starts with
the requirement it checks.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_containers.adapters import (
    CREATED_PROCESS,
    HOST_KERNEL,
    HOST_PID,
    RuntimeAdapter,
    bundle_config,
)
from pytest_containers.errors import ContainersError
from reference_runtime.rootfs_builder import make_bundle

from ._probe import NAMESPACE_FILES, PROBE, Probed, namespaces_of, probe_program
from ._support import lines, needs, refused, root_entries


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
