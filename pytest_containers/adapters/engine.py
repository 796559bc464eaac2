"""An OCI config.json mapped onto Docker Engine container options.

``engine_options(config)`` returns keyword arguments for ``docker``'s
``containers.create``. The Engine builds /proc, /dev, /sys and the cgroup mount
itself, applies its own masked paths and seccomp profile, and has no say in
``maskedPaths``/``readonlyPaths``; those parts of the config are not mapped.
What would change the container's meaning and cannot be said raises
``NotApplicableError`` rather than being dropped.
"""

from __future__ import annotations

from typing import Any

import docker.types

from ..errors import NotApplicableError
from .base import HOOKS, JOIN_NAMESPACE_PATH, USER_NAMESPACE

LABEL_ANNOTATION = "oci.annotation."
"""Config annotations become labels with this prefix (``state()`` reads them back)."""

# Mounts the Engine makes by itself in every container.
ENGINE_MOUNTS = {"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"}

# namespace type -> the option that shares the host's when the config does not ask for one
_HOST_MODES = {"pid": "pid_mode", "ipc": "ipc_mode", "uts": "uts_mode"}


def engine_options(config: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for ``containers.create`` (the image excepted)."""
    __tracebackhide__ = True
    process = config.get("process", {})
    linux = config.get("linux", {})
    if any(config.get("hooks", {}).values()):
        raise NotApplicableError(HOOKS, "docker: the Engine API has no OCI lifecycle hooks")
    user = process.get("user", {})
    options: dict[str, Any] = {
        "command": list(process.get("args", [])),
        "entrypoint": [],
        "environment": list(process.get("env", [])),
        "working_dir": process.get("cwd") or "/",
        "user": f"{user.get('uid', 0)}:{user.get('gid', 0)}",
        "read_only": bool(config.get("root", {}).get("readonly", False)),
        "labels": {LABEL_ANNOTATION + k: v for k, v in config.get("annotations", {}).items()},
    }
    if user.get("additionalGids"):
        options["group_add"] = [str(g) for g in user["additionalGids"]]
    options.update(_namespace_options(linux.get("namespaces", []), config.get("hostname")))
    options.update(_resource_options(linux.get("resources", {})))
    options.update(_process_options(process))
    options.update(_mount_options(config.get("mounts", [])))
    if linux.get("sysctl"):
        options["sysctls"] = dict(linux["sysctl"])
    return options


def _namespace_options(namespaces: list[dict[str, Any]], hostname: str | None) -> dict[str, Any]:
    __tracebackhide__ = True
    kinds = {ns["type"] for ns in namespaces}
    for ns in namespaces:
        if ns.get("path"):
            raise NotApplicableError(
                JOIN_NAMESPACE_PATH,
                f"docker cannot join the {ns['type']} namespace at {ns['path']} by path",
            )
    if "user" in kinds:
        raise NotApplicableError(
            USER_NAMESPACE, "docker: user namespaces are the daemon's --userns-remap"
        )
    if "mount" not in kinds:
        raise NotApplicableError(
            "host-mount-namespace", "docker always gives a container its own mount namespace"
        )
    options: dict[str, Any] = {
        # no network namespace in the config means the host's; never a bridge
        "network_mode": "none" if "network" in kinds else "host",
        "cgroupns": "private" if "cgroup" in kinds else "host",
    }
    for kind, option in _HOST_MODES.items():
        if kind not in kinds:
            options[option] = "host"
    if hostname and "uts" in kinds:
        options["hostname"] = hostname
    return options


def _resource_options(resources: dict[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    memory = resources.get("memory", {})
    for key, option in (
        ("limit", "mem_limit"),
        ("swap", "memswap_limit"),
        ("reservation", "mem_reservation"),
    ):
        if memory.get(key) is not None:
            options[option] = int(memory[key])
    if memory.get("disableOOMKiller"):
        options["oom_kill_disable"] = True
    if resources.get("pids", {}).get("limit") is not None:
        options["pids_limit"] = int(resources["pids"]["limit"])
    cpu = resources.get("cpu", {})
    for key, option in (
        ("quota", "cpu_quota"),
        ("period", "cpu_period"),
        ("shares", "cpu_shares"),
        ("cpus", "cpuset_cpus"),
        ("mems", "cpuset_mems"),
    ):
        if cpu.get(key) is not None:
            options[option] = cpu[key]
    return options


def _process_options(process: dict[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    capabilities = process.get("capabilities")
    if capabilities is not None:
        # The Engine gives root the bounding set as effective and permitted too.
        options["cap_drop"] = ["ALL"]
        options["cap_add"] = list(capabilities.get("bounding", []))
    if process.get("noNewPrivileges"):
        options["security_opt"] = ["no-new-privileges"]
    if process.get("rlimits"):
        options["ulimits"] = [
            docker.types.Ulimit(
                name=rlimit["type"].removeprefix("RLIMIT_").lower(),
                soft=rlimit["soft"],
                hard=rlimit["hard"],
            )
            for rlimit in process["rlimits"]
        ]
    if process.get("oomScoreAdj") is not None:
        options["oom_score_adj"] = int(process["oomScoreAdj"])
    return options


def _mount_options(mounts: list[dict[str, Any]]) -> dict[str, Any]:
    __tracebackhide__ = True
    binds: list[docker.types.Mount] = []
    tmpfs: dict[str, str] = {}
    for mount in mounts:
        destination = mount["destination"]
        if destination in ENGINE_MOUNTS:
            continue
        opts = list(mount.get("options", []))
        if mount.get("type") == "bind" or "bind" in opts or "rbind" in opts:
            binds.append(
                docker.types.Mount(
                    destination, mount["source"], type="bind", read_only="ro" in opts
                )
            )
        elif mount.get("type") == "tmpfs":
            tmpfs[destination] = ",".join(opts)
        else:
            raise NotApplicableError(
                "mount-type", f"docker cannot mount {mount.get('type')!r} at {destination}"
            )
    options: dict[str, Any] = {}
    if binds:
        options["mounts"] = binds
    if tmpfs:
        options["tmpfs"] = tmpfs
    return options
