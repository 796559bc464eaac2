"""The container's cgroup as the host and the container see it (not a test module).

The host finds the container's cgroup through ``/proc/PID/cgroup`` of its process
(``HOST_PID``) and the host's mount table, and reads the v1 file or the v2 file of each
setting, whichever layout the container is on; the container reads its own cgroup
files under /sys/fs/cgroup (its cgroup namespace root). A setting is checked in every
view that exists; a runtime whose cgroup files no view can reach makes the test not
applicable, never passed.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pytest_containers.adapters import HOST_KERNEL, HOST_PID, RuntimeAdapter
from pytest_containers.adapters.handle import Container
from pytest_containers.requirements import not_applicable

V1_CONTROLLERS = frozenset(
    {"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "net_cls", "net_prio"}
    | {"blkio", "perf_event", "hugetlb", "pids", "rdma", "misc"}
)


def host_view(adapter: RuntimeAdapter) -> bool:
    """The host can find the container's process and read its cgroup files."""
    return HOST_PID not in adapter.unsupported and HOST_KERNEL not in adapter.unsupported


@dataclass(frozen=True)
class Knob:
    """One cgroup setting by its file name on cgroup v1 and on v2 (None: no such file)."""

    controller: str
    v1: str | None
    v2: str | None


def cgroup_mounts() -> tuple[dict[str, tuple[str, str]], tuple[str, str] | None]:
    """The host's cgroup mounts: v1 controller -> (mount point, root), and cgroup2's."""
    v1: dict[str, tuple[str, str]] = {}
    unified = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            dash = fields.index("-")
            fstype, options = fields[dash + 1], fields[dash + 3]
            if fstype == "cgroup":
                for option in options.split(","):
                    if option in V1_CONTROLLERS or option.startswith("name="):
                        v1.setdefault(option, (fields[4], fields[3]))
            elif fstype == "cgroup2" and unified is None:
                unified = (fields[4], fields[3])
    return v1, unified


def under(mount: tuple[str, str], path: str) -> Path:
    point, root = mount
    relative = path[len(root) :] if root != "/" and path.startswith(root) else path
    return Path(point, relative.lstrip("/"))


def host_cgroups(pid: int) -> dict[str, Path]:
    """Controller -> the host directory of ``pid``'s cgroup ("" for its cgroup2 one)."""
    v1, unified = cgroup_mounts()
    dirs = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        number, controllers, path = line.split(":", 2)
        if number == "0" and not controllers:
            if unified is not None:
                dirs[""] = under(unified, path)
            continue
        for controller in controllers.split(","):
            if controller in v1:
                dirs[controller] = under(v1[controller], path)
    return dirs


def v2_controllers() -> set[str]:
    """The controllers this host's cgroup2 hierarchy carries (none on a v1 host)."""
    _, unified = cgroup_mounts()
    if unified is None:
        return set()
    return set(Path(unified[0], "cgroup.controllers").read_text().split())


@dataclass
class Seen:
    """One setting as each view saw it: layout ("v1"/"v2") and value, by view."""

    values: dict[str, tuple[str, str]]  # view -> (layout, value)

    def check(self, what: str, v1: str | None, v2: str | None) -> None:
        __tracebackhide__ = True
        if not self.values:
            not_applicable(f"neither the host nor the container can read {what} here")
        for view, (layout, value) in self.values.items():
            expected = v1 if layout == "v1" else v2
            assert expected is not None, f"{what}: cgroup {layout} has no such file ({view})"
            seen = " ".join(value.split())
            assert seen == expected, (
                f"{what} seen from {view} ({layout}): {seen!r}, not {expected!r}"
            )


def observe(handle: Container, knobs: Sequence[Knob]) -> list[Seen]:
    """Each knob's file, read from the host (where it can see) and from inside."""
    adapter = handle.adapter
    host: dict[str, Path] = host_cgroups(handle.pid) if host_view(adapter) else {}
    carried = v2_controllers()
    seen = [Seen({}) for _ in knobs]
    for knob, result in zip(knobs, seen, strict=True):
        if knob.controller in host and knob.v1:
            with contextlib.suppress(FileNotFoundError):  # not on this kernel
                result.values["host"] = ("v1", (host[knob.controller] / knob.v1).read_text())
        elif "" in host and knob.v2 and knob.controller in carried:
            with contextlib.suppress(FileNotFoundError):
                result.values["host"] = ("v2", (host[""] / knob.v2).read_text())
    # one exec reads every candidate file inside: "PATH=VALUE" per readable file
    candidates = []
    for knob in knobs:
        if knob.v1:
            candidates.append(f"/sys/fs/cgroup/{knob.controller}/{knob.v1}")
        if knob.v2:
            candidates.append(f"/sys/fs/cgroup/{knob.v2}")
    script = 'for f; do v=$(cat "$f" 2>/dev/null) && echo "$f=$v" | tr "\\n" " " && echo; done'
    inside = handle.exec(["sh", "-c", script, "sh", *candidates])
    found = dict(line.partition("=")[::2] for line in inside.stdout.splitlines() if "=" in line)
    for knob, result in zip(knobs, seen, strict=True):
        v1_path = f"/sys/fs/cgroup/{knob.controller}/{knob.v1}"
        if knob.v1 and v1_path in found:
            result.values["inside"] = ("v1", found[v1_path])
        elif knob.v2 and f"/sys/fs/cgroup/{knob.v2}" in found:
            result.values["inside"] = ("v2", found[f"/sys/fs/cgroup/{knob.v2}"])
    return seen


def absent(seen: Seen, adapter: RuntimeAdapter, reason: str) -> None:
    """Nothing was read: the kernel lacks the file (``reason``), or no view reaches it."""
    __tracebackhide__ = True
    if seen.values:
        return
    if host_view(adapter):
        not_applicable(reason)
    not_applicable(f"{adapter.name}: neither the host nor the container can read the cgroup files")


def listed_pids(directory: Path) -> list[str]:
    """The PIDs in a cgroup, or [] when the directory is gone."""
    try:
        return (directory / "cgroup.procs").read_text().split()
    except FileNotFoundError:  # removed: it lists nobody
        return []


def cgroup_procs(directory: Path) -> list[int]:
    return [int(p) for p in (directory / "cgroup.procs").read_text().split()]


@contextlib.contextmanager
def removing_cgroups(names: Sequence[str]) -> Iterator[None]:
    """Remove, at the end, any directory named in ``names`` that a runtime left in a
    cgroup hierarchy (deepest first; only empty ones, which is all a runtime leaves)."""
    try:
        yield
    finally:
        v1, unified = cgroup_mounts()
        points = {m[0] for m in v1.values()} | ({unified[0]} if unified else set())
        for point in points:
            for directory, _, _ in sorted(os.walk(point), key=lambda d: -d[0].count("/")):
                if set(names) & set(Path(directory).parts):
                    with contextlib.suppress(OSError):  # busy, or gone already
                        os.rmdir(directory)


def cgroup_dirs(pid: int) -> list[Path]:
    """The cgroup directories of process ``pid`` that are not also the test's own,
    in every mounted hierarchy (cgroup v1, v2 or both)."""
    v1, unified = cgroup_mounts()
    own = set(Path("/proc/self/cgroup").read_text().splitlines())
    dirs = []
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        if line in own:
            continue
        _, controllers, path = line.split(":", 2)
        mount = v1.get(controllers.split(",")[0]) if controllers else unified
        if mount is not None and path != "/":
            dirs.append(under(mount, path))
    return [d for d in dirs if d.is_dir()]
