"""OCI configs from the few arguments a test cares about.

``bundle_config(["sh", "-c", "..."], hostname="web", memory="64m", pids=32)`` starts
from ``reference_runtime.spec.default_spec`` (shaped like ``runc spec``) and changes
only what is asked, so the same bundle runs under every adapter.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from reference_runtime.spec import default_spec

CPU_PERIOD = 100_000
"""The CFS period (microseconds) used to express ``cpu=`` as a quota."""

NAMESPACES = ("pid", "network", "ipc", "uts", "mount", "cgroup", "user", "time")

_SIZE = re.compile(r"(\d+)\s*([kmgt]?)i?b?", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}

MountArg = Mapping[str, Any] | tuple[str, str] | tuple[str, str, str]


def parse_size(size: int | str) -> int:
    """``67108864``, ``"64m"``, ``"64MiB"`` -> bytes."""
    __tracebackhide__ = True
    if isinstance(size, int):
        return size
    match = _SIZE.fullmatch(size.strip())
    if match is None:
        raise ValueError(f"cannot read size {size!r}; use memory=64 * 2**20 or memory='64m'")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def bundle_config(
    command: Sequence[str] = ("true",),
    *,
    env: Mapping[str, str] | Sequence[str] | None = None,
    hostname: str | None = None,
    cwd: str | None = None,
    user: int | tuple[int, int] | None = None,
    memory: int | str | None = None,
    pids: int | None = None,
    cpu: float | None = None,
    namespaces: Sequence[str] | Mapping[str, str | None] | None = None,
    mounts: Sequence[MountArg] = (),
    readonly: bool = True,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A config.json dict: ``default_spec(command)`` with the arguments applied.

    - ``env``: added to the default PATH and TERM (a name given again replaces it);
    - ``user``: a uid, or (uid, gid);
    - ``memory``: bytes or ``"64m"``; ``pids``: the pids.max; ``cpu``: CPUs as a quota
      of ``CPU_PERIOD`` (``0.5`` is half a CPU);
    - ``namespaces``: the types to create (replacing the default pid, network, ipc,
      uts, mount, cgroup), or a mapping type -> path to join (None: create);
    - ``mounts``: OCI mount dicts, or ``(source, destination[, "ro"])`` bind mounts.
    """
    __tracebackhide__ = True
    if isinstance(command, str):
        raise TypeError(f"command is a list of arguments: use [{command!r}] or ['sh', '-c', ...]")
    config = default_spec(list(command))
    process = config["process"]
    linux = config["linux"]
    if env is not None:
        items = [f"{k}={v}" for k, v in env.items()] if isinstance(env, Mapping) else list(env)
        names = {item.partition("=")[0] for item in items}
        process["env"] = [e for e in process["env"] if e.partition("=")[0] not in names] + items
    if hostname is not None:
        config["hostname"] = hostname
    if cwd is not None:
        process["cwd"] = cwd
    if user is not None:
        uid, gid = (user, user) if isinstance(user, int) else user
        process["user"] = {"uid": uid, "gid": gid}
    resources = linux.setdefault("resources", {})
    if memory is not None:
        resources["memory"] = {"limit": parse_size(memory)}
    if pids is not None:
        resources["pids"] = {"limit": int(pids)}
    if cpu is not None:
        if cpu <= 0:
            raise ValueError(f"cpu={cpu!r} must be a positive number of CPUs, e.g. cpu=0.5")
        resources["cpu"] = {"quota": round(cpu * CPU_PERIOD), "period": CPU_PERIOD}
    if namespaces is not None:
        linux["namespaces"] = _namespaces(namespaces)
    for mount in mounts:
        config["mounts"].append(_mount(mount))
    if annotations:
        config["annotations"] = dict(annotations)
    config["root"]["readonly"] = readonly
    return config


def _namespaces(namespaces: Sequence[str] | Mapping[str, str | None]) -> list[dict[str, str]]:
    __tracebackhide__ = True
    wanted = namespaces if isinstance(namespaces, Mapping) else dict.fromkeys(namespaces)
    result = []
    for kind, path in wanted.items():
        if kind not in NAMESPACES:
            raise ValueError(
                f"unknown namespace {kind!r}; use namespaces=[{', '.join(NAMESPACES)}]"
            )
        result.append({"type": kind, **({"path": path} if path else {})})
    return result


def _mount(mount: MountArg) -> dict[str, Any]:
    __tracebackhide__ = True
    if isinstance(mount, Mapping):
        return dict(mount)
    if len(mount) not in (2, 3) or (len(mount) == 3 and mount[2] not in ("ro", "rw")):
        raise ValueError(f"cannot read mount {mount!r}; use (source, destination[, 'ro'])")
    options = ["rbind", "ro" if len(mount) == 3 and mount[2] == "ro" else "rw"]
    return {"destination": mount[1], "type": "bind", "source": mount[0], "options": options}
