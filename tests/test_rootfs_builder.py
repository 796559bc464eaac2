"""Tests of the offline rootfs builder, on the real host: chroot, tar and a real runc."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from reference_runtime import rootfs_builder
from reference_runtime.errors import RootfsError
from reference_runtime.rootfs_builder import (
    build_rootfs,
    elf_interpreter,
    export_tarball,
    find_static_busybox,
    make_bundle,
)
from reference_runtime.spec import default_spec

REPO = Path(__file__).resolve().parents[1]

needs_busybox = pytest.mark.skipif(
    find_static_busybox() is None,
    reason="no static busybox on this host (apt install busybox-static)",
)


def _require(binary: str) -> str:
    __tracebackhide__ = True
    path = shutil.which(binary)
    if path is None:
        pytest.skip(f"{binary} is not installed")
    return path


def _chroot(rootfs: Path, script: str) -> subprocess.CompletedProcess[str]:
    if os.geteuid() != 0:
        pytest.skip("chroot needs root")
    chroot = _require("chroot")
    return subprocess.run(
        [chroot, str(rootfs), "/bin/sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/bin:/sbin:/usr/bin:/usr/sbin"},
        check=False,
    )


def _child_env(cache_home: Path) -> dict[str, str]:
    env = dict(os.environ, XDG_CACHE_HOME=str(cache_home))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A temp dir removed at teardown, pass or fail (pytest keeps tmp_path around)."""
    path = Path(tempfile.mkdtemp(prefix="ptc-rootfs-test-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def cache_home() -> Iterator[Path]:
    """A private XDG_CACHE_HOME for this module, so the user's cache is never touched."""
    path = Path(tempfile.mkdtemp(prefix="ptc-rootfs-cache-"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(path))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def busybox_rootfs(cache_home: Path) -> Path:
    if find_static_busybox() is None:
        pytest.skip("no static busybox on this host (apt install busybox-static)")
    return build_rootfs("busybox")


# --------------------------------------------------------------------------- rootfs


@needs_busybox
def test_busybox_rootfs_has_a_working_shell(busybox_rootfs: Path) -> None:
    proc = _chroot(busybox_rootfs, "echo ok; id -u nobody; cat /etc/hostname")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["ok", "65534", "reference"]


@needs_busybox
def test_busybox_rootfs_layout(busybox_rootfs: Path, cache_home: Path) -> None:
    assert busybox_rootfs.parent == cache_home / "pytest-containers" / "rootfs"
    assert busybox_rootfs.name.startswith("busybox-")
    assert os.readlink(busybox_rootfs / "bin" / "sh") == "busybox"
    assert os.readlink(busybox_rootfs / "bin" / "ls") == "busybox"
    assert stat.S_IMODE(os.stat(busybox_rootfs).st_mode) == 0o755
    assert stat.S_IMODE(os.stat(busybox_rootfs / "tmp").st_mode) == 0o1777
    for rel in ("sbin", "etc", "dev", "proc", "sys", "root", "var", "run", "usr/bin"):
        assert (busybox_rootfs / rel).is_dir(), rel
    passwd = (busybox_rootfs / "etc" / "passwd").read_text()
    assert passwd.startswith("root:x:0:0:")
    assert "nobody:x:65534:65534:" in passwd
    assert "root:x:0:" in (busybox_rootfs / "etc" / "group").read_text()


@needs_busybox
def test_cache_hit_is_fast_and_returns_the_same_path(busybox_rootfs: Path) -> None:
    start = time.perf_counter()
    again = build_rootfs("busybox")
    elapsed = time.perf_counter() - start
    assert again == busybox_rootfs
    assert build_rootfs("auto") == busybox_rootfs
    assert elapsed < 0.25, f"a cache hit took {elapsed:.3f}s"


@needs_busybox
def test_concurrent_builds_make_one_good_cache(scratch: Path) -> None:
    child = (
        "import sys\n"
        "from reference_runtime.rootfs_builder import build_rootfs\n"
        "print('ready', flush=True)\n"
        "sys.stdin.readline()\n"
        "print(build_rootfs('busybox'), flush=True)\n"
    )
    cache_home = scratch / "cache"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", child],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_child_env(cache_home),
        )
        for _ in range(2)
    ]
    cache = cache_home / "pytest-containers" / "rootfs"
    cache.mkdir(parents=True)
    try:
        for proc in procs:  # both imported and waiting
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        # Hold the build lock while releasing both, so they surely contend for it.
        with open(cache / ".busybox.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            for proc in procs:
                assert proc.stdin is not None
                proc.stdin.write("go\n")
                proc.stdin.flush()
            time.sleep(0.3)
            assert [proc.poll() for proc in procs] == [None, None], "a build ignored the lock"
        results = [proc.communicate(timeout=30) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for proc, (_, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
    paths = {out.strip() for out, _ in results}
    assert len(paths) == 1
    entries = sorted(p.name for p in cache.iterdir())
    assert entries == [".busybox.lock", Path(paths.pop()).name]
    assert _chroot(cache / entries[1], "echo ok").stdout == "ok\n"


def test_host_source_runs_ls(cache_home: Path) -> None:
    rootfs = build_rootfs("host")
    assert rootfs.name.startswith("host-")
    proc = _chroot(rootfs, "ls /; id -u; hostname >/dev/null && echo hostname-ok")
    assert proc.returncode == 0, proc.stderr
    listed = proc.stdout.split()
    assert {"bin", "etc", "tmp", "proc"} <= set(listed)
    assert listed[-2:] == ["0", "hostname-ok"]
    interp = elf_interpreter(os.path.realpath("/bin/sh"))
    assert interp is not None and (rootfs / interp.lstrip("/")).is_file()


def test_elf_interpreter_tells_static_from_dynamic() -> None:
    assert elf_interpreter(os.path.realpath("/bin/sh")) is not None
    busybox = find_static_busybox()
    if busybox is not None:
        assert elf_interpreter(busybox) is None
    with pytest.raises(RootfsError, match="not an ELF"):
        elf_interpreter(REPO / "pyproject.toml")


def test_missing_busybox_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rootfs_builder, "BUSYBOX_CANDIDATES", ("/nonexistent/busybox",))
    with pytest.raises(RootfsError, match=r"install busybox-static") as info:
        build_rootfs("busybox")
    assert "\n" not in str(info.value)


def test_unknown_source_shows_the_right_call() -> None:
    with pytest.raises(ValueError, match=r"source='auto'\|'busybox'\|'host'"):
        build_rootfs("alpine")


# --------------------------------------------------------------------------- bundles


@needs_busybox
def test_bundles_are_independent_copies(busybox_rootfs: Path, scratch: Path) -> None:
    first = make_bundle(scratch / "one", args=["true"], rootfs=busybox_rootfs)
    second = make_bundle(scratch / "two", rootfs=busybox_rootfs)
    assert first == scratch / "one"
    assert json.loads((first / "config.json").read_text()) == default_spec(["true"])
    assert json.loads((second / "config.json").read_text()) == default_spec()
    assert os.readlink(first / "rootfs" / "bin" / "sh") == "busybox"
    assert stat.S_IMODE(os.stat(first / "rootfs" / "tmp").st_mode) == 0o1777

    cached = busybox_rootfs / "bin" / "busybox"
    copied = first / "rootfs" / "bin" / "busybox"
    assert os.stat(copied).st_ino != os.stat(cached).st_ino
    size = os.stat(cached).st_size
    copied.write_bytes(b"clobbered by a container")
    (first / "rootfs" / "etc" / "passwd").write_text("")
    (first / "rootfs" / "tmp" / "scratch").write_text("x")
    assert os.stat(cached).st_size == size
    assert os.stat(second / "rootfs" / "bin" / "busybox").st_size == size
    assert (busybox_rootfs / "etc" / "passwd").read_text().startswith("root:")
    assert not (busybox_rootfs / "tmp" / "scratch").exists()


@needs_busybox
def test_make_bundle_with_a_config(busybox_rootfs: Path, scratch: Path) -> None:
    config = default_spec()
    config["hostname"] = "custom"
    bundle = make_bundle(scratch / "b", config=config, args=["echo", "hi"], rootfs=busybox_rootfs)
    written = json.loads((bundle / "config.json").read_text())
    assert written["hostname"] == "custom"
    assert written["process"]["args"] == ["echo", "hi"]
    assert config["process"]["args"] == ["sh"], "the caller's dict must not change"
    with pytest.raises(FileExistsError, match="new or empty dest"):
        make_bundle(bundle, rootfs=busybox_rootfs)


@needs_busybox
@pytest.mark.parametrize("name", ["rootfs.tar", "rootfs.tar.gz"])
def test_tarball_is_importable(busybox_rootfs: Path, scratch: Path, name: str) -> None:
    tar_path = export_tarball(busybox_rootfs, scratch / name)
    assert tar_path == scratch / name
    assert [p.name for p in scratch.iterdir()] == [name], "no temp file left behind"
    with tarfile.open(tar_path) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["./bin/busybox"].isfile()
    assert members["./bin/busybox"].mode & 0o111
    assert members["./bin/sh"].issym() and members["./bin/sh"].linkname == "busybox"
    assert members["./tmp"].mode == 0o1777
    assert all(n == "." or n.startswith("./") for n in members)
    assert {(m.uid, m.gid, m.uname, m.gname) for m in members.values()} == {(0, 0, "root", "root")}


# --------------------------------------------------------------------------- command line


def _cli(*args: str, cache_home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reference_runtime.rootfs_builder", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=_child_env(cache_home),
        check=False,
    )


@needs_busybox
def test_cli_makes_a_bundle(cache_home: Path, scratch: Path) -> None:
    proc = _cli("bundle", str(scratch / "b"), "--", "sh", "-c", "echo $$", cache_home=cache_home)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(scratch / "b")
    config = json.loads((scratch / "b" / "config.json").read_text())
    assert config["process"]["args"] == ["sh", "-c", "echo $$"]
    assert os.readlink(scratch / "b" / "rootfs" / "bin" / "sh") == "busybox"


def test_cli_error_is_one_line(cache_home: Path, scratch: Path) -> None:
    proc = _cli("tarball", str(scratch / "missing" / "x.tar"), cache_home=cache_home)
    assert proc.returncode == 1
    assert proc.stderr.startswith("rootfs_builder: error: cannot write ")
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


# --------------------------------------------------------------------------- side by side


@needs_busybox
def test_runc_runs_a_bundle_made_by_make_bundle(busybox_rootfs: Path, scratch: Path) -> None:
    runc = _require("runc")
    bundle = make_bundle(
        scratch / "bundle", args=["sh", "-c", "hostname; echo $$"], rootfs=busybox_rootfs
    )
    state = scratch / "runc-state"
    cid = f"ptc-rootfs-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        proc = subprocess.run(
            [runc, "--root", str(state), "run", "--bundle", str(bundle), cid],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    finally:
        # `run` deletes the container on exit; this covers a timeout or a wedged start,
        # and reports "does not exist" otherwise, which is fine.
        subprocess.run(
            [runc, "--root", str(state), "delete", "--force", cid],
            capture_output=True,
            timeout=30,
            check=False,
        )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["reference", "1"]
    listed = subprocess.run(
        [runc, "--root", str(state), "list", "-q"], capture_output=True, text=True, check=False
    )
    assert cid not in listed.stdout
