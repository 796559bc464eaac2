"""The container process (config.md#process, #posix-process, #linux-process): what the
program sees of its own arguments, environment, working directory, credentials, umask,
resource limits, capabilities, privileges, OOM score, scheduling and descriptors.

Each example runs one container whose program reports about itself, mostly with shell
builtins so that nothing is forked or exec'd between the runtime's exec and the
observation (``read`` from ``/proc/$$/...``, ``ulimit``, ``umask``); a command that
must be a child (``ionice``, ``uname``) reports on its parent or inherits what is
measured. Where the host can look too (``HOST_PID``), it does. The values are chosen by
Hypothesis and printed as the config they wrote.

The runtimes apply the process settings before they exec the program; the kernel then
transforms capabilities across that exec (capabilities(7)). The capability sets
generated here are the ones that exec leaves as they are, so what the process shows is
what the config said.

What no runtime started by this process could do is not asked for: hard limits above
our own, oom_score_adj below our own, capabilities outside our bounding set (without
CAP_SYS_RESOURCE, which this VM's root lacks). Settings a runtime may not implement
(scheduler, ioPriority, personality) make the test not applicable when the runtime
refuses them with an error, and fail it when the runtime ignores them. All bundles of
the module share one read-only rootfs, named by absolute path.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from pytest_containers.adapters import HOST_KERNEL, HOST_PID, RuntimeAdapter, bundle_config
from pytest_containers.errors import RuntimeCommandError
from pytest_containers.requirements import not_applicable
from pytest_containers.runtime import ContainerFactory

from ._support import expressible

# Every example makes a container: shrinking a failure would cost tens of seconds of
# containers for little gain, so failures are reported as generated.
FIRST_FAILURE = settings(phases=[Phase.explicit, Phase.reuse, Phase.generate])
# Where the values matter less than the kind of value: 3 examples in ci, 36 in thorough.
FEWER = settings(FIRST_FAILURE, max_examples=max(1, round(settings().max_examples * 0.6)))

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


@pytest.fixture(scope="module")
def rootfs(
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


def _docker_lacks(adapter: RuntimeAdapter, what: str) -> None:
    """The docker adapter turns config.json into Engine options (adapters/engine.py) and
    has none for ``what``: it would silently run without it."""
    __tracebackhide__ = True
    if adapter.name == "docker":
        not_applicable(f"docker: the adapter hands the Engine no option for {what}")


def _config(command: Sequence[str], **args: Any) -> dict[str, Any]:
    return bundle_config(command, **args)


def _write_bundle(directory: Path, rootfs: Path, config: dict[str, Any]) -> Path:
    config["root"]["path"] = str(rootfs)
    path = Path(tempfile.mkdtemp(prefix="bundle-", dir=directory))
    (path / "config.json").write_text(json.dumps(config))
    return path


def _run(
    factory: ContainerFactory,
    directory: Path,
    rootfs: Path,
    config: dict[str, Any],
    timeout: float = 30.0,
) -> Ran:
    """Create, start and wait for a container of ``config``; removed before returning."""
    __tracebackhide__ = True
    bundle = _write_bundle(directory, rootfs, config)
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


def _run_optional(
    factory: ContainerFactory, directory: Path, rootfs: Path, config: dict[str, Any], what: str
) -> Ran:
    """``_run`` for a setting a runtime may lack: refusing it with an error is what
    config.md#valid-values asks of such a runtime, so a refusal makes the test not
    applicable (with the runtime's words); silently ignoring it fails the test."""
    __tracebackhide__ = True
    try:
        return _run(factory, directory, rootfs, config)
    except RuntimeCommandError as exc:
        not_applicable(f"{factory.adapter.name} refuses {what}: {exc.runtime_message}")
        raise AssertionError("unreachable") from None


def _status_script(*extra: str) -> list[str]:
    return ["sh", "-c", "; ".join([READ.format("status"), *extra, "exit 0"])]


# --------------------------------------------------------------------- args


@pytest.mark.requirement("RT-PROC-ARGS-1")
@FIRST_FAILURE
@given(
    args=st.lists(
        st.text(st.characters(codec="utf-8", exclude_characters="\0"), max_size=12),
        max_size=6,
    )
)
def test_args_are_the_argument_vector(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, args: list[str]
) -> None:
    argv = ["sh", "-c", "cat /proc/$$/cmdline; exit 0", *args]
    ran = _run(container_factory, tmp_path, rootfs, _config(argv))
    assert ran.status == 0, ran.stderr
    seen = ran.stdout.split(b"\0")[:-1]
    assert seen == [a.encode() for a in argv], "the kernel's argv of the process differs"


@pytest.mark.requirement("RT-PROC-ARGS-2")
def test_a_program_name_without_a_slash_is_searched_in_path(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path
) -> None:
    """``pcprog`` lives in the second PATH directory only; a decoy at /pcprog would be
    found by a runtime that resolved the name against the root or the cwd."""
    env = {"PATH": "/pc-path-a:/pc-path-b:/bin"}
    ran = _run(container_factory, tmp_path, rootfs, _config(["pcprog"], env=env, cwd="/"))
    assert (ran.status, ran.text) == (0, "found in /pc-path-b\n"), ran.stderr


# --------------------------------------------------------------------- env and cwd

_env_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,15}", fullmatch=True).filter(
    lambda n: n not in ("PATH", "HOME")
)
_env_values = st.text(st.characters(codec="utf-8", exclude_characters="\0"))


@pytest.mark.requirement("RT-PROC-ENV-1")
@FIRST_FAILURE
@given(env=st.dictionaries(_env_names, _env_values, max_size=8))
def test_env_is_the_process_environment(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    """The environ of the process is exactly the env list (with HOME given, so that a
    runtime's documented HOME default does not come into it)."""
    listed = ["PATH=/bin", "HOME=/pc-home", *(f"{k}={v}" for k, v in env.items())]
    config = _config(["sh", "-c", "cat /proc/$$/environ; exit 0"])
    config["process"]["env"] = listed
    ran = _run(container_factory, tmp_path, rootfs, config)
    assert ran.status == 0, ran.stderr
    seen = [item.decode(errors="replace") for item in ran.stdout.split(b"\0")[:-1]]
    assert sorted(seen) == sorted(listed), "the process environment is not the env list"


@pytest.mark.requirement("RT-PROC-CWD-1")
@FEWER
@given(cwd=st.sampled_from(CWD_DIRS))
def test_cwd_is_the_working_directory(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, cwd: str
) -> None:
    script = "cat pc-marker; pwd -P; exit 0"
    ran = _run(container_factory, tmp_path, rootfs, _config(["sh", "-c", script], cwd=cwd))
    assert ran.status == 0, ran.stderr
    assert ran.text == f"marker of {cwd}\n{cwd}\n", "the process does not run in cwd"


# --------------------------------------------------------------------- user


@pytest.mark.requirement("RT-PROC-USER-1", "RT-PROC-USER-2", "RT-PROC-USER-3")
@FIRST_FAILURE
@given(
    uid=st.sampled_from([0, 1000, 65534]) | st.integers(0, 2**31),
    gid=st.sampled_from([0, 1000, 65534]) | st.integers(0, 2**31),
    groups=st.lists(st.integers(0, 2**31), max_size=6, unique=True),
)
def test_the_process_runs_as_the_configured_user(
    container_factory: ContainerFactory,
    rootfs: Path,
    tmp_path: Path,
    uid: int,
    gid: int,
    groups: list[int],
) -> None:
    config = _config(_status_script("id -u; id -g; id -G"), user=(uid, gid))
    config["process"]["user"]["additionalGids"] = groups
    ran = _run(container_factory, tmp_path, rootfs, config)
    assert ran.status == 0, ran.stderr
    assert ran.field("Uid") == f"{uid}\t{uid}\t{uid}\t{uid}", "real/effective/saved/fs uid"
    assert ran.field("Gid") == f"{gid}\t{gid}\t{gid}\t{gid}", "real/effective/saved/fs gid"
    seen_groups = (ran.field("Groups") or "").split()
    assert sorted(map(int, seen_groups)) == sorted(groups), "supplementary groups"
    child = ran.text.splitlines()[-3:]
    assert child[:2] == [str(uid), str(gid)], "what a child process reports (id)"


@pytest.mark.requirement("RT-PROC-USER-4")
@FEWER
@given(umask=st.integers(0, 0o777))
def test_the_process_runs_with_the_configured_umask(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, umask: int
) -> None:
    _docker_lacks(container_factory.adapter, "process.user.umask")
    script = (
        "echo umask=$(umask); f=/dev/shm/pc-file d=/dev/shm/pc-dir; touch $f; mkdir $d; "
        "echo file=$(stat -c %a $f) dir=$(stat -c %a $d)"
    )
    config = _config(_status_script(script))
    config["process"]["user"]["umask"] = umask
    ran = _run(container_factory, tmp_path, rootfs, config)
    assert ran.status == 0, ran.stderr
    if ran.field("Umask") is not None:
        assert int(ran.field("Umask") or "", 8) == umask, "Umask in /proc/PID/status"
    assert ran.lines_starting("umask=") == [f"umask={umask:04o}"], "the umask builtin"
    expected = f"file={0o666 & ~umask:o} dir={0o777 & ~umask:o}"
    assert ran.lines_starting("file=") == [expected], "modes of new files"


# --------------------------------------------------------------------- rlimits


@dataclass(frozen=True)
class Rlimit:
    """One ``process.rlimits`` entry."""

    type: str
    soft: int
    hard: int

    def as_config(self) -> dict[str, Any]:
        return {"type": self.type, "soft": self.soft, "hard": self.hard}


# type -> (kernel number, busybox ulimit option, its unit in bytes or counts, lowest soft,
# highest hard): the bounds keep the shell itself working (files, stack, output size).
_RLIMITS = {
    "RLIMIT_CPU": (0, "-t", 1, 300, 1 << 31),
    "RLIMIT_FSIZE": (1, "-f", 512, 1 << 22, 1 << 42),
    "RLIMIT_DATA": (2, "-d", 1024, 1 << 29, 1 << 42),
    "RLIMIT_STACK": (3, "-s", 1024, 1 << 21, 1 << 32),
    "RLIMIT_CORE": (4, "-c", 512, 0, 1 << 40),
    "RLIMIT_RSS": (5, "-m", 1024, 0, 1 << 40),
    "RLIMIT_NPROC": (6, "-u", 1, 64, 1 << 31),
    "RLIMIT_NOFILE": (7, "-n", 1, 64, 1 << 20),
    "RLIMIT_MEMLOCK": (8, "-l", 1024, 0, 1 << 40),
    "RLIMIT_AS": (9, "-v", 1024, 1 << 31, 1 << 46),
    "RLIMIT_LOCKS": (10, "-x", 1, 0, 1 << 31),
    "RLIMIT_SIGPENDING": (11, "-i", 1, 64, 1 << 20),
    "RLIMIT_MSGQUEUE": (12, "-q", 1, 0, 1 << 30),
    "RLIMIT_NICE": (13, "-e", 1, 0, 40),
    "RLIMIT_RTPRIO": (14, "-r", 1, 0, 99),
}


def _have_sys_resource() -> bool:
    """Whether this process (and so the runtime it starts) may raise hard limits and
    lower oom_score_adj below its own (CAP_SYS_RESOURCE)."""
    return "CAP_SYS_RESOURCE" in (_caps_of(_own_status_field("CapEff")) or ())


def _hard_ceiling(kind: str) -> int:
    """The highest hard value a runtime started by this process can set: without
    CAP_SYS_RESOURCE, no hard limit can be raised above the one it inherits from us."""
    number, _, _, _, high = _RLIMITS[kind]
    if kind == "RLIMIT_NOFILE":
        high = min(high, int(Path("/proc/sys/fs/nr_open").read_text()))
    if _have_sys_resource():
        return RLIM_INFINITY
    own = resource.getrlimit(number)[1]
    return RLIM_INFINITY if own == resource.RLIM_INFINITY else min(own, high)


@st.composite
def _rlimit(draw: st.DrawFn, kind: str, infinity: bool) -> Rlimit:
    _, _, unit, low, high = _RLIMITS[kind]
    ceiling = _hard_ceiling(kind)
    high = min(high, ceiling)
    low = min(low, high)
    units = st.integers(-(-low // unit), high // unit).map(lambda n: n * unit)
    if infinity and ceiling == RLIM_INFINITY:
        units = units | st.just(RLIM_INFINITY)
    hard = draw(units)
    soft_values = st.integers(-(-low // unit), min(hard, high) // unit).map(lambda n: n * unit)
    soft = draw(soft_values | st.just(hard))
    return Rlimit(kind, soft, hard)


@st.composite
def _rlimit_lists(draw: st.DrawFn, infinity: bool) -> list[Rlimit]:
    """Every type, each with its own values: one container checks them all."""
    return [draw(_rlimit(kind, infinity)) for kind in sorted(_RLIMITS)]


@pytest.mark.requirement("RT-PROC-RLIMIT-2", "RT-PROC-RLIMIT-3")
@FIRST_FAILURE
@given(data=st.data())
def test_getrlimit_returns_the_configured_soft_and_hard_values(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, data: st.DataObject
) -> None:
    """The shell's ``ulimit`` builtin is getrlimit(2) in the container process itself.
    Hard values stay within what a runtime started by this process can set."""
    # docker's ulimits are int64: the adapter cannot say RLIM_INFINITY
    infinity = container_factory.adapter.name != "docker"
    rlimits = data.draw(_rlimit_lists(infinity), label="rlimits")
    lines = []
    for limit in rlimits:
        option = _RLIMITS[limit.type][1]
        lines.append(f"echo {limit.type} $(ulimit -S {option}) $(ulimit -H {option})")
    config = _config(["sh", "-c", "; ".join([*lines, "exit 0"])])
    config["process"]["rlimits"] = [limit.as_config() for limit in rlimits]
    ran = _run(container_factory, tmp_path, rootfs, config)
    assert ran.status == 0, ran.stderr
    expected = [f"{r.type} {_in_units(r, r.soft)} {_in_units(r, r.hard)}" for r in rlimits]
    assert ran.text.splitlines() == expected, "getrlimit (soft, hard) in the process"


def _in_units(limit: Rlimit, value: int) -> str:
    return "unlimited" if value == RLIM_INFINITY else str(value // _RLIMITS[limit.type][2])


# --------------------------------------------------------------------- capabilities


@dataclass(frozen=True)
class CapabilitySets:
    """``process.user.uid`` and ``process.capabilities``, as exec leaves them: for uid 0
    effective = permitted = bounding; otherwise effective = permitted = ambient; ambient
    within inheritable within bounding."""

    uid: int
    bounding: tuple[str, ...] = ()
    effective: tuple[str, ...] = ()
    permitted: tuple[str, ...] = ()
    inheritable: tuple[str, ...] = ()
    ambient: tuple[str, ...] = ()

    def as_config(self) -> dict[str, list[str]]:
        return {
            "bounding": list(self.bounding),
            "effective": list(self.effective),
            "permitted": list(self.permitted),
            "inheritable": list(self.inheritable),
            "ambient": list(self.ambient),
        }


# Capabilities newer than Linux 3.16's CAP_AUDIT_READ (5.8, 5.9) are unknown to runtimes
# of 2020-2022 (Docker 20.10, gVisor 2022): a runtime that cannot map a name is
# RT-PROC-CAPS-6/7's business, tested on its own, not the set semantics' here.
NEWER_CAPABILITIES = ("CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE")


def _grantable_capabilities() -> tuple[str, ...]:
    """The capabilities this kernel knows and our bounding set holds (a runtime started
    by this process can grant no others: this VM's root lacks CAP_SYS_RESOURCE), up to
    CAP_AUDIT_READ."""
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    bounding = _caps_of(_own_status_field("CapBnd")) or ()
    known = [name for name in CAPABILITIES[: last + 1] if name not in NEWER_CAPABILITIES]
    return tuple(name for name in known if name in bounding)


def _own_status_field(name: str) -> str | None:
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key == name:
            return value.strip()
    return None


@st.composite
def _capability_sets(draw: st.DrawFn, engine: bool) -> CapabilitySets:
    names = _grantable_capabilities()

    def subset(of: Sequence[str]) -> tuple[str, ...]:
        chosen = draw(st.sets(st.sampled_from(of))) if of else set()
        return tuple(sorted(chosen, key=CAPABILITIES.index))

    if not draw(st.booleans()):  # the simplest example, which Hypothesis tries first
        everything = names  # root with every capability it can be given, in every set
        if engine:
            return CapabilitySets(0, everything, everything, everything)
        return CapabilitySets(0, everything, everything, everything, everything, everything)
    if engine:  # what the docker adapter can say: one set, for root
        bounding = subset(names)
        return CapabilitySets(0, bounding, bounding, bounding)
    uid = draw(st.sampled_from([0, 1000]) | st.integers(1, 65534))
    bounding = subset(names)
    inheritable = subset(bounding)
    ambient = subset(inheritable)
    kept = bounding if uid == 0 else ambient
    return CapabilitySets(uid, bounding, kept, kept, inheritable, ambient)


def _caps_of(mask: str | None) -> tuple[str, ...] | None:
    if mask is None:
        return None
    bits = int(mask, 16)
    return tuple(
        CAPABILITIES[n] if n < len(CAPABILITIES) else f"cap {n}" for n in range(64) if bits >> n & 1
    )


_CHOWN_PROBE = "touch /dev/shm/pc; chown 4242 /dev/shm/pc && echo chown=done || echo chown=denied"


def _run_capabilities(
    factory: ContainerFactory, directory: Path, rootfs: Path, sets: CapabilitySets
) -> Ran:
    config = _config(_status_script(_CHOWN_PROBE), user=(sets.uid, sets.uid))
    config["process"]["capabilities"] = sets.as_config()
    try:
        ran = _run(factory, directory, rootfs, config)
    except RuntimeCommandError as exc:
        pytest.fail(f"{factory.adapter.name} refused capabilities it could grant: {exc}")
    assert ran.status == 0, ran.stderr
    return ran


@pytest.mark.requirement("RT-PROC-CAPS-1", "RT-PROC-CAPS-2", "RT-PROC-CAPS-3", "RT-PROC-CAPS-4")
@FIRST_FAILURE
@given(data=st.data())
def test_the_capability_sets_are_the_configured_ones(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, data: st.DataObject
) -> None:
    engine = container_factory.adapter.name == "docker"
    sets = data.draw(_capability_sets(engine), label="sets")
    ran = _run_capabilities(container_factory, tmp_path, rootfs, sets)
    wanted = {
        "CapBnd": sets.bounding,
        "CapEff": sets.effective,
        "CapPrm": sets.permitted,
        "CapInh": sets.inheritable,
    }
    wrong = []
    for line, expected in wanted.items():
        seen = _caps_of(ran.field(line)) or ()
        missing = [c for c in expected if c not in seen]
        extra = [c for c in seen if c not in expected]
        if missing or extra:
            wrong.append(f"{line}: missing {missing}, unexpected {extra}")
    assert not wrong, "capability sets in /proc/PID/status: " + "; ".join(wrong)
    chown = "chown=done" if "CAP_CHOWN" in sets.effective else "chown=denied"
    assert ran.lines_starting("chown=") == [chown], "chown(2) by a child, as CAP_CHOWN says"


@pytest.mark.requirement("RT-PROC-CAPS-5")
@FIRST_FAILURE
@given(data=st.data())
def test_the_ambient_capability_set_is_the_configured_one(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, data: st.DataObject
) -> None:
    _docker_lacks(container_factory.adapter, "process.capabilities.ambient")
    sets = data.draw(_capability_sets(engine=False), label="sets")
    ran = _run_capabilities(container_factory, tmp_path, rootfs, sets)
    if ran.field("CapAmb") is None:
        not_applicable(
            f"{container_factory.adapter.name}: /proc/PID/status has no CapAmb line here, "
            "so the ambient set cannot be seen"
        )
    assert _caps_of(ran.field("CapAmb")) == sets.ambient, "CapAmb in /proc/PID/status"


@pytest.mark.requirement("RT-PROC-CAPS-7")
def test_a_capability_that_cannot_be_granted_does_not_fail_the_container(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path
) -> None:
    """A name no kernel knows, and the newest ones this kernel knows, beside CAP_KILL:
    the runtime may warn about what it cannot map or grant, but runs the container with
    CAP_KILL and nothing that was not asked for."""
    wanted = ["CAP_KILL", *NEWER_CAPABILITIES, "CAP_PYTEST_CONTAINERS_NO_SUCH_CAPABILITY"]
    config = _config(_status_script())
    config["process"]["capabilities"] = {
        key: wanted for key in ("bounding", "effective", "permitted")
    }
    try:
        ran = _run(container_factory, tmp_path, rootfs, config)
    except RuntimeCommandError as exc:
        pytest.fail(f"the runtime failed on capabilities it cannot grant: {exc.runtime_message}")
    assert ran.status == 0, ran.stderr
    effective = _caps_of(ran.field("CapEff")) or ()
    assert "CAP_KILL" in effective, "the grantable capability CAP_KILL was dropped"
    assert set(effective) <= set(wanted), f"capabilities that were not asked for: {effective}"


# --------------------------------------------------------------------- privileges


@pytest.mark.requirement("RT-PROC-NNP-1")
def test_no_new_privileges_stops_a_setuid_program_from_gaining_privileges(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path
) -> None:
    """As uid 1000, run a setuid-root busybox: without noNewPrivileges the kernel makes
    its saved uid 0 and gives it capabilities; with it, neither."""
    probe = "/suid/busybox sh -c 'grep -E \"^(Uid|CapPrm|NoNewPrivs):\" /proc/self/status'"
    seen = {}
    for flag in (False, True):
        config = _config(["sh", "-c", f"{probe}; exit 0"], user=(1000, 1000))
        config["process"]["noNewPrivileges"] = flag
        ran = _run(container_factory, tmp_path, rootfs, config)
        assert ran.status == 0, ran.stderr
        seen[flag] = ran
    control = seen[False]
    if control.field("Uid") != "1000\t1000\t0\t1000":
        not_applicable(
            "a setuid-root program gains nothing in this container even without "
            f"noNewPrivileges (its Uid line: {control.field('Uid')!r}), so the flag "
            "makes no visible difference"
        )
    ran = seen[True]
    assert ran.field("Uid") == "1000\t1000\t1000\t1000", "the setuid bit took effect"
    assert _caps_of(ran.field("CapPrm")) == (), "the setuid program gained capabilities"
    if ran.field("NoNewPrivs") is not None:
        assert ran.field("NoNewPrivs") == "1", "NoNewPrivs in /proc/PID/status"


# --------------------------------------------------------------------- OOM score


@pytest.mark.requirement("RT-PROC-OOM-1")
@FEWER
@given(data=st.data())
def test_oom_score_adj_is_the_configured_value(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, data: st.DataObject
) -> None:
    """Without CAP_SYS_RESOURCE no runtime can go below the value it inherits from us,
    so the values start there."""
    low = -1000 if _have_sys_resource() else int(Path("/proc/self/oom_score_adj").read_text())
    adj = data.draw(st.sampled_from([low, 1000]) | st.integers(low, 1000), label="adj")
    config = _config(["sh", "-c", READ.format("oom_score_adj") + "; exit 0"])
    config["process"]["oomScoreAdj"] = adj
    ran = _run(container_factory, tmp_path, rootfs, config)
    assert ran.status == 0, ran.stderr
    assert ran.text == f"{adj}\n", "/proc/PID/oom_score_adj"


@pytest.mark.requirement("RT-PROC-OOM-2")
def test_oom_score_adj_is_left_alone_when_not_configured(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path
) -> None:
    """The container process inherits the runtime's oom_score_adj, which inherits ours:
    make ours unusual for the length of the test."""
    _docker_lacks(container_factory.adapter, "leaving oomScoreAdj unset (the Engine sets one)")
    mine = Path("/proc/self/oom_score_adj")
    saved = mine.read_text()
    config = _config(["sh", "-c", READ.format("oom_score_adj") + "; exit 0"])
    config["process"].pop("oomScoreAdj", None)
    try:
        mine.write_text("317")
        ran = _run(container_factory, tmp_path, rootfs, config)
    finally:
        mine.write_text(saved)
    assert ran.status == 0, ran.stderr
    assert ran.text == "317\n", "the runtime changed oom_score_adj it was not asked to set"


# --------------------------------------------------------------------- scheduling

_POLICIES = {"SCHED_OTHER": 0, "SCHED_BATCH": 3, "SCHED_IDLE": 5}


@dataclass(frozen=True)
class Scheduler:
    """``process.scheduler``: a policy of the fair class, with a nice value."""

    policy: str
    nice: int = 0

    def as_config(self) -> dict[str, Any]:
        return {"policy": self.policy, "nice": self.nice}


@pytest.mark.requirement("RT-PROC-SCHED-1")
@FEWER
@given(scheduler=st.builds(Scheduler, st.sampled_from(sorted(_POLICIES)), st.integers(0, 19)))
def test_the_process_runs_with_the_configured_scheduler(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, scheduler: Scheduler
) -> None:
    _docker_lacks(container_factory.adapter, "process.scheduler")
    config = _config(["sh", "-c", READ.format("stat") + "; exit 0"])
    config["process"]["scheduler"] = scheduler.as_config()
    ran = _run_optional(container_factory, tmp_path, rootfs, config, "process.scheduler")
    assert ran.status == 0, ran.stderr
    fields = ran.text[ran.text.rindex(")") + 2 :].split()  # from field 3, state
    policy, nice = int(fields[41 - 3]), int(fields[19 - 3])
    assert policy == _POLICIES[scheduler.policy], "the scheduling policy (/proc/PID/stat)"
    if scheduler.policy != "SCHED_IDLE":  # the kernel keeps no nice value for SCHED_IDLE
        assert nice == scheduler.nice, "the nice value (/proc/PID/stat)"


@dataclass(frozen=True)
class IoPriority:
    """``process.ioPriority``."""

    cls: str
    priority: int = 0

    def as_config(self) -> dict[str, Any]:
        return {"class": self.cls, "priority": self.priority}


_IO_CLASSES = {"IOPRIO_CLASS_BE": "best-effort", "IOPRIO_CLASS_IDLE": "idle"}


@pytest.mark.requirement("RT-PROC-IOPRIO-1")
@FEWER
@given(
    io=st.builds(IoPriority, st.just("IOPRIO_CLASS_BE"), st.integers(0, 7))
    | st.builds(IoPriority, st.just("IOPRIO_CLASS_IDLE"), st.just(0))
)
def test_the_process_runs_with_the_configured_io_priority(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, io: IoPriority
) -> None:
    _docker_lacks(container_factory.adapter, "process.ioPriority")
    config = _config(["sh", "-c", "ionice -p $$; exit 0"])
    config["process"]["ioPriority"] = io.as_config()
    ran = _run_optional(container_factory, tmp_path, rootfs, config, "process.ioPriority")
    assert ran.status == 0, ran.stderr
    seen_class, _, seen_priority = ran.text.strip().partition(": prio ")
    assert seen_class == _IO_CLASSES[io.cls], f"the I/O class (ionice says {ran.text!r})"
    if io.cls == "IOPRIO_CLASS_BE":
        assert seen_priority == str(io.priority), f"the I/O priority (ionice says {ran.text!r})"


_32_BIT = {"x86_64": ("i686", "i386"), "aarch64": ("armv8l", "armv7l"), "s390x": ("s390",)}


@pytest.mark.requirement("RT-PROC-PERSONALITY-1")
def test_linux32_personality_reports_a_32_bit_machine(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path
) -> None:
    _docker_lacks(container_factory.adapter, "linux.personality")
    machine = os.uname().machine
    if machine not in _32_BIT:
        not_applicable(f"this host is {machine}, which has no 32-bit personality known here")
    seen = {}
    for domain in ("LINUX", "LINUX32"):
        config = _config(["sh", "-c", "uname -m; exit 0"])
        config["linux"]["personality"] = {"domain": domain}
        ran = _run_optional(container_factory, tmp_path, rootfs, config, "linux.personality")
        assert ran.status == 0, ran.stderr
        seen[domain] = ran.text.strip()
    assert seen["LINUX"] == machine, "uname -m with the LINUX personality"
    assert seen["LINUX32"] in _32_BIT[machine], "uname -m with the LINUX32 personality"


# --------------------------------------------------------------------- terminal, fds


@pytest.mark.requirement("RT-PROC-TERM-2")
@FEWER
@given(height=st.integers(0, 500), width=st.integers(0, 500))
def test_console_size_is_ignored_without_a_terminal(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, height: int, width: int
) -> None:
    _docker_lacks(container_factory.adapter, "process.consoleSize")
    script = "for fd in 0 1 2; do [ -t $fd ] && echo tty=$fd; done; echo done; exit 0"
    config = _config(["sh", "-c", script])
    config["process"]["terminal"] = False
    config["process"]["consoleSize"] = {"height": height, "width": width}
    try:
        ran = _run(container_factory, tmp_path, rootfs, config)
    except RuntimeCommandError as exc:
        pytest.fail(f"consoleSize with terminal false was not ignored: {exc.runtime_message}")
    assert (ran.status, ran.text) == (0, "done\n"), "a terminal was attached"


@pytest.mark.requirement("RT-PROC-FD-1")
def test_only_stdin_stdout_and_stderr_are_open(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path
) -> None:
    """Seen from the host (/proc/PID/fd of the container process) and from inside; a
    descriptor the test leaves inheritable must not leak into the container either."""
    adapter = container_factory.adapter
    bundle = _write_bundle(tmp_path, rootfs, _config(["sleep", "600"]))
    leak = os.open(os.devnull, os.O_RDONLY)  # inheritable (no O_CLOEXEC)
    try:
        with expressible():
            handle = container_factory.make_container(tmp_path, bundle=bundle)
    finally:
        os.close(leak)
    try:
        inside = handle.exec(["ls", "/proc/1/fd"])
        assert inside.exit_code == 0, inside.stderr
        assert sorted(inside.stdout.split(), key=int) == ["0", "1", "2"], "seen from inside"
        if HOST_PID not in adapter.unsupported and HOST_KERNEL not in adapter.unsupported:
            host = sorted(os.listdir(f"/proc/{handle.pid}/fd"), key=int)
            assert host == ["0", "1", "2"], "seen from the host"
    finally:
        container_factory.remove(handle)
        shutil.rmtree(bundle)
