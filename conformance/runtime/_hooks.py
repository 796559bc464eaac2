"""The hook bench: a container whose hooks log where and when they ran (not a test module).

Every hook is ``hook.sh LABEL [EXIT [ROOTFS]]``, a script written into the test's
directory, which is also bind-mounted into the container at ``/hooks``. Each call
appends one line to ``log`` there: its label, the namespaces it runs in, whether the
host's tree is its root and the container process's root (that is, pivot_root has not
happened yet), and the command line of the container process; and it keeps its stdin
as ``state-N.json`` (N: its line in the log). The container's program appends
``program`` to the same log. Hooks run in the container namespace (startContainer)
reach the script as ``/hooks/hook.sh``, a path that exists only there.

Hooks need an adapter that runs them (not Docker Engine: "not applicable"); the
``bench`` fixture (offered through ``conftest.py``) says so.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal as _signal
from collections.abc import Iterator
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
from pytest_containers.errors import ContainerNotFoundError
from pytest_containers.runtime import ContainerFactory
from reference_runtime.rootfs_builder import make_bundle

from ._support import TIMEOUT, eventually, needs

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
