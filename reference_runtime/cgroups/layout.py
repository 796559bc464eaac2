"""Which cgroup layout the host has, and where each hierarchy is mounted.

The answer comes from ``/proc/self/mountinfo``, never from a fixed path: a pure v1 host
mounts one ``cgroup`` filesystem per controller (or per group of co-mounted controllers
such as ``cpu,cpuacct``), a pure v2 host mounts one ``cgroup2`` filesystem, and a hybrid
host has both (v1 controllers plus a ``cgroup2`` mount, usually ``/sys/fs/cgroup/unified``,
with no controllers of its own).
"""

from __future__ import annotations

from reference_runtime._lite import StrChoice
from reference_runtime.errors import CgroupError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dataclasses import dataclass, field
else:
    from reference_runtime._lite import dataclass, field

MOUNTINFO = "/proc/self/mountinfo"

# The mount options of a v1 cgroup mount that are not controller names.
_V1_GENERIC_OPTIONS = frozenset(
    {"rw", "ro", "nosuid", "nodev", "noexec", "relatime", "noatime", "nodiratime", "clone_children"}
)
_V1_IGNORED_OPTION_PREFIXES = ("release_agent=", "xattr", "noprefix", "cpuset_v2_mode")


class Layout(StrChoice):
    """The cgroup layout of a host: ``Layout.V1``, ``Layout.V2`` or ``Layout.HYBRID``.

    V1: only v1 hierarchies, one mount per controller or group of co-mounted
    controllers. V2: only the unified (cgroup2) hierarchy. HYBRID: v1 controllers plus
    a cgroup2 mount used only to track processes.
    """

    V1: Layout
    V2: Layout
    HYBRID: Layout


Layout._define(V1="v1", V2="v2", HYBRID="hybrid")


@dataclass(frozen=True)
class V1Hierarchy:
    """One mounted v1 hierarchy: its mount point and the controllers it carries."""

    mountpoint: str
    controllers: tuple[str, ...]
    """Names as in /proc/self/cgroup: ``("cpu", "cpuacct")``, ``("name=systemd",)``."""

    @property
    def key(self) -> str:
        """The hierarchy's name, its controllers joined by commas (``"cpu,cpuacct"``)."""
        return ",".join(self.controllers)

    @property
    def is_named(self) -> bool:
        """True for a hierarchy with no controller at all, such as ``name=systemd``."""
        return all(c.startswith("name=") for c in self.controllers)


@dataclass(frozen=True)
class CgroupMounts:
    """Every cgroup mount found in one mountinfo table."""

    v1: tuple[V1Hierarchy, ...] = field(default_factory=tuple)
    v2: str | None = None
    """The mount point of the cgroup2 filesystem, or None when there is none."""

    def v1_for(self, controller: str) -> V1Hierarchy | None:
        """Return the v1 hierarchy carrying ``controller``, or None if it is not mounted."""
        for hierarchy in self.v1:
            if controller in hierarchy.controllers:
                return hierarchy
        return None


def _unescape(text: str) -> str:
    """Undo mountinfo's octal escapes (``\\040`` is a space)."""
    if "\\" not in text:
        return text
    out = []
    i = 0
    while i < len(text):
        code = text[i + 1 : i + 4]
        if text[i] == "\\" and len(code) == 3 and all(c in "01234567" for c in code):
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _v1_controllers(super_options: str) -> tuple[str, ...]:
    controllers = []
    for option in super_options.split(","):
        if option in _V1_GENERIC_OPTIONS or option.startswith(_V1_IGNORED_OPTION_PREFIXES):
            continue
        controllers.append(option)
    return tuple(controllers)


def parse_mountinfo(text: str) -> CgroupMounts:
    """Find the cgroup mounts in the text of a ``/proc/<pid>/mountinfo`` file.

    A line is ``ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS``.
    When a hierarchy is mounted more than once (bind mounts), the first mount wins.
    """
    hierarchies: dict[tuple[str, ...], V1Hierarchy] = {}
    v2: str | None = None
    for line in text.splitlines():
        fields = line.split()
        try:
            sep = fields.index("-", 6)
        except ValueError:
            continue
        if len(fields) < sep + 4:
            continue
        mountpoint = _unescape(fields[4])
        fstype, super_options = fields[sep + 1], fields[sep + 3]
        if fstype == "cgroup2":
            if v2 is None:
                v2 = mountpoint
        elif fstype == "cgroup":
            controllers = _v1_controllers(super_options)
            if controllers and controllers not in hierarchies:
                hierarchies[controllers] = V1Hierarchy(mountpoint, controllers)
    return CgroupMounts(v1=tuple(hierarchies.values()), v2=v2)


def discover_mounts(mountinfo: str = MOUNTINFO) -> CgroupMounts:
    """Read ``mountinfo`` (this process's by default) and return its cgroup mounts."""
    __tracebackhide__ = True
    try:
        with open(mountinfo, encoding="utf-8", errors="surrogateescape") as f:
            return parse_mountinfo(f.read())
    except OSError as exc:
        raise CgroupError(f"cannot read {mountinfo}: {exc.strerror}") from exc


def layout_of(mounts: CgroupMounts) -> Layout:
    """Classify a set of mounts.

    A v2 mount next to v1 hierarchies that carry no controller (only ``name=systemd``, as
    some v2 hosts keep for old containers) is still a v2 host: nothing is limited via v1.
    """
    __tracebackhide__ = True
    has_v1_controllers = any(not h.is_named for h in mounts.v1)
    if mounts.v2 is not None:
        return Layout.HYBRID if has_v1_controllers else Layout.V2
    if mounts.v1:
        return Layout.V1
    raise CgroupError("no cgroup filesystem is mounted; mount cgroup2 on /sys/fs/cgroup")


def detect_layout(mountinfo: str = MOUNTINFO) -> Layout:
    """Return the cgroup layout of the host, as seen by this process's mount namespace."""
    return layout_of(discover_mounts(mountinfo))
