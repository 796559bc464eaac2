"""Containers with chosen namespaces, for the isolation modules (not a test module).

The shared containers most isolation tests look at: ``plain`` (the default namespaces)
and ``inheriting`` (new pid and mount namespaces only), both with host tools copied in;
SysV IPC objects made on the host and listed from both sides.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

from pytest_containers.adapters.handle import Container
from pytest_containers.requirements import not_applicable
from pytest_containers.runtime import ContainerFactory

from ._shared import SharedContainers
from ._support import Config, Edit, expressible, shell

NS_PROC_NAMES = {  # config type -> name under /proc/PID/ns
    "pid": "pid", "network": "net", "ipc": "ipc", "uts": "uts", "mount": "mnt", "cgroup": "cgroup",
}  # fmt: skip
DEFAULT_NAMESPACES = ("pid", "network", "ipc", "uts", "mount", "cgroup")
SLEEPER = ["sleep", "3600"]
WAIT = 10.0
"""Seconds any one wait in these tests may take."""


@contextlib.contextmanager
def running(factory: ContainerFactory, directory: Path, path: Path) -> Iterator[Container]:
    """A container of one Hypothesis example: made, yielded, deleted."""
    __tracebackhide__ = True
    with expressible():
        handle = factory.make_container(directory, bundle=path)
    try:
        yield handle
    finally:
        factory.remove(handle)


def namespaces(*kinds: str, **paths: str) -> Edit:
    """Exactly these namespaces: new ones of ``kinds``, joined ones at ``paths``."""

    def edit(config: Config) -> None:
        config["linux"]["namespaces"] = [{"type": k} for k in kinds] + [
            {"type": k, "path": p} for k, p in paths.items()
        ]
        if "uts" not in kinds:  # a host name needs a new uts namespace
            config.pop("hostname", None)

    return edit


def ns_identities(c: Container, kinds: Sequence[str]) -> dict[str, str]:
    """type -> the /proc/self/ns link of a process in the container ("" if unreadable)."""
    names = " ".join(NS_PROC_NAMES[k] for k in kinds)
    out = shell(c, f'for n in {names}; do echo "$n $(readlink /proc/self/ns/$n)"; done')
    by_name = {line.partition(" ")[0]: line.partition(" ")[2] for line in out.splitlines()}
    return {k: by_name.get(NS_PROC_NAMES[k], "").strip() for k in kinds}


def host_ns(kind: str, pid: int | str = "self") -> str:
    return os.readlink(f"/proc/{pid}/ns/{NS_PROC_NAMES[kind]}")


# --------------------------------------------------------------------------- host tools


def install_host_tools(rootfs: Path, *tools: str) -> None:
    """Copy host binaries (``ipcmk``...) and the libraries they load into ``rootfs``."""
    binaries: list[str] = []
    for tool in tools:
        found = shutil.which(tool) or ""
        if not found:
            not_applicable(f"the host has no {tool} (util-linux) to copy into the container")
        binaries.append(os.path.realpath(found))
    listed = subprocess.run(
        ["ldd", *binaries], capture_output=True, text=True, timeout=30, check=False
    ).stdout
    files = set(binaries)
    for line in listed.splitlines():
        if not line[:1].isspace():  # "/usr/bin/ipcs:", a header when listing several
            continue
        target = (line.partition("=>")[2] or line).split()
        if target and target[0].startswith("/"):
            files.add(target[0])
    for tool, binary in zip(tools, binaries, strict=True):
        _copy_in(rootfs, binary, f"/usr/bin/{tool}")
    for lib in files - set(binaries):
        _copy_in(rootfs, lib, lib)


def _copy_in(rootfs: Path, source: str, destination: str) -> None:
    target = rootfs / destination.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        shutil.copy2(os.path.realpath(source), target)


# --------------------------------------------------------------------------- SysV IPC

_libc = ctypes.CDLL(None, use_errno=True)
IPC_CREAT, IPC_RMID = 0o1000, 0
SYSV_KINDS = ("shm", "sem", "msg")


@contextlib.contextmanager
def host_sysv_objects() -> Iterator[dict[str, int]]:
    """One shared memory segment, semaphore set and message queue on the host, by key."""
    keys = {kind: secrets.randbelow(2**30) + 1 for kind in SYSV_KINDS}
    ids: dict[str, int] = {}
    try:
        for kind, make in (
            ("shm", lambda k: _libc.shmget(k, 4096, IPC_CREAT | 0o600)),
            ("sem", lambda k: _libc.semget(k, 1, IPC_CREAT | 0o600)),
            ("msg", lambda k: _libc.msgget(k, IPC_CREAT | 0o600)),
        ):
            ident = make(ctypes.c_int(keys[kind]))
            if ident < 0:
                raise OSError(ctypes.get_errno(), f"cannot make a SysV {kind} on the host")
            ids[kind] = ident
        yield keys
    finally:
        for kind, ident in ids.items():
            if kind == "sem":
                _libc.semctl(ident, 0, IPC_RMID)
            else:
                getattr(_libc, f"{kind}ctl")(ident, IPC_RMID, None)


def host_sysv_keys() -> dict[str, set[int]]:
    """kind -> the keys of the host's SysV objects (from /proc/sysvipc)."""
    keys: dict[str, set[int]] = {}
    for kind in SYSV_KINDS:
        lines = Path(f"/proc/sysvipc/{kind}").read_text().splitlines()[1:]
        keys[kind] = {int(line.split()[0]) for line in lines if line.strip()}
    return keys


_IPCS_SECTION = {"Shared Memory": "shm", "Semaphore": "sem", "Message Queues": "msg"}


def container_sysv_keys(c: Container) -> dict[str, set[int]]:
    """kind -> keys of the SysV objects a process in the container sees (``ipcs``)."""
    keys: dict[str, set[int]] = {kind: set() for kind in SYSV_KINDS}
    kind = ""
    for line in shell(c, "ipcs -m -s -q").splitlines():
        for title, name in _IPCS_SECTION.items():
            if title in line:
                kind = name
        fields = line.split()
        if kind and fields and fields[0].startswith("0x"):
            keys[kind].add(int(fields[0], 16))
    return keys


# --------------------------------------------------------------------------- the plain container


def plain(shared: SharedContainers) -> Container:
    """The default configuration (new pid, network, ipc, uts, mount and cgroup
    namespaces) with ``ipcmk`` and ``ipcs`` from the host in its rootfs."""
    return shared.get(
        "plain", SLEEPER, prepare=lambda b: install_host_tools(b / "rootfs", "ipcmk", "ipcs")
    )


def inheriting(shared: SharedContainers) -> Container:
    """New pid and mount namespaces only: network, ipc, uts and cgroup are the runtime's."""
    return shared.get(
        "inherit",
        SLEEPER,
        namespaces("pid", "mount"),
        prepare=lambda b: install_host_tools(b / "rootfs", "ipcs"),
    )
