"""Bad configurations and what a runtime does with them (not a test module).

Each test writes a bundle whose ``config.json`` breaks one rule (an invalid value, an
ociVersion that is not SemVer or of another major version, a missing rootfs, a relative
path where the spec wants an absolute one, ...) and asks the runtime to create a
container from it; an error from ``create``, or else from ``start``, is required. A
runtime that accepts the config is given ``start`` too, so the report can say how far it
got. After a refused create, RT-OWN-BADCONFIG-2's test requires that the runtime no
longer knows the container (``state`` fails) and that the host holds no process, cgroup,
mount or state directory of it; whatever a refused create left is then removed, and
whatever an accepted one made is deleted in ``finally``.

Each bad config is a literal edit of the default one, ``Change(path=('process',
'cwd'), value='tmp')``, so a failing example reads as the config it wrote. All bundles
of a module share one read-only rootfs, named by absolute path. Where the docker
adapter reads ``config.json`` itself (the Engine never sees the file, its ociVersion or
its unknown properties), or has no Engine option for the edited field, the test is not
applicable.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_containers.adapters import RuntimeAdapter, bundle_config
from pytest_containers.errors import ContainersError, RuntimeCommandError
from pytest_containers.requirements import not_applicable
from pytest_containers.runtime import ContainerFactory

from ._support import expressible

# ---------------------------------------------------------------- spec objects

FieldPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Change:
    """Set one field of config.json (``path`` of object keys and list indexes)."""

    path: FieldPath
    value: Any

    def apply(self, config: dict[str, Any]) -> None:
        parent = _walk(config, self.path[:-1])
        parent[self.path[-1]] = self.value


@dataclass(frozen=True)
class Append:
    """Append ``value`` to the list at ``path``."""

    path: FieldPath
    value: Any

    def apply(self, config: dict[str, Any]) -> None:
        _walk(config, self.path).append(self.value)


@dataclass(frozen=True)
class Remove:
    """Remove one field of config.json."""

    path: FieldPath

    def apply(self, config: dict[str, Any]) -> None:
        parent = _walk(config, self.path[:-1])
        del parent[self.path[-1]]


@dataclass(frozen=True)
class ConfigFile:
    """config.json with exactly this ``text``; ``None``: the bundle has no config.json."""

    text: str | None


@dataclass(frozen=True)
class MissingRootfs:
    """``root.path`` names a directory that does not exist."""


Edit = Change | Append | Remove
Fault = Edit | ConfigFile | MissingRootfs


def _walk(config: Any, path: FieldPath) -> Any:
    node = config
    for key in path:
        if isinstance(node, dict) and isinstance(key, str):
            node = node.setdefault(key, {})
        else:
            node = node[key]
    return node


# What the docker adapter hands to the Engine (adapters/engine.py); an edit elsewhere
# never reaches the Engine, so a docker run cannot say whether it is refused.
_DOCKER_MAPPED = (
    ("process", "args"),
    ("process", "env"),
    ("process", "cwd"),
    ("process", "user", "uid"),
    ("process", "user", "gid"),
    ("process", "user", "additionalGids"),
    ("process", "rlimits"),
    ("process", "oomScoreAdj"),
    ("process", "noNewPrivileges"),
    ("annotations",),
    ("linux", "resources", "memory", "limit"),
    ("linux", "resources", "memory", "reservation"),
    ("linux", "resources", "memory", "swap"),
    ("linux", "resources", "pids", "limit"),
    ("linux", "resources", "cpu", "cpus"),
    ("linux", "resources", "cpu", "mems"),
    ("linux", "resources", "cpu", "shares"),
    ("linux", "resources", "cpu", "quota"),
    ("linux", "resources", "cpu", "period"),
)


# ---------------------------------------------------------------- helpers


def docker_reads_config(adapter: RuntimeAdapter) -> None:
    __tracebackhide__ = True
    if adapter.name == "docker":
        not_applicable(
            "docker: config.json is read by the adapter, which hands the Engine options; "
            "the Engine never sees the file, its ociVersion or its unknown properties"
        )


def _maps_for_docker(edit: Edit) -> bool:
    return any(edit.path[: len(p)] == p for p in _DOCKER_MAPPED)


@dataclass
class Attempt:
    """What the runtime did with a bundle: which verb refused it, and what was left."""

    refused_by: str  # "create", "start", or "" when both succeeded
    message: str
    leftovers: list[str]


def write_bundle(
    directory: Path,
    rootfs: Path,
    faults: Sequence[Fault] = (),
    command: Sequence[str] = ("true",),
) -> Path:
    """A bundle in a new directory under ``directory``: a config.json naming ``rootfs``,
    with ``faults`` applied."""
    config = bundle_config(command)
    config["root"]["path"] = str(rootfs)
    text: str | None = None
    written = True
    for fault in faults:
        if isinstance(fault, ConfigFile):
            text, written = fault.text, fault.text is not None
        elif isinstance(fault, MissingRootfs):
            config["root"]["path"] = str(directory / "no-such-rootfs")
        else:
            fault.apply(config)
    path = Path(tempfile.mkdtemp(prefix="bundle-", dir=directory))
    if written:
        (path / "config.json").write_text(json.dumps(config) if text is None else text)
    return path


def try_bundle(factory: ContainerFactory, bundle: Path, rootfs: Path) -> Attempt:
    """Create (and, if that works, start) a container from ``bundle``; never leaves it."""
    adapter = factory.adapter
    cid = factory.ledger.unique_name("pc")
    try:
        try:
            adapter.create(cid, bundle)
        except RuntimeCommandError as exc:
            roots = [str(bundle.resolve()), str(rootfs.resolve())]
            found = _leftovers(adapter, cid, roots)
            if found:
                _remove_leftovers(cid, roots)
            return Attempt("create", exc.runtime_message, found)
        try:
            adapter.start(cid)
        except RuntimeCommandError as exc:
            return Attempt("start", exc.runtime_message, [])
        return Attempt("", "", [])
    finally:
        with contextlib.suppress(ContainersError):  # usually: no such container
            adapter.delete(cid, force=True)


def _assert_refused(factory: ContainerFactory, bundle: Path, rootfs: Path, what: str) -> Attempt:
    """The runtime generates an error for the bundle, at create or at start. (What a
    refused create leaves behind is judged by RT-OWN-BADCONFIG-2's own test; here it is
    only removed.)"""
    __tracebackhide__ = True
    with expressible():
        attempt = try_bundle(factory, bundle, rootfs)
    assert attempt.refused_by, (
        f"{factory.adapter.name} accepted {what}: create and start both succeeded, "
        "where an error was required"
    )
    return attempt


def _leftovers(adapter: RuntimeAdapter, cid: str, roots: list[str]) -> list[str]:
    """What remains of container ``cid`` after a refused create (bounded wait: a runtime
    may still be reaping a process it killed when the command returned)."""
    deadline = time.monotonic() + 1.0
    while True:
        found = _scan_leftovers(adapter, cid, roots)
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def _scan_leftovers(adapter: RuntimeAdapter, cid: str, roots: list[str]) -> list[str]:
    found = []
    try:
        state = adapter.state(cid)
        found.append(f"the runtime still reports the container: {state}")
    except RuntimeCommandError:  # the wanted answer: no such container
        pass
    root = Path(adapter.root)
    if root.is_dir() and (root / cid).exists():
        found.append(f"state directory {root / cid}")
    for pid in _pids():
        why = _ties_to(pid, cid, roots)
        if why:
            found.append(f"process {pid} ({why})")
    for directory in _cgroup_dirs_named(cid):
        found.append(f"cgroup {directory}")
    with open("/proc/self/mountinfo") as f:
        for line in f:
            if _names(line, cid) or any(root in line for root in roots):
                found.append(f"mount {line.split()[4]}")
    return found


def _names(text: str, cid: str) -> bool:
    """``text`` names container ``cid`` (and not pc-gw0-1-12 for pc-gw0-1-1)."""
    return re.search(re.escape(cid) + r"(?![0-9])", text) is not None


def _remove_leftovers(cid: str, roots: list[str]) -> None:
    """Undo what a refused create left (after the test has seen it): kill the container's
    processes, then remove its cgroups, deepest first. Mounts are left to the leak check."""
    for pid in _pids():
        if _ties_to(pid, cid, roots):
            with contextlib.suppress(ProcessLookupError):  # gone meanwhile
                os.kill(pid, 9)
    time.sleep(0.05)
    for directory in sorted(_cgroup_dirs_named(cid), key=len, reverse=True):
        for sub, _, _ in sorted(os.walk(directory), key=lambda d: -len(d[0])):
            with contextlib.suppress(OSError):  # still busy, or gone: the leak check says
                os.rmdir(sub)


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _ties_to(pid: int, cid: str, roots: list[str]) -> str:
    """Why process ``pid`` belongs to the container, or ''."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        if _names(cmdline, cid):
            return "its command line names the container"
        if _names(Path(f"/proc/{pid}/cgroup").read_text(), cid):
            return "it is in the container's cgroup"
        root = os.readlink(f"/proc/{pid}/root")
    except (FileNotFoundError, ProcessLookupError, PermissionError):  # gone, or a zombie
        return ""
    if any(root == r or root.startswith(r + "/") for r in roots):
        return f"its root is {root}"
    return ""


def _cgroup_dirs_named(cid: str) -> list[str]:
    found = []
    for mount in _cgroup_mountpoints():
        for directory, dirs, _ in os.walk(mount):
            if directory.count("/") - mount.count("/") >= 6:
                dirs[:] = []  # deeper than any runtime puts a container
            if _names(os.path.basename(directory), cid):
                found.append(directory)
    return found


def _cgroup_mountpoints() -> list[str]:
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            fstype = fields[fields.index("-") + 1]
            if fstype in ("cgroup", "cgroup2"):
                points.append(fields[4])
    return points


def run_output(factory: ContainerFactory, bundle: Path, timeout: float = 30.0) -> tuple[int, str]:
    """Create, start and wait for a container from ``bundle``: (exit status, stdout)."""
    handle = factory.make_container(bundle.parent, bundle=bundle)
    try:
        status = handle.wait(timeout)
        return status, handle.stdout()
    finally:
        factory.remove(handle)


def refuses(factory: ContainerFactory, rootfs: Path, directory: Path, *faults: Fault) -> None:
    __tracebackhide__ = True
    bundle = write_bundle(directory, rootfs, faults)
    _assert_refused(factory, bundle, rootfs, ", ".join(map(repr, faults)))
    shutil.rmtree(bundle)


def docker_maps(adapter: RuntimeAdapter, fault: Fault) -> None:
    __tracebackhide__ = True
    if adapter.name != "docker":
        return
    if isinstance(fault, (ConfigFile, MissingRootfs)) or not _maps_for_docker(fault):
        not_applicable(f"docker: the adapter hands the Engine no option for {fault!r}")
