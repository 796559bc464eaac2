"""Bad configurations: the runtime refuses them with an error and leaves nothing behind.

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
of the module share one read-only rootfs, named by absolute path. Where the docker
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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import Phase, given, reject, settings
from hypothesis import strategies as st

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


# --------------------------------------------------------------- the bad values

# Values the spec calls invalid, or that no kernel can apply (config.md#valid-values,
# runtime.md#create). Some fail early (parsing), some late, after the runtime has
# made a cgroup or a process: those check the cleanup of a half-made container.
INVALID_VALUES: tuple[Edit, ...] = (
    Append(("linux", "namespaces"), {"type": "pcnosuchnamespace"}),
    Change(("process", "user", "uid"), -1),
    Change(("process", "user", "gid"), 2**32),
    Change(("process", "oomScoreAdj"), 1001),
    Change(("process", "rlimits"), [{"type": "RLIMIT_NOFILE", "soft": 2048, "hard": 1024}]),
    Change(("linux", "resources", "memory", "swappiness"), 101),
    Change(("linux", "resources", "memory", "limit"), -2),
    Change(("linux", "resources", "cpu", "cpus"), "pc-not-a-cpu-list"),
    Change(("linux", "resources", "cpu", "cpus"), "4096"),
    Change(("linux", "resources", "cpu", "mems"), "4095"),
)

# Documents that do not match the configuration schema (config-schema.json).
SCHEMA_MISMATCHES: tuple[Edit, ...] = (
    Change(("process", "args"), "sh -c true"),
    Change(("process",), ["sh"]),
    Change(("root",), "rootfs"),
    Change(("process", "user", "uid"), "0"),
    Change(("process", "env"), "PATH=/bin"),
    Change(("linux", "namespaces"), {"pid": {}}),
    Change(("linux", "resources", "pids", "limit"), "32"),
    Remove(("root",)),
    Remove(("process", "cwd")),
)

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

SEMVER = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?"
)
"""SemVer 2.0.0's own regular expression (semver.org), anchored by ``fullmatch``."""

NOT_SEMVER = ("1.0", "v1.0.0", "1.0.0.0", "01.0.0", "1.0.0-rc.01", " 1.0.0", "")

# The releases of the runtime-spec (git tags v1.0.0 ... v1.2.0).
RELEASES = ("1.0.0", "1.0.1", "1.0.2", "1.1.0", "1.2.0")

# Every example makes a container: shrinking a failure would cost tens of seconds of
# containers, and whether a runtime refuses a value rarely depends on which one it is,
# so these tests report the first failing example as it was generated.
FIRST_FAILURE = settings(phases=[Phase.explicit, Phase.reuse, Phase.generate])
# Where the values matter less than the kind of value: 3 examples in ci, 36 in thorough.
FEWER = settings(FIRST_FAILURE, max_examples=max(1, round(settings().max_examples * 0.6)))

# ---------------------------------------------------------------- helpers


def _docker_reads_config(adapter: RuntimeAdapter) -> None:
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


@pytest.fixture(scope="module")
def rootfs(
    container_factory: ContainerFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """One root filesystem for the module's bundles, which name it by its absolute path
    (config.md#root): a bundle per example costs a config.json, not a rootfs copy. Every
    config keeps ``root.readonly``, so no container writes to it."""
    base = tmp_path_factory.mktemp("rootfs")
    yield container_factory.make_bundle(base) / "rootfs"
    shutil.rmtree(base, ignore_errors=True)


def _write_bundle(
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


def _attempt(factory: ContainerFactory, bundle: Path, rootfs: Path) -> Attempt:
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
        attempt = _attempt(factory, bundle, rootfs)
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


def _run_output(factory: ContainerFactory, bundle: Path, timeout: float = 30.0) -> tuple[int, str]:
    """Create, start and wait for a container from ``bundle``: (exit status, stdout)."""
    handle = factory.make_container(bundle.parent, bundle=bundle)
    try:
        status = handle.wait(timeout)
        return status, handle.stdout()
    finally:
        factory.remove(handle)


# ---------------------------------------------------------------- ociVersion


def _refuses(factory: ContainerFactory, rootfs: Path, directory: Path, *faults: Fault) -> None:
    __tracebackhide__ = True
    bundle = _write_bundle(directory, rootfs, faults)
    _assert_refused(factory, bundle, rootfs, ", ".join(map(repr, faults)))
    shutil.rmtree(bundle)


@pytest.mark.requirement("RT-CONF-VERSION-1")
def test_an_ociversion_that_is_not_semver_is_refused(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path
) -> None:
    """Each of a fixed list of near misses (two parts, a "v", leading zeros, a numeric
    pre-release with a leading zero, spaces, empty) is refused."""
    _docker_reads_config(container_factory.adapter)
    accepted = []
    for version in NOT_SEMVER:
        bundle = _write_bundle(tmp_path, rootfs, [Change(("ociVersion",), version)])
        with expressible():
            if not _attempt(container_factory, bundle, rootfs).refused_by:
                accepted.append(version)
        shutil.rmtree(bundle)
    assert not accepted, f"{container_factory.adapter.name} accepted ociVersion {accepted}"


@pytest.mark.requirement("RT-CONF-VERSION-1")
@FEWER
@given(
    version=st.text(alphabet="0123456789.-+rcv", min_size=1, max_size=10).filter(
        lambda v: not SEMVER.fullmatch(v)
    )
)
def test_a_generated_ociversion_that_is_not_semver_is_refused(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, version: str
) -> None:
    _docker_reads_config(container_factory.adapter)
    _refuses(container_factory, rootfs, tmp_path, Change(("ociVersion",), version))


@pytest.mark.requirement("RT-CONF-VERSION-3")
@FEWER
@given(
    major=st.sampled_from([0, 2]) | st.integers(2, 99),
    minor=st.integers(0, 20),
    patch=st.integers(0, 20),
)
def test_an_ociversion_of_another_major_version_is_refused(
    container_factory: ContainerFactory,
    rootfs: Path,
    tmp_path: Path,
    major: int,
    minor: int,
    patch: int,
) -> None:
    _docker_reads_config(container_factory.adapter)
    version = f"{major}.{minor}.{patch}"
    _refuses(container_factory, rootfs, tmp_path, Change(("ociVersion",), version))


@pytest.mark.requirement("RT-CONF-VERSION-2")
def test_every_earlier_release_of_the_same_major_version_is_accepted(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path
) -> None:
    """The runtime says in ``state.ociVersion`` which version it complies with; every
    release of the spec up to that one, within major version 1, must be accepted."""
    adapter = container_factory.adapter
    _docker_reads_config(adapter)
    probe = container_factory.make_container(tmp_path, ["true"], start=False)
    try:
        supported = str(probe.state().get("ociVersion", ""))
    finally:
        container_factory.remove(probe)
    if not SEMVER.fullmatch(supported) or not supported.startswith("1."):
        pytest.fail(f"{adapter.name} reports state.ociVersion {supported!r}, not a 1.x SemVer")
    earlier = [v for v in RELEASES if _semver_key(v) <= _semver_key(supported)]
    assert earlier, f"{adapter.name} reports ociVersion {supported}, older than any release"
    refused = {}
    for version in earlier:
        command = ["sh", "-c", "echo ran"]
        bundle = _write_bundle(tmp_path, rootfs, [Change(("ociVersion",), version)], command)
        try:
            status, out = _run_output(container_factory, bundle)
            if (status, out) != (0, "ran\n"):
                refused[version] = f"the program exited {status} with {out!r}"
        except RuntimeCommandError as exc:
            refused[version] = exc.runtime_message
        shutil.rmtree(bundle)
    assert not refused, (
        f"{adapter.name} complies with runtime-spec {supported} but refused configs of "
        f"earlier releases: {refused}"
    )


def _semver_key(version: str) -> tuple[int, int, int, int, str]:
    match = SEMVER.fullmatch(version)
    assert match is not None, version
    major, minor, patch, pre = match.group(1), match.group(2), match.group(3), match.group(4)
    # a pre-release sorts before its release: 1.0.2-dev < 1.0.2
    return int(major), int(minor), int(patch), 0 if pre else 1, pre or ""


# ---------------------------------------------------------------- unknown properties

_UNKNOWN_AT: tuple[FieldPath, ...] = (
    (),
    ("process",),
    ("process", "user"),
    ("root",),
    ("linux",),
    ("linux", "resources"),
    ("linux", "namespaces", 0),
    ("mounts", 0),
)

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)

unknown_properties = st.lists(
    st.builds(
        Change,
        path=st.tuples(
            st.sampled_from(_UNKNOWN_AT),
            st.from_regex(r"pcUnknown[A-Za-z0-9]{0,8}", fullmatch=True),
        ).map(lambda t: (*t[0], t[1])),
        value=_json_values,
    ),
    min_size=1,
    max_size=4,
)


@pytest.mark.requirement("RT-CONF-EXT-1")
@FIRST_FAILURE
@given(edits=unknown_properties)
def test_unknown_properties_are_ignored(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, edits: list[Change]
) -> None:
    _docker_reads_config(container_factory.adapter)
    # a known property beside the unknown ones must still be applied
    env = Change(("process", "env"), ["PATH=/bin", "PC_KNOWN=applied"])
    bundle = _write_bundle(tmp_path, rootfs, [*edits, env], ["sh", "-c", "echo $PC_KNOWN"])
    try:
        status, out = _run_output(container_factory, bundle)
    except RuntimeCommandError as exc:
        pytest.fail(f"{container_factory.adapter.name} refused unknown properties: {exc}")
    assert (status, out) == (0, "applied\n"), "the program did not run as configured"
    shutil.rmtree(bundle)


# ---------------------------------------------------------------- annotations


@pytest.mark.requirement("RT-CONF-ANNOT-1")
@FEWER
@given(
    annotations=st.dictionaries(
        st.from_regex(r"(com|org|io)\.pc-[a-z0-9]{1,8}(\.[a-z0-9-]{1,8}){0,2}", fullmatch=True),
        st.text(max_size=16),
        min_size=1,
        max_size=4,
    )
)
def test_unknown_annotation_keys_are_accepted(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, annotations: dict[str, str]
) -> None:
    edit = Change(("annotations",), annotations)
    bundle = _write_bundle(tmp_path, rootfs, [edit], ["sh", "-c", "echo ran"])
    with expressible():
        try:
            status, out = _run_output(container_factory, bundle)
        except RuntimeCommandError as exc:
            pytest.fail(f"{container_factory.adapter.name} refused annotations: {exc}")
    assert (status, out) == (0, "ran\n")
    shutil.rmtree(bundle)


@pytest.mark.requirement("RT-CONF-ANNOT-2")
@FEWER
@given(
    value=st.none()
    | st.booleans()
    | st.integers()
    | st.lists(st.text(max_size=3), max_size=2)
    | st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2)
)
def test_an_annotation_value_that_is_not_a_string_is_refused(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, value: Any
) -> None:
    annotations = {"org.pc.ok": "fine", "org.pc.bad": value}
    _refuses(container_factory, rootfs, tmp_path, Change(("annotations",), annotations))


@pytest.mark.requirement("RT-CONF-ANNOT-2")
def test_an_empty_annotation_key_is_refused(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path
) -> None:
    if container_factory.adapter.name == "docker":
        not_applicable(
            "docker: annotations become labels named 'oci.annotation.' + key, so an empty "
            "annotation key never reaches the Engine as an empty label key"
        )
    _refuses(container_factory, rootfs, tmp_path, Change(("annotations",), {"": "x"}))


# ---------------------------------------------------------------- invalid values


def _docker_maps(adapter: RuntimeAdapter, fault: Fault) -> None:
    __tracebackhide__ = True
    if adapter.name != "docker":
        return
    if isinstance(fault, (ConfigFile, MissingRootfs)) or not _maps_for_docker(fault):
        not_applicable(f"docker: the adapter hands the Engine no option for {fault!r}")


@pytest.mark.requirement("RT-CONF-VALID-1")
@pytest.mark.parametrize("edit", INVALID_VALUES, ids=repr)
def test_invalid_values_are_refused(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, edit: Edit
) -> None:
    _docker_maps(container_factory.adapter, edit)
    _refuses(container_factory, rootfs, tmp_path, edit)


@pytest.mark.requirement("RT-OWN-BADCONFIG-1")
@pytest.mark.parametrize(
    "fault",
    [
        ConfigFile(None),
        ConfigFile(""),
        ConfigFile("[]"),
        ConfigFile('{"ociVersion": "1.0.0",}'),
        *SCHEMA_MISMATCHES,
    ],
    ids=repr,
)
def test_a_config_that_is_missing_or_not_json_or_off_schema_is_refused(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, fault: Fault
) -> None:
    _docker_reads_config(container_factory.adapter)
    _refuses(container_factory, rootfs, tmp_path, fault)


@pytest.mark.requirement("RT-OWN-BADCONFIG-1")
@FEWER
@given(text=st.binary(min_size=1, max_size=60).map(lambda b: b.decode("latin-1")))
def test_a_config_that_is_not_json_is_refused(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, text: str
) -> None:
    _docker_reads_config(container_factory.adapter)
    if _is_json_object(text):
        reject()  # a JSON object is another case (off schema)
    _refuses(container_factory, rootfs, tmp_path, ConfigFile(text))


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


# Refusals that come late, after the runtime has made a cgroup, a namespace or a
# process, next to early ones; each must leave nothing behind.
CLEANUP_CASES: tuple[Fault, ...] = (
    MissingRootfs(),
    ConfigFile(None),
    Change(("process", "cwd"), "tmp"),
    Change(("process", "args"), []),
    Change(("process", "oomScoreAdj"), 1001),
    Change(("process", "rlimits"), [{"type": "RLIMIT_NOFILE", "soft": 2048, "hard": 1024}]),
    Change(("process", "rlimits"), [{"type": "RLIMIT_PCNOSUCH", "soft": 1, "hard": 1}]),
    Change(("linux", "resources", "cpu", "cpus"), "4096"),
    Change(("linux", "resources", "cpu", "mems"), "4095"),
    Change(("linux", "resources", "memory", "limit"), -2),
    Change(("linux", "namespaces", 0), {"type": "pid", "path": "/proc/0/ns/pid"}),
)


@pytest.mark.requirement("RT-OWN-BADCONFIG-2")
@pytest.mark.parametrize("case", CLEANUP_CASES, ids=repr)
def test_a_refused_create_leaves_nothing_behind(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, case: Fault
) -> None:
    adapter = container_factory.adapter
    _docker_maps(adapter, case)
    bundle = _write_bundle(tmp_path, rootfs, [case])
    with expressible():
        attempt = _attempt(container_factory, bundle, rootfs)
    if attempt.refused_by != "create":
        not_applicable(
            f"{adapter.name} did not refuse {case!r} at create, so nothing was left to clean "
            "(whether it should have is judged by the test of that value)"
        )
    assert not attempt.leftovers, (
        f"{adapter.name} refused {case!r} at create ({attempt.message!r}) but left behind: "
        + "; ".join(attempt.leftovers)
    )


# ---------------------------------------------------------------- process values


@pytest.mark.requirement("RT-PROC-CWD-2")
@FEWER
@given(cwd=st.from_regex(r"(\.\./|\./)?[a-z]{1,8}(/[a-z]{1,8}){0,2}/?", fullmatch=True))
def test_a_relative_cwd_is_refused(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, cwd: str
) -> None:
    _refuses(container_factory, rootfs, tmp_path, Change(("process", "cwd"), cwd))


@pytest.mark.requirement("RT-PROC-ARGS-3")
@pytest.mark.parametrize(
    "edit", [Change(("process", "args"), []), Remove(("process", "args"))], ids=repr
)
def test_a_process_without_args_is_refused(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, edit: Edit
) -> None:
    _refuses(container_factory, rootfs, tmp_path, edit)


@pytest.mark.requirement("RT-PROC-RLIMIT-1")
@FEWER
@given(name=st.from_regex(r"RLIMIT_PC[A-Z]{1,10}", fullmatch=True))
def test_an_rlimit_type_the_kernel_does_not_know_is_refused(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, name: str
) -> None:
    rlimits = [{"type": name, "soft": 1024, "hard": 1024}]
    _refuses(container_factory, rootfs, tmp_path, Change(("process", "rlimits"), rlimits))


@pytest.mark.requirement("RT-PROC-RLIMIT-4")
@FEWER
@given(
    name=st.sampled_from(["RLIMIT_NOFILE", "RLIMIT_CORE", "RLIMIT_NPROC", "RLIMIT_MSGQUEUE"]),
    first=st.integers(1024, 4096),
    second=st.integers(1024, 4096),
)
def test_two_rlimits_of_the_same_type_are_refused(
    container_factory: ContainerFactory,
    rootfs: Path,
    tmp_path: Path,
    name: str,
    first: int,
    second: int,
) -> None:
    rlimits = [
        {"type": name, "soft": first, "hard": first},
        {"type": name, "soft": second, "hard": second},
    ]
    _refuses(container_factory, rootfs, tmp_path, Change(("process", "rlimits"), rlimits))


# ---------------------------------------------------------------- limits values


@pytest.mark.requirement("RT-CG-BLKIO-3")
def test_a_weight_device_without_weight_or_leaf_weight_is_refused(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path
) -> None:
    if container_factory.adapter.name == "docker":
        not_applicable("docker: the adapter hands the Engine no blockIO settings")
    major, minor = _a_block_device()
    blkio = {"weightDevice": [{"major": major, "minor": minor}]}
    _refuses(container_factory, rootfs, tmp_path, Change(("linux", "resources", "blockIO"), blkio))


def _a_block_device() -> tuple[int, int]:
    for name in sorted(os.listdir("/sys/block")):
        if not name.startswith(("loop", "ram", "zram")):
            major, minor = Path(f"/sys/block/{name}/dev").read_text().split(":")
            return int(major), int(minor)
    not_applicable("this host has no block device other than loop, ram and zram devices")
    raise AssertionError("unreachable")


@pytest.mark.requirement("RT-RDT-1")
def test_intel_rdt_without_a_mounted_resctrl_is_refused(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path
) -> None:
    if container_factory.adapter.name == "docker":
        not_applicable("docker: the adapter hands the Engine no intelRdt settings")
    if "resctrl" in {f[f.index("-") + 1] for f in _mountinfo_fields()}:
        not_applicable("a resctrl filesystem is mounted on this host")
    rdt = {"closID": "pc-rdt", "l3CacheSchema": "L3:0=f"}
    _refuses(container_factory, rootfs, tmp_path, Change(("linux", "intelRdt"), rdt))


_UNIFIED_KEYS = {
    "pids": ("pids.max", "64"),
    "memory": ("memory.high", "268435456"),
    "cpu": ("cpu.weight", "50"),
    "io": ("io.weight", "default 100"),
    "cpuset": ("cpuset.cpus", "0"),
}


def _mountinfo_fields() -> list[list[str]]:
    with open("/proc/self/mountinfo") as f:
        return [line.split() for line in f]


@pytest.mark.requirement("RT-CG-UNIFIED-4")
def test_unified_keys_of_a_controller_that_is_not_available_are_refused(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path
) -> None:
    """A key of a cgroup v2 controller that the host's cgroup2 hierarchy does not carry
    (on a hybrid host: those bound to v1) cannot be applied."""
    if container_factory.adapter.name == "docker":
        not_applicable("docker: the adapter hands the Engine no unified settings")
    unified = [f[4] for f in _mountinfo_fields() if f[f.index("-") + 1] == "cgroup2"]
    if not unified:
        not_applicable("this host has no cgroup2 hierarchy")
    available = set(Path(unified[0], "cgroup.controllers").read_text().split())
    missing = [c for c in _UNIFIED_KEYS if c not in available]
    if not missing:
        not_applicable("every common controller is available in this host's cgroup2 hierarchy")
    key, value = _UNIFIED_KEYS[missing[0]]
    edit = Change(("linux", "resources", "unified"), {key: value})
    _refuses(container_factory, rootfs, tmp_path, edit)
