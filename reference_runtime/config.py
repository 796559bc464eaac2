"""Loading and validating a bundle's ``config.json`` (runtime-spec ``config.md``).

Everything is checked here, before the runtime creates anything, so that bad input
fails with one line and leaves nothing behind. The result is a tree of frozen
dataclasses; ``Config.raw`` keeps the original document for hooks and ``state``.
"""

from __future__ import annotations

import os

from . import _lite, capabilities
from .errors import ConfigError
from .fields import abs_list as _abs_list
from .fields import boolean as _bool
from .fields import integer as _int
from .fields import list_of as _list
from .fields import obj as _obj
from .fields import opt_string as _opt_str
from .fields import str_list as _str_list
from .fields import string as _str
from .seccomp_config import Seccomp, parse_seccomp

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dataclasses import dataclass, field
    from typing import Any
else:
    from ._lite import dataclass, field

_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.+-")
_SYSCTL_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
MAX_ID_LENGTH = 255  # a container ID names a directory under the state root

NAMESPACE_TYPES = ("user", "pid", "network", "ipc", "uts", "mount", "cgroup", "time")

# sysctls that belong to a namespace, and so may be set inside a container (as runc).
_IPC_SYSCTLS = frozenset(
    {
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    }
)


def validate_id(container_id: str) -> None:
    """Raise ``InvalidIDError`` unless ``container_id`` is usable as a container ID."""
    __tracebackhide__ = True
    from .errors import InvalidIDError

    if not container_id:
        raise InvalidIDError("container ID must not be empty")
    if len(container_id) > MAX_ID_LENGTH:
        raise InvalidIDError(
            f"container ID is {len(container_id)} characters long; the limit is {MAX_ID_LENGTH}"
        )
    if container_id in (".", "..") or not _ID_CHARS.issuperset(container_id):
        raise InvalidIDError(
            f"invalid container ID {container_id!r}: use letters, digits and '_', '.', '+', '-'"
        )


@dataclass(frozen=True)
class IDMapping:
    container_id: int
    host_id: int
    size: int


@dataclass(frozen=True)
class Mount:
    destination: str
    type: str | None
    source: str | None
    options: tuple[str, ...] = ()
    # an idmapped mount's own mappings (config.md "uidMappings"/"gidMappings")
    uid_mappings: tuple[IDMapping, ...] = ()
    gid_mappings: tuple[IDMapping, ...] = ()

    @property
    def idmap(self) -> bool:
        """Whether the mount is idmapped ("idmap"/"ridmap", or mappings of its own)."""
        return bool(self.uid_mappings) or not {"idmap", "ridmap"}.isdisjoint(self.options)

    @property
    def is_bind(self) -> bool:
        return self.type == "bind" or "bind" in self.options or "rbind" in self.options


@dataclass(frozen=True)
class Namespace:
    type: str
    path: str | None = None


@dataclass(frozen=True)
class Rlimit:
    type: str
    resource: int
    soft: int
    hard: int


@dataclass(frozen=True)
class User:
    uid: int = 0
    gid: int = 0
    umask: int | None = None
    additional_gids: tuple[int, ...] = ()


@dataclass(frozen=True)
class CapabilitySets:
    bounding: int
    effective: int
    inheritable: int
    permitted: int
    ambient: int


SCHED_POLICIES = {
    "SCHED_OTHER": 0,
    "SCHED_FIFO": 1,
    "SCHED_RR": 2,
    "SCHED_BATCH": 3,
    "SCHED_ISO": 4,
    "SCHED_IDLE": 5,
    "SCHED_DEADLINE": 6,
}
SCHED_FLAGS = {
    "SCHED_FLAG_RESET_ON_FORK": 0x01,
    "SCHED_FLAG_RECLAIM": 0x02,
    "SCHED_FLAG_DL_OVERRUN": 0x04,
    "SCHED_FLAG_KEEP_POLICY": 0x08,
    "SCHED_FLAG_KEEP_PARAMS": 0x10,
    "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20,
    "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40,
}
IO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}
PERSONALITY_DOMAINS = {"LINUX": 0x0000, "LINUX32": 0x0008}


@dataclass(frozen=True)
class Scheduler:
    policy: int
    nice: int = 0
    priority: int = 0
    flags: int = 0
    runtime: int = 0
    deadline: int = 0
    period: int = 0


@dataclass(frozen=True)
class ConsoleSize:
    height: int
    width: int


@dataclass(frozen=True)
class Process:
    args: tuple[str, ...]
    env: tuple[str, ...] = ()
    cwd: str = "/"
    user: User = field(default_factory=User)
    capabilities: CapabilitySets | None = None
    rlimits: tuple[Rlimit, ...] = ()
    no_new_privileges: bool = False
    oom_score_adj: int | None = None
    terminal: bool = False
    console_size: ConsoleSize | None = None  # only with terminal (ignored otherwise)
    scheduler: Scheduler | None = None
    io_priority: tuple[int, int] | None = None


@dataclass(frozen=True)
class Hook:
    path: str
    args: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    timeout: int | None = None


@dataclass(frozen=True)
class Hooks:
    prestart: tuple[Hook, ...] = ()
    create_runtime: tuple[Hook, ...] = ()
    create_container: tuple[Hook, ...] = ()
    start_container: tuple[Hook, ...] = ()
    poststart: tuple[Hook, ...] = ()
    poststop: tuple[Hook, ...] = ()


@dataclass(frozen=True)
class Device:
    path: str
    type: str
    major: int
    minor: int
    file_mode: int | None = None
    uid: int | None = None
    gid: int | None = None


@dataclass(frozen=True)
class Config:
    bundle: str
    oci_version: str
    root_path: str
    root_readonly: bool
    process: Process
    hostname: str | None
    domainname: str | None
    mounts: tuple[Mount, ...]
    hooks: Hooks
    annotations: dict[str, str]
    namespaces: tuple[Namespace, ...]
    uid_mappings: tuple[IDMapping, ...]
    gid_mappings: tuple[IDMapping, ...]
    cgroups_path: str | None
    resources: dict[str, Any]
    devices: tuple[Device, ...]
    sysctl: dict[str, str]
    masked_paths: tuple[str, ...]
    readonly_paths: tuple[str, ...]
    rootfs_propagation: str | None
    personality: int | None
    time_offsets: str
    seccomp: Seccomp | None
    raw: dict[str, Any]
    text: bytes = b""
    warnings: tuple[str, ...] = ()

    def namespace(self, ns_type: str) -> Namespace | None:
        for ns in self.namespaces:
            if ns.type == ns_type:
                return ns
        return None

    def new_namespace(self, ns_type: str) -> bool:
        ns = self.namespace(ns_type)
        return ns is not None and ns.path is None


def load_bundle(bundle: str | os.PathLike[str]) -> Config:
    """Read and validate ``BUNDLE/config.json``; raise ``ConfigError`` with one line."""
    __tracebackhide__ = True
    bundle_path = os.path.abspath(bundle)
    if not os.path.isdir(bundle_path):
        raise ConfigError(f"bundle {bundle_path} is not a directory")
    config_file = os.path.join(bundle_path, "config.json")
    try:
        with open(config_file, "rb") as f:
            text = f.read()
    except FileNotFoundError:
        raise ConfigError(
            f"{config_file} not found: create one with 'reference-runtime spec'"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {config_file}: {exc.strerror}") from None
    try:
        raw = _lite.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        where = f" at line {exc.lineno}" if hasattr(exc, "lineno") else ""
        raise ConfigError(
            f"{config_file} is not valid JSON: {getattr(exc, 'msg', exc)}{where}"
        ) from None
    config: Config = _lite.replace(parse_config(raw, bundle_path), text=text)
    return config


def parse_config(raw: Any, bundle: str) -> Config:
    """Validate an already-decoded config document; ``bundle`` is its absolute directory."""
    __tracebackhide__ = True
    obj = _obj(raw, "config.json")
    oci_version = _str(obj.get("ociVersion"), "ociVersion")
    if not _is_v1(oci_version):
        raise ConfigError(
            f"unsupported ociVersion {oci_version!r}: this runtime implements runtime-spec 1.x"
        )
    root = _obj(obj.get("root"), "root")
    root_path = _str(root.get("path"), "root.path")
    root_abs = root_path if os.path.isabs(root_path) else os.path.join(bundle, root_path)
    if not os.path.isdir(root_abs):
        raise ConfigError(f"root.path {root_abs} does not exist or is not a directory")
    linux = _obj(obj.get("linux", {}), "linux")
    namespaces = _namespaces(linux.get("namespaces", []))
    new_ns = {ns.type for ns in namespaces if ns.path is None}
    if "mount" not in {ns.type for ns in namespaces}:
        raise ConfigError("linux.namespaces must include a mount namespace")
    uid_maps = _mappings(linux.get("uidMappings", []), "linux.uidMappings")
    gid_maps = _mappings(linux.get("gidMappings", []), "linux.gidMappings")
    if "user" in new_ns and not (uid_maps and gid_maps):
        raise ConfigError("a new user namespace needs linux.uidMappings and linux.gidMappings")
    if (uid_maps or gid_maps) and "user" not in new_ns:
        raise ConfigError(
            "linux.uidMappings/gidMappings are set but no new user namespace is asked for"
        )
    hostname = _opt_str(obj.get("hostname"), "hostname")
    domainname = _opt_str(obj.get("domainname"), "domainname")
    if (hostname or domainname) and "uts" not in new_ns:
        raise ConfigError("hostname/domainname need a new uts namespace in linux.namespaces")
    for name, value in (("hostname", hostname), ("domainname", domainname)):
        if value is not None and len(value.encode()) > 64:
            raise ConfigError(f"{name} {value!r} is longer than 64 bytes")
    sysctl = _sysctl(linux.get("sysctl", {}), new_ns)
    if linux.get("intelRdt"):
        from .errors import UnsupportedError

        # applying none of it silently would break the spec's MUST; say so instead
        raise UnsupportedError("linux.intelRdt is not supported by this runtime")
    mounts = _mounts(obj.get("mounts", []))
    for i, mount in enumerate(mounts):
        if mount.idmap and not mount.uid_mappings and "user" not in {ns.type for ns in namespaces}:
            raise ConfigError(
                f"mounts[{i}] ({mount.destination}) is idmapped but has no uidMappings and "
                "gidMappings, and the container has no user namespace to take them from"
            )
    resources = _obj(linux.get("resources", {}), "linux.resources")
    cgroups_path = _opt_str(linux.get("cgroupsPath"), "linux.cgroupsPath")
    if cgroups_path is not None and ".." in cgroups_path.split("/"):
        raise ConfigError(f"linux.cgroupsPath {cgroups_path!r} must not contain '..'")
    propagation = _opt_str(linux.get("rootfsPropagation"), "linux.rootfsPropagation")
    if propagation is not None and propagation not in _PROPAGATIONS:
        raise ConfigError(
            f"linux.rootfsPropagation {propagation!r} is not one of "
            + ", ".join(sorted(_PROPAGATIONS))
        )
    warnings: list[str] = []
    process = _process(obj.get("process"), warnings)
    annotations = _obj(obj.get("annotations", {}), "annotations")
    for key, value in annotations.items():
        if not key:
            raise ConfigError("annotations: a key must not be empty")
        if not isinstance(value, str):
            raise ConfigError(f"annotations[{key!r}] must be a string")
    return Config(
        bundle=bundle,
        oci_version=oci_version,
        root_path=root_abs,
        root_readonly=_bool(root.get("readonly", False), "root.readonly"),
        process=process,
        hostname=hostname,
        domainname=domainname,
        mounts=mounts,
        hooks=_hooks(obj.get("hooks", {})),
        annotations=dict(annotations),
        namespaces=namespaces,
        uid_mappings=uid_maps,
        gid_mappings=gid_maps,
        cgroups_path=cgroups_path,
        resources=resources,
        devices=_devices(linux.get("devices", [])),
        sysctl=sysctl,
        masked_paths=_abs_list(linux.get("maskedPaths", []), "linux.maskedPaths"),
        readonly_paths=_abs_list(linux.get("readonlyPaths", []), "linux.readonlyPaths"),
        rootfs_propagation=propagation,
        personality=_personality(linux.get("personality")),
        time_offsets=_time_offsets(linux.get("timeOffsets"), new_ns),
        seccomp=parse_seccomp(linux.get("seccomp")),
        raw=obj,
        warnings=tuple(warnings),
    )


_PROPAGATIONS = frozenset(
    {"private", "rprivate", "shared", "rshared", "slave", "rslave", "unbindable", "runbindable"}
)


def _is_v1(version: str) -> bool:
    """``1.MINOR.PATCH`` with an optional ``-suffix`` (semver, major version 1)."""
    core, _, pre = version.partition("-")
    if pre and not all(
        ident and (not ident.isdigit() or ident == "0" or ident[0] != "0")
        for ident in pre.split(".")
    ):
        return False
    parts = core.split(".")
    return (
        len(parts) == 3
        and parts[0] == "1"
        # semver: decimal numbers without leading zeros
        and all(p.isdigit() and p.isascii() and (p == "0" or p[0] != "0") for p in parts[1:])
    )


def _namespaces(value: Any) -> tuple[Namespace, ...]:
    __tracebackhide__ = True
    if not isinstance(value, list):
        raise ConfigError("linux.namespaces must be a list")
    seen: set[str] = set()
    out = []
    for i, item in enumerate(value):
        entry = _obj(item, f"linux.namespaces[{i}]")
        ns_type = _str(entry.get("type"), f"linux.namespaces[{i}].type")
        if ns_type not in NAMESPACE_TYPES:
            raise ConfigError(
                f"linux.namespaces[{i}].type {ns_type!r} is not one of {', '.join(NAMESPACE_TYPES)}"
            )
        if ns_type in seen:
            raise ConfigError(f"linux.namespaces lists {ns_type!r} twice")
        seen.add(ns_type)
        path = _opt_str(entry.get("path"), f"linux.namespaces[{i}].path")
        if path and not os.path.isabs(path):
            raise ConfigError(f"linux.namespaces[{i}].path {path!r} must be an absolute path")
        if path is not None and not os.path.exists(path):
            raise ConfigError(f"linux.namespaces[{i}].path {path} does not exist")
        out.append(Namespace(ns_type, path or None))
    return tuple(out)


def _mappings(value: Any, where: str) -> tuple[IDMapping, ...]:
    __tracebackhide__ = True
    if not isinstance(value, list):
        raise ConfigError(f"{where} must be a list")
    out = []
    for i, item in enumerate(value):
        entry = _obj(item, f"{where}[{i}]")
        out.append(
            IDMapping(
                _int(entry.get("containerID"), f"{where}[{i}].containerID", 0, 2**32 - 2),
                _int(entry.get("hostID"), f"{where}[{i}].hostID", 0, 2**32 - 2),
                _int(entry.get("size"), f"{where}[{i}].size", 1, 2**32 - 1),
            )
        )
    return tuple(out)


def _mounts(value: Any) -> tuple[Mount, ...]:
    __tracebackhide__ = True
    if not isinstance(value, list):
        raise ConfigError("mounts must be a list")
    out = []
    for i, item in enumerate(value):
        entry = _obj(item, f"mounts[{i}]")
        dest = _str(entry.get("destination"), f"mounts[{i}].destination")
        if not dest.startswith("/"):
            # config.md: a relative destination is taken relative to "/"
            dest = "/" + dest
        mount = Mount(
            destination=os.path.normpath(dest),
            type=_opt_str(entry.get("type"), f"mounts[{i}].type"),
            source=_opt_str(entry.get("source"), f"mounts[{i}].source"),
            options=_str_list(entry.get("options", []), f"mounts[{i}].options"),
            uid_mappings=_mappings(entry.get("uidMappings", []), f"mounts[{i}].uidMappings"),
            gid_mappings=_mappings(entry.get("gidMappings", []), f"mounts[{i}].gidMappings"),
        )
        if bool(mount.uid_mappings) != bool(mount.gid_mappings):
            raise ConfigError(
                f"mounts[{i}] ({dest}): uidMappings and gidMappings go together: give both"
            )
        if mount.idmap and not mount.is_bind:
            from .errors import UnsupportedError

            raise UnsupportedError(
                f"mounts[{i}] ({dest}): idmapped mounts are supported for bind mounts only"
            )
        if mount.is_bind:
            if not mount.source:
                raise ConfigError(f"mounts[{i}] ({dest}) is a bind mount without a source")
        elif not mount.type:
            raise ConfigError(f"mounts[{i}] ({dest}) needs a type")
        out.append(mount)
    return tuple(out)


def _process(value: Any, warnings: list[str]) -> Process:
    __tracebackhide__ = True
    proc = _obj(value, "process")
    args = proc.get("args")
    if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
        raise ConfigError("process.args must be a non-empty list of strings")
    if not args[0]:
        raise ConfigError("process.args[0] must name the program to run")
    env = _str_list(proc.get("env", []), "process.env")
    for item in env:
        if "=" not in item:
            raise ConfigError(f"process.env entry {item!r} is not of the form KEY=VALUE")
    cwd = _str(proc.get("cwd"), "process.cwd")  # REQUIRED (config.md)
    if not cwd.startswith("/"):
        raise ConfigError(f"process.cwd {cwd!r} must be an absolute path")
    terminal = _bool(proc.get("terminal", False), "process.terminal")
    console_size = _console_size(proc.get("consoleSize"))
    user = _obj(proc.get("user", {}), "process.user")
    umask = user.get("umask")
    oom = proc.get("oomScoreAdj")
    caps = proc.get("capabilities")
    return Process(
        args=tuple(args),
        env=env,
        cwd=cwd,
        user=User(
            uid=_int(user.get("uid", 0), "process.user.uid", 0, 2**32 - 2),
            gid=_int(user.get("gid", 0), "process.user.gid", 0, 2**32 - 2),
            umask=None if umask is None else _int(umask, "process.user.umask", 0, 0o777),
            additional_gids=tuple(
                _int(g, "process.user.additionalGids[]", 0, 2**32 - 2)
                for g in _list(user.get("additionalGids", []), "process.user.additionalGids")
            ),
        ),
        capabilities=None if caps is None else _capabilities(caps, warnings),
        rlimits=_rlimits(proc.get("rlimits", [])),
        no_new_privileges=_bool(proc.get("noNewPrivileges", False), "process.noNewPrivileges"),
        oom_score_adj=None if oom is None else _int(oom, "process.oomScoreAdj", -1000, 1000),
        terminal=terminal,
        console_size=console_size if terminal else None,  # config.md: ignored without
        scheduler=_scheduler(proc.get("scheduler")),
        io_priority=_io_priority(proc.get("ioPriority")),
    )


def _console_size(value: Any) -> ConsoleSize | None:
    __tracebackhide__ = True
    if value is None:
        return None
    size = _obj(value, "process.consoleSize")
    return ConsoleSize(
        height=_int(size.get("height"), "process.consoleSize.height", 0, 2**16 - 1),
        width=_int(size.get("width"), "process.consoleSize.width", 0, 2**16 - 1),
    )


def _scheduler(value: Any) -> Scheduler | None:
    __tracebackhide__ = True
    if value is None:
        return None
    sched = _obj(value, "process.scheduler")
    policy = _str(sched.get("policy"), "process.scheduler.policy")
    if policy not in SCHED_POLICIES:
        raise ConfigError(
            f"process.scheduler.policy {policy!r} is not one of {', '.join(SCHED_POLICIES)}"
        )
    flags = 0
    for flag in _str_list(sched.get("flags", []), "process.scheduler.flags"):
        if flag not in SCHED_FLAGS:
            raise ConfigError(f"process.scheduler.flags: unknown flag {flag!r}")
        flags |= SCHED_FLAGS[flag]
    return Scheduler(
        policy=SCHED_POLICIES[policy],
        nice=_int(sched.get("nice", 0), "process.scheduler.nice", -20, 19),
        priority=_int(sched.get("priority", 0), "process.scheduler.priority", 0, 99),
        flags=flags,
        runtime=_int(sched.get("runtime", 0), "process.scheduler.runtime", 0),
        deadline=_int(sched.get("deadline", 0), "process.scheduler.deadline", 0),
        period=_int(sched.get("period", 0), "process.scheduler.period", 0),
    )


def _io_priority(value: Any) -> tuple[int, int] | None:
    __tracebackhide__ = True
    if value is None:
        return None
    prio = _obj(value, "process.ioPriority")
    io_class = _str(prio.get("class"), "process.ioPriority.class")
    if io_class not in IO_CLASSES:
        raise ConfigError(
            f"process.ioPriority.class {io_class!r} is not one of {', '.join(IO_CLASSES)}"
        )
    return IO_CLASSES[io_class], _int(prio.get("priority", 0), "process.ioPriority.priority", 0, 7)


def _time_offsets(value: Any, new_ns: set[str]) -> str:
    """``linux.timeOffsets`` as the lines of /proc/self/timens_offsets ("" for none)."""
    __tracebackhide__ = True
    if not value:
        return ""
    offsets = _obj(value, "linux.timeOffsets")
    if "time" not in new_ns:
        raise ConfigError("linux.timeOffsets needs a new time namespace in linux.namespaces")
    lines = []
    for clock, entry in offsets.items():
        if clock not in ("monotonic", "boottime"):
            raise ConfigError(f"linux.timeOffsets: unknown clock {clock!r} (monotonic or boottime)")
        where = f"linux.timeOffsets.{clock}"
        entry = _obj(entry, where)
        secs = _int(entry.get("secs", 0), f"{where}.secs")
        nanos = _int(entry.get("nanosecs", 0), f"{where}.nanosecs", 0, 999_999_999)
        lines.append(f"{clock} {secs} {nanos}\n")
    return "".join(lines)


def _personality(value: Any) -> int | None:
    __tracebackhide__ = True
    if value is None:
        return None
    persona = _obj(value, "linux.personality")
    domain = _str(persona.get("domain"), "linux.personality.domain")
    if domain not in PERSONALITY_DOMAINS:
        raise ConfigError(
            f"linux.personality.domain {domain!r} is not one of {', '.join(PERSONALITY_DOMAINS)}"
        )
    if _str_list(persona.get("flags", []), "linux.personality.flags"):
        from .errors import UnsupportedError

        raise UnsupportedError("linux.personality.flags are not supported: leave them empty")
    return PERSONALITY_DOMAINS[domain]


def _capabilities(value: Any, warnings: list[str]) -> CapabilitySets:
    __tracebackhide__ = True
    caps = _obj(value, "process.capabilities")
    sets = {}
    for name in ("bounding", "effective", "inheritable", "permitted", "ambient"):
        where = f"process.capabilities.{name}"
        sets[name] = capabilities.mask(list(_str_list(caps.get(name, []), where)), where, warnings)
    return CapabilitySets(**sets)


_RLIMIT_INFINITY = 2**64 - 1
# include/uapi/asm-generic/resource.h (Python's resource module lacks some of them)
RLIMITS = {
    name: number
    for number, name in enumerate(
        (
            "RLIMIT_CPU",
            "RLIMIT_FSIZE",
            "RLIMIT_DATA",
            "RLIMIT_STACK",
            "RLIMIT_CORE",
            "RLIMIT_RSS",
            "RLIMIT_NPROC",
            "RLIMIT_NOFILE",
            "RLIMIT_MEMLOCK",
            "RLIMIT_AS",
            "RLIMIT_LOCKS",
            "RLIMIT_SIGPENDING",
            "RLIMIT_MSGQUEUE",
            "RLIMIT_NICE",
            "RLIMIT_RTPRIO",
            "RLIMIT_RTTIME",
        )
    )
}


def _rlimits(value: Any) -> tuple[Rlimit, ...]:
    __tracebackhide__ = True
    out = []
    seen = set()
    for i, item in enumerate(_list(value, "process.rlimits")):
        entry = _obj(item, f"process.rlimits[{i}]")
        name = _str(entry.get("type"), f"process.rlimits[{i}].type")
        number = RLIMITS.get(name)
        if number is None:
            raise ConfigError(f"process.rlimits[{i}].type {name!r} is not a known RLIMIT_ name")
        if name in seen:
            raise ConfigError(f"process.rlimits lists {name} twice")
        seen.add(name)
        soft = _int(entry.get("soft"), f"process.rlimits[{i}].soft", 0, _RLIMIT_INFINITY)
        hard = _int(entry.get("hard"), f"process.rlimits[{i}].hard", 0, _RLIMIT_INFINITY)
        if soft > hard:
            raise ConfigError(f"process.rlimits[{i}] ({name}): soft {soft} exceeds hard {hard}")
        out.append(Rlimit(name, number, soft, hard))
    return tuple(out)


def _hooks(value: Any) -> Hooks:
    __tracebackhide__ = True
    hooks = _obj(value, "hooks")
    parsed: dict[str, tuple[Hook, ...]] = {}
    for key, attr in (
        ("prestart", "prestart"),
        ("createRuntime", "create_runtime"),
        ("createContainer", "create_container"),
        ("startContainer", "start_container"),
        ("poststart", "poststart"),
        ("poststop", "poststop"),
    ):
        parsed[attr] = parse_hooks(hooks.get(key, []), key)
    return Hooks(**parsed)


def parse_hooks(value: Any, key: str) -> tuple[Hook, ...]:
    """The hooks of one stage (``hooks.<key>`` of a config)."""
    __tracebackhide__ = True
    items = []
    for i, item in enumerate(_list(value, f"hooks.{key}")):
        where = f"hooks.{key}[{i}]"
        entry = _obj(item, where)
        path = _str(entry.get("path"), f"{where}.path")
        if not os.path.isabs(path):
            raise ConfigError(f"{where}.path {path!r} must be absolute")
        timeout = entry.get("timeout")
        items.append(
            Hook(
                path=path,
                args=_str_list(entry.get("args", []), f"{where}.args"),
                env=_str_list(entry.get("env", []), f"{where}.env"),
                timeout=None if timeout is None else _int(timeout, f"{where}.timeout", 1),
            )
        )
    return tuple(items)


def _devices(value: Any) -> tuple[Device, ...]:
    __tracebackhide__ = True
    out: list[Device] = []
    for i, item in enumerate(_list(value, "linux.devices")):
        entry = _obj(item, f"linux.devices[{i}]")
        path = _str(entry.get("path"), f"linux.devices[{i}].path")
        dev_type = _str(entry.get("type"), f"linux.devices[{i}].type")
        if dev_type not in ("c", "b", "u", "p"):
            raise ConfigError(f"linux.devices[{i}].type {dev_type!r} must be one of c, b, u, p")
        if not path.startswith("/dev/"):
            raise ConfigError(f"linux.devices[{i}].path {path!r} must be under /dev")
        major = 0 if dev_type == "p" else _int(entry.get("major"), f"linux.devices[{i}].major", 0)
        minor = 0 if dev_type == "p" else _int(entry.get("minor"), f"linux.devices[{i}].minor", 0)
        mode = entry.get("fileMode")
        uid = entry.get("uid")
        gid = entry.get("gid")
        if any(d.path == os.path.normpath(path) for d in out):
            raise ConfigError(f"linux.devices lists {path} twice")
        out.append(
            Device(
                path=os.path.normpath(path),
                type=dev_type,
                major=major,
                minor=minor,
                file_mode=None
                if mode is None
                else _int(mode, f"linux.devices[{i}].fileMode", 0, 0o7777),
                uid=None if uid is None else _int(uid, f"linux.devices[{i}].uid", 0),
                gid=None if gid is None else _int(gid, f"linux.devices[{i}].gid", 0),
            )
        )
    return tuple(out)


def _sysctl(value: Any, new_ns: set[str]) -> dict[str, str]:
    __tracebackhide__ = True
    table = _obj(value, "linux.sysctl")
    for key, val in table.items():
        if not isinstance(val, str):
            raise ConfigError(f"linux.sysctl[{key!r}] must be a string")
        parts = key.split(".")
        if len(parts) < 2 or not all(p and _SYSCTL_CHARS.issuperset(p) for p in parts):
            raise ConfigError(
                f"linux.sysctl key {key!r} is not a sysctl name like 'net.ipv4.ip_forward'"
            )
        if key in _IPC_SYSCTLS or key.startswith("fs.mqueue."):
            needed = "ipc"
        elif key.startswith("net."):
            needed = "network"
        elif key in ("kernel.hostname", "kernel.domainname"):
            needed = "uts"
        else:
            raise ConfigError(f"linux.sysctl {key!r} is not namespaced: it would change the host")
        if needed not in new_ns:
            raise ConfigError(f"linux.sysctl {key!r} needs a new {needed} namespace")
        if not os.path.exists("/proc/sys/" + key.replace(".", "/")):
            raise ConfigError(f"linux.sysctl {key!r} does not exist on this kernel")
    return dict(table)
