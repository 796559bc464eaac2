"""Offline test root filesystems and OCI bundles, built from what the host has.

There is no image registry and no network, so a container's root filesystem is made
from the host: either a static busybox with one symlink per applet (``"busybox"``), or,
when busybox-static is absent, a handful of host binaries with the shared libraries
and the dynamic loader they need (``"host"``). ``"auto"`` prefers busybox.

A built rootfs is cached under ``$XDG_CACHE_HOME/pytest-containers/rootfs/`` (default
``~/.cache``) in a directory named after the source and a key derived from its inputs.
It is built in a temporary directory beside its final name and renamed into place, under
an ``fcntl`` lock, so parallel pytest-xdist workers build it once. Treat the cached
directory as read-only: :func:`make_bundle` gives every container its own copy.

Command line, for scripts and the README::

    python -m reference_runtime.rootfs_builder bundle DIR [-- ARGS...]
    python -m reference_runtime.rootfs_builder tarball FILE
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reference_runtime.errors import RootfsError, RuntimeSpecError
from reference_runtime.spec import default_spec

__all__ = [
    "BUILDER_VERSION",
    "SOURCES",
    "build_rootfs",
    "cache_root",
    "elf_interpreter",
    "export_tarball",
    "find_static_busybox",
    "main",
    "make_bundle",
]

BUILDER_VERSION = 1
"""Bumped whenever the layout of a built rootfs changes, so old cache entries are not reused."""

SOURCES = ("auto", "busybox", "host")

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox", "/sbin/busybox", "/usr/sbin/busybox")

HOST_TOOLS = (
    "sh", "ls", "cat", "echo", "sleep", "true", "false", "id", "hostname", "mkdir",
    "rmdir", "rm", "touch", "env", "uname", "head", "wc", "readlink", "ln", "cp", "mv",
    "chmod", "pwd", "date", "test", "stat",
)  # fmt: skip
"""Binaries copied for the ``"host"`` source; only ``sh`` is required."""

_HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Directories of every rootfs, with their modes (applied explicitly, whatever the umask).
_SKELETON_DIRS = {
    "bin": 0o755,
    "sbin": 0o755,
    "etc": 0o755,
    "dev": 0o755,
    "proc": 0o555,
    "sys": 0o555,
    "tmp": 0o1777,
    "root": 0o700,
    "var": 0o755,
    "run": 0o755,
    "usr": 0o755,
    "usr/bin": 0o755,
    "usr/sbin": 0o755,
}

_SKELETON_FILES = {
    "etc/passwd": (
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
    ),
    "etc/group": "root:x:0:\nnogroup:x:65534:\n",
    "etc/hostname": "reference\n",
    "etc/hosts": "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
}

_PT_INTERP = 3


# --------------------------------------------------------------------------- sources


@dataclass
class _Plan:
    """What one source puts into a rootfs: host files by destination, and applet links."""

    source: str
    files: dict[str, str] = field(default_factory=dict)  # path in rootfs -> host path
    links: dict[str, str] = field(default_factory=dict)  # path in rootfs -> link target

    def key(self) -> str:
        """A short digest of every input, so a changed host binary means a new cache entry."""
        digest = hashlib.sha256(f"v{BUILDER_VERSION}:{self.source}".encode())
        for dest, src in sorted(self.files.items()):
            st = os.stat(src)
            digest.update(f"\0{dest}={src}:{st.st_size}:{st.st_mtime_ns}".encode())
        return digest.hexdigest()[:16]


def elf_interpreter(path: str | os.PathLike[str]) -> str | None:
    """Return the ELF program interpreter (``PT_INTERP``) of ``path``; None when static."""
    with open(path, "rb") as f:
        head = f.read(64)
        if len(head) < 52 or head[:4] != b"\x7fELF":
            raise RootfsError(f"{os.fspath(path)} is not an ELF executable")
        end = "<" if head[5] == 1 else ">"
        if head[4] == 2:  # ELFCLASS64
            (phoff,) = struct.unpack_from(end + "Q", head, 32)
            phentsize, phnum = struct.unpack_from(end + "HH", head, 54)
            off_fmt, off_at, size_at = "Q", 8, 32
        else:  # ELFCLASS32
            (phoff,) = struct.unpack_from(end + "I", head, 28)
            phentsize, phnum = struct.unpack_from(end + "HH", head, 42)
            off_fmt, off_at, size_at = "I", 4, 16
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            ph = f.read(phentsize)
            if struct.unpack_from(end + "I", ph, 0)[0] != _PT_INTERP:
                continue
            (offset,) = struct.unpack_from(end + off_fmt, ph, off_at)
            (size,) = struct.unpack_from(end + off_fmt, ph, size_at)
            f.seek(offset)
            return f.read(size).rstrip(b"\0").decode()
    return None


def find_static_busybox() -> str | None:
    """Return the path of a statically linked busybox on the host, or None."""
    for candidate in BUSYBOX_CANDIDATES:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            try:
                if elf_interpreter(candidate) is None:
                    return candidate
            except (OSError, RootfsError):
                continue
    return None


def _busybox_plan() -> _Plan:
    busybox = find_static_busybox()
    if busybox is None:
        raise RootfsError(
            "no static busybox found (looked at "
            + ", ".join(BUSYBOX_CANDIDATES)
            + "); install busybox-static or use source='host'"
        )
    plan = _Plan("busybox", files={"bin/busybox": busybox})
    for applet in _busybox_applets(busybox):
        if applet != "busybox":
            plan.links[f"bin/{applet}"] = "busybox"
    if "bin/sh" not in plan.links:
        raise RootfsError(f"{busybox} has no 'sh' applet; install busybox-static")
    return plan


def _busybox_applets(busybox: str) -> list[str]:
    try:
        out = subprocess.run(
            [busybox, "--list"], capture_output=True, text=True, check=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise RootfsError(f"cannot list the applets of {busybox}: {exc}") from None
    return [name for name in out.split() if name and "/" not in name]


def _host_plan() -> _Plan:
    plan = _Plan("host")
    binaries: list[str] = []
    for tool in HOST_TOOLS:
        found = shutil.which(tool, path=_HOST_PATH)
        if found is None:
            continue
        real = os.path.realpath(found)
        plan.files[f"bin/{tool}"] = real
        if real not in binaries:
            binaries.append(real)
    if "bin/sh" not in plan.files:
        raise RootfsError(
            "cannot build a test rootfs: no static busybox and no host /bin/sh; "
            "install busybox-static"
        )
    for lib in _shared_libraries(binaries):
        plan.files[lib.lstrip("/")] = os.path.realpath(lib)
    return plan


def _shared_libraries(binaries: Sequence[str]) -> list[str]:
    """Every shared library and loader the binaries need, at the paths the loader uses."""
    interpreters = {interp for b in binaries if (interp := elf_interpreter(b)) is not None}
    dynamic = [b for b in binaries if elf_interpreter(b) is not None]
    if not dynamic:
        return []
    ldd = shutil.which("ldd", path=_HOST_PATH)
    # Without ldd, ask the loader itself: ``ld.so --list`` is what ldd runs.
    command = [ldd] if ldd else [sorted(interpreters)[0], "--list"]
    try:
        proc = subprocess.run(
            [*command, *dynamic], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise RootfsError(f"cannot list shared libraries with {command[0]}: {exc}") from None
    libraries = set(interpreters)
    for line in proc.stdout.splitlines():
        if not line[:1].isspace():  # "/usr/bin/ls:" headers when listing several files
            continue
        name, _, rest = line.strip().partition("=>")
        target = (rest or name).split()
        if "not found" in rest:
            raise RootfsError(f"a host tool needs {name.strip()}, which ldd cannot find")
        if target and target[0].startswith("/"):
            libraries.add(target[0])
    if proc.returncode != 0 and len(libraries) == len(interpreters):
        raise RootfsError(f"{command[0]} failed: {proc.stderr.strip() or proc.returncode}")
    return sorted(libraries)


def _plan_for(source: str) -> _Plan:
    if source == "busybox":
        return _busybox_plan()
    if source == "host":
        return _host_plan()
    if source == "auto":
        return _busybox_plan() if find_static_busybox() else _host_plan()
    raise ValueError(
        f"unknown rootfs source {source!r}; use build_rootfs(source='auto'|'busybox'|'host')"
    )


# --------------------------------------------------------------------------- building


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/pytest-containers/rootfs``, with ``~/.cache`` as the default."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if os.path.isabs(base) else Path.home() / ".cache"
    return root / "pytest-containers" / "rootfs"


def _is_complete(rootfs: Path) -> bool:
    return os.path.lexists(rootfs / "bin" / "sh") and (rootfs / "etc" / "passwd").is_file()


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def build_rootfs(source: str = "auto") -> Path:
    """Return a cached rootfs directory built from ``source`` (``auto``, ``busybox``, ``host``).

    The directory is shared by every caller on this host: do not write into it; use
    :func:`make_bundle` for a private copy. Raises :class:`RootfsError` when nothing
    can be built.
    """
    plan = _plan_for(source)
    final = cache_root() / f"{plan.source}-{plan.key()}"
    if _is_complete(final):
        return final
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        with _locked(final.parent / f".{plan.source}.lock"):
            if _is_complete(final):  # another worker built it while we waited
                return final
            _remove_leftovers(final)
            tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
            try:
                _populate(tmp, plan)
                os.rename(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
    except OSError as exc:
        raise RootfsError(
            f"cannot build the {plan.source} rootfs in {final.parent}: {exc}"
        ) from None
    return final


def _remove_leftovers(final: Path) -> None:
    """Remove an incomplete ``final`` and temp dirs of builds that died (we hold the lock)."""
    if os.path.lexists(final):
        shutil.rmtree(final)
    for stale in final.parent.glob(f".{final.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)


def _populate(root: Path, plan: _Plan) -> None:
    os.chmod(root, 0o755)  # mkdtemp makes it 0700
    for rel, mode in _SKELETON_DIRS.items():
        path = root / rel
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, mode)
    for rel, text in _SKELETON_FILES.items():
        (root / rel).write_text(text)
        os.chmod(root / rel, 0o644)
    for rel, host_path in plan.files.items():
        dest = root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(host_path, dest)
        os.chmod(dest, 0o755)
    for rel, target in plan.links.items():
        os.symlink(target, root / rel)


# --------------------------------------------------------------------------- bundles


def make_bundle(
    dest: Path,
    *,
    args: list[str] | None = None,
    config: dict[str, Any] | None = None,
    rootfs: Path | None = None,
) -> Path:
    """Create an OCI bundle at ``dest``: a private copy of ``rootfs`` and ``config.json``.

    ``rootfs`` defaults to :func:`build_rootfs`; ``config`` to ``default_spec(args)``.
    Given both ``config`` and ``args``, ``args`` replaces ``config["process"]["args"]``.
    Returns ``dest``.
    """
    dest = Path(dest)
    source = Path(rootfs) if rootfs is not None else build_rootfs()
    if config is None:
        config = default_spec(args)
    else:
        config = json.loads(json.dumps(config))  # a copy: never mutate the caller's dict
        if args is not None:
            config.setdefault("process", {})["args"] = list(args)
    root_path = config.get("root", {}).get("path", "rootfs")
    if root_path != "rootfs":
        raise ValueError(
            f"config root.path is {root_path!r}; make_bundle writes the rootfs to "
            "'rootfs', so pass a config with root.path='rootfs'"
        )
    if os.path.lexists(dest / "rootfs"):
        raise FileExistsError(f"{dest / 'rootfs'} already exists; pass a new or empty dest")
    try:
        dest.mkdir(parents=True, exist_ok=True)
        # symlinks stay symlinks; files are real copies, so the cache cannot be written through
        shutil.copytree(source, dest / "rootfs", symlinks=True)
        tmp_config = dest / ".config.json.tmp"
        tmp_config.write_text(json.dumps(config, indent=2) + "\n")
        os.rename(tmp_config, dest / "config.json")
    except OSError as exc:
        raise RootfsError(f"cannot make a bundle in {dest}: {exc}") from None
    return dest


def export_tarball(rootfs: Path, tar_path: Path) -> Path:
    """Write ``rootfs`` as a tar that ``docker import`` accepts (gzip for .gz/.tgz names).

    Members are ``./bin/busybox`` and so on, owned by root, with symlinks kept.
    """
    rootfs, tar_path = Path(rootfs), Path(tar_path)
    if not rootfs.is_dir():
        raise RootfsError(f"{rootfs} is not a directory; build one with build_rootfs()")
    gzip = tar_path.name.endswith((".gz", ".tgz"))

    def as_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    tmp = tar_path.with_name(f".{tar_path.name}.tmp-{os.getpid()}")
    try:
        with tarfile.open(tmp, "w:gz" if gzip else "w", format=tarfile.PAX_FORMAT) as tar:
            tar.add(rootfs, arcname=".", recursive=True, filter=as_root)
        os.rename(tmp, tar_path)
    except OSError as exc:
        raise RootfsError(f"cannot write {tar_path}: {exc}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):  # already renamed into place
            tmp.unlink()
    return tar_path


# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m reference_runtime.rootfs_builder {rootfs,bundle,tarball}``."""
    parser = argparse.ArgumentParser(
        prog="python -m reference_runtime.rootfs_builder",
        description="Build offline test root filesystems and OCI bundles.",
    )
    parser.add_argument("--source", choices=SOURCES, default="auto", help="default: auto")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("rootfs", help="build (or find) the cached rootfs and print its path")
    bundle = sub.add_parser("bundle", help="make an OCI bundle in DIR")
    bundle.add_argument("dir", type=Path)
    bundle.add_argument("args", nargs=argparse.REMAINDER, help="-- ARGS... for process.args")
    tarball = sub.add_parser("tarball", help="write the rootfs as a tar for `docker import`")
    tarball.add_argument("file", type=Path)
    ns = parser.parse_args(argv)
    try:
        rootfs = build_rootfs(ns.source)
        if ns.command == "rootfs":
            print(rootfs)
        elif ns.command == "bundle":
            args = ns.args[1:] if ns.args[:1] == ["--"] else ns.args
            print(make_bundle(ns.dir, args=args or None, rootfs=rootfs))
        else:
            print(export_tarball(rootfs, ns.file))
    except (RuntimeSpecError, OSError, ValueError) as exc:
        print(f"rootfs_builder: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
