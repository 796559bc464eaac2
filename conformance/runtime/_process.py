"""Containers whose program reports about itself, for the process modules (not a test
module).

Each example runs one container whose program reports about itself, mostly with shell
builtins so that nothing is forked or exec'd between the runtime's exec and the
observation (``read`` from ``/proc/$$/...``, ``ulimit``, ``umask``); a command that
must be a child (``ionice``, ``uname``) reports on its parent or inherits what is
measured. Where the host can look too (``HOST_PID``), it does. The values are chosen by
Hypothesis and printed as the config they wrote.

What no runtime started by this process could do is not asked for: hard limits above
our own, oom_score_adj below our own, capabilities outside our bounding set (without
CAP_SYS_RESOURCE, which this VM's root lacks). Settings a runtime may not implement
(scheduler, ioPriority, personality) make the test not applicable when the runtime
refuses them with an error, and fail it when the runtime ignores them. All bundles of
a module share one read-only rootfs, named by absolute path (``furnished_rootfs``,
which a process module imports as its ``rootfs`` fixture).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_containers.adapters import bundle_config
from pytest_containers.errors import RuntimeCommandError
from pytest_containers.requirements import not_applicable
from pytest_containers.runtime import ContainerFactory

from ._support import expressible

RLIM_INFINITY = 2**64 - 1

# linux/capability.h, by number
CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)  # fmt: skip

# Directories the module's rootfs holds for process.cwd, each with a marker file.
CWD_DIRS = (
    "/tmp",
    "/pc-cwd",
    "/pc-cwd/a/b/c",
    "/pc-cwd/with space",
    "/pc-cwd/ünïcödé",
    "/pc-cwd/.hidden",
    "/pc-cwd/-dash",
    "/pc-cwd/" + "x" * 200,
)

# Read a /proc file of the shell itself with builtins only: no fork, no exec.
READ = 'while IFS= read -r l; do printf "%s\\n" "$l"; done < /proc/$$/{}'

# --------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", name="rootfs")
def furnished_rootfs(
    container_factory: ContainerFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """One root filesystem for the module's bundles, which name it by its absolute path
    (config.md#root), with what the tests need: directories for process.cwd, programs
    on and off a PATH, a setuid-root busybox. Configs keep ``root.readonly``."""
    base = tmp_path_factory.mktemp("rootfs")
    root = container_factory.make_bundle(base) / "rootfs"
    for directory in CWD_DIRS:
        path = root / directory.lstrip("/")
        path.mkdir(parents=True, exist_ok=True)
        (path / "pc-marker").write_text(f"marker of {directory}\n")
    for directory, text in (("pc-path-b", "found in /pc-path-b"), ("", "wrong: /pcprog")):
        (root / directory).mkdir(exist_ok=True)
        (root / directory / "pcprog").write_text(f"#!/bin/sh\necho '{text}'\n")
        os.chmod(root / directory / "pcprog", 0o755)
    (root / "pc-path-a").mkdir()
    (root / "suid").mkdir()
    shutil.copyfile(root / "bin" / "busybox", root / "suid" / "busybox")
    os.chmod(root / "suid" / "busybox", 0o4755)
    yield root
    shutil.rmtree(base, ignore_errors=True)


# --------------------------------------------------------------------- helpers


@dataclass
class Ran:
    """A finished container: its exit status and output."""

    status: int
    stdout: bytes
    stderr: str

    @property
    def text(self) -> str:
        return self.stdout.decode(errors="replace")

    def lines_starting(self, prefix: str) -> list[str]:
        return [line for line in self.text.splitlines() if line.startswith(prefix)]

    def field(self, name: str) -> str | None:
        """The value of a ``Name:\\tvalue`` line of /proc/PID/status, if printed."""
        for line in self.text.splitlines():
            key, sep, value = line.partition(":")
            if sep and key == name:
                return value.strip()
        return None


def process_config(command: Sequence[str], **args: Any) -> dict[str, Any]:
    return bundle_config(command, **args)


def write_bundle(directory: Path, rootfs: Path, config: dict[str, Any]) -> Path:
    config["root"]["path"] = str(rootfs)
    path = Path(tempfile.mkdtemp(prefix="bundle-", dir=directory))
    (path / "config.json").write_text(json.dumps(config))
    return path


def run_config(
    factory: ContainerFactory,
    directory: Path,
    rootfs: Path,
    config: dict[str, Any],
    timeout: float = 30.0,
) -> Ran:
    """Create, start and wait for a container of ``config``; removed before returning."""
    __tracebackhide__ = True
    bundle = write_bundle(directory, rootfs, config)
    try:
        with expressible():
            handle = factory.make_container(directory, bundle=bundle)
        try:
            status = handle.wait(timeout)
            return Ran(status, handle.stdout_path.read_bytes(), handle.stderr())
        finally:
            factory.remove(handle)
    finally:
        shutil.rmtree(bundle)


def run_optional(
    factory: ContainerFactory, directory: Path, rootfs: Path, config: dict[str, Any], what: str
) -> Ran:
    """``_run`` for a setting a runtime may lack: refusing it with an error is what
    config.md#valid-values asks of such a runtime, so a refusal makes the test not
    applicable (with the runtime's words); silently ignoring it fails the test."""
    __tracebackhide__ = True
    try:
        return run_config(factory, directory, rootfs, config)
    except RuntimeCommandError as exc:
        not_applicable(f"{factory.adapter.name} refuses {what}: {exc.runtime_message}")
        raise AssertionError("unreachable") from None


def status_script(*extra: str) -> list[str]:
    return ["sh", "-c", "; ".join([READ.format("status"), *extra, "exit 0"])]


def have_sys_resource() -> bool:
    """Whether this process (and so the runtime it starts) may raise hard limits and
    lower oom_score_adj below its own (CAP_SYS_RESOURCE)."""
    return "CAP_SYS_RESOURCE" in (caps_of(own_status_field("CapEff")) or ())


def own_status_field(name: str) -> str | None:
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key == name:
            return value.strip()
    return None


def caps_of(mask: str | None) -> tuple[str, ...] | None:
    if mask is None:
        return None
    bits = int(mask, 16)
    return tuple(
        CAPABILITIES[n] if n < len(CAPABILITIES) else f"cap {n}" for n in range(64) if bits >> n & 1
    )
