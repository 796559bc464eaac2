"""The operations of runtime-spec runtime.md as a whole, and ``state``: every verb
works on a container the caller made, a verb without an ID or with an unknown one is an
error, and ``state`` is the spec's state document in every status.

Most containers run ``probe_program`` (``_probe``); each assertion message starts with
the requirement it checks.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from typing import Any

import pytest

from pytest_containers.adapters import CREATED_PROCESS, HOST_PID, RuntimeAdapter

from ._probe import PROBE, Probed, probe_program, status_of, wait_stopped
from ._support import eventually, lines, needs, refused, root_entries, sees


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
