"""The container process (config.md#process, #posix-process): what the program sees of
its own arguments, environment, working directory, user and group IDs and umask.

Each example runs one container whose program reports about itself (``_process``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_containers.runtime import ContainerFactory

from ._examples import FEWER, FIRST_FAILURE
from ._process import CAPABILITIES as CAPABILITIES  # by number; test_warnings reads it here
from ._process import (
    CWD_DIRS,
    furnished_rootfs,  # noqa: F401 (the module's rootfs fixture)
    process_config,
    run_config,
    status_script,
)
from ._support import docker_lacks

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
    ran = run_config(container_factory, tmp_path, rootfs, process_config(argv))
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
    ran = run_config(
        container_factory, tmp_path, rootfs, process_config(["pcprog"], env=env, cwd="/")
    )
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
    config = process_config(["sh", "-c", "cat /proc/$$/environ; exit 0"])
    config["process"]["env"] = listed
    ran = run_config(container_factory, tmp_path, rootfs, config)
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
    ran = run_config(
        container_factory, tmp_path, rootfs, process_config(["sh", "-c", script], cwd=cwd)
    )
    assert ran.status == 0, ran.stderr
    assert ran.text == f"marker of {cwd}\n{cwd}\n", "the process does not run in cwd"


# --------------------------------------------------------------------- user

# The largest id every runtime here accepts: runc 1.1.5 refuses 2**31 and above ("uids
# and gids must be in range 0-2147483647", a README finding), which a drawn id would
# otherwise hit only now and then.
MAX_ID = 2**31 - 1


@pytest.mark.requirement("RT-PROC-USER-1", "RT-PROC-USER-2", "RT-PROC-USER-3")
@FIRST_FAILURE
@given(
    uid=st.sampled_from([0, 1000, 65534]) | st.integers(0, MAX_ID),
    gid=st.sampled_from([0, 1000, 65534]) | st.integers(0, MAX_ID),
    groups=st.lists(st.integers(0, MAX_ID), max_size=6, unique=True),
)
def test_the_process_runs_as_the_configured_user(
    container_factory: ContainerFactory,
    rootfs: Path,
    tmp_path: Path,
    uid: int,
    gid: int,
    groups: list[int],
) -> None:
    config = process_config(status_script("id -u; id -g; id -G"), user=(uid, gid))
    config["process"]["user"]["additionalGids"] = groups
    ran = run_config(container_factory, tmp_path, rootfs, config)
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
    docker_lacks(container_factory.adapter, "process.user.umask")
    script = (
        "echo umask=$(umask); f=/dev/shm/pc-file d=/dev/shm/pc-dir; touch $f; mkdir $d; "
        "echo file=$(stat -c %a $f) dir=$(stat -c %a $d)"
    )
    config = process_config(status_script(script))
    config["process"]["user"]["umask"] = umask
    ran = run_config(container_factory, tmp_path, rootfs, config)
    assert ran.status == 0, ran.stderr
    if ran.field("Umask") is not None:
        assert int(ran.field("Umask") or "", 8) == umask, "Umask in /proc/PID/status"
    assert ran.lines_starting("umask=") == [f"umask={umask:04o}"], "the umask builtin"
    expected = f"file={0o666 & ~umask:o} dir={0o777 & ~umask:o}"
    assert ran.lines_starting("file=") == [expected], "modes of new files"
