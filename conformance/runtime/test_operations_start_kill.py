"""``start`` and ``kill`` (runtime.md#start, #kill): start runs the configured process
and is an error unless the container is created; kill sends the signal asked for, and is
an error on a stopped container, which it leaves as it was.

Most containers run ``probe_program`` (``_probe``); each assertion message starts with
the requirement it checks.
"""

from __future__ import annotations

import signal as _signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_containers.adapters import CREATED_PROCESS, RuntimeAdapter, bundle_config
from pytest_containers.adapters.handle import Container
from pytest_containers.errors import ContainersError
from reference_runtime.rootfs_builder import make_bundle

from ._probe import PROBE, SIGKILL_STATUS, TRAPPED, Probed, status_of, wait_stopped
from ._support import eventually, lines, needs, refused

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
